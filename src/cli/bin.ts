#!/usr/bin/env node
// The `posemesh-node-registration` command.
import { main } from './main.js';

main().then(
  (code) => {
    process.exitCode = code;
  },
  () => {
    process.exitCode = 1;
  },
);
