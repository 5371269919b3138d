// Imported first by bin.ts: when the CLI runs without the launcher (tsx src/cli/bin.ts), the
// signals of start-up are listened for before the rest of the program loads (see ./signals.ts).
import { installEarlySignalHandlers } from './signals.js';

installEarlySignalHandlers();
