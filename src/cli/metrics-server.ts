/**
 * The daemon's metrics endpoint (setting `metrics`): `GET /metrics` in
 * Prometheus's text format, on its own port, with the bounds of every
 * daemon server. The daemon loads this module (and so prom-client) only
 * when metrics are on.
 */
import type { Server } from 'node:http';
import { sendText } from '../http-text.js';
import type { Logger } from '../log.js';
import { createRegistrarMetrics, isDropCountingLogger, type RegistrarMetrics } from '../metrics.js';
import { SETTINGS } from '../settings/table.js';
import { createBoundedServer } from '../bounded-server.js';
import { closeServer, listen, notFound } from './serve.js';

/** The path Prometheus scrapes. */
export const METRICS_PATH = '/metrics';

/** A scraper or two: a flood on this port must not take descriptors from the routes. */
const METRICS_MAX_CONNECTIONS = 32;

/** A running metrics endpoint. */
export interface MetricsEndpoint {
  readonly metrics: RegistrarMetrics;
  readonly server: Server;
  /** Where it listens, e.g. `http://127.0.0.1:9477`. */
  readonly url: string;
  close(): Promise<void>;
}

/** Options of {@link startMetricsEndpoint}. */
export interface MetricsEndpointOptions {
  host: string;
  port: number;
  logger: Logger;
}

/** Serve a new {@link RegistrarMetrics} on host:port (`logger` counts its dropped lines there, if it can). @throws {CliError} (exit 3) naming the setting when it cannot listen. */
export async function startMetricsEndpoint(options: MetricsEndpointOptions): Promise<MetricsEndpoint> {
  const { logger } = options;
  const metrics = createRegistrarMetrics();
  // A logger that drops lines under pressure counts them here.
  if (isDropCountingLogger(logger)) logger.countDroppedLines(metrics.logLinesDropped);
  const server = createBoundedServer((req, res) => {
    const path = (req.url ?? '').split('?', 1)[0];
    if (path !== METRICS_PATH) {
      notFound(res);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendText(res, 405, 'method not allowed', { Allow: 'GET, HEAD' });
      return;
    }
    metrics.scrape().then(
      (text) => {
        res.writeHead(200, {
          'Content-Type': metrics.contentType,
          'Content-Length': Buffer.byteLength(text),
          'Cache-Control': 'no-store',
          'X-Content-Type-Options': 'nosniff',
        });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (error: unknown) => {
        logger.error({ event: 'metrics.error', error_class: error instanceof Error ? error.name : typeof error });
        if (!res.headersSent) sendText(res, 500, 'internal error');
      },
    );
  }, { maxConnections: METRICS_MAX_CONNECTIONS });
  const address = await listen(server, options.host, options.port, { host: SETTINGS.metricsHost.env, port: SETTINGS.metricsPort.env });
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${shownHost}:${address.port}`;
  logger.info({ event: 'metrics.listening', url: `${url}${METRICS_PATH}` }, `Prometheus metrics on ${url}${METRICS_PATH}`);
  return { metrics, server, url, close: () => closeServer(server) };
}
