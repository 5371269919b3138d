/**
 * registrar — the one wiring module: it turns a validated config into an
 * (unstarted) actor of `machines/registrar`, supplying the real effects with
 * `.provide()`. It is the only place that knows both the statechart and the
 * effectful modules.
 *
 * The secrets (registration secret, private key) are captured here, in the
 * closures of the effect implementations: never in the actor's input,
 * context, events or snapshots.
 */
import { performance } from 'node:perf_hooks';
import { assign, createActor, fromPromise, type ActorRefFrom, type ActorSystem, type InspectionEvent, type Observer } from 'xstate';
// got is ESM-only: the attribute lets the CommonJS types (dist/cjs-types) load its types too.
import type { Got } from 'got' with { 'resolution-mode': 'import' };
import {
  capDelayMs,
  healthcheckAgeMs,
  registrarMachine,
  siblingRegisteredWithin,
  signInRetryDelayMs,
  tokenRefreshDelayMs,
  type CredentialsCheck,
  type SignInOutcome,
  type LockOutcome,
  type LogParams,
  type PersistedStatus,
  type RegistrationOutcome,
  type ReadSharedStateInput,
  type SharedStateView,
} from '../machines/registrar.js';
import { createBackoffPolicy, type BackoffPolicy, type RandomSource } from './backoff.js';
import { resolveConfig, type RegistrarConfig, type ResolvedSettings } from './config.js';
import { InvalidPrivateKeyError, loadSecp256k1Privhex } from './crypto.js';
import { createLogger, type Logger } from './log.js';
import { createRateLimitedLog } from './log-rate-limit.js';
import { defaultNodeSecretStore, type NodeSecretStore } from './persist.js';
import { createRegistrationClient, InvalidUrlError, type RegistrationClient } from './register.js';
import { createSiweRegistrationClient, type SiweRegistrationClient } from './register-siwe.js';
import { TokenKeeper } from './token-keeper.js';
import type { SecretKind } from './inspect.js';
import { createNodeSecretFile } from './state/node-secret-file.js';
import { SharedAdmissionWindow } from './state/admission-window.js';
import { HealthcheckAgeJudge } from './state/state-file.js';
import type { RegistrationSigner } from './warm-signer.js';
import {
  InstanceRegistry,
  keyPrefix,
  StateStore,
  RegistrationLock,
  isWriterAlive,
  newWriterInfo,
  registerLiveWriter,
  sameWriter,
  type InstanceConflict,
  type RegistrationState,
  type WriterInfo,
} from './state/index.js';

/** The running registrar: an XState actor of {@link registrarMachine}. */
export type Registrar = ActorRefFrom<typeof registrarMachine>;

/**
 * A clock for the statechart's delays, as XState takes it (`SimulatedClock`
 * fits). With a `now()`, it is also the registrar's wall clock.
 */
export interface RegistrarClock {
  setTimeout(fn: (...args: unknown[]) => void, timeout: number): unknown;
  clearTimeout(id: unknown): void;
  now?(): number;
}

/** Anything XState accepts as `inspect`, or a Stately inspector (its `.inspect` is used). */
export type RegistrarInspect =
  | Observer<InspectionEvent>
  | ((event: InspectionEvent) => void)
  | { inspect: Observer<InspectionEvent>; addSecrets?: (secrets: Iterable<string>, kind?: SecretKind) => void };

/** Options of {@link createRegistrar}: every effect can be swapped. */
export interface RegistrarOptions {
  /** Where log lines go (default: JSON lines on stdout, level info). */
  logger?: Logger;
  /** An inspector: see `createSanitizingInspector` for the Stately inspector. */
  inspect?: RegistrarInspect;
  /** XState's clock for every delay (e.g. `SimulatedClock` in tests). */
  clock?: RegistrarClock;
  /** Wall-clock time in ms (default: the clock's `now()` if it has one, else `Date.now`). */
  now?: () => number;
  /** The state file store (default: one in `dataDir`). */
  stateStore?: StateStore;
  /** The cross-process lock (default: one in `dataDir`); `null` runs without a lock. */
  lock?: RegistrationLock | null;
  /**
   * The instance records of `dataDir` (who shares it, alive or not: the
   * heartbeat of ./state/instances.ts). Default: one in `dataDir`, unless
   * `lock` is `null` (a registrar alone by construction); `null` runs without.
   */
  instances?: InstanceRegistry | null;
  /** Where accepted node secrets go (default: the process-wide store behind `readNodeSecret()`). */
  secrets?: NodeSecretStore;
  /** The retry policy (default: the one `config.backoff` names — the crate's unless set — with `random`). */
  backoffPolicy?: BackoffPolicy;
  /** Random source of the named backoff policy (default `Math.random`). */
  random?: RandomSource;
  /** A `got` instance for the DDS requests (retries and redirects stay off). */
  got?: Got;
  /**
   * What signs the registrations, made from the same key as
   * `config.secp256k1Privhex` — e.g. `startWarmSigner(privhex)`, which signs
   * the first ones in a worker thread while this thread starts (the CLI's
   * `run` does). Default: signed on this thread.
   */
  signer?: RegistrationSigner;
  /** The actor's `systemId`. */
  systemId?: string;
}

/** What the routes and helpers need to know about a registrar besides its actor. */
export interface RegistrarResources {
  readonly settings: ResolvedSettings;
  readonly secrets: NodeSecretStore;
  readonly stateStore: StateStore;
  readonly lock: RegistrationLock | null;
  readonly instances: InstanceRegistry | null;
  readonly logger: Logger;
  /** Record a node secret handed out by DDS so sanitizers know it too. */
  readonly noteSecret: (secret: string) => void;
  /**
   * The digest of the body of the callback accepted last (see `routerDds`): kept
   * here, beside the secrets, and never in the actor — it derives from the node secret.
   */
  readonly acceptedCallback: { digest: string | undefined };
  /**
   * Whether another registrar of the node (same data directory) has a
   * request in flight or its callback window open: DDS's callback may reach
   * this one instead (src/state/admission-window.ts).
   */
  readonly siblingWindowOpen: () => boolean;
  /** The access session's token (protocol `siwe`, session on); null otherwise. See `accessToken()`. */
  readonly tokens: TokenKeeper | null;
}

/** The node-wide window of a request covers its timeout and this much more (signing, the answer's processing). */
const REQUEST_WINDOW_MARGIN_MS = 2000;

/** A disk-error episode of the state file is over after this many intervals without a failed write. */
const DISK_ERROR_QUIET_INTERVALS = 2;

const resources = new WeakMap<object, RegistrarResources>();

/** The stores, settings and logger behind a registrar created by {@link createRegistrar}. */
export function registrarResources(registrar: Registrar): RegistrarResources | undefined {
  return resources.get(registrar);
}

function hasNow(clock: RegistrarClock | undefined): clock is RegistrarClock & { now(): number } {
  return typeof clock?.now === 'function';
}

/**
 * Judge the state file as the machine needs it: age of the last probe, and
 * who wrote it — alive by its instance record's heartbeat when `instances`
 * is given, else as far as its pid can tell. With a `judge`, a probe time in
 * the future ages from when it was first read (src/state/state-file.ts).
 */
export function viewSharedState(
  state: RegistrationState,
  self: WriterInfo,
  now: number,
  judge?: HealthcheckAgeJudge,
  instances: InstanceRegistry | null = null,
): SharedStateView {
  const writer = state.writer;
  const alive = (w: WriterInfo): boolean => (instances === null ? isWriterAlive(w, self) : instances.isLive(w));
  return {
    status: state.status,
    healthcheckAgeMs: judge === undefined ? healthcheckAgeMs(state, now) : judge.ageMs(state, now),
    writtenByLiveSibling: writer !== null && !sameWriter(writer, self) && alive(writer),
  };
}

/** The message of a refused start: both nodes' key prefixes and the directory (never a private key). */
export function dataDirectoryInUseMessage(c: InstanceConflict): string {
  return (
    `data directory ${c.dir} is in use by a live registrar of another node (public key ${keyPrefix(c.theirs.publicKey)}…, ${c.theirs.url}); ` +
    `this registrar's node is ${keyPrefix(c.ours.publicKey)}… (${c.ours.url}): give each node its own data directory`
  );
}

/**
 * Share the node secret with every registrar of the node through the data
 * directory, encrypted under a key derived from the node's private key
 * (src/state/node-secret-file.ts). With an invalid key nothing is attached:
 * the actor ends in `failed` anyway.
 */
function attachSecretFile(
  secrets: NodeSecretStore,
  dataDir: string,
  privhex: string,
  logger: Logger,
  onShared: (secret: string) => void,
): () => void {
  let keyBytes: Uint8Array;
  try {
    keyBytes = loadSecp256k1Privhex(privhex).exposeBytes();
  } catch {
    return () => undefined;
  }
  try {
    return secrets.attach(createNodeSecretFile(dataDir, keyBytes), logger, onShared);
  } finally {
    keyBytes.fill(0);
  }
}

/**
 * One registrar's effects: the closures that hold its secrets, stores, lock
 * and logger. The statechart reaches them through its actor system.
 */
interface RegistrarEffects {
  checkCredentials(): Promise<CredentialsCheck>;
  acquireLock(signal: AbortSignal): Promise<LockOutcome>;
  readSharedState(): Promise<SharedStateView>;
  registerWithDds(signal: AbortSignal): Promise<RegistrationOutcome>;
  signIn(signal: AbortSignal): Promise<SignInOutcome>;
  shutdown(): Promise<void>;
  persistStatus(status: PersistedStatus): void;
  persistHealthcheck(source: 'probe' | 'registration'): void;
  releaseLock(): void;
  log(params: LogParams): void;
  retryDelayMs(attempt: number): number;
  random(): number;
  holdToken(): void;
}

/** An actor system, whatever its registered actors. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- xstate's own AnyActorSystem is ActorSystem<any>; internal only
type AnyActorSystem = ActorSystem<any>;

/** Each registrar's effects, by its actor system (the system of a registrar and of its invoked actors). */
const effectsBySystem = new WeakMap<AnyActorSystem, RegistrarEffects>();

function effectsOf(system: AnyActorSystem): RegistrarEffects {
  const effects = effectsBySystem.get(system);
  if (effects === undefined) throw new Error('not a registrar made by createRegistrar');
  return effects;
}

/**
 * The statechart with the real effects, provided once for every registrar
 * of the process: each implementation finds its registrar's own effects by
 * the actor system. (A `.provide()` per registrar would build the whole
 * machine definition again, about 40 KiB each — see docs/benchmarks.md.)
 */
const providedMachine = registrarMachine.provide({
  actors: {
    checkCredentials: fromPromise<CredentialsCheck>(({ system }) => effectsOf(system).checkCredentials()),
    acquireLock: fromPromise<LockOutcome>(({ system, signal }) => effectsOf(system).acquireLock(signal)),
    readSharedState: fromPromise<SharedStateView, ReadSharedStateInput>(({ system }) => effectsOf(system).readSharedState()),
    registerWithDds: fromPromise<RegistrationOutcome>(({ system, signal }) => effectsOf(system).registerWithDds(signal)),
    shutdown: fromPromise<void>(({ system }) => effectsOf(system).shutdown()),
    signIn: fromPromise<SignInOutcome>(({ system, signal }) => effectsOf(system).signIn(signal)),
  },
  actions: {
    persistStatus: ({ system }, params) => effectsOf(system).persistStatus(params.status),
    persistHealthcheck: ({ system }, params) => effectsOf(system).persistHealthcheck(params.source),
    releaseLock: ({ system }) => effectsOf(system).releaseLock(),
    log: ({ system }, params) => effectsOf(system).log(params),
    holdToken: ({ system }) => effectsOf(system).holdToken(),
    computeRetryDelay: assign({ policyDelayMs: ({ context, system }) => capDelayMs(effectsOf(system).retryDelayMs(context.attempt)) }),
    planRefresh: assign(({ context, system }, signedIn) => {
      const session = context.settings.session;
      if (!signedIn.ok || session === null) return {};
      const refreshInMs = tokenRefreshDelayMs(signedIn.lifetimeMs, session.safetyRatio, session.jitterMs, effectsOf(system).random());
      return { session: { ...context.session, refreshInMs } };
    }),
    planSignInRetry: assign(({ context, system }) => ({
      session: { ...context.session, retryInMs: signInRetryDelayMs(context.settings.session?.jitterMs ?? 0, effectsOf(system).random()) },
    })),
  },
});

/**
 * Build a registrar: validate `config` (throws `ConfigError` for a missing or
 * invalid setting), capture the secrets in the effects, and return the
 * **unstarted** actor — call `.start()`, send `STOP` to stop.
 *
 * An invalid private key is not thrown here: the actor ends in `failed` with
 * `context.error` describing it (the key itself is never shown).
 */
export function createRegistrar(config: RegistrarConfig, options: RegistrarOptions = {}): Registrar {
  const { settings, secrets: credentials, warnings } = resolveConfig(config);
  const logger = options.logger ?? createLogger();
  for (const w of warnings) logger.warn({ event: w.event, setting: w.setting, env: w.env, warning: `${w.setting}: ${w.reason}` });

  const clock = options.clock;
  const now = options.now ?? (hasNow(clock) ? () => clock.now() : Date.now);
  // The statechart's clock is monotonic (a simulated one in tests); without one that tells time, performance.now().
  const monotonic = hasNow(clock) ? () => clock.now() : () => performance.now();
  const ageJudge = new HealthcheckAgeJudge(monotonic);
  const self = newWriterInfo();
  const unregister = registerLiveWriter(self);
  const stateStore =
    options.stateStore ??
    new StateStore({
      dir: settings.dataDir,
      logger,
      writer: self,
      now,
      healthcheckResolutionMs: Math.min(1000, settings.machine.intervalMs / 10),
      // Writes failing and succeeding by turns (a nearly full disk) are one episode: one line, not two a cycle.
      errorQuietMs: DISK_ERROR_QUIET_INTERVALS * settings.machine.intervalMs,
      protocol: settings.protocol,
      session: settings.machine.session !== null,
    });
  const secrets = options.secrets ?? defaultNodeSecretStore;
  // The configured secrets are kept for good; node secrets among the last few (see createSecretScrubber).
  const inspectSecrets = (extra: Iterable<string>, kind: SecretKind): void => {
    if (options.inspect && typeof options.inspect === 'object' && 'addSecrets' in options.inspect) {
      options.inspect.addSecrets?.(extra, kind);
    }
  };
  inspectSecrets([credentials.regSecret, credentials.secp256k1Privhex], 'configured');
  const detachSecretFile = attachSecretFile(secrets, settings.dataDir, credentials.secp256k1Privhex, logger, (secret) => inspectSecrets([secret], 'recent'));

  // The actor is created below; the lock's compromise callback reaches it through this reference.
  const ref: { actor?: Registrar } = {};
  const lock =
    options.lock !== undefined
      ? options.lock
      : new RegistrationLock({
          dir: settings.dataDir,
          staleMs: settings.lockStaleMs,
          logger,
          writer: self,
          onCompromised: (info: { code: string; message: string }) => ref.actor?.send({ type: 'LOCK_COMPROMISED', code: info.code, message: info.message }),
        });

  // Only policy `window` has windows; under `always` every callback is admitted anyway.
  const requestWindowMs = settings.requestTimeoutMs + REQUEST_WINDOW_MARGIN_MS;
  const nodeWindow =
    settings.machine.callbackPolicy === 'window'
      ? new SharedAdmissionWindow({ dir: settings.dataDir, now, maxOpenMs: Math.max(requestWindowMs, settings.machine.callbackWindowMs) })
      : undefined;
  const instances =
    options.instances !== undefined
      ? options.instances
      : options.lock === null
        ? null
        : new InstanceRegistry({ dataDir: settings.dataDir, self, staleMs: settings.lockStaleMs, logger });
  const stopInstances = (): void => {
    if (instances?.running) instances.stop();
  };

  const log = createRateLimitedLog(logger, { now, windowMs: Math.max(60_000, settings.machine.intervalMs) });
  // A fresh instance per registrar: a policy may keep state (decorrelated jitter does).
  const random = options.random ?? Math.random;
  const policy = options.backoffPolicy ?? createBackoffPolicy(settings.backoff, random);
  let client: RegistrationClient | undefined;
  let siweClient: SiweRegistrationClient | undefined;
  const tokens =
    settings.machine.session === null
      ? null
      : new TokenKeeper({ now, file: settings.accessTokenFile, logger, clock, onToken: (token) => inspectSecrets([token], 'token') });
  // The state file says when the token handed out expires (never the token): `status` judges by it.
  tokens?.onChange(() => stateStore.setSession(tokens.current()?.expiresAtMs ?? null));
  let lastPersisted: PersistedStatus | undefined;

  const persistStatus = (status: PersistedStatus): void => {
    const from = lastPersisted ?? stateStore.read().status;
    // A failed write is the store's to log: once per disk-error episode (state.write.error).
    if (stateStore.setStatus(status) && from !== status) logger.info({ event: 'status.transition', from, to: status });
    lastPersisted = status;
  };

  const effects: RegistrarEffects = {
    checkCredentials: async () => {
      try {
        const key = loadSecp256k1Privhex(credentials.secp256k1Privhex);
        const common = {
          ddsBaseUrl: settings.ddsBaseUrl,
          nodeVersion: settings.nodeVersion,
          regSecret: credentials.regSecret,
          key,
          capabilities: settings.capabilities,
          timeoutMs: settings.requestTimeoutMs,
          logger,
          got: options.got,
        };
        let url: string;
        if (settings.protocol === 'siwe' || settings.nodeUrl === undefined) {
          client = siweClient = createSiweRegistrationClient({ ...common, now });
          // The wallet names the node under `siwe` (it has no URL DDS knows).
          url = settings.nodeUrl ?? siweClient.wallet;
        } else {
          const signer = options.signer;
          const signedElsewhere =
            signer === undefined ? {} : { publicKeyHex: await signer.publicKeyHex, sign: (message: string) => signer.sign(message) };
          client = createRegistrationClient({ ...signedElsewhere, ...common, nodeUrl: settings.nodeUrl });
          url = settings.nodeUrl;
        }
        if (instances !== null) {
          // One node per directory: a live registrar of another key refuses us (exit 2 in the CLI).
          const conflict = await instances.claim({ publicKey: client.publicKeyHex, url });
          if (conflict !== null) return { ok: false, code: 'EDATADIRINUSE', message: dataDirectoryInUseMessage(conflict) };
        }
        return { ok: true, publicKeyPrefix: client.publicKeyHex.slice(0, 16) };
      } catch (error) {
        if (error instanceof InvalidPrivateKeyError) {
          return { ok: false, code: 'EINVALIDKEY', message: `secp256k1Privhex: ${error.message}` };
        }
        const message = error instanceof InvalidUrlError ? error.message : 'invalid settings';
        return { ok: false, code: 'ECONFIG', message };
      }
    },
    acquireLock: async (signal) => {
      if (lock === null) return { kind: 'acquired', takeover: false };
      const attempt = await lock.tryAcquire();
      if (signal.aborted && attempt.kind === 'acquired') {
        // Stopped while acquiring: nobody is left to release it.
        await lock.release();
      }
      switch (attempt.kind) {
        case 'acquired':
          return { kind: 'acquired', takeover: attempt.takeover };
        case 'busy':
          return { kind: 'busy', holderPid: attempt.holder?.pid ?? null };
        default:
          return { kind: 'error', code: attempt.code, message: attempt.message };
      }
    },
    readSharedState: async () => viewSharedState(stateStore.read(), self, now(), ageJudge, instances),
    registerWithDds: async (signal) => {
      if (!client) {
        return { ok: false, class: 'slow', status: null, endpoint: '', retryAfterMs: null, message: 'no client' };
      }
      nodeWindow?.open(requestWindowMs);
      // Held (not bypassed after a disk error): confirm it right before the request goes out.
      const confirmLock =
        lock?.held === true
          ? async (): Promise<string | undefined> => {
              const confirmed = await lock.confirm();
              return confirmed.ok ? undefined : `the lock is no longer ours: ${confirmed.reason}`;
            }
          : undefined;
      const outcome = await client.register(signal, confirmLock);
      if (outcome.ok) nodeWindow?.open(settings.machine.callbackWindowMs);
      else nodeWindow?.close();
      return outcome;
    },
    signIn: async (signal) => {
      if (siweClient === undefined || tokens === null) {
        return { ok: false, class: 'slow', status: null, endpoint: '', retryAfterMs: null, message: 'no SIWE client', forgotten: false, tokenRemainingMs: null };
      }
      const result = await siweClient.signIn(signal);
      if (result.ok) {
        // Handed out once the machine records the sign-in (holdToken); stopped meanwhile, never.
        if (!signal.aborted) tokens.stage(result.token, result.expiresAtMs);
        return { ok: true, expiresAtMs: result.expiresAtMs, lifetimeMs: result.lifetimeMs, endpoint: result.endpoint };
      }
      if (result.forgotten) tokens.drop('forgotten');
      // Field by field: nothing of the client's result beyond these reaches the machine.
      const failed: SignInOutcome = {
        ok: false,
        class: result.class,
        status: result.status,
        endpoint: result.endpoint,
        retryAfterMs: result.retryAfterMs,
        message: result.message,
        forgotten: result.forgotten,
        tokenRemainingMs: tokens.remainingMs(),
      };
      if (result.code !== undefined) failed.code = result.code;
      return failed;
    },
    shutdown: async () => {
      tokens?.close();
      nodeWindow?.close();
      if (lock !== null) await lock.release();
      // Co-owned registration: while another live registrar of this node shares the directory,
      // the file's status is theirs as much as ours — the last one to stop writes `disconnected`.
      const siblings = instances?.running === true ? instances.liveSiblings() : 0;
      const current = stateStore.read().status;
      if (siblings > 0) {
        logger.info({ event: 'status.kept', status: current, reason: 'another live registrar of this node shares the data directory', siblings });
      } else if (instances === null && siblingRegisteredWithin(viewSharedState(stateStore.read(), self, now(), ageJudge), settings.machine.intervalMs)) {
        logger.info({ event: 'status.kept', status: 'registered', reason: 'a live sibling is registered' });
      } else {
        persistStatus('disconnected');
      }
      stopInstances();
      unregister();
    },
    persistStatus,
    persistHealthcheck: (source) => {
      if (stateStore.touchHealthcheckNow()) logger.info({ event: 'healthcheck.touch', source });
    },
    releaseLock: () => {
      if (lock?.held) {
        void lock.release().then(() => logger.debug({ event: 'lock.released' }));
      }
    },
    log: (params) => log(params.level, { event: params.event, ...params.fields }, params.rateLimitKey),
    retryDelayMs: (attempt) => policy(attempt),
    random,
    holdToken: () => tokens?.commitStaged(),
  };

  const inspect =
    options.inspect === undefined
      ? undefined
      : typeof options.inspect === 'object' && 'inspect' in options.inspect
        ? options.inspect.inspect
        : options.inspect;

  const actor = createActor(providedMachine, {
    input: { settings: settings.machine },
    // Spread over XState's defaults: an undefined clock would replace the default one.
    ...(clock === undefined ? {} : { clock }),
    inspect,
    systemId: options.systemId,
  });
  ref.actor = actor;
  effectsBySystem.set(actor.system, effects);
  actor.subscribe({
    complete: () => {
      tokens?.close();
      stopInstances();
      unregister();
      detachSecretFile();
    },
    error: () => {
      tokens?.close();
      stopInstances();
      unregister();
      detachSecretFile();
    },
  });

  resources.set(actor, {
    settings,
    secrets,
    stateStore,
    lock,
    instances,
    logger,
    noteSecret: (secret) => {
      inspectSecrets([secret], 'recent');
    },
    acceptedCallback: { digest: undefined },
    siblingWindowOpen: () => nodeWindow?.othersOpen() ?? false,
    tokens,
  });
  return actor;
}
