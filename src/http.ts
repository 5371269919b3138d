/**
 * http — the express 5 routes DDS calls on the node (PROTOCOL.md §2).
 *
 * - `POST /internal/v1/registrations`: DDS hands over the node's id and
 *   secret. The body is checked in the order of the §2.1 table, then a
 *   {@link DdsSink} decides and stores.
 * - `GET /health` (and `HEAD`): the DDS health probe. Always 200 with an empty
 *   body; a probe whose `User-Agent` starts with `DDS v` is handed to the sink.
 *
 * The secret never leaves this module except into the sink: it is not logged
 * (only its length), not put into an answer, and body-parser's errors (whose
 * `body` holds the raw request body, secret included) are converted at once
 * into this module's own small values and never passed on.
 *
 * ```ts
 * const app = express();
 * app.use(createDdsRouter(defaultStoresSink({ logger }), { logger }));
 * ```
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import express from 'express';
import type { NextFunction, Request, RequestHandler, Response, Router } from 'express';
import { clip, sendText } from './http-text.js';
import { silentLogger, type LogFields, type Logger } from './log.js';
import { defaultNodeSecretStore, type NodeSecretStore } from './persist.js';
import { defaultStateStore } from './state/index.js';
import { sourcePolicy, type TrustProxy } from './trusted-sources.js';

/** The route DDS posts the node's id and secret to. */
export const CALLBACK_PATH = '/internal/v1/registrations';
/** The route DDS probes to keep the node listed. */
export const HEALTH_PATH = '/health';
/** The largest secret accepted, in UTF-8 bytes; a longer one gets 403 `secret too large`. */
export const MAX_SECRET_BYTES = 4096;
/** The default limit of a callback body, in bytes (64 KiB); a larger one gets 413. */
export const DEFAULT_BODY_LIMIT_BYTES = 64 * 1024;
/** What a `User-Agent` must start with (case-sensitive) for a probe to count as DDS's. */
export const DDS_USER_AGENT_PREFIX = 'DDS v';

/** The longest `User-Agent`, id or organisation copied into a log line. */
const LOG_TEXT_MAX = 128;
/** The longest refusal reason sent back in a 403. */
const REASON_MAX = 200;

/** A validated callback body (PROTOCOL.md §2.1), keys in the project's casing. */
export interface CallbackPayload {
  /** The node's id, verbatim (not blank after trimming). */
  id: string;
  /** The node's organisation, or `null` when absent or null. */
  organizationId: string | null;
  /** The node secret, verbatim (not blank, at most {@link MAX_SECRET_BYTES} UTF-8 bytes). */
  secret: string;
  /** `lighthouses_in_domains`, any JSON, present only when the body had it. */
  lighthousesInDomains?: unknown;
  /** `domains`, any JSON, present only when the body had it. */
  domains?: unknown;
}

/**
 * A sink's verdict on a callback. A refusal is answered `status` (default 403; 409 for
 * "secret already received") with `reason` as plain text.
 */
export type CallbackDecision = { accepted: true; repeat?: boolean } | { accepted: false; reason: string; status?: 403 | 409 };

/** What the routes know of a callback beyond its payload. */
export interface CallbackContext {
  /**
   * SHA-256 (hex) of the body as received — of its bytes, or of its JSON
   * re-serialized when another parser read it first. Derived from the secret:
   * a sink keeps it in a closure, never in a log, an event or an actor's context.
   */
  bodyDigest: string;
}

/** A DDS health probe (a `GET /health` whose `User-Agent` starts with `DDS v`). */
export interface HealthProbe {
  /** The probe's `User-Agent`, verbatim. */
  userAgent: string;
  /** When the probe arrived, in Unix milliseconds. */
  receivedAt: number;
}

/** Where the routes deliver what DDS sends: the registrar, or the stores directly. */
export interface DdsSink {
  /**
   * Decide on a valid callback and, when accepting, store the secret.
   * Throwing (or rejecting) means "storing failed": the answer is 409 `persist failed`.
   */
  onCallback(payload: CallbackPayload, callback: CallbackContext): CallbackDecision | Promise<CallbackDecision>;
  /**
   * Record a DDS health probe. Returning `false` or throwing means storing it
   * failed: logged as `healthcheck.touch.error`; the probe is answered 200 all the same.
   */
  onHealthProbe(probe: HealthProbe): boolean | void | Promise<boolean | void>;
}

/** Options of {@link createDdsRouter}. */
export interface DdsRouterOptions {
  /** Where the routes log (default: nowhere). */
  logger?: Logger;
  /** The largest callback body, in bytes (default {@link DEFAULT_BODY_LIMIT_BYTES}). */
  bodyLimitBytes?: number;
  /**
   * Who counts as DDS (setting `ddsTrustedSources`): addresses and CIDR ranges. A callback
   * from elsewhere gets 403 `not a trusted source`; a probe from elsewhere 200, and
   * nothing is recorded. Absent or empty: everyone (the crate's behaviour).
   */
  trustedSources?: readonly string[];
  /** Whether `X-Forwarded-For` says who the client is (setting `trustProxy`, express's `trust proxy`; default off). */
  trustProxy?: TrustProxy;
}

/** The answer to a callback from outside {@link DdsRouterOptions.trustedSources}. */
export const UNTRUSTED_SOURCE = 'not a trusted source';

/** The result of {@link validateCallbackBody}: the payload, or the answer to give. */
export type CallbackValidation =
  | { ok: true; payload: CallbackPayload }
  | { ok: false; status: number; message: string };

/**
 * Check a parsed callback body against the 422 and 403 rows of the §2.1 table,
 * in its order: types (`id`, `secret` strings; `organization_id` a string or
 * null when present; the body an object) → `missing id` → `missing secret` →
 * `secret too large`. Pure; reads only own properties, so `__proto__` or
 * `constructor` keys in the body are inert. Messages never contain the body.
 */
export function validateCallbackBody(body: unknown): CallbackValidation {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return invalid(422, 'invalid body: expected a JSON object');
  }
  const id = ownField(body, 'id');
  const secret = ownField(body, 'secret');
  const organizationId = ownField(body, 'organization_id');
  if (typeof id !== 'string') return invalid(422, 'invalid body: id must be a string');
  if (typeof secret !== 'string') return invalid(422, 'invalid body: secret must be a string');
  if (organizationId !== undefined && organizationId !== null && typeof organizationId !== 'string') {
    return invalid(422, 'invalid body: organization_id must be a string or null');
  }
  if (id.trim() === '') return invalid(422, 'missing id');
  if (secret.trim() === '') return invalid(422, 'missing secret');
  if (Buffer.byteLength(secret, 'utf8') > MAX_SECRET_BYTES) return invalid(403, 'secret too large');

  const payload: CallbackPayload = { id, organizationId: organizationId ?? null, secret };
  if (Object.hasOwn(body, 'lighthouses_in_domains')) payload.lighthousesInDomains = ownField(body, 'lighthouses_in_domains');
  if (Object.hasOwn(body, 'domains')) payload.domains = ownField(body, 'domains');
  return { ok: true, payload };
}

function invalid(status: number, message: string): CallbackValidation {
  return { ok: false, status, message };
}

/** An own property's value, never one inherited through the prototype chain. */
function ownField(obj: object, key: string): unknown {
  return Object.hasOwn(obj, key) ? (obj as Record<string, unknown>)[key] : undefined;
}

/**
 * A request that was refused before reaching a handler, carried to the
 * router's error handler. Holds only a status and a short fixed text.
 */
class RejectedRequest extends Error {
  override readonly name = 'RejectedRequest';
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/**
 * Translate a body-parser error into a {@link RejectedRequest}, by its `type`
 * only: its message may quote the body and its `body` holds it raw.
 */
function fromBodyParserError(err: unknown): RejectedRequest {
  const type = typeof err === 'object' && err !== null ? (err as { type?: unknown }).type : undefined;
  switch (type) {
    case 'entity.parse.failed':
      return new RejectedRequest(400, 'invalid JSON');
    case 'entity.too.large':
      return new RejectedRequest(413, 'body too large');
    case 'encoding.unsupported':
      return new RejectedRequest(415, 'unsupported content encoding');
    case 'charset.unsupported':
      return new RejectedRequest(415, 'unsupported charset');
    default:
      // request.aborted, request.size.invalid, a malformed Content-Type parameter, …
      return new RejectedRequest(400, 'bad request');
  }
}

/** Whether the request's media type is exactly `application/json` (parameters allowed). */
function isJsonContentType(req: { headers: IncomingHttpHeaders }): boolean {
  const header = req.headers['content-type'];
  if (typeof header !== 'string') return false;
  const mediaType = (header.split(';', 1)[0] ?? '').trim().toLowerCase();
  return mediaType === 'application/json';
}

/** What {@link preParsed} found: the answer to give, if any, and which parser took the body. */
interface PreParsed {
  rejected?: RejectedRequest;
  consumedBy?: string;
}

/**
 * Whether a parser the app installed before the router already read the
 * body, and if so what to answer. A body parsed as JSON gets the table's
 * answers as if this router had parsed it: its limit (by `Content-Length`,
 * or the re-serialized size for a chunked body) and an empty body → 400.
 * A body left as a Buffer (`express.raw`), a string (`express.text`) or a
 * urlencoded object is lost to this router: 400, and the caller logs why.
 * `undefined`: nobody read it, the router's own parser will.
 */
function preParsed(req: Request, limit: number): PreParsed | undefined {
  // body-parser 1 (express 4) marks `_body`; body-parser 2 (express 5) only leaves the stream ended.
  const marked = (req as { _body?: unknown })._body === true;
  if (!marked && !req.readableEnded) return undefined;
  const body: unknown = req.body;
  const consumed = (by: string): PreParsed => ({
    rejected: new RejectedRequest(400, 'body already parsed by another parser: mount routerDds before it'),
    consumedBy: by,
  });
  if (Buffer.isBuffer(body)) return consumed('express.raw()');
  if (typeof body === 'string') return consumed('express.text()');
  if (looksUrlencoded(body)) return consumed('express.urlencoded()');
  const declared = Number(req.headers['content-length']);
  if (req.headers['content-length'] !== undefined && Number.isSafeInteger(declared)) {
    if (declared > limit) return { rejected: new RejectedRequest(413, 'body too large') };
    if (declared === 0) return { rejected: new RejectedRequest(400, 'invalid JSON') };
  } else if (body === undefined) {
    return { rejected: new RejectedRequest(400, 'invalid JSON') };
  } else if (Buffer.byteLength(JSON.stringify(body) ?? '', 'utf8') > limit) {
    return { rejected: new RejectedRequest(413, 'body too large') };
  }
  return {};
}

/**
 * Whether an object came from a urlencoded parser rather than JSON: node's
 * querystring gives null-prototype objects, and a JSON text read as a form
 * becomes one key that starts with `{` or `[`.
 */
function looksUrlencoded(body: unknown): boolean {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  if (Object.getPrototypeOf(body) === null) return true;
  return Object.keys(body).some((k) => /^\s*[{[]/.test(k));
}

/** How often a refusal with one reason is logged at `warn`. */
const REFUSAL_WARN_EVERY_MS = 60_000;

/**
 * Refusals (strangers, late callers) at `warn` once per {@link REFUSAL_WARN_EVERY_MS}
 * per reason, with how many were logged at `debug` since: a flood of strangers
 * cannot flood the log, and every refusal is still a line (metrics count them).
 */
function refusalLogger(logger: Logger): (fields: LogFields, key: string) => void {
  const last = new Map<string, { at: number; quiet: number }>();
  return (fields, key) => {
    const now = Date.now();
    const seen = last.get(key);
    if (seen !== undefined && now - seen.at < REFUSAL_WARN_EVERY_MS) {
      seen.quiet += 1;
      logger.debug(fields);
      return;
    }
    if (last.size >= 64) last.delete(last.keys().next().value as string);
    last.set(key, { at: now, quiet: 0 });
    logger.warn(seen !== undefined && seen.quiet > 0 ? { ...fields, suppressed: seen.quiet } : fields);
  };
}

function methodNotAllowed(allow: string): RequestHandler {
  return (_req, res) => sendText(res, 405, 'method not allowed', { Allow: allow });
}

function errorClass(err: unknown): string {
  return err instanceof Error ? err.name : typeof err;
}

/**
 * The express router serving {@link CALLBACK_PATH} and {@link HEALTH_PATH}.
 * Other methods on these paths get 405 with an `Allow` header. It carries its
 * own error handler, so body-parser errors never reach express's default one
 * (which would print them, body and secret included).
 */
export function createDdsRouter(sink: DdsSink, options: DdsRouterOptions = {}): Router {
  const logger = options.logger ?? silentLogger;
  const limit = options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new RangeError(`bodyLimitBytes must be a positive integer, got ${String(limit)}`);
  }

  // `strict: false`: a JSON primitive (`null`, `1`) is valid JSON without an id → 422, as the table says.
  // `verify` notes whether any body arrived: an empty body is not valid JSON → 400 (body-parser would make it `{}`).
  const hadBody = new WeakSet<object>();
  // The digest of each body read here, for a sink that tells a repeat from a new callback.
  const digests = new WeakMap<object, string>();
  const jsonParser = express.json({
    limit,
    strict: false,
    inflate: false,
    type: isJsonContentType,
    verify: (req, _res, buf) => {
      if (buf.length > 0 && (buf.length > 64 || buf.toString('utf8').trim() !== '')) hadBody.add(req);
      digests.set(req, createHash('sha256').update(buf).digest('hex'));
    },
  });

  const logRefusal = refusalLogger(logger);
  const sources = sourcePolicy(options.trustedSources, options.trustProxy ?? false);

  // Before anything is read: a stranger's body is not even parsed.
  const requireTrusted: RequestHandler = (req, res, next) => {
    if (sources.trusted(req)) {
      next();
      return;
    }
    logRefusal({ event: 'registration.callback.refused', status: 403, reason: UNTRUSTED_SOURCE, source: sources.address(req) ?? null }, `403 ${UNTRUSTED_SOURCE}`);
    // The body is left unread: close the connection rather than drain it.
    res.setHeader('Connection', 'close');
    sendText(res, 403, UNTRUSTED_SOURCE);
  };

  const requireJson: RequestHandler = (req, _res, next) => {
    next(isJsonContentType(req) ? undefined : new RejectedRequest(415, 'expected Content-Type: application/json'));
  };

  // Wraps the parser so that its errors (and anything it throws) become RejectedRequest at once.
  // A body another parser of the app already read is judged by what that parser left (see preParsed).
  const parseJson: RequestHandler = (req, res, next) => {
    const earlier = preParsed(req, limit);
    if (earlier !== undefined) {
      if (earlier.consumedBy !== undefined) {
        logger.warn({
          event: 'registration.callback.body_consumed',
          status: 400,
          parser: earlier.consumedBy,
          hint: `mount routerDds() before ${earlier.consumedBy}: it read the callback's body, so the node secret cannot be read`,
        });
      }
      next(earlier.rejected);
      return;
    }
    const done = (err?: unknown): void => {
      if (err !== undefined && err !== null) next(fromBodyParserError(err));
      else if (!hadBody.has(req)) next(new RejectedRequest(400, 'invalid JSON'));
      else next();
    };
    try {
      void jsonParser(req, res, done);
    } catch (err) {
      done(err);
    }
  };


  const onCallback = async (req: Request, res: Response): Promise<void> => {
    const checked = validateCallbackBody(req.body);
    if (!checked.ok) {
      logger.warn({ event: 'registration.callback.invalid', status: checked.status, reason: checked.message });
      sendText(res, checked.status, checked.message);
      return;
    }
    const { payload } = checked;
    const fields = {
      node_id: clip(payload.id, LOG_TEXT_MAX),
      organization_id: payload.organizationId === null ? null : clip(payload.organizationId, LOG_TEXT_MAX),
      secret_len: Buffer.byteLength(payload.secret, 'utf8'),
    };
    let decision: CallbackDecision;
    try {
      const bodyDigest = digests.get(req) ?? createHash('sha256').update(JSON.stringify(req.body) ?? '').digest('hex');
      decision = await sink.onCallback(payload, { bodyDigest });
    } catch (err) {
      logger.error({ event: 'registration.callback.persist_failed', node_id: fields.node_id, error_class: errorClass(err) });
      sendText(res, 409, 'persist failed');
      return;
    }
    if (decision?.accepted !== true) {
      const given = (decision as { reason?: unknown } | undefined)?.reason;
      const reason = clip(typeof given === 'string' && given.trim() !== '' ? given : 'refused', REASON_MAX);
      const status = (decision as { status?: unknown } | undefined)?.status === 409 ? 409 : 403;
      logRefusal({ event: 'registration.callback.refused', ...fields, status, reason }, `${status} ${reason}`);
      sendText(res, status, reason);
      return;
    }
    logger.info({ event: 'registration.callback', ...fields, ...(decision.repeat === true ? { repeat: true } : {}) });
    res.status(200).set('Cache-Control', 'no-store').json({ ok: true });
  };

  const onHealth = async (req: Request, res: Response): Promise<void> => {
    const userAgent = req.get('user-agent');
    if (userAgent === undefined || !userAgent.startsWith(DDS_USER_AGENT_PREFIX)) {
      logger.debug({ event: 'healthcheck.skip', user_agent: userAgent === undefined ? null : clip(userAgent, LOG_TEXT_MAX) });
    } else if (!sources.trusted(req)) {
      // `User-Agent: DDS v…` from elsewhere: anyone can send it; it must not keep the node "fresh".
      logger.debug({ event: 'healthcheck.skip', reason: UNTRUSTED_SOURCE, source: sources.address(req) ?? null, user_agent: clip(userAgent, LOG_TEXT_MAX) });
    } else {
      const uaField = clip(userAgent, LOG_TEXT_MAX);
      try {
        const stored = await sink.onHealthProbe({ userAgent, receivedAt: Date.now() });
        if (stored === false) logger.warn({ event: 'healthcheck.touch.error', user_agent: uaField });
        else logger.debug({ event: 'healthcheck.probe', user_agent: uaField });
      } catch (err) {
        logger.warn({ event: 'healthcheck.touch.error', user_agent: uaField, error_class: errorClass(err) });
      }
    }
    res.status(200).set('Cache-Control', 'no-store').end();
  };

  // Last stop for errors inside this router. Body-parser errors arrive here
  // already converted; anything else is answered without its details.
  const onError = (err: unknown, _req: Request, res: Response, _next: NextFunction): void => {
    const rejected = err instanceof RejectedRequest ? err : undefined;
    if (rejected === undefined) logger.error({ event: 'http.error', error_class: errorClass(err) });
    else logger.warn({ event: 'registration.callback.invalid', status: rejected.status, reason: rejected.message });
    if (res.headersSent) {
      res.end();
      return;
    }
    sendText(res, rejected?.status ?? 500, rejected?.message ?? 'internal error');
  };

  // Exact paths: case-sensitive, no trailing-slash alias (`/Health`, `/health/` are not the
  // route), so a proxy rule written for `/internal/` cannot be walked around by a spelling.
  const router = express.Router({ caseSensitive: true, strict: true });
  router
    .route(CALLBACK_PATH)
    .post(requireTrusted, requireJson, parseJson, (req, res) => onCallback(req, res))
    .all(methodNotAllowed('POST'));
  router
    .route(HEALTH_PATH)
    .get((req, res) => onHealth(req, res))
    .all(methodNotAllowed('GET, HEAD'));
  router.use(onError);
  return router;
}

/** What {@link defaultStoresSink} needs of the state store. */
export interface HealthcheckToucher {
  /** Record a DDS health check "now"; `false` when storing it failed. */
  touchHealthcheckNow(): boolean;
}

/** Options of {@link defaultStoresSink}: the stores to write to, and a logger. */
export interface DefaultStoresSinkOptions {
  /** Where the node secret goes (default: the process-wide `defaultNodeSecretStore`). */
  secrets?: Pick<NodeSecretStore, 'write'>;
  /** Where health checks are recorded (default: the process-wide `defaultStateStore()`, made at the first probe). */
  state?: HealthcheckToucher;
  /** Where `healthcheck.touch` is logged (default: nowhere). */
  logger?: Logger;
}

/**
 * The crate's behaviour, without a registrar: every valid callback is
 * accepted and its secret and identity written to the secret store; every
 * DDS probe touches the state store's last health check (logged
 * `healthcheck.touch`).
 */
export function defaultStoresSink(stores: DefaultStoresSinkOptions = {}): DdsSink {
  const secrets = stores.secrets ?? defaultNodeSecretStore;
  const logger = stores.logger ?? silentLogger;
  return {
    onCallback(payload) {
      secrets.write(payload.secret, { nodeId: payload.id, organizationId: payload.organizationId });
      return { accepted: true };
    },
    onHealthProbe() {
      const stored = (stores.state ?? defaultStateStore()).touchHealthcheckNow();
      if (stored) logger.info({ event: 'healthcheck.touch' });
      return stored;
    },
  };
}
