import { describe, expect, it } from 'vitest';
import { REFUSED_CASES } from './cases/refused.js';
import { parseRule } from './support/dsl.js';
import { placementProblems } from './support/placement.js';

/** The kinds flag every rule the kernel refuses (the refusals are checked in test/kernel/kinds.test.ts). */
describe('kernel restrictions declared by the kinds', () => {
  for (const c of REFUSED_CASES) {
    it(`${c.table}/${c.chain}: ${c.dsl}`, () => {
      const r = parseRule(c.dsl, { family: c.family });
      expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
      expect(placementProblems(r.matches, r.target, c.table, c.chain, c.family)).toContain(c.flagged);
    });
  }
});
