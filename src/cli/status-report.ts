/** What `status` reads from a data directory (loaded only when `status` runs). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { healthcheckAgeMs, healthcheckFutureByMs, lastHealthcheckAtMs } from '../../machines/registrar.js';
import { StateStore } from '../state/store.js';
import { isProvablyGone } from '../state/writer.js';
import type { RegistrationProtocol } from '../../machines/registrar.js';
import type { RegistrationState, RegistrationStatus } from '../state/state-file.js';
import { silentLogger } from '../log.js';

/**
 * Whether the state file is there: `missing` (the data directory exists, the
 * file does not: no registrar has run with this data directory yet) and
 * `no-data-dir` (not even the directory: most likely a wrong data directory setting) are
 * not `disconnected`, which only a state file can say.
 */
export type StateFileStatus = 'present' | 'missing' | 'no-data-dir';

/** The access session a `siwe` state file records: its token's expiry, never the token. */
export interface SessionReport {
  /** When the token expires (ISO 8601), or `null`: no token held (none yet, or it expired or was dropped). */
  tokenExpiresAt: string | null;
  /** How long it remains valid, s (one decimal); `null` without a valid token. */
  tokenExpiresInSecs: number | null;
}

/** What `status` reports. */
export interface StatusReport {
  /** The status in the state file, or `null` when there is none ({@link stateFile}). */
  status: RegistrationStatus | null;
  stateFile: StateFileStatus;
  /**
   * Legacy: registered and the last probe within one interval. `siwe`:
   * registered (there is no probe TTL) and, with the session on, a token that
   * has not expired.
   */
  healthy: boolean;
  /** The generation the state file's writer registers by (`legacy` when it does not say). */
  protocol: RegistrationProtocol;
  /** Under `siwe` with the session on, the token's expiry; else `null` (legacy, or the session is off). */
  session: SessionReport | null;
  lastHealthcheck: string | null;
  ageSecs: number | null;
  intervalSecs: number;
  /**
   * Why a registered state counts as stale though its age alone would not
   * say so: `future-timestamp` — the last health check lies ahead of this
   * clock (by {@link futureBySecs}): the clock was stepped back since, or
   * the writer's clock is ahead. A one-shot reader cannot age such a time,
   * so it is never taken as fresh. `null` otherwise.
   */
  staleReason: 'future-timestamp' | 'writer-gone' | null;
  /** How far ahead the last health check lies, s (with `staleReason` `future-timestamp`); else null. */
  futureBySecs: number | null;
  /** The state file's absolute path. */
  path: string;
}

/** The sentence `status` prints for a {@link StatusReport.staleReason}. */
export function staleReasonText(report: StatusReport): string | null {
  if (report.staleReason === 'writer-gone') {
    return 'the registrar that wrote it is gone (its process exited without stopping): under siwe with the session off nothing else can tell';
  }
  if (report.staleReason !== 'future-timestamp') return null;
  return `the last health check lies ${report.futureBySecs ?? '?'} s in the future: the clock was stepped back since it was written, or its writer's clock is ahead; not trusted as fresh`;
}

function stateFileStatus(file: string): StateFileStatus {
  // lstat: whatever is at the path (even what the store refuses to read) is "there".
  if (fs.lstatSync(file, { throwIfNoEntry: false }) !== undefined) return 'present';
  return fs.statSync(path.dirname(file), { throwIfNoEntry: false })?.isDirectory() === true ? 'missing' : 'no-data-dir';
}

/** The text `status` prints for the access session (`siwe`). */
export function sessionText(report: StatusReport): string {
  const session = report.session;
  if (session === null) return 'off (no access token kept)';
  if (session.tokenExpiresInSecs === null) return 'no token';
  return `token expires in ${session.tokenExpiresInSecs} s (at ${session.tokenExpiresAt ?? '?'})`;
}

function sessionReport(state: RegistrationState, now: number): SessionReport | null {
  if (state.protocol !== 'siwe' || state.session === undefined) return null;
  const at = state.session.accessExpiresAtMs;
  if (at === null || at <= now) return { tokenExpiresAt: null, tokenExpiresInSecs: null };
  return { tokenExpiresAt: new Date(at).toISOString(), tokenExpiresInSecs: Math.round((at - now) / 100) / 10 };
}

/** Judge a data directory's state file (exported for tests and embedding hosts). */
export function readStatusReport(dataDir: string, intervalSecs: number, now = Date.now()): StatusReport {
  const store = new StateStore({ dir: dataDir, logger: silentLogger });
  const stateFile = stateFileStatus(store.path);
  const state = store.read();
  const lastMs = lastHealthcheckAtMs(state);
  const ageMs = healthcheckAgeMs(state, now);
  const ageSecs = ageMs === null ? null : ageMs / 1000;
  const present = stateFile === 'present';
  const protocol = present && state.protocol === 'siwe' ? 'siwe' : 'legacy';
  const session = present ? sessionReport(state, now) : null;
  // Under siwe a registration parks (no probe TTL): registered is enough, with a valid token when the session is on.
  const futureMs = present && protocol === 'legacy' ? healthcheckFutureByMs(state, now) : null;
  // Under siwe with the session off there is neither a TTL nor a token: a writer provably gone (SIGKILL) is the one sign.
  const writerGone = protocol === 'siwe' && session === null && state.status === 'registered' && state.writer !== null && isProvablyGone(state.writer);
  const healthy =
    present &&
    state.status === 'registered' &&
    !writerGone &&
    (protocol === 'siwe' ? session === null || session.tokenExpiresInSecs !== null : ageSecs !== null && ageSecs <= intervalSecs && futureMs === null);
  return {
    status: present ? state.status : null,
    stateFile,
    healthy,
    protocol,
    session,
    lastHealthcheck: present && lastMs !== null ? new Date(lastMs).toISOString() : null,
    ageSecs: present && ageSecs !== null ? Math.round(ageSecs * 10) / 10 : null,
    intervalSecs,
    staleReason: writerGone ? 'writer-gone' : futureMs === null ? null : 'future-timestamp',
    futureBySecs: futureMs === null ? null : Math.round(futureMs / 100) / 10,
    path: store.path,
  };
}
