/**
 * Signals from the first instant. The launcher (src/cli/launch.cts) — or
 * bin.ts when run without it — listens for SIGTERM and SIGINT before it loads
 * anything else and records what arrives, so that a signal during start-up
 * (loading two megabytes of bundle, reading settings) is not Node's default
 * death by signal but waits for the command's own graceful stop, which
 * {@link waitForSignal} hands it. SIGUSR1 gets a listener of the daemon's
 * own at once as well: without one, Node opens its debugger on
 * 127.0.0.1:9229 (anyone on the host could then read every secret).
 */

/** Where the launcher leaves what it recorded (a global: the bundle is loaded after it). */
export const EARLY_SIGNALS_KEY: unique symbol = Symbol.for('posemesh-node-registration.earlySignals') as never;

/** The commands that run until a signal: they stop gracefully on the first SIGTERM/SIGINT. */
export const LONG_RUNNING_COMMANDS: readonly string[] = ['run', 'dev', 'dds-sim'];

/** The signals that stop a long-running command. */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];

/** What the early listeners recorded. */
export interface EarlySignals {
  /** Stop signals received before the command listened for them, in order. */
  readonly received: NodeJS.Signals[];
  /** SIGUSR1s received before the command listened for them. */
  usr1: number;
  /** The listener of the stop signals (removed once the command listens). */
  readonly onStop: (signal: NodeJS.Signals) => void;
  /** The listener of SIGUSR1 (kept until the command has its own). */
  readonly onUsr1: () => void;
}

type WithEarly = NodeJS.Process & { [EARLY_SIGNALS_KEY]?: EarlySignals };

/**
 * Listen for signals now (idempotent; the launcher did it already). Stop
 * signals are recorded only for a long-running `command`: any other command
 * ends as Node would on them.
 */
export function installEarlySignalHandlers(command: string | undefined = process.argv[2]): void {
  const proc = process as WithEarly;
  if (proc[EARLY_SIGNALS_KEY] !== undefined) return;
  const early: EarlySignals = {
    received: [],
    usr1: 0,
    onStop: (signal) => early.received.push(signal),
    onUsr1: () => (early.usr1 += 1),
  };
  proc[EARLY_SIGNALS_KEY] = early;
  process.on('SIGUSR1', early.onUsr1);
  if (command !== undefined && LONG_RUNNING_COMMANDS.includes(command)) for (const s of STOP_SIGNALS) process.on(s, early.onStop);
}

/** The early listeners' record, if any. */
function earlySignals(): EarlySignals | undefined {
  return (process as WithEarly)[EARLY_SIGNALS_KEY];
}

/**
 * Wait for SIGINT or SIGTERM (once), then stop listening for them. A signal
 * received since the launcher started counts: the promise then resolves at
 * once.
 */
export function waitForSignal(signals: readonly NodeJS.Signals[] = STOP_SIGNALS): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const handler = (signal: NodeJS.Signals): void => {
      for (const s of signals) process.off(s, handler);
      resolve(signal);
    };
    // Ours first, then the early ones off: there is no instant without a listener.
    for (const s of signals) process.on(s, handler);
    const early = earlySignals();
    if (early === undefined) return;
    for (const s of STOP_SIGNALS) process.off(s, early.onStop);
    const first = early.received.find((s) => signals.includes(s));
    if (first !== undefined) handler(first);
  });
}

/**
 * Give SIGUSR1 a use: `onSignal` (the daemon logs one status line) for each
 * one received, including those received during start-up. Returns the
 * function that stops listening; the early listener then stays, so that a
 * late SIGUSR1 still never opens the debugger.
 */
export function onStatusSignal(onSignal: () => void): () => void {
  const early = earlySignals();
  const pending = early?.usr1 ?? 0;
  if (early !== undefined) early.usr1 = 0;
  process.on('SIGUSR1', onSignal);
  // Not the listener above, when there was no launcher: a SIGUSR1 must never be left without one.
  if (early === undefined) installEarlySignalHandlers(undefined);
  for (let i = 0; i < pending; i += 1) setImmediate(onSignal);
  return () => {
    process.off('SIGUSR1', onSignal);
  };
}
