import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderDiagnostics } from '../../src/report/text.js';
import { loadPolicy } from '../../src/syntax/index.js';
import { SourceFiles } from '../../src/util/sources.js';
import { REPO_ROOT } from '../support/env.js';

/**
 * Diagnostic golden tests: every test/syntax/golden/*.nfp is loaded and its diagnostics,
 * rendered as the CLI prints them (src/report/text.ts, no colour), must equal the .expected
 * file beside it. Each expected file was read and judged by hand: right place, right words,
 * a hint that says what to do. Regenerate with UPDATE_GOLDEN=1 and read the diff.
 */
const DIR = join(REPO_ROOT, 'test', 'syntax', 'golden');
// Paths are shown as given; load them relative to the repository so messages read like a user's.
process.chdir(REPO_ROOT);

const cases = readdirSync(DIR)
  .filter((f) => f.endsWith('.nfp'))
  .sort();

describe('diagnostics golden files', () => {
  it.each(cases)('%s', (name) => {
    const path = relative(REPO_ROOT, join(DIR, name));
    const sources = new SourceFiles();
    const r = loadPolicy(path, sources);
    const actual = renderDiagnostics(r.diagnostics, sources, { color: false }) + '\n';
    const expectedPath = join(DIR, name.replace(/\.nfp$/, '.expected'));
    if (process.env.UPDATE_GOLDEN) writeFileSync(expectedPath, actual);
    expect(actual).toBe(readFileSync(expectedPath, 'utf8'));
    // A policy is produced exactly when there is no error.
    expect(r.policy === undefined).toBe(r.diagnostics.some((d) => d.severity === 'error'));
  });
});
