#!/usr/bin/env node
// Thin launcher: the CLI lives in src/cli and is compiled to dist/ by `npm install` (prepare).
import { main } from '../dist/cli/main.js';

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    // Only internal errors reach here; user mistakes are reported by main() itself.
    console.error('nfproof: internal error:', err instanceof Error ? err.stack : err);
    process.exitCode = 70;
  },
);
