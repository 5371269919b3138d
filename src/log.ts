/**
 * log — the small logger interface every module writes to, and a pino-backed
 * implementation. Every line carries its name in a field called `event`
 * (PROTOCOL.md §3). Modules never hand library errors to a logger: they log
 * the project's own small values (class, status, endpoint, message).
 */
import { pino, type DestinationStream } from 'pino';
import pinoPretty from 'pino-pretty';
// CommonJS: its class is a property of the module (what pino uses too).
import sonicBoom, { type SonicBoom } from 'sonic-boom';
import type { LogDropCounter } from './metrics.js';
import { REDACTED, SECRET_FIELD_NAMES } from './redact.js';

/** Levels, most verbose first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** The fields of one log line: `event` names it. */
export interface LogFields {
  event: string;
  [key: string]: unknown;
}

/** What the library needs of a logger. A pino logger satisfies it. */
export interface Logger {
  debug(fields: LogFields, msg?: string): void;
  info(fields: LogFields, msg?: string): void;
  warn(fields: LogFields, msg?: string): void;
  error(fields: LogFields, msg?: string): void;
}

/** Output format: JSON lines, or text for a person. */
export type LogFormat = 'json' | 'text';

/** Options of {@link createLogger}. */
export interface CreateLoggerOptions {
  format?: LogFormat;
  level?: LogLevel;
  /** Where lines go (default: stdout, file descriptor 1). */
  destination?: DestinationStream | NodeJS.WritableStream | number;
  /** Extra fields on every line (e.g. `{ name: 'registrar' }`). */
  base?: Record<string, unknown>;
  /**
   * Write to the file descriptor asynchronously, with at most this many
   * bytes waiting for a slow reader: beyond, lines are dropped and counted,
   * and one `log.dropped` line says how many once the reader caught up. A
   * daemon's choice (its event loop must never wait for whoever reads its
   * stdout); without it, lines are written synchronously and never lost.
   */
  bufferBytes?: number;
}

/** The logger {@link createLogger} makes: it counts the lines it drops and flushes within a bound. */
export interface ProcessLogger extends Logger {
  /** Count the lines dropped from now on on `counter` as well (the metrics endpoint's). */
  countDroppedLines(counter: LogDropCounter): void;
  /** Lines dropped so far. */
  readonly droppedLines: number;
  /**
   * Wait until every line accepted has been written, at most `timeoutMs`:
   * resolves true when all were written, false when time ran out (a reader
   * that never reads does not hold the process at exit).
   */
  flush(timeoutMs: number): Promise<boolean>;
}

/**
 * Paths whose values pino replaces by `[redacted]` should they ever reach
 * the logger (every secret-named field, at the top level and one level
 * down): a last line of defence, not the primary protection.
 */
export const REDACTED_LOG_PATHS: readonly string[] = [...SECRET_FIELD_NAMES].flatMap((name) => [name, `*.${name}`]);

/** The text format's options (pino-pretty). */
const PRETTY_OPTIONS = {
  colorize: false,
  translateTime: 'SYS:HH:MM:ss.l',
  ignore: 'pid,hostname,event',
  singleLine: true,
  messageKey: 'msg',
  messageFormat: '{event}{if msg} — {msg}{end}',
} as const;

/**
 * A bounded asynchronous destination on a file descriptor (sonic-boom, as
 * pino's own): `write` never blocks; what the reader has not taken yet waits
 * in memory up to `maxBytes`, and a line that would exceed it is dropped.
 */
class BoundedDestination {
  readonly #sonic: SonicBoom;
  /** Lines accepted but not all written yet. */
  #busy = false;
  #broken = false;
  dropped = 0;
  /** Dropped since the last `log.dropped` line. */
  #unreported = 0;
  #counters: LogDropCounter[] = [];

  constructor(fd: number, maxBytes: number, onDrained: (dropped: number) => void) {
    this.#sonic = new sonicBoom.SonicBoom({ fd, sync: false, maxLength: maxBytes });
    this.#sonic.on('drop', () => {
      this.dropped += 1;
      this.#unreported += 1;
      for (const c of this.#counters) c.inc();
    });
    // 'drain': everything accepted has been written, the reader is keeping up again.
    this.#sonic.on('drain', () => {
      this.#busy = false;
      if (this.#unreported > 0) {
        const count = this.#unreported;
        this.#unreported = 0;
        onDrained(count);
      }
    });
    // EPIPE (nobody reads any more) or another write error: stop writing, never crash.
    this.#sonic.on('error', () => {
      this.#broken = true;
      this.#busy = false;
    });
  }

  write(line: string): void {
    if (this.#broken) return;
    this.#busy = true;
    this.#sonic.write(line);
  }

  countOn(counter: LogDropCounter): void {
    this.#counters.push(counter);
  }

  flush(timeoutMs: number): Promise<boolean> {
    if (!this.#busy) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        this.#sonic.off('drain', onDrain);
        this.#sonic.off('error', onError);
        resolve(ok);
      };
      const onDrain = (): void => done(true);
      const onError = (): void => done(false);
      const timer = setTimeout(() => done(false), timeoutMs);
      timer.unref();
      this.#sonic.on('drain', onDrain);
      this.#sonic.on('error', onError);
    });
  }
}

/** A pino logger that writes JSON lines (default) or readable text. */
export function createLogger(options: CreateLoggerOptions = {}): ProcessLogger {
  const { format = 'json', level = 'info', base } = options;
  const pinoOptions = {
    level,
    base: base ?? null,
    messageKey: 'msg',
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: [...REDACTED_LOG_PATHS], censor: REDACTED },
    formatters: { level: (label: string) => ({ level: label }) },
  };
  const fd = typeof options.destination === 'object' ? undefined : (options.destination ?? 1);
  let bounded: BoundedDestination | undefined;
  let destination: DestinationStream;
  if (fd !== undefined && options.bufferBytes !== undefined) {
    const b = new BoundedDestination(fd, options.bufferBytes, (count) =>
      logger.warn({ event: 'log.dropped', count }, `${count} log lines dropped: the reader of the log did not keep up`),
    );
    bounded = b;
    if (format === 'text') {
      // Formatted on this thread and handed to the bounded destination: pino-pretty's own
      // stream would queue without bound behind a stalled reader.
      const pretty = pinoPretty.prettyFactory(PRETTY_OPTIONS as Parameters<typeof pinoPretty.prettyFactory>[0]);
      destination = { write: (line: string) => b.write(pretty(line)) };
    } else {
      destination = { write: (line: string) => b.write(line) };
    }
  } else if (format === 'text') {
    destination = pinoPretty({
      ...PRETTY_OPTIONS,
      sync: true,
      destination: fd ?? 1,
      ...(typeof options.destination === 'object' ? { destination: options.destination } : {}),
    } as Parameters<typeof pinoPretty>[0]);
  } else if (typeof options.destination === 'object') {
    destination = options.destination as DestinationStream;
  } else {
    destination = pino.destination({ dest: fd ?? 1, sync: true });
  }
  const logger = pino(pinoOptions, destination);
  const extra: Omit<ProcessLogger, keyof Logger | 'droppedLines'> = {
    countDroppedLines: (counter) => bounded?.countOn(counter),
    flush: (timeoutMs) => bounded?.flush(timeoutMs) ?? Promise.resolve(true),
  };
  return Object.defineProperty(Object.assign(logger, extra), 'droppedLines', { get: () => bounded?.dropped ?? 0 }) as typeof logger &
    ProcessLogger;
}

/** A logger that drops everything. */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/** One captured line of a {@link MemoryLogger}. */
export interface CapturedLogLine extends LogFields {
  level: LogLevel;
  msg?: string;
}

/** A logger that keeps its lines in memory: for tests and for embedding hosts that forward lines. */
export class MemoryLogger implements Logger {
  readonly lines: CapturedLogLine[] = [];
  #push(level: LogLevel, fields: LogFields, msg?: string): void {
    this.lines.push({ ...fields, level, ...(msg === undefined ? {} : { msg }) });
  }
  debug(fields: LogFields, msg?: string): void {
    this.#push('debug', fields, msg);
  }
  info(fields: LogFields, msg?: string): void {
    this.#push('info', fields, msg);
  }
  warn(fields: LogFields, msg?: string): void {
    this.#push('warn', fields, msg);
  }
  error(fields: LogFields, msg?: string): void {
    this.#push('error', fields, msg);
  }
  /** The lines whose `event` is `name`. */
  events(name: string): CapturedLogLine[] {
    return this.lines.filter((l) => l.event === name);
  }
  /** Everything logged so far, as one JSON text (for secret scans). */
  dump(): string {
    return JSON.stringify(this.lines);
  }
}
