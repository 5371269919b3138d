/**
 * The registrar config a test hands `createRegistrar` (or the daemon): the
 * part every test spells the same way, in one place.
 */
import type { RegistrarConfig } from '../../src/config.js';

/** The secrets a test registrar is started with (test/reliability's `Credentials` is one). */
export interface TestSecrets {
  regSecret: string;
  /** The private key, as the test holds it (64 hex digits, with or without `0x`). */
  privhex: string;
}

/** What a test must say of its registrar; anything else of {@link RegistrarConfig} may go with it. */
export type TestConfig = Pick<RegistrarConfig, 'nodeUrl' | 'dataDir'> & Partial<RegistrarConfig>;

/** A config against the DDS at `ddsUrl` with `secrets`, node version 1.2.3, and `config` over them. */
export function testConfig(ddsUrl: string, secrets: TestSecrets, config: TestConfig): RegistrarConfig {
  return { ddsBaseUrl: ddsUrl, nodeVersion: '1.2.3', regSecret: secrets.regSecret, secp256k1Privhex: secrets.privhex, ...config };
}
