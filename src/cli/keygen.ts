/** `keygen` — print a new private key and its public key. */
import type { Command } from 'commander';
import { generateSecretKey, secp256k1PubkeyUncompressedHex } from '../crypto.js';
import { SETTINGS } from '../settings/table.js';

/** Add `keygen` to the program. */
export function keygenCommand(program: Command): void {
  program
    .command('keygen')
    .description(`print a new secp256k1 private key (for ${SETTINGS.secp256k1Privhex.env}) and its public key`)
    .option('--json', 'print one JSON object instead of KEY=value lines')
    .action((opts: { json?: boolean }) => {
      const key = generateSecretKey();
      const privhex = key.exposeHex();
      const publicKey = secp256k1PubkeyUncompressedHex(key);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify({ secp256k1_privhex: privhex, public_key: publicKey })}\n`);
      } else {
        process.stdout.write(`${SETTINGS.secp256k1Privhex.env}=${privhex}\nPUBLIC_KEY=${publicKey}\n`);
      }
    });
}
