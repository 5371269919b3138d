/**
 * routerDds — the DDS callback routes wired to a running registrar (or, with
 * no argument, to the process-wide stores: the crate's behaviour).
 *
 * With a registrar, a callback is admitted only when the actor says so
 * (`snapshot.can(SECRET_RECEIVED)`: a request in flight or the callback
 * window open, and no callback accepted in them yet; or policy `always`).
 * A later one is refused 409 `secret already received`, except a
 * byte-identical repeat of the accepted one (DDS retrying): 200, nothing
 * stored again. When admitted, the secret is stored in the registrar's
 * `persist` store here, and the actor receives `SECRET_RECEIVED` with the
 * id, the organisation, the secret's length and whether it is a repeat —
 * never the secret. The accepted body's digest stays in this closure.
 * A callback is also admitted while another registrar of the node, sharing
 * the data directory, has its request in flight or its window open.
 */
import { Buffer } from 'node:buffer';
import { timingSafeEqual } from 'node:crypto';
import type { Router } from 'express';
import { createDdsRouter, defaultStoresSink, type DdsRouterOptions, type DdsSink } from './http.js';
import { registrarResources, type Registrar } from './registrar.js';
import type { SecretReceivedEvent } from '../machines/registrar.js';

/** A sink that asks the registrar before storing anything. */
export function registrarSink(registrar: Registrar): DdsSink {
  const res = registrarResources(registrar);
  if (!res) throw new TypeError('routerDds: not a registrar created by createRegistrar()');
  return {
    onCallback(payload, callback) {
      const snapshot = registrar.getSnapshot();
      if (snapshot.status !== 'active') return { accepted: false, reason: 'registrar is not running' };
      const event: SecretReceivedEvent = {
        type: 'SECRET_RECEIVED',
        nodeId: payload.id,
        organizationId: payload.organizationId,
        secretLength: Buffer.byteLength(payload.secret, 'utf8'),
        repeat: sameDigest(res.acceptedCallback.digest, callback.bodyDigest),
      };
      if (!snapshot.can(event)) {
        const attempt = snapshot.matches('registering') || snapshot.matches('registered');
        if (attempt && snapshot.context.secretReceived) return { accepted: false, status: 409, reason: 'secret already received' };
        // Node-wide: DDS may call back the replica that did not send the request (one nodeUrl for all replicas).
        if (!res.siblingWindowOpen()) return { accepted: false, reason: 'no registration in progress' };
      }
      if (event.repeat && snapshot.context.secretReceived) {
        // DDS retrying the accepted callback: the same bytes, so nothing to store again.
        registrar.send(event);
        return { accepted: true, repeat: true };
      }
      // Store first (a failure answers 409 and changes nothing), then tell the actor.
      res.noteSecret(payload.secret);
      res.secrets.write(payload.secret, { nodeId: payload.id, organizationId: payload.organizationId });
      res.acceptedCallback.digest = callback.bodyDigest;
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

/** Whether two hex digests are the same, in constant time (they derive from a secret). */
function sameDigest(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined || a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a), Buffer.from(b));
}

/**
 * The express routes DDS calls (`POST /internal/v1/registrations`,
 * `GET /health`), mountable in any express app. Without a registrar they
 * write the default `persist` and `state` stores directly, as the crate does.
 */
export function routerDds(registrar?: Registrar, options: DdsRouterOptions = {}): Router {
  if (registrar === undefined) return createDdsRouter(defaultStoresSink({ ...(options.logger ? { logger: options.logger } : {}) }), options);
  const res = registrarResources(registrar);
  // The registrar's settings say who counts as DDS; options given here win.
  const sources = res === undefined ? {} : { trustedSources: res.settings.trustedSources, trustProxy: res.settings.trustProxy };
  return createDdsRouter(registrarSink(registrar), { logger: res?.logger, ...sources, ...options });
}
