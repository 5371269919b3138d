/**
 * `dev` (what `npm start` runs) — the whole lifecycle on a laptop, no real
 * DDS needed: the embedded DDS simulator and a registrar against it, on
 * 127.0.0.1 ephemeral ports, with a fresh key, in a temporary data
 * directory. A little scenario pauses the simulator's probes once, so the
 * registrar can be seen noticing the stale health check and re-registering;
 * under `--protocol siwe` it makes the simulator forget the node once (at its
 * n-th sign-in), so the refused refresh, the re-arm and the new registration
 * and sign-in can be seen.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Option, type Command } from 'commander';
import { generateSecretKey } from '../crypto.js';
import type { DdsSimulator } from '../sim/dds-simulator.js';
import { number } from '../settings/kinds.js';
import { PACKAGE_VERSION } from '../version.js';
import { createLiveView, describeState, simulatorItem, stateWords, viewLogger, type LiveView } from './live-view.js';
import { faultsOf } from './sim-options.js';
import { addSettings, CliError, EXIT, logSettingWarnings, readOption, readSettings } from './settings.js';
import { waitForSignal } from './signals.js';

/** The scenario's times, seconds (dev's own options, not settings). */
const SCENARIO_SECS = number({ min: 0, max: 86_400, arg: 'secs' });
/** The sign-in at which the scenario makes the simulator forget the node (dev's own option). */
const SCENARIO_SIGN_IN = number({ min: 0, max: 1000, integer: true, arg: 'n' });

/** Add `dev` to the program. */
export function devCommand(program: Command): void {
  const command = program
    .command('dev')
    .description('watch the registration lifecycle live against the embedded DDS simulator (no outside service)')
    .addOption(new Option('--pause-probes-at <secs>', 'under protocol legacy: pause the probes this long after the start, 0 = never (default: 12 s)'))
    .addOption(new Option('--pause-probes-for <secs>', 'how long the probes stay paused (default: 10 s)'))
    .addOption(new Option('--forget-at-sign-in <n>', 'under protocol siwe: the simulator forgets the node once, at its n-th sign-in (default: 2, the first refresh); 0 = never'))
    .addOption(new Option('--duration <secs>', 'stop by itself after this long, 0 = run until Ctrl-C (default: 0 s)'))
    .addOption(new Option('--json', 'print JSON lines (the default when stdout is not a terminal)'))
    .addOption(new Option('--text', 'print text lines (the default on a terminal)'));
  addSettings(command, 'dev');
  command.addHelpText(
    'after',
    '\nExamples:\n  npm start                                  # the happy path, then a probe pause and a re-registration\n  npm start -- --fail-status 500 --fail-count 4   # watch exponential backoff, then recovery\n  npm start -- --fail-status 409 --fail-count 1   # a conflict waits one interval\n  npm start -- --protocol siwe               # the wallet: registered, signed in, refreshed, forgotten, re-armed',
  );
  command.action(async (opts: Record<string, unknown>) => {
    const mode = opts['json'] ? 'json' : opts['text'] ? 'text' : process.stdout.isTTY ? 'text' : 'json';
    const view = createLiveView(process.stdout, mode, mode === 'text' && Boolean(process.stdout.isTTY));
    const { values, warnings } = readSettings(command, 'dev');
    const pauseAt = readOption(SCENARIO_SECS, opts['pauseProbesAt'], '--pause-probes-at', 12);
    const pauseFor = readOption(SCENARIO_SECS, opts['pauseProbesFor'], '--pause-probes-for', 10);
    const duration = readOption(SCENARIO_SECS, opts['duration'], '--duration', 0);
    const forgetAt = readOption(SCENARIO_SIGN_IN, opts['forgetAtSignIn'], '--forget-at-sign-in', 2);
    const siwe = values.protocol === 'siwe';
    const [{ silentLogger }, { DdsSimulator }, { startDaemon }] = await Promise.all([
      import('../log.js'),
      import('../sim/dds-simulator.js'),
      import('./daemon.js'),
    ]);

    const regSecret = randomBytes(24).toString('hex');
    const key = generateSecretKey();
    const signal = waitForSignal();
    const dataDir = mkdtempSync(join(tmpdir(), 'posemesh-dev-'));
    const sim = new DdsSimulator({
      host: '127.0.0.1',
      port: 0,
      probeIntervalMs: Math.round(values.simProbeIntervalSecs * 1000),
      tokenLifetimeMs: Math.round(values.simTokenLifetimeSecs * 1000),
      nonceLifetimeMs: Math.round(values.simNonceLifetimeSecs * 1000),
      expectedRegSecret: regSecret,
      faults: faultsOf(values),
    });
    // Whatever happens from here on, the simulator stops and the temporary directory goes.
    const run = async () => {
      sim.on((event) => view.show(simulatorItem(event)));
      const simStarted = await sim.start();
      view.show({ kind: 'info', name: 'dev.start', text: `DDS simulator on ${simStarted.url}; data directory ${dataDir}`, fields: { ddsUrl: simStarted.url, dataDir } });

      const logger = viewLogger(view, silentLogger);
      logSettingWarnings(logger, warnings);
      const daemon = await startDaemon({
        settings: {
          ...values,
          ddsBaseUrl: simStarted.url,
          // The wallet generation has no node URL: DDS never calls the node.
          nodeUrl: siwe ? undefined : (listenUrl: string) => listenUrl,
          nodeVersion: PACKAGE_VERSION,
          regSecret,
          secp256k1Privhex: key.exposeHex(),
          capabilities: ['/reconstruction/global-refinement/v1'],
          // The lock's staleness must exceed the request timeout.
          requestTimeoutSecs: 4,
          lockStaleSecs: 5,
          dataDir,
          host: '127.0.0.1',
          port: 0,
        },
        logger,
      });
      view.show({ kind: 'info', name: 'dev.node', text: `node routes on ${daemon.url}${siwe ? ' (unused under siwe: DDS calls no node)' : ''}; interval ${values.registerIntervalSecs} s`, fields: { nodeUrl: daemon.url, intervalSecs: values.registerIntervalSecs } });
      if (daemon.relay) view.show({ kind: 'info', name: 'dev.inspector', text: `inspector: open ${daemon.relay.httpUrl}`, fields: { url: daemon.relay.httpUrl } });
      if (daemon.metrics) view.show({ kind: 'info', name: 'dev.metrics', text: `metrics: curl ${daemon.metrics.url}/metrics`, fields: { url: `${daemon.metrics.url}/metrics` } });

      showTransitions(daemon.registrar, view);
      const timers = siwe ? [] : scheduleScenario(sim, view, pauseAt, pauseFor);
      if (siwe) forgetOnce(sim, view, forgetAt);

      const stopAfter = duration > 0 ? new Promise<'duration'>((resolve) => timers.push(setTimeout(() => resolve('duration'), duration * 1000))) : new Promise<never>(() => undefined);
      const reason = await Promise.race([signal, stopAfter, daemon.done.then(() => 'done' as const)]);
      for (const t of timers) clearTimeout(t);
      view.show({ kind: 'info', name: 'dev.stop', text: `stopping (${reason})` });
      await daemon.stop();
      return daemon.registrar;
    };
    let registrar;
    try {
      registrar = await run();
    } finally {
      await sim.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
    view.show({ kind: 'info', name: 'dev.done', text: `stopped in state ${describeState(registrar.getSnapshot().value)}` });
    const { registrarDone, RegistrarFailedError } = await import('../loop.js');
    await registrarDone(registrar).catch((error: unknown) => {
      throw error instanceof RegistrarFailedError ? new CliError(EXIT.unexpected, error.message) : error;
    });
  });
}

function showTransitions(registrar: { subscribe: (fn: (s: { value: unknown }) => void) => unknown; getSnapshot(): { value: unknown } }, view: LiveView): void {
  let last = '';
  const show = (value: unknown): void => {
    const text = describeState(value);
    if (text === last) return;
    last = text;
    const words = stateWords(value);
    view.show({ kind: 'state', name: text, text: words === null ? `▶ ${text}` : `▶ ${text} — ${words}`, fields: { value } });
  };
  show(registrar.getSnapshot().value);
  registrar.subscribe((s) => show(s.value));
}

/** Under siwe: at the node's `signIn`-th sign-in (since it registered), the simulator forgets it — once. */
function forgetOnce(sim: DdsSimulator, view: LiveView, signIn: number): void {
  if (signIn <= 0) return;
  const off = sim.on((event) => {
    if (event.type !== 'siwe.signed_in' || event.signIns < signIn) return;
    off();
    // After the token of this sign-in is issued (the simulator's next event).
    queueMicrotask(() => {
      view.show({ kind: 'info', name: 'dev.scenario', text: `scenario: DDS forgets the node after its sign-in ${event.signIns}` });
      sim.forget(event.wallet);
    });
  });
}

function scheduleScenario(sim: DdsSimulator, view: LiveView, pauseAt: number, pauseFor: number): NodeJS.Timeout[] {
  if (pauseAt <= 0 || pauseFor <= 0) return [];
  const pause = setTimeout(() => {
    view.show({ kind: 'info', name: 'dev.scenario', text: `scenario: the simulator pauses its probes for ${pauseFor} s` });
    sim.setFaults({ pauseProbes: true });
  }, pauseAt * 1000);
  const resume = setTimeout(() => {
    view.show({ kind: 'info', name: 'dev.scenario', text: 'scenario: the simulator resumes its probes' });
    sim.setFaults({ pauseProbes: false });
  }, (pauseAt + pauseFor) * 1000);
  return [pause, resume];
}
