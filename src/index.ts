/**
 * posemesh-node-registration — register a posemesh node with DDS and keep it
 * registered. Wire-compatible with the Rust crate of the same name; its
 * modules keep the crate's names: `crypto`, `http`, `persist`, `state`,
 * `register` (and `register-siwe`, the wallet generation of the crate's
 * 0.2.x), plus the statechart (`registrarMachine`) and its wiring
 * (`createRegistrar`).
 *
 * @packageDocumentation
 */

// The statechart and its wiring.
export {
  registrarMachine,
  capDelayMs,
  crateBackoffDelayMs,
  MAX_DELAY_MS,
  MIN_INTERVAL_MS,
  type RegistrarMachine,
  type RegistrarContext,
  type RegistrarEvent,
  type RegistrarInput,
  type RegistrarSettings,
  type RegistrarError,
  type RegistrarOutput,
  type RegistrarTag,
  type RegistrarActorName,
  type RegistrarActorOutputs,
  type CallbackPolicy,
  type FailureClass,
  type FailureInfo,
  type RegistrationFailure,
  type RegistrationOutcome,
  type CredentialsCheck,
  type LockOutcome,
  type LockStatus,
  type PersistedStatus,
  type SharedStateView,
  type SecretReceivedEvent,
  type HealthcheckEvent,
  type RegisterNowEvent,
  type StopEvent,
  type LockCompromisedEvent,
  type RearmEvent,
  type TokenUnauthorizedEvent,
  type RegistrationProtocol,
  type AccessSessionSettings,
  type AccessSessionContext,
  type SignInOutcome,
  tokenRefreshDelayMs,
  signInRetryDelayMs,
  sessionRestartDelayMs,
} from '../machines/registrar.js';
export { accessToken, reportUnauthorized, AccessTokenError, type AccessTokenErrorCode, type AccessTokenOptions } from './access-token.js';
export { TokenKeeper, type TokenKeeperOptions, type HeldToken, type KeeperClock } from './token-keeper.js';
export {
  createRegistrar,
  registrarResources,
  type Registrar,
  type RegistrarOptions,
  type RegistrarClock,
  type RegistrarInspect,
  type RegistrarResources,
} from './registrar.js';
export { runRegistrationLoop, registrarDone, RegistrarFailedError, DataDirectoryInUseError, DATA_DIR_IN_USE, type RegistrationLoop } from './loop.js';
export { routerDds, registrarSink } from './router-dds.js';
export { createSanitizingInspector, createSecretScrubber, type SanitizingInspector, type SanitizingInspectorOptions } from './inspect.js';
export {
  resolveConfig,
  ConfigError,
  DEFAULTS,
  type RegistrarConfig,
  type RegistrarSecrets,
  type ResolvedConfig,
  type ResolvedSettings,
  type SettingWarning,
} from './config.js';
export {
  SETTINGS,
  MIN_LOCK_STALE_MS,
  flagOf,
  type SettingKey,
  type SettingSpec,
  type SettingValue,
  type SettingsInput,
  type SettingsOf,
  type CommandName,
  type SettingGroup,
} from './settings/table.js';
export {
  BACKOFF_POLICY_NAMES,
  DEFAULT_BACKOFF_POLICY,
  createBackoffPolicy,
  crateBackoff,
  decorrelatedJitterBackoff,
  fullJitterBackoff,
  isBackoffPolicyName,
  type BackoffPolicy,
  type BackoffPolicyName,
  type JitterOptions,
  type RandomSource,
} from './backoff.js';

// crypto
export {
  loadSecp256k1Privhex,
  generateSecretKey,
  secp256k1PubkeyUncompressedHex,
  signRecoverableKeccakHex,
  signCompactHex,
  verifyRecoverableKeccakHex,
  keccak256Hex,
  formatTimestampNanos,
  formatTimestampNow,
  nowEpochNanos,
  parseTimestampNanos,
  InvalidPrivateKeyError,
  SecretKey,
  deriveEthAddress,
  ethAddressFromPublicKey,
  isEthAddress,
  eip191Digest,
  eip191DigestHex,
  signEip191RecoverableHex,
  recoverEip191Address,
  verifyEip191Signature,
  type InvalidPrivateKeyReason,
  type Message,
} from './crypto.js';
export { startWarmSigner, type RegistrationSigner, type WarmSigner } from './warm-signer.js';

// persist
export {
  NodeSecretStore,
  defaultNodeSecretStore,
  writeNodeSecret,
  readNodeSecret,
  clearNodeSecret,
  type NodeIdentity,
  type NodeSecretStoreOptions,
} from './persist.js';

// state
export * from './state/index.js';

// register
export {
  buildRegistrationRequest,
  registerOnce,
  createRegistrationClient,
  registrationEndpoint,
  serializeRegistrationBody,
  classifyStatus,
  parseRetryAfter,
  InvalidUrlError,
  REGISTRATION_PATH,
  type RegistrationBody,
  type BuildRegistrationRequestOptions,
  type RegisterOnceOptions,
  type RegistrationClient,
  type RegistrationClientOptions,
  type RegistrationResult,
  type RegistrationSuccess,
} from './register.js';
export {
  createSiweRegistrationClient,
  composeSiweMessage,
  readSiweNonceResponse,
  serializeSiweRegistrationBody,
  serializeSiweVerifyBody,
  parseRfc3339Ms,
  AccessToken,
  SIWE_NONCE_PATH,
  SIWE_REGISTRATION_PATH,
  SIWE_VERIFY_PATH,
  SIWE_REGISTRATION_KEYS,
  SIWE_VERIFY_KEYS,
  SIWE_SNIPPET_MAX_BYTES,
  type SiweRegistrationClient,
  type SiweRegistrationClientOptions,
  type SiweEndpoints,
  type SiweNonceFields,
  type SiweNonceProblem,
  type SiweRegistrationBody,
  type SiweVerifyBody,
  type SignInResult,
  type SignInSuccess,
  type SignInFailure,
} from './register-siwe.js';
export { normalizeNodeVersion, PACKAGE_VERSION } from './version.js';

// http
export {
  createDdsRouter,
  defaultStoresSink,
  validateCallbackBody,
  CALLBACK_PATH,
  HEALTH_PATH,
  MAX_SECRET_BYTES,
  type CallbackPayload,
  type CallbackDecision,
  type DdsSink,
  type DdsRouterOptions,
  type HealthProbe,
} from './http.js';

// logging
export { createLogger, silentLogger, MemoryLogger, type Logger, type LogFields, type LogLevel, type LogFormat, type CreateLoggerOptions } from './log.js';

// inspector relay and the DDS simulator (for testing your own node)
export { startInspectorRelay, InspectorRelayError, type InspectorRelay, type InspectorRelayOptions } from './inspector-relay.js';
export {
  DdsSimulator,
  DdsSimulatorListenError,
  type DdsSimulatorOptions,
  type DdsSimulatorFaults,
  type DdsSimulatorEvent,
  type DdsSimulatorNode,
  type SiweCall,
  type SiweWallet,
} from './sim/dds-simulator.js';
export { verifyRegistrationRequest } from './sim/verify-registration.js';
export { SiweAuthority, type SiweAuthorityOptions } from './sim/siwe-authority.js';
