/**
 * The registrar's metrics (src/metrics.ts) fed by a real actor of the
 * machine on a SimulatedClock, with answers the test controls; and the
 * metrics endpoint (src/cli/metrics-server.ts) over a real socket.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setImmediate as immediate } from 'node:timers/promises';
import { createActor, fromPromise, SimulatedClock } from 'xstate';
import { registrarMachine, type ReadSharedStateInput, type RegistrarActorOutputs } from '../../machines/registrar.js';
import { MemoryLogger, type LogFields } from '../../src/log.js';
import { createRegistrarMetrics, isDropCountingLogger, METRIC_PREFIX, type LogDropCounter } from '../../src/metrics.js';
import { METRICS_PATH, startMetricsEndpoint } from '../../src/cli/metrics-server.js';
import { CliError, EXIT } from '../../src/cli/settings.js';
import { onCleanup, occupyPort } from '../support/index.js';
import { parseScrape, sampleValue } from '../support/prometheus.js';

type Outputs = RegistrarActorOutputs;
type Outcome = Outputs['registerWithDds'];

const FAILURE = { endpoint: 'http://dds.test/internal/v1/nodes/register', retryAfterMs: null } as const;
const ANSWERS: Outcome[] = [
  { ok: false, class: 'conflict', status: 409, message: 'HTTP 409', ...FAILURE },
  { ok: false, class: 'retryable', status: 503, message: 'HTTP 503', ...FAILURE },
  { ok: false, class: 'slow', status: 404, message: 'HTTP 404', ...FAILURE },
  { ok: true, status: 200, endpoint: FAILURE.endpoint },
  { ok: true, status: 200, endpoint: FAILURE.endpoint },
];

const INTERVAL_MS = 10_000;

/** A registrar whose DDS answers {@link ANSWERS} in turn; the first lock attempt is a takeover. */
function fakeRegistrar(clock: SimulatedClock) {
  const answers = [...ANSWERS];
  let locks = 0;
  const machine = registrarMachine.provide({
    actors: {
      checkCredentials: fromPromise<Outputs['checkCredentials']>(async () => ({ ok: true, publicKeyPrefix: '02abcdef' })),
      acquireLock: fromPromise<Outputs['acquireLock']>(async () => ({ kind: 'acquired', takeover: locks++ === 0 })),
      readSharedState: fromPromise<Outputs['readSharedState'], ReadSharedStateInput>(async () => ({ status: 'disconnected', healthcheckAgeMs: null, writtenByLiveSibling: false })),
      registerWithDds: fromPromise<Outcome>(async () => answers.shift() ?? { ok: true, status: 200, endpoint: FAILURE.endpoint }),
      shutdown: fromPromise<Outputs['shutdown']>(async () => undefined),
    },
  });
  return createActor(machine, {
    clock,
    input: { settings: { intervalMs: INTERVAL_MS, maxRetry: -1, callbackPolicy: 'window', callbackWindowMs: 5_000, protocol: 'legacy', session: null, retryAfterMaxMs: 600_000 } },
  });
}

/** Let the fake actors' promises settle. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await immediate();
}

/** Values of one metric, by their labels' JSON. */
async function values(metrics: ReturnType<typeof createRegistrarMetrics>, name: string): Promise<Record<string, number>> {
  const metric = metrics.registry.getSingleMetric(`${METRIC_PREFIX}${name}`);
  if (metric === undefined) return {};
  const got = await metric.get();
  return Object.fromEntries(got.values.map((v) => [JSON.stringify(v.labels), v.value]));
}

describe('metrics fed by the registrar', () => {
  test('state, attempts by outcome and class, lock takeovers, probes and their age follow the actor', async () => {
    const clock = new SimulatedClock();
    clock.set(1_000_000);
    const metrics = createRegistrarMetrics({ now: () => clock.now() });
    const registrar = fakeRegistrar(clock);
    const unwatch = metrics.watch(registrar);
    assert.equal((await values(metrics, 'state'))['{"state":"starting"}'], 1, 'the initial state, before the start');

    registrar.start();
    await settle();
    assert.equal(registrar.getSnapshot().matches('backoff'), true, 'the conflict');
    clock.increment(INTERVAL_MS); // the cooldown
    await settle();
    clock.increment(60_000); // the retry (at most a minute)
    await settle();
    clock.increment(INTERVAL_MS); // the slow failure's cooldown
    await settle();
    assert.equal(registrar.getSnapshot().matches('registered'), true, JSON.stringify(registrar.getSnapshot().value));

    assert.deepEqual(await values(metrics, 'registration_attempts_total'), {
      '{"outcome":"success"}': 1,
      '{"outcome":"failure","class":"conflict"}': 1,
      '{"outcome":"failure","class":"retryable"}': 1,
      '{"outcome":"failure","class":"slow"}': 1,
    });
    assert.deepEqual(await values(metrics, 'lock_takeovers_total'), { '{}': 1 });
    const state = await values(metrics, 'state');
    assert.equal(state['{"state":"registered"}'], 1);
    assert.equal(Object.values(state).reduce((a, b) => a + b, 0), 1, 'one state at a time');
    assert.equal((await values(metrics, 'state_entered_total'))['{"state":"backoff"}'], 3);

    // No probe yet: the age is absent, not 0.
    assert.doesNotMatch(await metrics.scrape(), /dds_probe_age_seconds/);
    registrar.send({ type: 'HEALTHCHECK' });
    clock.increment(3_000);
    assert.deepEqual(await values(metrics, 'dds_probe_age_seconds'), { '{}': 3 });
    registrar.send({ type: 'HEALTHCHECK' });
    assert.deepEqual(await values(metrics, 'dds_probe_age_seconds'), { '{}': 0 }, 'a probe resets the age');
    assert.deepEqual(await values(metrics, 'dds_probes_total'), { '{}': 2 });

    // No probe for an interval: healthCheckStale (held for one turn) is counted, then a new registration.
    clock.increment(INTERVAL_MS);
    await settle();
    clock.increment(0);
    await settle();
    assert.equal(registrar.getSnapshot().matches('registered'), true);
    assert.equal((await values(metrics, 'state_entered_total'))['{"state":"healthCheckStale"}'], 1);
    assert.equal((await values(metrics, 'registration_attempts_total'))['{"outcome":"success"}'], 2);
    assert.deepEqual(await values(metrics, 'dds_probe_age_seconds'), { '{}': 10 });

    unwatch();
    registrar.send({ type: 'HEALTHCHECK' });
    assert.deepEqual(await values(metrics, 'dds_probes_total'), { '{}': 2 }, 'not counted once unwatched');
    registrar.stop();
  });

  test('the routes logger: every line forwarded, callbacks counted by result and reason (bounded)', async () => {
    const metrics = createRegistrarMetrics();
    const inner = new MemoryLogger();
    const logger = metrics.tapRoutesLogger(inner);
    const lines: [keyof MemoryLogger & ('info' | 'warn' | 'error'), LogFields][] = [
      ['info', { event: 'registration.callback', node_id: 'n', secret_len: 64 }],
      ['info', { event: 'registration.callback', node_id: 'n', secret_len: 64 }],
      ['warn', { event: 'registration.callback.refused', node_id: 'n', reason: 'no registration in progress' }],
      ['warn', { event: 'registration.callback.invalid', status: 400, reason: 'invalid JSON' }],
      ['error', { event: 'registration.callback.persist_failed', node_id: 'n', error_class: 'Error' }],
      ['info', { event: 'healthcheck.probe' }],
    ];
    for (const [level, fields] of lines) logger[level](fields);
    assert.deepEqual(
      inner.lines.map((l) => l.event),
      lines.map(([, f]) => f.event),
    );
    assert.deepEqual(await values(metrics, 'callbacks_total'), {
      '{"result":"accepted"}': 2,
      '{"result":"refused","reason":"no registration in progress"}': 1,
      '{"result":"refused","reason":"invalid JSON"}': 1,
      '{"result":"refused","reason":"persist failed"}': 1,
    });
    // A sink's free-text reasons cannot grow the series without bound.
    for (let i = 0; i < 40; i++) logger.warn({ event: 'registration.callback.refused', reason: `reason ${i}` });
    const refused = Object.keys(await values(metrics, 'callbacks_total')).filter((k) => k.includes('refused'));
    assert.equal(refused.length, 33, '32 reasons and other');
    assert.equal((await values(metrics, 'callbacks_total'))['{"result":"refused","reason":"other"}'], 11);
  });
});

describe('the metrics endpoint', () => {
  test('GET /metrics in the text format; HEAD; 404 and 405 elsewhere; a dropping logger counts there', async (t) => {
    let counter: LogDropCounter | undefined;
    const logger = Object.assign(new MemoryLogger(), { countDroppedLines: (c: LogDropCounter) => (counter = c) });
    assert.equal(isDropCountingLogger(logger), true);
    assert.equal(isDropCountingLogger(new MemoryLogger()), false);
    const endpoint = await startMetricsEndpoint({ host: '127.0.0.1', port: 0, logger });
    onCleanup(t, () => endpoint.close());
    assert.equal(logger.events('metrics.listening')[0]?.['url'], `${endpoint.url}${METRICS_PATH}`);

    counter?.inc(3);
    const answer = await fetch(`${endpoint.url}${METRICS_PATH}`);
    assert.equal(answer.status, 200);
    assert.match(answer.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const families = parseScrape(await answer.text());
    assert.equal(sampleValue(families, `${METRIC_PREFIX}log_lines_dropped_total`), 3);
    assert.equal(sampleValue(families, `${METRIC_PREFIX}callbacks_total`, { result: 'accepted' }), 0);

    const head = await fetch(`${endpoint.url}${METRICS_PATH}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
    const post = await fetch(`${endpoint.url}${METRICS_PATH}`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    await post.text();
    const other = await fetch(`${endpoint.url}/`);
    assert.equal(other.status, 404);
    await other.text();
  });

  test('a busy port: exit 3, naming METRICS_PORT', async (t) => {
    const port = await occupyPort(t);
    await assert.rejects(
      startMetricsEndpoint({ host: '127.0.0.1', port, logger: new MemoryLogger() }),
      (error: unknown) => error instanceof CliError && error.exitCode === EXIT.cannotStart && error.message === `METRICS_PORT: 127.0.0.1:${port} is already in use`,
    );
  });
});
