/**
 * persist — the in-memory cache of the node secret that DDS hands over in its
 * registration callback (PROTOCOL.md §2.1), with the node's id and
 * organisation. As in the crate, the secret lives in process memory only: it
 * dies with the process, which is why a restarted node must register again.
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

  /** The stored secret, or `undefined` when none has arrived (or after {@link clear}). */
  read(): string | undefined {
    return this.#secret;
  }

  /** The identity stored with the secret, if any (a copy). */
  identity(): NodeIdentity | undefined {
    return this.#identity === undefined ? undefined : { ...this.#identity };
  }

  /** Forget the secret and the identity. */
  clear(): void {
    this.#secret = undefined;
    this.#identity = undefined;
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
