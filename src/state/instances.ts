/**
 * state/instances — which registrars share a data directory, and which of
 * them are alive, without resting on pids.
 *
 * Each registrar has a random instance id and a record
 * `<dataDir>/instances/<id>.json`: its identity (./writer.ts: pid, PID
 * namespace, boot id, process start time) and the node it registers (public
 * key, URL). The record's mtime is its heartbeat, changed every `staleMs / 3`
 * by an unref'd timer. A record is alive unless
 * - a pid proves its registrar gone (same PID namespace and boot:
 *   ./writer.ts `isProvablyGone`), or
 * - its heartbeat was not seen to change for `staleMs` on our monotonic
 *   clock (./liveness.ts): neither a stepped wall clock nor an mtime in the
 *   future decides.
 * Dead records are removed by whoever judges them dead; a graceful stop
 * removes its own.
 *
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger, type Logger } from '../log.js';
import { errorCode, parseJsonObject, readRegularFileSync, sweepStaleTempFiles, writeFileAtomicSync } from './atomic-file.js';
import { ErrorEpisode } from './error-episode.js';
import { HeartbeatWatch, heartbeatVersion } from './liveness.js';
import { isProvablyAlive, isProvablyGone, isWriterAlive, writerFromJson, writerToJson, type WriterInfo } from './writer.js';

/** The node a registrar registers: its public key (hex) and its URL. */
export interface NodeIdentity {
  publicKey: string;
  url: string;
}

/** Another registrar's record, as judged now. */
export interface InstanceView {
  writer: WriterInfo & { instance: string };
  node: NodeIdentity | null;
  alive: boolean;
}

/** A live registrar of another node (another key) uses the directory. */
export interface InstanceConflict {
  ours: NodeIdentity;
  theirs: NodeIdentity;
  dir: string;
}

/** Options of {@link InstanceRegistry}. */
export interface InstanceRegistryOptions {
  /** The data directory. */
  dataDir: string;
  /** This registrar (its `instance` is required). */
  self: WriterInfo;
  /** A heartbeat not seen to change for this long is dead (the lock's staleness). */
  staleMs: number;
  /** Where `instances.*` lines go (default: nowhere). */
  logger?: Logger;
}

const MAX_RECORD_BYTES = 16 * 1024;
const RECORD_VERSION = 1;
const ID_PATTERN = /^[0-9a-f]{8,64}$/;

/** The first 8 hex digits of a public key: enough to tell nodes apart in a message, nothing secret. */
export function keyPrefix(publicKey: string): string {
  return publicKey.slice(0, 8);
}

function parseRecord(text: string): { writer: WriterInfo & { instance: string }; node: NodeIdentity | null } | null {
  const json = parseJsonObject(text);
  if (json === undefined) return null;
  const writer = writerFromJson(json);
  if (writer?.instance === undefined) return null;
  const raw = json['node'];
  let node: NodeIdentity | null = null;
  if (typeof raw === 'object' && raw !== null) {
    const { public_key: publicKey, url } = raw as Record<string, unknown>;
    if (typeof publicKey === 'string' && typeof url === 'string') node = { publicKey, url };
  }
  return { writer: { ...writer, instance: writer.instance }, node };
}

/**
 * The instance records of one data directory, and this registrar's own.
 *
 * @example
 * ```ts
 * const instances = new InstanceRegistry({ dataDir: 'data', self: newWriterInfo(), staleMs: 30_000, logger });
 * const conflict = await instances.claim({ publicKey, url });
 * if (conflict) throw new DataDirectoryInUseError(conflict);
 * instances.liveSiblings(); // other live registrars of this node
 * instances.stop();
 * ```
 */
export class InstanceRegistry {
  /** `<dataDir>/instances`. */
  readonly dir: string;
  /** This registrar's record. */
  readonly path: string;
  readonly #dataDir: string;
  readonly #self: WriterInfo & { instance: string };
  readonly #staleMs: number;
  readonly #logger: Logger;
  readonly #watch = new HeartbeatWatch();
  #node: NodeIdentity | null = null;
  #timer: NodeJS.Timeout | undefined;
  #lastBeat = 0;
  readonly #writeErrors: ErrorEpisode;
  /** Foreign-URL warnings already given, by instance. */
  readonly #warned = new Set<string>();

  constructor(options: InstanceRegistryOptions) {
    const instance = options.self.instance;
    if (instance === undefined || !ID_PATTERN.test(instance)) throw new RangeError('the registrar needs a hex instance id');
    this.#self = { ...options.self, instance };
    this.#dataDir = path.resolve(options.dataDir);
    this.dir = path.join(this.#dataDir, 'instances');
    this.path = path.join(this.dir, `${instance}.json`);
    this.#staleMs = options.staleMs;
    this.#logger = options.logger ?? silentLogger;
    this.#writeErrors = new ErrorEpisode({
      logger: this.#logger,
      event: 'instances.write',
      fields: { path: this.path },
      messages: { error: 'cannot write the instance record', recovered: 'the instance record is writable again' },
    });
  }

  /** Whether our record is kept (between {@link start}/{@link claim} and {@link stop}). */
  get running(): boolean {
    return this.#timer !== undefined;
  }

  /** Write our record (naming `node` when known) and keep its heartbeat. Idempotent. */
  start(node: NodeIdentity | null = this.#node): void {
    this.#node = node;
    this.#writeRecord();
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#tick(), Math.max(250, Math.floor(this.#staleMs / 3)));
      // The heartbeat must never keep a process alive on its own.
      this.#timer.unref();
    }
  }

  /** Stop the heartbeat and remove our record (a graceful stop). Never throws. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    try {
      fs.rmSync(this.path, { force: true });
    } catch (err) {
      this.#logger.warn({ event: 'instances.remove.error', path: this.path, code: errorCode(err) }, 'cannot remove the instance record');
    }
  }

  /**
   * Start as a registrar of `node`: write our record, then make sure no live
   * registrar of another node (another public key) shares the directory. A
   * record of another node whose liveness no pid proves is watched for up to
   * `staleMs`: its heartbeat changing means alive (a conflict), silence means
   * dead (removed, with a warning). Resolves to the conflict, or `null`; on a
   * conflict our record is removed again.
   */
  async claim(node: NodeIdentity): Promise<InstanceConflict | null> {
    this.start(node);
    const deadline = performance.now() + this.#staleMs + 500;
    const firstSeen = new Map<string, string | null>();
    for (;;) {
      let undecided = false;
      for (const entry of this.#records()) {
        const { file, writer, node: theirs } = entry;
        if (theirs === null || theirs.publicKey === node.publicKey) continue;
        const version = heartbeatVersion(file);
        if (version === null) continue;
        if (isProvablyGone(writer, this.#self)) {
          this.#replace(file, theirs, 'its process is gone');
          continue;
        }
        if (isProvablyAlive(writer, this.#self)) return this.#conflict(node, theirs);
        if (!firstSeen.has(file)) firstSeen.set(file, version);
        if (firstSeen.get(file) !== version) return this.#conflict(node, theirs);
        if (this.#watch.isStale(file, this.#staleMs, version)) {
          this.#replace(file, theirs, 'its heartbeat stopped');
          continue;
        }
        undecided = true;
      }
      if (!undecided || performance.now() > deadline) return null;
      await sleep(Math.min(250, this.#staleMs / 10));
    }
  }

  /** The other registrars' records, judged now (dead ones are removed). */
  others(): InstanceView[] {
    const out: InstanceView[] = [];
    for (const { file, writer, node } of this.#records()) {
      const alive = this.#judge(file, writer);
      if (!alive) this.#remove(file, node);
      out.push({ writer, node, alive });
    }
    return out;
  }

  /** How many other live registrars of this node (same public key) share the directory. */
  liveSiblings(): number {
    const key = this.#node?.publicKey;
    return this.others().filter((o) => o.alive && (key === undefined || o.node === null || o.node.publicKey === key)).length;
  }

  /**
   * Whether the registrar `w` names (say, the state file's writer) is alive:
   * ourselves; one with an instance id by its record (none: gone); an older
   * writer without one by its pid, as far as a pid can tell.
   */
  isLive(w: WriterInfo): boolean {
    if (w.instance === this.#self.instance) return true;
    if (w.instance === undefined) return isWriterAlive(w, this.#self);
    if (!ID_PATTERN.test(w.instance)) return false;
    const file = path.join(this.dir, `${w.instance}.json`);
    const record = this.#readRecord(file);
    if (record === null) return false;
    const alive = this.#judge(file, record.writer);
    if (!alive) this.#remove(file, record.node);
    return alive;
  }

  #judge(file: string, writer: WriterInfo): boolean {
    if (isProvablyGone(writer, this.#self)) return false;
    return !this.#watch.isStale(file, this.#staleMs);
  }

  #conflict(ours: NodeIdentity, theirs: NodeIdentity): InstanceConflict {
    this.stop();
    return { ours, theirs, dir: this.#dataDir };
  }

  #replace(file: string, theirs: NodeIdentity, reason: string): void {
    this.#logger.warn(
      {
        event: 'instances.replaced',
        dir: this.#dataDir,
        theirs: keyPrefix(theirs.publicKey),
        ours: this.#node === null ? null : keyPrefix(this.#node.publicKey),
        reason,
      },
      'removed the stale record of a registrar of another node on this data directory',
    );
    this.#remove(file, null);
  }

  #remove(file: string, node: NodeIdentity | null): void {
    this.#watch.forget(file);
    try {
      fs.rmSync(file, { force: true });
      this.#logger.info(
        { event: 'instances.stale', path: file, node: node === null ? null : keyPrefix(node.publicKey) },
        'removed the record of a registrar that is gone',
      );
    } catch {
      // someone else removed it, or cannot: the next look decides again
    }
  }

  #records(): Array<{ file: string; writer: WriterInfo & { instance: string }; node: NodeIdentity | null }> {
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return [];
    }
    const out: Array<{ file: string; writer: WriterInfo & { instance: string }; node: NodeIdentity | null }> = [];
    for (const name of names) {
      if (!name.endsWith('.json') || name.startsWith('.')) continue;
      const id = name.slice(0, -'.json'.length);
      if (id === this.#self.instance || !ID_PATTERN.test(id)) continue;
      const file = path.join(this.dir, name);
      const record = this.#readRecord(file);
      if (record === null || record.writer.instance !== id) continue;
      if (this.#node !== null && record.node !== null && record.node.publicKey === this.#node.publicKey && record.node.url !== this.#node.url && !this.#warned.has(id)) {
        this.#warned.add(id);
        this.#logger.warn(
          { event: 'instances.url_differs', dir: this.#dataDir, ours: this.#node.url, theirs: record.node.url },
          'a registrar of this node with another URL shares the data directory',
        );
      }
      out.push({ file, ...record });
    }
    return out;
  }

  #readRecord(file: string): { writer: WriterInfo & { instance: string }; node: NodeIdentity | null } | null {
    try {
      return parseRecord(readRegularFileSync(file, MAX_RECORD_BYTES).toString('utf8'));
    } catch {
      return null;
    }
  }

  #writeRecord(): void {
    const node = this.#node === null ? null : { public_key: this.#node.publicKey, url: this.#node.url };
    try {
      writeFileAtomicSync(this.path, `${JSON.stringify({ version: RECORD_VERSION, ...writerToJson(this.#self), node })}\n`, {
        // A heartbeat file: it must survive our crash (the page cache does), not a power loss.
        durable: false,
      });
      this.#writeErrors.succeeded();
    } catch (err) {
      this.#writeErrors.failed(errorCode(err));
    }
  }

  /** The heartbeat: change our record's mtime (rewrite it if it was removed), and look at the others. */
  #tick(): void {
    // Strictly increasing, whatever the wall clock does: the judges only look for a change.
    const t = Math.max(Date.now(), this.#lastBeat + 1);
    this.#lastBeat = t;
    try {
      fs.lutimesSync(this.path, new Date(t), new Date(t));
    } catch (err) {
      // Removed as stale while we were paused (SIGSTOP), or never written: write it again.
      if (errorCode(err) === 'ENOENT' || this.#writeErrors.failing !== undefined) this.#writeRecord();
    }
    // Looking now keeps the others' history, so that a stop judges them from it.
    this.others();
    sweepStaleTempFiles(this.path);
  }
}
