/**
 * routerDds — the DDS callback routes wired to a running registrar (or, with
 * no argument, to the process-wide stores: the crate's behaviour).
 *
 * With a registrar, a callback is admitted only when the actor says so
 * (`snapshot.can(SECRET_RECEIVED)`: a request in flight, the callback window
 * open, or policy `always`), or while another registrar of the node, sharing
 * the data directory, has its request in flight or its window open. When admitted, the secret is stored in the
 * registrar's `persist` store here, and the actor receives `SECRET_RECEIVED`
 * with the id, the organisation and the secret's length — never the secret.
 */
import { Buffer } from 'node:buffer';
import type { Router } from 'express';
import { createDdsRouter, defaultStoresSink, type DdsRouterOptions, type DdsSink } from './http.js';
import { registrarResources, type Registrar } from './registrar.js';
import type { SecretReceivedEvent } from '../machines/registrar.js';

/** A sink that asks the registrar before storing anything. */
export function registrarSink(registrar: Registrar): DdsSink {
  const res = registrarResources(registrar);
  if (!res) throw new TypeError('routerDds: not a registrar created by createRegistrar()');
  return {
    onCallback(payload) {
      const snapshot = registrar.getSnapshot();
      if (snapshot.status !== 'active') return { accepted: false, reason: 'registrar is not running' };
      const event: SecretReceivedEvent = {
        type: 'SECRET_RECEIVED',
        nodeId: payload.id,
        organizationId: payload.organizationId,
        secretLength: Buffer.byteLength(payload.secret, 'utf8'),
      };
      // Node-wide: DDS may call back the replica that did not send the request (one nodeUrl for all replicas).
      if (!snapshot.can(event) && !res.siblingWindowOpen()) return { accepted: false, reason: 'no registration in progress' };
      // Store first (a failure answers 409 and changes nothing), then tell the actor.
      res.noteSecret(payload.secret);
      res.secrets.write(payload.secret, { nodeId: payload.id, organizationId: payload.organizationId });
      registrar.send(event);
      return { accepted: true };
    },
    onHealthProbe() {
      if (registrar.getSnapshot().status === 'active') {
        registrar.send({ type: 'HEALTHCHECK' });
        return true;
      }
      // Not running: keep the crate's behaviour and record the probe anyway.
      return res.stateStore.touchHealthcheckNow();
    },
  };
}

/**
 * The express routes DDS calls (`POST /internal/v1/registrations`,
 * `GET /health`), mountable in any express app. Without a registrar they
 * write the default `persist` and `state` stores directly, as the crate does.
 */
export function routerDds(registrar?: Registrar, options: DdsRouterOptions = {}): Router {
  if (registrar === undefined) return createDdsRouter(defaultStoresSink({ ...(options.logger ? { logger: options.logger } : {}) }), options);
  const res = registrarResources(registrar);
  return createDdsRouter(registrarSink(registrar), { logger: res?.logger, ...options });
}
