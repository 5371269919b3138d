/**
 * The node's side: `routerDds(registrar)` on a real express server on
 * 127.0.0.1, which a test (playing DDS) probes and calls back.
 */
import http from 'node:http';
import express from 'express';
import type { Registrar } from '../../src/registrar.js';
import { routerDds } from '../../src/router-dds.js';
import type { Cleanup } from './cleanup.js';
import { callNodeBack, probeHealth, type HttpAnswer } from './fake-dds.js';
import { closeHard, listen } from './http.js';

/** A running node server. */
export interface NodeServer {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** Mount the routes of `registrar` (until then every request is answered 503). */
  attach(registrar: Registrar): void;
  /** `GET /health` with `User-Agent` (default `DDS v1.0.0`). */
  probe(userAgent?: string): Promise<HttpAnswer>;
  /** `POST /internal/v1/registrations` with a JSON body. */
  callback(body: Record<string, unknown>): Promise<HttpAnswer>;
  /** Close it and every connection (also done at cleanup). */
  close(): Promise<void>;
}

/**
 * Start the node's server, with `registrar`'s routes or, when the registrar
 * does not exist yet (its config names this server's URL), for {@link NodeServer.attach}.
 */
export async function startNodeServer(t: Cleanup, registrar?: Registrar): Promise<NodeServer> {
  let router: express.Router | undefined = registrar === undefined ? undefined : routerDds(registrar);
  const app = express();
  app.use((req, res, next) => {
    if (router === undefined) {
      res.status(503).type('text/plain').send('not ready');
      return;
    }
    router(req, res, next);
  });
  const server = http.createServer(app);
  const { url } = await listen(t, server);
  return {
    url,
    attach(r) {
      router = routerDds(r);
    },
    probe: (userAgent) => probeHealth(url, userAgent),
    callback: (body) => callNodeBack(url, body),
    close: () => closeHard(server),
  };
}
