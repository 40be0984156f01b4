import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkPolicy } from '../../src/analyze/check.js';
import { importIptablesSave } from '../../src/backends/import/index.js';
import { CORPUS_DIR, corpusAvailable } from '../support/env.js';

/**
 * `check` on every real iptables-save dump of the corpus (read in place, never copied): it
 * finishes, decides every rule (nothing left undecided within the time limit), and contradicts
 * itself nowhere (no internal error: Z3, the concrete model and the simulator agree on every
 * witness). Dumps the importer refuses are left to the importer's own tests.
 *
 * Runtime: ~30 s (the chair rulesets take most of it).
 */
const corpus = corpusAvailable();
const root = join(CORPUS_DIR, 'net-network');

function dumps(dir: string): string[] {
  const out: string[] = [];
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) out.push(...dumps(p));
    else if (!f.startsWith('UPSTREAM')) out.push(p);
  }
  return out.sort();
}

describe.skipIf(!corpus.run)(`check on the corpus ${corpus.reason}`, () => {
  for (const file of corpus.run ? dumps(root) : []) {
    it(relative(root, file), async () => {
      const r = importIptablesSave(readFileSync(file, 'utf8'), file);
      if (!r.policy) return; // refused by the importer (covered by its tests)
      const report = await checkPolicy(r.policy, { timeoutMs: 5000 });
      expect(report.internalErrors.map((e) => `${e.message} ${e.rule?.text ?? ''}`)).toEqual([]);
      expect(report.stats.undecided).toBe(0);
      expect(report.stats.prepassDecided + report.stats.z3Decided).toBe(report.stats.rules);
    }, 120_000);
  }
});
