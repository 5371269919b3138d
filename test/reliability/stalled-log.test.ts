/**
 * A reader of the log that stops reading: the daemon's stdout pipe is never
 * drained (the parent pauses it) while DDS keeps probing. The daemon must keep
 * answering, drop what does not fit its log buffer (`LOG_BUFFER_KIB`), say
 * how many once the reader is back (`log.dropped`), and still exit 0, within
 * a bound, on SIGTERM while nobody reads.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { METRIC_PREFIX } from '../../src/metrics.js';
import { parseScrape, sampleValue } from '../support/prometheus.js';
import { now, probeHealth, startFakeDds, tempDir, waitUntil } from '../support/index.js';
import { newCredentials, recordFigure, registrarEnv, spawnRegistrar, listenUrlOf, scaled, type RegistrarChild } from './common.js';

/** Probes sent while the reader stalls: each logs a line at debug, far more than the pipe and the buffer hold. */
const PROBES = scaled(3000);
/** Probes in flight at once. */
const CONCURRENCY = 8;

/** Send `count` DDS probes, `CONCURRENCY` at a time; every answer's status and the slowest answer. */
async function probeMany(url: string, count: number): Promise<{ ok: number; failed: number; slowestMs: number }> {
  let next = 0;
  let ok = 0;
  let failed = 0;
  let slowestMs = 0;
  const worker = async (): Promise<void> => {
    // A daemon that stopped answering fails fast: a few unanswered probes say enough.
    while (next < count && failed < 3) {
      next += 1;
      const started = now();
      try {
        const answer = await probeHealth(url, 'DDS v1.0.0', 5000);
        if (answer.status === 200) ok += 1;
        else failed += 1;
      } catch {
        failed += 1;
      }
      slowestMs = Math.max(slowestMs, now() - started);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return { ok, failed, slowestMs };
}

/** A registrar logging every probe (debug) into a 16 KiB log buffer, registered with a fake DDS. */
async function startLoudRegistrar(t: Parameters<typeof spawnRegistrar>[0], name: string): Promise<{ child: RegistrarChild; url: string; metricsUrl: string }> {
  const dds = await startFakeDds(t);
  const creds = newCredentials();
  const child = spawnRegistrar(
    t,
    name,
    registrarEnv({
      DDS_BASE_URL: dds.url,
      NODE_URL: 'http://127.0.0.1:9/node',
      REG_SECRET: creds.regSecret,
      SECP256K1_PRIVHEX: creds.envPrivhex,
      DATA_DIR: tempDir(t),
      LOG_LEVEL: 'debug',
      LOG_BUFFER_KIB: '16',
      METRICS: '1',
      METRICS_PORT: '0',
    }),
  );
  const url = await listenUrlOf(child);
  const metricsUrl = (await child.waitForEvent('metrics.listening')).line['url'] as string;
  await child.waitForEvent('registration.success');
  return { child, url, metricsUrl };
}

describe('a stalled reader of the log', { concurrency: 1 }, () => {
  test('the daemon keeps answering DDS; lines are dropped and counted; log.dropped once the reader is back', { timeout: 120_000 }, async (t) => {
    const { child, url, metricsUrl } = await startLoudRegistrar(t, 'stalled-log');
    const stdout = child.proc.stdout;
    assert.ok(stdout);
    stdout.pause();
    const started = now();
    const probes = await probeMany(url, PROBES);
    const elapsedMs = now() - started;
    const linesBefore = child.json.length;
    assert.equal(probes.failed, 0, `probes unanswered while the log's reader stalled (${probes.ok} answered first)`);
    assert.equal(probes.ok, PROBES);

    stdout.resume();
    const { line } = await child.waitForEvent('log.dropped', { timeoutMs: 20_000 });
    const dropped = line['count'];
    assert.equal(typeof dropped, 'number');
    assert.ok((dropped as number) > 0);
    assert.equal(line['level'], 'warn');
    // After the drop, lines flow again.
    const after = await probeHealth(url);
    assert.equal(after.status, 200);
    // The metric counts them too.
    const families = parseScrape(await (await fetch(metricsUrl)).text());
    const counted = sampleValue(families, `${METRIC_PREFIX}log_lines_dropped_total`) ?? 0;
    assert.ok(counted >= (dropped as number), `log_lines_dropped_total ${counted}, log.dropped ${String(dropped)}`);
    const exit = await child.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null });
    const totalDropped = child.events('log.dropped').reduce((sum, l) => sum + (l.line['count'] as number), 0);
    recordFigure('log.stalled_reader', {
      probes: PROBES,
      answered: probes.ok,
      slowest_probe_ms: Math.round(probes.slowestMs),
      elapsed_ms: Math.round(elapsedMs),
      lines_read_before_the_stall: linesBefore,
      lines_dropped: totalDropped,
      buffer_kib: 16,
    });
  });

  test('SIGTERM while nobody reads: exit 0 within seconds, what was buffered left behind at most', { timeout: 60_000 }, async (t) => {
    const { child, url } = await startLoudRegistrar(t, 'stalled-exit');
    const stdout = child.proc.stdout;
    assert.ok(stdout);
    stdout.pause();
    const probes = await probeMany(url, Math.min(PROBES, 1500));
    assert.equal(probes.failed, 0);
    const exitCode = new Promise<number | null>((resolve) => child.proc.once('exit', (code) => resolve(code)));
    const signalled = now();
    child.proc.kill('SIGTERM');
    // The reader never comes back before the exit: the flush at exit is bounded (2 s).
    let exited = false;
    void exitCode.then(() => (exited = true));
    await waitUntil(() => exited, 'the exit with a stalled reader', 15_000, 20);
    const exitMs = now() - signalled;
    assert.equal(await exitCode, 0);
    stdout.resume();
    await child.exited;
    recordFigure('log.stalled_reader_exit_ms', Math.round(exitMs));
  });
});
