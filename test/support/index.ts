/**
 * Test support: the one library every suite and `bench/` uses. Each module
 * has one job; tests import from here, benchmarks from the module itself (a
 * benchmark loads only what it needs).
 *
 * - cleanup.ts: `Cleanup`, `CleanupStack`, `onCleanup` (last registered first)
 * - config.ts: `testConfig` (a registrar's config against a local DDS), `TestSecrets`
 * - temp.ts: `tempDir`; ports.ts: `freePort`, `occupyPort`, `listeningTcpPorts`; time.ts: `now`, `sleep`, `waitUntil`
 * - secrets.ts: `assertNoSecrets`, `findSecrets`, `secretForms`, `assertNoLongHex`, `LeakScan`
 * - child.ts: `spawnChild`, `exitWithin`, `nextMessage` (IPC), `assertBuilt`, `BIN`, `REPO_ROOT`
 * - http.ts: `readBody`, `listen`, `closeHard`, `serverKit`
 * - fake-dds.ts: `startFakeDds` and its responders (`siweResponder` for the wallet generation), `callNodeBack`, `probeHealth`, `startProber`
 * - node-server.ts: `startNodeServer` (`routerDds` on express)
 * - prometheus.ts: `parseScrape`, `sampleValue` (not re-exported here: it loads a parser)
 * - writers.ts: `liveWriter` (a registrar identity of this process, live until cleanup)
 * - vectors.ts: `readProtocolVectors`, `assertVectorCounts` (../shared/protocol, read where it lives)
 * - random.ts: `seededRandom`; stats.ts: `summarize`, `round`; figures.ts: `writeFigure`
 * - browser.ts: `NO_CHROMIUM` (the browser suites' skip reason), `launchBrowser`, `newPage`;
 *   dom.ts: `PageGlobals`, the DOM types of functions run in the page
 */
export * from './browser.js';
export * from './child.js';
export * from './cleanup.js';
export * from './config.js';
export type * from './dom.js';
export * from './fake-dds.js';
export * from './figures.js';
export * from './http.js';
export * from './node-server.js';
export * from './ports.js';
export * from './random.js';
export * from './secrets.js';
export * from './stats.js';
export * from './temp.js';
export * from './time.js';
export * from './vectors.js';
export * from './writers.js';
export * from './simulator.js';
