/**
 * metrics — a registrar's Prometheus metrics (prom-client), fed by what the
 * registrar itself reports as it happens: its snapshots, the events it
 * receives and its own `log` actions, seen through its actor system's
 * inspection (`system.inspect`) — never by polling. The DDS routes' verdicts
 * on callbacks, which never reach the actor when refused, come from their log
 * lines ({@link RegistrarMetrics.tapRoutesLogger}).
 *
 * Nothing secret becomes a value or a label: only state names, event names,
 * failure classes and the routes' fixed refusal texts do.
 *
 * Loaded only when metrics are on: the daemon imports it on use, so that a
 * start without metrics never loads prom-client.
 */
import { Counter, Gauge, Registry } from 'prom-client';
import type { InspectionEvent } from 'xstate';
import { registrarMachine, type FailureClass, type LogParams } from '../machines/registrar.js';
import type { LogFields, Logger } from './log.js';
import type { Registrar } from './registrar.js';

/** Every metric's name starts with this. */
export const METRIC_PREFIX = 'posemesh_registrar_';

/** The failure classes, as the attempts counter labels them (the machine's `FailureClass`). */
const FAILURE_CLASSES = ['conflict', 'retryable', 'slow'] as const satisfies readonly FailureClass[];

/** The top-level states, as the state gauge labels them. */
const STATES = Object.keys(registrarMachine.root.states);

/** Distinct refusal reasons kept as labels; any more are counted as `other` (a custom sink's reasons are free text). */
const MAX_REASONS = 32;
/** The longest reason label, in UTF-16 units. */
const MAX_REASON_CHARS = 80;

/** What a logger that drops lines (its destination cannot keep up) counts them with. */
export interface LogDropCounter {
  inc(count?: number): void;
}

/** A logger that reports the lines it drops: the daemon hands it {@link RegistrarMetrics.logLinesDropped}. */
export interface DropCountingLogger extends Logger {
  countDroppedLines(counter: LogDropCounter): void;
}

/** Whether `logger` reports the lines it drops. */
export function isDropCountingLogger(logger: Logger): logger is DropCountingLogger {
  return typeof (logger as Partial<DropCountingLogger>).countDroppedLines === 'function';
}

/** Options of {@link createRegistrarMetrics}. */
export interface RegistrarMetricsOptions {
  /** Wall-clock time in ms, for the ages (default `Date.now`). */
  now?: () => number;
  /** Register into this registry (default: a new one, its own). */
  registry?: Registry;
}

/** A registrar's metrics and what feeds them. */
export interface RegistrarMetrics {
  readonly registry: Registry;
  /** For a logger that drops lines ({@link DropCountingLogger}). */
  readonly logLinesDropped: LogDropCounter;
  /** Follow `registrar` (before or after it starts) until the returned function is called. */
  watch(registrar: Registrar): () => void;
  /** A logger that forwards every line to `logger` and counts the DDS routes' callback verdicts. */
  tapRoutesLogger(logger: Logger): Logger;
  /** The exposition a scrape gets, and its content type. */
  scrape(): Promise<string>;
  readonly contentType: string;
}

/**
 * A gauge of the seconds since (`since`) or until (`until`) an instant,
 * computed at each scrape. Absent — not even registered — until the first
 * instant is known: a value of 0 would be a lie.
 */
function instantGauge(registry: Registry, name: string, help: string, direction: 'since' | 'until', now: () => number) {
  let at: number | undefined;
  const gauge = new Gauge({
    name: `${METRIC_PREFIX}${name}`,
    help,
    registers: [],
    collect() {
      if (at !== undefined) this.set((direction === 'since' ? now() - at : at - now()) / 1000);
    },
  });
  return (atMs: number): void => {
    if (at === undefined) registry.registerMetric(gauge);
    at = atMs;
  };
}

/** The top-level state of a snapshot's value (`registered` of `{ registered: {…} }`). */
function topState(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null) return Object.keys(value)[0];
  return undefined;
}

function isLogParams(params: unknown): params is LogParams {
  return typeof params === 'object' && params !== null && typeof (params as { event?: unknown }).event === 'string';
}

/** A label value from a bounded set: the first {@link MAX_REASONS} seen, then `other`. */
function boundedLabels(): (value: string) => string {
  const seen = new Set<string>();
  return (value) => {
    const clipped = value.length > MAX_REASON_CHARS ? value.slice(0, MAX_REASON_CHARS) : value;
    if (seen.has(clipped)) return clipped;
    if (seen.size >= MAX_REASONS) return 'other';
    seen.add(clipped);
    return clipped;
  };
}

/** The routes' callback lines: `registration.callback` is an acceptance; every `registration.callback.*` a refusal. */
const CALLBACK_EVENT = 'registration.callback';

/** Make a registrar's metrics (each call: its own metrics, in its own registry unless one is given). */
export function createRegistrarMetrics(options: RegistrarMetricsOptions = {}): RegistrarMetrics {
  const now = options.now ?? Date.now;
  const registry = options.registry ?? new Registry();
  const registers = [registry];
  const name = (n: string): string => `${METRIC_PREFIX}${n}`;

  // The metrics. One more is one line here, and a line where the registrar reports it (e.g. once
  // the wallet protocol lands: `instantGauge(registry, 'access_token_expiry_seconds', …, 'until', now)`).
  const counter = <L extends string = string>(n: string, help: string, labelNames: readonly L[] = []): Counter<L> =>
    new Counter({ name: name(n), help, labelNames, registers });
  const state = new Gauge({ name: name('state'), help: 'The current top-level state: 1 for it, 0 for the others.', labelNames: ['state'], registers });
  const stateEntered = counter('state_entered_total', 'Times each top-level state was entered (a state held for one turn, like healthCheckStale, shows here).', ['state']);
  const attempts = counter(
    'registration_attempts_total',
    'Registration requests answered (or given up), by outcome (success, failure) and failure class (conflict, retryable, slow).',
    ['outcome', 'class'],
  );
  const probes = counter('dds_probes_total', 'DDS health probes received.');
  const probeAt = instantGauge(registry, 'dds_probe_age_seconds', 'Seconds since the last DDS health probe (absent until the first).', 'since', now);
  const callbacks = counter('callbacks_total', "DDS callbacks (the node secret's hand-over), by result (accepted, refused) and the refusal's reason.", ['result', 'reason']);
  const lockTakeovers = counter('lock_takeovers_total', 'Stale locks of the data directory this registrar took over.');
  const logLinesDropped = counter('log_lines_dropped_total', 'Log lines dropped because their destination could not keep up.');

  // Zero from the start, so that rates and alerts work before the first of each.
  attempts.inc({ outcome: 'success' }, 0);
  for (const failureClass of FAILURE_CLASSES) attempts.inc({ outcome: 'failure', class: failureClass }, 0);
  callbacks.inc({ result: 'accepted' }, 0);

  const reasonLabel = boundedLabels();

  const onLog = (params: LogParams): void => {
    switch (params.event) {
      case 'registration.success':
        attempts.inc({ outcome: 'success' });
        break;
      case 'registration.error':
      case 'registration.conflict': {
        const given = params.fields?.['class'];
        const failureClass = FAILURE_CLASSES.find((c) => c === given) ?? 'retryable';
        attempts.inc({ outcome: 'failure', class: failureClass });
        break;
      }
      case 'lock.acquired':
        if (params.fields?.['takeover'] === true) lockTakeovers.inc();
        break;
    }
  };

  const onCallbackLine = (fields: LogFields): void => {
    if (fields.event === CALLBACK_EVENT) {
      callbacks.inc({ result: 'accepted' });
    } else if (fields.event.startsWith(`${CALLBACK_EVENT}.`)) {
      // `registration.callback.persist_failed` has no reason field: its answer's text is the reason.
      const reason = typeof fields['reason'] === 'string' ? fields['reason'] : fields.event.slice(CALLBACK_EVENT.length + 1).replace(/_/g, ' ');
      callbacks.inc({ result: 'refused', reason: reasonLabel(reason) });
    }
  };

  return {
    registry,
    logLinesDropped,
    contentType: registry.contentType,
    scrape: () => registry.metrics(),
    watch(registrar) {
      let current: string | undefined;
      const enter = (top: string | undefined): void => {
        if (top === undefined || top === current) return;
        for (const s of STATES) state.set({ state: s }, s === top ? 1 : 0);
        stateEntered.inc({ state: top });
        current = top;
      };
      for (const s of STATES) stateEntered.inc({ state: s }, 0);
      enter(topState(registrar.getSnapshot().value));
      const subscription = registrar.system.inspect((event: InspectionEvent) => {
        if (event.actorRef !== registrar) return;
        switch (event.type) {
          case '@xstate.snapshot':
            enter(topState((event.snapshot as { value?: unknown }).value));
            break;
          case '@xstate.event':
            if (event.event.type === 'HEALTHCHECK') {
              probes.inc();
              probeAt(now());
            }
            break;
          case '@xstate.action':
            if (event.action.type === 'log' && isLogParams(event.action.params)) onLog(event.action.params);
            break;
        }
      });
      return () => subscription.unsubscribe();
    },
    tapRoutesLogger(logger) {
      const tap =
        (level: keyof Logger) =>
        (fields: LogFields, msg?: string): void => {
          onCallbackLine(fields);
          logger[level](fields, msg);
        };
      return { debug: tap('debug'), info: tap('info'), warn: tap('warn'), error: tap('error') };
    },
  };
}
