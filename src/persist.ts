/**
 * persist — the cache of the node secret that DDS hands over in its
 * registration callback (PROTOCOL.md §2.1), with the node's id and
 * organisation. Alone, as in the crate, the secret lives in process memory
 * only. A registrar attaches its data directory's encrypted secret file
 * (src/state/node-secret-file.ts, {@link NodeSecretStore.attach}): then a
 * write also goes to the file, and a read picks up what any registrar of the
 * node wrote there since — checked on each read (one `lstat`), so a sibling
 * sees a new secret at once, with no watcher or timer.
 *
 * The secret sits in a JavaScript `#private` field. `JSON.stringify`,
 * `util.inspect` (and so `console.log`) and `String()` show whether a secret
 * is held and the identity, never the secret; log lines carry its length.
 *
 * @module
 */
import { Buffer } from 'node:buffer';
import { inspect } from 'node:util';
import { silentLogger, type Logger } from './log.js';
import { errorCode } from './state/atomic-file.js';
import { fileSignature, type NodeSecretFile } from './state/node-secret-file.js';

/** Who DDS says this node is, recorded when the secret arrived. */
export interface NodeIdentity {
  /** The node id DDS assigned (`id` in the callback). */
  nodeId: string;
  /** The organisation the node belongs to, when DDS named one. */
  organizationId: string | null;
  /** When the secret was stored (ms since the Unix epoch). */
  receivedAt: number;
}

/** Options of {@link NodeSecretStore}. */
export interface NodeSecretStoreOptions {
  /** Where `persist.secret.stored` goes (default: nowhere). */
  logger?: Logger;
}

/**
 * Holds the most recent node secret and the identity it came with.
 *
 * @example
 * ```ts
 * const store = new NodeSecretStore({ logger });
 * store.write(secret, { nodeId: 'node-1', organizationId: 'org-1' });
 * store.read();      // the secret
 * store.identity();  // { nodeId: 'node-1', organizationId: 'org-1', receivedAt: … }
 * JSON.stringify(store); // {"hasSecret":true,"identity":{…}} — no secret
 * ```
 */
export class NodeSecretStore {
  #secret: string | undefined;
  #identity: NodeIdentity | undefined;
  readonly #logger: Logger;
  /** The attached shared file, what of it was last seen, and the problem last logged. */
  #shared:
    | { file: NodeSecretFile; logger: Logger; onShared: ((secret: string) => void) | undefined; seen: string; problem: string | undefined }
    | undefined;

  constructor(options: NodeSecretStoreOptions = {}) {
    this.#logger = options.logger ?? silentLogger;
  }

  /**
   * Store `secret` (replacing any previous one) and the identity it came
   * with; without an identity, any previous identity is forgotten.
   * Logs `persist.secret.stored` with the id, the organisation and the
   * secret's length.
   *
   * @throws TypeError when `secret` is not a non-empty string or the node id
   *   is not a string (the message never contains the secret).
   */
  write(secret: string, identity?: { nodeId: string; organizationId?: string | null }): void {
    if (typeof secret !== 'string' || secret.length === 0) {
      throw new TypeError('node secret must be a non-empty string');
    }
    if (identity !== undefined && typeof identity.nodeId !== 'string') {
      throw new TypeError('node id must be a string');
    }
    const organizationId = identity?.organizationId;
    if (organizationId !== undefined && organizationId !== null && typeof organizationId !== 'string') {
      throw new TypeError('organization id must be a string or null');
    }
    this.#secret = secret;
    this.#identity =
      identity === undefined
        ? undefined
        : { nodeId: identity.nodeId, organizationId: organizationId ?? null, receivedAt: Date.now() };
    this.#writeShared(secret);
    this.#logger.info(
      {
        event: 'persist.secret.stored',
        node_id: this.#identity?.nodeId ?? null,
        organization_id: this.#identity?.organizationId ?? null,
        secret_len: Buffer.byteLength(secret, 'utf8'),
      },
      'node secret stored',
    );
  }

  /**
   * The stored secret, or `undefined` when none has arrived (or after
   * {@link clear}). With a shared file attached, a secret another registrar
   * of the node wrote there since is taken first.
   */
  read(): string | undefined {
    this.#refresh();
    return this.#secret;
  }

  /** The identity stored with the secret, if any (a copy). */
  identity(): NodeIdentity | undefined {
    this.#refresh();
    return this.#identity === undefined ? undefined : { ...this.#identity };
  }

  /** Forget the secret and the identity (the shared file stays: siblings may use it; a newer one is taken again). */
  clear(): void {
    this.#secret = undefined;
    this.#identity = undefined;
    if (this.#shared !== undefined) this.#shared.seen = fileSignature(this.#shared.file.path);
  }

  /**
   * Share the secret through `file`: what is in it now is taken at once,
   * later writes go there too, and reads take what siblings write. One file
   * at a time (a later attach replaces it); the returned function detaches
   * it, keeping the secret last read. `logger` receives the file's problems,
   * once each, never the secret; `onShared` each secret taken from the file
   * (so that sanitizers learn a secret a sibling received).
   */
  attach(file: NodeSecretFile, logger: Logger = this.#logger, onShared?: (secret: string) => void): () => void {
    const shared = { file, logger, onShared, seen: '', problem: undefined };
    this.#shared = shared;
    this.#refresh();
    return () => {
      if (this.#shared === shared) this.#shared = undefined;
    };
  }

  /** Take the shared file's secret when the file changed since last seen. Never throws. */
  #refresh(): void {
    const shared = this.#shared;
    if (shared === undefined) return;
    const signature = fileSignature(shared.file.path);
    if (signature === shared.seen) return;
    shared.seen = signature;
    const got = shared.file.read();
    if (got.kind === 'none') return;
    if (got.kind === 'ok') {
      shared.problem = undefined;
      const { value } = got;
      if (value.secret === this.#secret && value.nodeId === (this.#identity?.nodeId ?? null)) return;
      try {
        shared.onShared?.(value.secret);
      } catch {
        // a sanitizer's hook must not break a read
      }
      this.#secret = value.secret;
      this.#identity =
        value.nodeId === null ? undefined : { nodeId: value.nodeId, organizationId: value.organizationId, receivedAt: value.receivedAt };
      shared.logger.info(
        {
          event: 'persist.secret.shared',
          path: shared.file.path,
          node_id: value.nodeId,
          organization_id: value.organizationId,
          secret_len: Buffer.byteLength(value.secret, 'utf8'),
        },
        'node secret read from the data directory (stored by a registrar of this node)',
      );
      return;
    }
    const problem = got.kind === 'read-error' ? `${got.kind}:${got.code}` : got.kind;
    if (shared.problem === problem) return;
    shared.problem = problem;
    if (got.kind === 'read-error') {
      shared.logger.error(
        { event: 'state.read.error', path: shared.file.path, code: got.code, reason: got.reason },
        'cannot read the node secret file; ignoring it',
      );
    } else {
      shared.logger.warn(
        { event: 'persist.secret.file.ignored', path: shared.file.path, kind: got.kind, reason: got.reason },
        'the node secret file cannot be used; ignoring it',
      );
    }
  }

  #writeShared(secret: string): void {
    const shared = this.#shared;
    if (shared === undefined) return;
    try {
      shared.file.write({
        secret,
        nodeId: this.#identity?.nodeId ?? null,
        organizationId: this.#identity?.organizationId ?? null,
        receivedAt: this.#identity?.receivedAt ?? Date.now(),
      });
      shared.problem = undefined;
    } catch (err) {
      // The secret is kept in memory; siblings just do not see it.
      shared.logger.error({ event: 'persist.secret.file.error', path: shared.file.path, code: errorCode(err) }, 'cannot write the node secret file');
    }
    shared.seen = fileSignature(shared.file.path);
  }

  /** What `JSON.stringify` shows: whether a secret is held, and the identity. */
  toJSON(): { hasSecret: boolean; identity: NodeIdentity | null } {
    return { hasSecret: this.#secret !== undefined, identity: this.identity() ?? null };
  }

  /** `[NodeSecretStore]`: never the secret. */
  toString(): string {
    return '[NodeSecretStore]';
  }

  /** What `util.inspect` / `console.log` show: the same as {@link toJSON}. */
  [inspect.custom](): string {
    return `NodeSecretStore ${inspect(this.toJSON())}`;
  }
}

/** The process-wide store the HTTP routes write to by default. */
export const defaultNodeSecretStore: NodeSecretStore = new NodeSecretStore();

/** Crate-shaped: store `secret` in {@link defaultNodeSecretStore} (no identity). */
export function writeNodeSecret(secret: string): void {
  defaultNodeSecretStore.write(secret);
}

/** Crate-shaped: the secret held by {@link defaultNodeSecretStore}. */
export function readNodeSecret(): string | undefined {
  return defaultNodeSecretStore.read();
}

/** Crate-shaped: forget the secret held by {@link defaultNodeSecretStore}. */
export function clearNodeSecret(): void {
  defaultNodeSecretStore.clear();
}
