#!/usr/bin/env node
// The `posemesh-node-registration` command.
import './early-signals.js'; // first: start-up's signals (./signals.ts)
import { main } from './main.js';

// A closed pipe (`… | head`) is not an error worth a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  () => {
    process.exitCode = 1;
  },
);
