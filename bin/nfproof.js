#!/usr/bin/env node
// Thin launcher: the CLI lives in src/cli; `npm install` (prepare) type-checks it and bundles it
// into dist/nfproof.mjs (scripts/bundle.mjs says why).
import { main } from '../dist/nfproof.mjs';

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
