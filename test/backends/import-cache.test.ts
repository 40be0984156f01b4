import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { importIptablesSave } from '../../src/backends/import/index.js';
import { CORPUS_DIR, corpusAvailable } from '../support/env.js';

/**
 * The importer remembers sections it has read (src/backends/import/rule.ts, SectionCache). For
 * every corpus file the IR must be the same with and without that memory — spans included, so
 * every diagnostic and finding still points at its own line and column.
 */
const corpus = corpusAvailable();

function files(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir).sort()) {
      const p = join(dir, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (!e.startsWith('UPSTREAM')) out.push(p);
    }
  };
  walk(join(CORPUS_DIR, 'net-network'));
  return out;
}

const json = (x: unknown) => JSON.stringify(x, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v));

describe.skipIf(!corpus.run)('import section cache', () => {
  it.each(corpus.run ? files().map((f) => [relative(CORPUS_DIR, f), f]) : [])('%s: same IR and diagnostics with and without it', (name, path) => {
    const text = readFileSync(path, 'utf8');
    const a = importIptablesSave(text, name);
    const b = importIptablesSave(text, name, undefined, { sectionCache: false });
    expect(json(a.policy)).toBe(json(b.policy));
    expect(json(a.diagnostics)).toBe(json(b.diagnostics));
  });
});
