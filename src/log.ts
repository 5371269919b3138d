/**
 * log — the small logger interface every module writes to, and a pino-backed
 * implementation. Every line carries its name in a field called `event`
 * (PROTOCOL.md §3). Modules never hand library errors to a logger: they log
 * the project's own small values (class, status, endpoint, message).
 */
import { pino, type DestinationStream } from 'pino';
import pinoPretty from 'pino-pretty';
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
}

/**
 * Paths whose values pino replaces by `[redacted]` should they ever reach
 * the logger (every secret-named field, at the top level and one level
 * down): a last line of defence, not the primary protection.
 */
export const REDACTED_LOG_PATHS: readonly string[] = [...SECRET_FIELD_NAMES].flatMap((name) => [name, `*.${name}`]);

/** A pino logger that writes JSON lines (default) or readable text. */
export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const { format = 'json', level = 'info', base } = options;
  const pinoOptions = {
    level,
    base: base ?? null,
    messageKey: 'msg',
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: [...REDACTED_LOG_PATHS], censor: REDACTED },
    formatters: { level: (label: string) => ({ level: label }) },
  };
  let destination: DestinationStream;
  if (format === 'text') {
    destination = pinoPretty({
      colorize: false,
      sync: true,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,event',
      singleLine: true,
      messageKey: 'msg',
      messageFormat: '{event}{if msg} — {msg}{end}',
      destination: typeof options.destination === 'number' ? options.destination : 1,
      ...(typeof options.destination === 'object' ? { destination: options.destination } : {}),
    } as Parameters<typeof pinoPretty>[0]);
  } else if (typeof options.destination === 'object') {
    destination = options.destination as DestinationStream;
  } else {
    destination = pino.destination({ dest: options.destination ?? 1, sync: true });
  }
  return pino(pinoOptions, destination);
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
