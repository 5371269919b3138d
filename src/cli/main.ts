/**
 * `posemesh-node-registration` — the daemon and its tools.
 *
 *   run       the production registrar (DDS callback routes + the actor)
 *   dev       a registrar against the embedded DDS simulator, shown live
 *   dds-sim   the DDS simulator alone
 *   keygen    a new private key and its public key
 *   status    the state file's status; exit 0 when registered and fresh
 *
 * Exit status: 0 after a graceful stop; 2 for a missing or invalid setting;
 * 3 when it cannot start; 1 for anything unexpected.
 */
import { Command, CommanderError } from 'commander';
import { PACKAGE_VERSION } from '../version.js';
import { runCommand } from './run.js';
import { devCommand } from './dev.js';
import { ddsSimCommand } from './dds-sim.js';
import { keygenCommand } from './keygen.js';
import { statusCommand } from './status.js';
import { ConfigError } from '../settings/validate.js';
import { CliError, EXIT, settingLine } from './settings.js';

const unknownOption = (Command.prototype as unknown as { unknownOption(flag: string): void }).unknownOption;

/**
 * The program's commands, whose usage errors never echo a value: commander
 * names an unknown option by its whole token (`--regsecret=<the secret>`),
 * and an unknown command by whatever was typed.
 */
class Program extends Command {
  override createCommand(name?: string): Program {
    return new Program(name);
  }

  /** Called by commander with the token as typed: keep the option's name only. */
  unknownOption(flag: string): void {
    const equals = flag.indexOf('=');
    unknownOption.call(this, equals === -1 ? flag : flag.slice(0, equals));
  }

  /** Called by commander for an operand that names no command: named only when it looks like one. */
  unknownCommand(): void {
    const typed = this.args[0] ?? '';
    const shown = /^[a-z][a-z0-9-]{0,31}$/.test(typed) ? ` '${typed}'` : '';
    this.error(`error: unknown command${shown} (commands: ${this.commands.map((c) => c.name()).join(', ')})`, {
      code: 'commander.unknownCommand',
    });
  }
}

function buildProgram(): Command {
  const program = new Program('posemesh-node-registration')
    .description('Register a posemesh node with DDS and keep it registered.')
    .version(PACKAGE_VERSION)
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();
  for (const add of [runCommand, devCommand, ddsSimCommand, keygenCommand, statusCommand]) add(program);
  for (const sub of program.commands) sub.exitOverride();
  return program;
}

/** Run the CLI with `argv` (as `process.argv`); resolves with the exit status. */
export async function main(argv: readonly string[] = process.argv): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv]);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end with code 0; usage errors are bad settings.
      if (error.exitCode === 0 || error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return EXIT.ok;
      return EXIT.badSetting;
    }
    if (error instanceof ConfigError) {
      process.stderr.write(`posemesh-node-registration: ${settingLine(error)}\n`);
      return EXIT.badSetting;
    }
    if (error instanceof CliError) {
      process.stderr.write(`posemesh-node-registration: ${error.message}\n`);
      return error.exitCode;
    }
    // Unexpected: print a short line, never a library error object (it may carry a request body).
    const name = error instanceof Error ? error.name : 'Error';
    const code = (error as { code?: unknown } | null)?.code;
    process.stderr.write(`posemesh-node-registration: unexpected ${name}${typeof code === 'string' ? ` (${code})` : ''}\n`);
    return EXIT.unexpected;
  }
}
