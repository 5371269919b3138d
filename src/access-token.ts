/**
 * access-token — the access session for embedders (PROTOCOL.md §6.5):
 * {@link accessToken} resolves with a valid token, {@link reportUnauthorized}
 * makes it due at once. The session itself runs in the registrar's
 * statechart (`registered.session`); every caller shares its sign-ins.
 */
import { CodedError } from './errors.js';
import type { AccessToken } from './register-siwe.js';
import { registrarResources, type Registrar } from './registrar.js';

/** Why {@link accessToken} gave up. */
export type AccessTokenErrorCode =
  /** Not a registrar of protocol `siwe` with its session on (or not made by `createRegistrar`). */
  | 'ESESSIONOFF'
  /** The registrar stopped (or stops while waiting). */
  | 'ESTOPPED'
  /** The registrar failed (e.g. an invalid key). */
  | 'EFAILED'
  /** The caller's signal aborted the wait. */
  | 'EABORTED';

/** {@link accessToken} could not hand out a token. */
export class AccessTokenError extends CodedError<AccessTokenErrorCode> {
  override readonly name = 'AccessTokenError';
}

/** Options of {@link accessToken}. */
export interface AccessTokenOptions {
  /** Stop waiting (rejects with `EABORTED`). */
  signal?: AbortSignal;
}

/**
 * A valid access token: at once when one is held, else once the registrar
 * has registered and signed in (concurrent callers share that sign-in).
 * Rejects with {@link AccessTokenError} when the session is off, the
 * registrar stops or fails, or `signal` aborts.
 */
export function accessToken(registrar: Registrar, options: AccessTokenOptions = {}): Promise<AccessToken> {
  const tokens = registrarResources(registrar)?.tokens ?? null;
  if (tokens === null) {
    return Promise.reject(new AccessTokenError('ESESSIONOFF', 'no access session: the registrar needs protocol siwe with accessSession on'));
  }
  const { signal } = options;
  return new Promise<AccessToken>((resolve, reject) => {
    let settled = false;
    const cleanups: (() => void)[] = [];
    const settle = (finish: () => void): void => {
      if (settled) return;
      settled = true;
      for (const cleanup of cleanups) cleanup();
      finish();
    };
    const check = (): void => {
      const held = tokens.current();
      if (held !== undefined) return settle(() => resolve(held.token));
      const snapshot = registrar.getSnapshot();
      if (snapshot.status === 'done') {
        const failed = snapshot.output?.outcome === 'failed';
        return settle(() => reject(failed ? new AccessTokenError('EFAILED', 'the registrar failed') : new AccessTokenError('ESTOPPED', 'the registrar stopped')));
      }
      if (snapshot.status === 'error' || snapshot.status === 'stopped') {
        return settle(() => reject(new AccessTokenError(snapshot.status === 'error' ? 'EFAILED' : 'ESTOPPED', `the registrar is ${snapshot.status === 'error' ? 'broken' : 'stopped'}`)));
      }
    };
    if (signal !== undefined) {
      if (signal.aborted) return settle(() => reject(new AccessTokenError('EABORTED', 'aborted')));
      const onAbort = (): void => settle(() => reject(new AccessTokenError('EABORTED', 'aborted')));
      signal.addEventListener('abort', onAbort, { once: true });
      cleanups.push(() => signal.removeEventListener('abort', onAbort));
    }
    cleanups.push(tokens.onChange(check));
    const subscription = registrar.subscribe({ next: check, complete: check, error: check });
    cleanups.push(() => subscription.unsubscribe());
    check();
  });
}

/**
 * A service refused the token (401): it is handed out no more, and the
 * session signs in again at once. With `token` (the one the service
 * refused), nothing happens when a refresh has replaced it already.
 * Ignored without an access session.
 */
export function reportUnauthorized(registrar: Registrar, token?: AccessToken): void {
  const tokens = registrarResources(registrar)?.tokens ?? null;
  if (tokens === null) return;
  // A 401 for a token a refresh replaced already (or one refused already): nothing is due.
  if (!tokens.refuse(token) && token !== undefined) return;
  registrar.send({ type: 'TOKEN_UNAUTHORIZED' });
}
