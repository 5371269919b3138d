/**
 * The `dev` command's live view: one line per thing that happens — a state
 * transition (with its time), a registration request reaching the
 * simulator, the callback, the health probes, a failure and its backoff.
 * Text for a terminal, JSON lines otherwise. Never shows a secret.
 */
import type { Writable } from 'node:stream';
import type { DdsSimulatorEvent } from '../sim/dds-simulator.js';
import type { LogFields, Logger } from '../log.js';

/** One thing that happened. */
export interface ViewItem {
  /** `state` (a transition), `dds` (the simulator), `registrar` (a log event), `info`. */
  kind: 'state' | 'dds' | 'registrar' | 'info';
  /** Short name, e.g. `registering`, `probe.sent`, `registration.error`. */
  name: string;
  text: string;
  fields?: Record<string, unknown>;
}

/** Where items go. */
export interface LiveView {
  show(item: ViewItem): void;
}

const COLORS = { state: '\u001b[1;36m', dds: '\u001b[33m', registrar: '\u001b[35m', info: '\u001b[2m' } as const;
const RESET = '\u001b[0m';

function clock(d: Date): string {
  return d.toISOString().slice(11, 23);
}

/** A view writing text lines (coloured when `color`) or JSON lines. */
export function createLiveView(out: Writable, mode: 'text' | 'json', color = false, now: () => Date = () => new Date()): LiveView {
  let lastStateAt: number | null = null;
  return {
    show(item) {
      const at = now();
      if (mode === 'json') {
        out.write(`${JSON.stringify({ time: at.toISOString(), kind: item.kind, name: item.name, text: item.text, ...item.fields })}\n`);
        return;
      }
      let suffix = '';
      if (item.kind === 'state') {
        if (lastStateAt !== null) suffix = `  (+${((at.getTime() - lastStateAt) / 1000).toFixed(1)} s)`;
        lastStateAt = at.getTime();
      }
      const label = item.kind.padEnd(9);
      const line = `${clock(at)}  ${label} ${item.text}${suffix}`;
      out.write(color ? `${COLORS[item.kind]}${line}${RESET}\n` : `${line}\n`);
    },
  };
}

/** Describe a state value as `registered (health: fresh, callbackWindow: open)`. */
export function describeState(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 1) {
      const [k, v] = entries[0] as [string, unknown];
      if (typeof v === 'string') return `${k}.${v}`;
      if (v && typeof v === 'object') {
        const inner = Object.entries(v as Record<string, unknown>).map(([rk, rv]) => `${rk}: ${describeState(rv)}`);
        return `${k} (${inner.join(', ')})`;
      }
    }
    return entries.map(([k, v]) => `${k}: ${describeState(v)}`).join(', ');
  }
  return String(value);
}

/** The access session's states (machine `registered.session`) in words. */
const SESSION_WORDS: Record<string, string> = {
  off: 'access session off',
  'signingIn.first': 'signing in (SIWE) for an access token',
  'signingIn.refreshing': 'refreshing the access token (signing in again)',
  active: 'signed in: access token held',
  retrying: 'sign-in failed: retrying',
  signInFailed: 'sign-in retries exhausted: waiting to start over',
  forgotten: 'DDS forgot the node: re-arming the registration',
};

/** What a state means, in words, where the value alone does not say it (the session, a re-arm); else null. */
export function stateWords(value: unknown): string | null {
  if (value === 'rearming') return 're-arming: the registration is no longer valid, registering again';
  if (!value || typeof value !== 'object') return null;
  const registered = (value as Record<string, unknown>)['registered'];
  if (!registered || typeof registered !== 'object') return null;
  return SESSION_WORDS[describeState((registered as Record<string, unknown>)['session'])] ?? null;
}

/** Turn a simulator event into a view item. */
export function simulatorItem(e: DdsSimulatorEvent): ViewItem {
  switch (e.type) {
    case 'registration.received':
      return { kind: 'dds', name: e.type, text: `← registration request from ${e.nodeUrl} (key ${e.publicKeyPrefix}…, version ${e.version})`, fields: { nodeUrl: e.nodeUrl, version: e.version } };
    case 'registration.rejected':
      return { kind: 'dds', name: e.type, text: `✗ registration rejected: ${e.status} ${e.reason}`, fields: { status: e.status, reason: e.reason } };
    case 'registration.accepted':
      return { kind: 'dds', name: e.type, text: `✓ registration accepted, node id ${e.nodeId}`, fields: { nodeId: e.nodeId } };
    case 'registration.fault':
      return { kind: 'dds', name: e.type, text: `✗ injected fault: answered ${e.status}`, fields: { status: e.status } };
    case 'callback.sent':
      return { kind: 'dds', name: e.type, text: `→ callback with node id and secret: ${e.status ?? e.error ?? 'no answer'}`, fields: { status: e.status, nodeId: e.nodeId } };
    case 'probe.sent':
      return { kind: 'dds', name: e.type, text: `→ health probe: ${e.status ?? e.error ?? 'no answer'}`, fields: { status: e.status } };
    case 'node.forgotten':
      return { kind: 'dds', name: e.type, text: `forgot ${e.nodeUrl}: ${e.failedProbes} failed probes in a row`, fields: { nodeId: e.nodeId, failedProbes: e.failedProbes } };
    case 'faults.changed':
      return { kind: 'dds', name: e.type, text: `faults now ${JSON.stringify(e.faults)}`, fields: { faults: e.faults } };
    case 'siwe.nonce.issued':
      return { kind: 'dds', name: e.type, text: `→ SIWE nonce for ${e.wallet}`, fields: { wallet: e.wallet } };
    case 'siwe.registered':
      return { kind: 'dds', name: e.type, text: `✓ wallet ${e.wallet} registered (version ${e.version})`, fields: { wallet: e.wallet, version: e.version } };
    case 'siwe.signed_in':
      return { kind: 'dds', name: e.type, text: `✓ wallet ${e.wallet} signed in (its sign-in ${e.signIns} since it registered)`, fields: { wallet: e.wallet, signIns: e.signIns } };
    case 'siwe.token.issued':
      return { kind: 'dds', name: e.type, text: `→ access token, expires in ${(e.lifetimeMs / 1000).toFixed(1)} s`, fields: { wallet: e.wallet, expiresAt: e.expiresAt } };
    case 'siwe.forgotten':
      return { kind: 'dds', name: e.type, text: `✗ DDS forgot wallet ${e.wallet}: its next verify gets 403`, fields: { wallet: e.wallet, reason: e.reason } };
    case 'siwe.rejected':
      return { kind: 'dds', name: e.type, text: `✗ SIWE ${e.call} rejected: ${e.status} ${e.reason}`, fields: { call: e.call, status: e.status, reason: e.reason } };
    case 'siwe.fault':
      return { kind: 'dds', name: e.type, text: `✗ injected fault on SIWE ${e.call}: answered ${e.status}`, fields: { call: e.call, status: e.status } };
  }
}

/** Registrar log events worth showing, and how. */
const SHOWN: Record<string, (f: LogFields) => string> = {
  'registration.loop.start': (f) => `loop started (interval ${Number(f['interval_ms']) / 1000} s, callback policy ${String(f['callback_policy'])})`,
  'lock.acquired': (f) => `lock acquired${f['takeover'] ? ' (taken over from a dead holder)' : ''}`,
  'lock.busy': () => 'lock busy — another registrar is registering; waiting one interval',
  'lock.error': (f) => `lock unavailable (${String(f['code'])}) — registering without it`,
  'registration.attempt': (f) => `→ POST ${String(f['endpoint'])}`,
  'registration.success': (f) => `✓ registered (${String(f['status'])})`,
  'registration.error': (f) => `✗ ${String(f['error'])}`,
  'registration.conflict': (f) => `✗ conflict: ${String(f['error'])}`,
  'registration.retry_scheduled': (f) => `backoff: retry ${String(f['attempt'])} in ${(Number(f['wait_ms']) / 1000).toFixed(1)} s`,
  'registration.cooldown': (f) => `cooldown: next attempt in ${(Number(f['wait_ms']) / 1000).toFixed(1)} s`,
  'registration.max_retry_reached': (f) => `max retry (${String(f['max_retry'])}) reached — waiting one interval`,
  'registration.callback': (f) => `← callback accepted: node ${String(f['node_id'])}, secret of ${String(f['secret_len'])} bytes`,
  'registration.callback.refused': (f) => `← callback refused: ${String(f['reason'])}`,
  'healthcheck.touch': (f) => (f['source'] === 'probe' ? '← DDS health probe recorded' : 'health check recorded'),
  'healthcheck.expired': () => 'no DDS probe within the interval — health check stale',
  'status.transition': (f) => `state file: ${String(f['from'])} → ${String(f['to'])}`,
  'registration.rearm': (f) => `registration no longer valid (${f['reason'] === 'forgotten' ? 'DDS forgot the node' : 'the host asked'}) — re-arming registration`,
  'session.signed_in': (f) => `✓ signed in (sign-in ${String(f['sign_ins'])}): access token until ${clockOf(f['expires_at'])}, refresh in ${seconds(f['refresh_in_ms'])} s`,
  'session.sign_in_failed': (f) => `✗ sign-in failed (${String(f['failures'])} in a row): ${String(f['error'])}`,
  'session.retries_exhausted': (f) => `sign-in retries exhausted (${String(f['failures'])}) — starting over in ${seconds(f['restart_in_ms'])} s`,
};

function seconds(ms: unknown): string {
  return (Number(ms) / 1000).toFixed(1);
}

/** A time in ms since the epoch as the view's clock, or `?`. */
function clockOf(ms: unknown): string {
  return typeof ms === 'number' && Number.isFinite(ms) ? clock(new Date(ms)) : '?';
}

/** A logger that shows the registrar's notable events in the view (and forwards all lines to `next`). */
export function viewLogger(view: LiveView, next?: Logger): Logger {
  const forward = (level: 'debug' | 'info' | 'warn' | 'error', fields: LogFields, msg?: string): void => {
    next?.[level](fields, msg);
    const describe = SHOWN[fields.event];
    if (describe) view.show({ kind: 'registrar', name: fields.event, text: describe(fields), fields: { level } });
  };
  return {
    debug: (f, m) => forward('debug', f, m),
    info: (f, m) => forward('info', f, m),
    warn: (f, m) => forward('warn', f, m),
    error: (f, m) => forward('error', f, m),
  };
}
