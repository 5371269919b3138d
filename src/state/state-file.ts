/**
 * state/state-file — the registration state file's format (PROTOCOL.md §3).
 *
 * The crate's `{"status":"registered","last_healthcheck":1704164645}`, with
 * extra keys the crate ignores: `last_healthcheck_ms` (a finer time) and
 * `writer` (`{pid, host, started_at, instance, pid_ns, …}`: which registrar
 * wrote it last, so a sibling can tell a live registrar from one that is gone), and under
 * protocol `siwe` `protocol` and `session` (`{access_expires_at_ms, holders}`: when the
 * registrars' access tokens expire — never a token), so another process (`status`) can judge. Unknown keys are
 * carried through a read-modify-write untouched. Pure: no I/O.
 *
 * @module
 */
import {
  healthcheckAgeMs,
  healthcheckFutureByMs,
  lastHealthcheckAtMs,
  type HealthcheckRecord,
  type PersistedStatus,
  type RegistrationProtocol,
} from '../../machines/registrar.js';
import { writerFromJson, writerToJson, type WriterInfo } from './writer.js';

/** The persisted registration status: the machine's. */
export type RegistrationStatus = PersistedStatus;

/** The statuses, in the crate's order. */
export const REGISTRATION_STATUSES: readonly RegistrationStatus[] = ['disconnected', 'registering', 'registered'];

/** What the state file holds. */
export interface RegistrationState {
  /** The registration status (file key `status`). */
  status: RegistrationStatus;
  /** The last DDS health check in whole Unix seconds, or `null` (file key `last_healthcheck`). */
  lastHealthcheck: number | null;
  /**
   * The last DDS health check in ms since the epoch, or `null` (file key
   * `last_healthcheck_ms`). When the file lacks it (the crate writes only two
   * keys) or it disagrees with `last_healthcheck`, it is read as
   * `lastHealthcheck * 1000`.
   */
  lastHealthcheckMs: number | null;
  /** Who wrote the file last (file key `writer`: `{pid, host, started_at}`), if known. */
  writer: WriterInfo | null;
  /** The generation its writer registers by (file key `protocol`, written only for `siwe`); absent: `legacy`. */
  protocol?: RegistrationProtocol;
  /** The writer's access session (file key `session`; protocol `siwe`, session on); absent: no session. */
  session?: SessionRecord;
}

/**
 * The access session as the state file records it: when tokens expire, never
 * a token. Each registrar of the node sharing the directory signs in for
 * itself: each keeps its own entry, so one that stops leaves its siblings'.
 */
export interface SessionRecord {
  /** The latest expiry among {@link holders}, ms since the epoch (file key `access_expires_at_ms`); null: no token held. */
  accessExpiresAtMs: number | null;
  /** Each registrar's token expiry by its writer key (file key `holders`), expired ones pruned at each write. */
  holders: Readonly<Record<string, number>>;
}

/** A parsed state file. */
export interface ParsedStateFile {
  state: RegistrationState;
  /** Unknown keys found in the file, kept so read-modify-write preserves them. */
  extras: Record<string, unknown>;
  /** Why the file was not a valid state, if it was not. */
  problem?: string;
}

/** The state of a node that never registered. */
export function defaultRegistrationState(): RegistrationState {
  return { status: 'disconnected', lastHealthcheck: null, lastHealthcheckMs: null, writer: null };
}

/** Keys this module reads and writes; any others are carried along untouched. */
const KNOWN_KEYS = new Set(['status', 'last_healthcheck', 'last_healthcheck_ms', 'writer', 'protocol', 'session']);

/** Set `obj[key]` as an own data property, even for a key like `__proto__`. */
function defineKey(obj: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Whether `v` is one of {@link REGISTRATION_STATUSES}. */
export function isRegistrationStatus(v: unknown): v is RegistrationStatus {
  return typeof v === 'string' && (REGISTRATION_STATUSES as readonly string[]).includes(v);
}

const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** A `session` value: a malformed one reads as holding no token (never as a valid one). */
function sessionFromJson(v: unknown): SessionRecord | undefined {
  if (v === undefined) return undefined;
  const ms = isRecord(v) ? v['access_expires_at_ms'] : undefined;
  const holders = isRecord(v) && isRecord(v['holders']) ? v['holders'] : {};
  return {
    accessExpiresAtMs: isTime(ms) ? ms : null,
    holders: Object.fromEntries(Object.entries(holders).filter((entry): entry is [string, number] => isTime(entry[1]))),
  };
}

/** Whether two sessions say the same (the holders' order aside). */
export function sameSession(a: SessionRecord | undefined, b: SessionRecord | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  const entries = (s: SessionRecord): string => JSON.stringify(Object.entries(s.holders).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
  return a.accessExpiresAtMs === b.accessExpiresAtMs && entries(a) === entries(b);
}

/** The session with `key`'s expiry set (`null`: removed) and those expired at `now` pruned. */
export function sessionWith(session: SessionRecord | undefined, key: string, expiresAtMs: number | null, now: number): SessionRecord {
  const others = Object.entries(session?.holders ?? {}).filter(([k, ms]) => k !== key && ms > now);
  const holders = Object.fromEntries(expiresAtMs === null ? others : [...others, [key, expiresAtMs]]);
  const times = Object.values(holders);
  return { accessExpiresAtMs: times.length === 0 ? null : Math.max(...times), holders };
}

/** Parse the text of a state file. Never throws: an invalid file reads as `disconnected`, with a `problem`. */
export function parseStateText(text: string): ParsedStateFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { state: defaultRegistrationState(), extras: {}, problem: 'invalid JSON' };
  }
  if (!isRecord(json)) {
    return { state: defaultRegistrationState(), extras: {}, problem: 'not a JSON object' };
  }
  const extras: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) if (!KNOWN_KEYS.has(k)) defineKey(extras, k, v);

  const rawHc = json.last_healthcheck;
  let lastHealthcheck: number | null = null;
  let problem: string | undefined;
  if (typeof rawHc === 'number' && Number.isFinite(rawHc)) {
    lastHealthcheck = Math.floor(rawHc);
  } else if (rawHc !== null && rawHc !== undefined) {
    problem = 'last_healthcheck is not a number';
  }
  let lastHealthcheckMs: number | null = null;
  const rawMs = json.last_healthcheck_ms;
  if (lastHealthcheck !== null) {
    // Trust the finer time only while it agrees with the crate's key, which
    // another writer (the crate itself) may have rewritten on its own.
    lastHealthcheckMs =
      typeof rawMs === 'number' && Number.isFinite(rawMs) && Math.floor(rawMs / 1000) === lastHealthcheck
        ? rawMs
        : lastHealthcheck * 1000;
  }
  const status = json.status;
  if (problem === undefined && !isRegistrationStatus(status)) {
    problem =
      status === undefined ? 'missing status' : `unknown status ${JSON.stringify(status).slice(0, 40)}`;
  }
  const state: RegistrationState = {
    status: problem === undefined && isRegistrationStatus(status) ? status : 'disconnected',
    lastHealthcheck,
    lastHealthcheckMs,
    writer: writerFromJson(json.writer),
  };
  // Anything but `siwe` is the crate's generation: a reader then judges by the probe TTL.
  if (json.protocol === 'siwe') state.protocol = 'siwe';
  const session = sessionFromJson(json.session);
  if (session !== undefined) state.session = session;
  return { state, extras, problem };
}

/** The file's text for `state` (crate keys first), plus `extras`. */
export function serializeState(state: RegistrationState, extras: Record<string, unknown> = {}): string {
  const out: Record<string, unknown> = {
    status: state.status,
    last_healthcheck: state.lastHealthcheck,
    last_healthcheck_ms: state.lastHealthcheckMs,
    writer: state.writer === null ? null : writerToJson(state.writer),
  };
  if (state.protocol === 'siwe') out['protocol'] = 'siwe';
  if (state.session !== undefined) out['session'] = { access_expires_at_ms: state.session.accessExpiresAtMs, holders: state.session.holders };
  for (const [k, v] of Object.entries(extras)) if (!KNOWN_KEYS.has(k)) defineKey(out, k, v);
  return `${JSON.stringify(out)}\n`;
}

/** A deep copy of `s`. */
export function copyState(s: RegistrationState): RegistrationState {
  const copy: RegistrationState = { ...s, writer: s.writer === null ? null : { ...s.writer } };
  if (s.session !== undefined) copy.session = { ...s.session, holders: { ...s.session.holders } };
  return copy;
}

/** @throws RangeError when `state` is not a valid state (a programming error of the caller). */
export function validateState(state: RegistrationState): void {
  if (!isRegistrationStatus(state.status)) throw new RangeError('invalid registration status');
  for (const v of [state.lastHealthcheck, state.lastHealthcheckMs]) {
    if (v !== null && (typeof v !== 'number' || !Number.isFinite(v))) {
      throw new RangeError('health-check times must be finite numbers or null');
    }
  }
}

/**
 * Judges the age of the last probe a state file records when that time may
 * lie in the future (the wall clock stepped back since, or the writer's
 * clock is ahead): such a time is never trusted to keep the health check
 * fresh. Its age is taken as the time since this judge first read it, on
 * the monotonic clock: it counts as fresh for at most one interval after it
 * was first read, whatever the wall clock says. A time in the past is aged
 * by the wall clock, as always.
 */
export class HealthcheckAgeJudge {
  readonly #monotonic: () => number;
  /** The future time last read, and when (monotonic) it was first read. */
  #future: { atMs: number; firstReadAt: number } | undefined;

  constructor(monotonic: () => number) {
    this.#monotonic = monotonic;
  }

  /** The age of `record`'s last probe at wall time `now`, ms (never negative); null when never probed. */
  ageMs(record: HealthcheckRecord, now: number): number | null {
    if (healthcheckFutureByMs(record, now) === null) {
      this.#future = undefined;
      return healthcheckAgeMs(record, now);
    }
    const atMs = lastHealthcheckAtMs(record) as number;
    const mono = this.#monotonic();
    if (this.#future?.atMs !== atMs) this.#future = { atMs, firstReadAt: mono };
    return Math.max(0, mono - this.#future.firstReadAt);
  }
}
