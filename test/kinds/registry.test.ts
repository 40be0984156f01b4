import { describe, expect, it } from 'vitest';
import { ALL_MATCH_KINDS, ALL_TARGET_KINDS, MATCH_KINDS, TARGET_KINDS } from '../../src/kinds/index.js';
import { ALL_CASES } from './cases/index.js';
import { parseRule } from './support/dsl.js';

/**
 * The registry as a whole: every kind is documented (grammar/REFERENCE.md is generated from
 * these fields), has kernel-checked table cases, and kinds sharing a keyword never both claim
 * the same clause (the cases parse without `T-ambiguous-clause`, see support/dsl.ts).
 */
describe('kind registry', () => {
  it('every kind has a doc line and syntax', () => {
    for (const k of [...ALL_MATCH_KINDS, ...ALL_TARGET_KINDS]) {
      expect(k.doc.length, k.kind).toBeGreaterThan(20);
      expect(k.syntax.length, k.kind).toBeGreaterThan(0);
      expect(k.keywords.length, k.kind).toBeGreaterThan(0);
    }
  });

  it('every kind appears in the kernel-checked cases', () => {
    const seen = new Set<string>();
    for (const c of ALL_CASES) {
      const r = parseRule(c.dsl, { family: c.family });
      for (const m of r.matches) seen.add(`match ${m.kind}`);
      if (r.target) seen.add(`target ${r.target.kind}`);
    }
    // `counter` is a rule without -j: its iptables form is the absence of a target.
    const expected = [...Object.keys(MATCH_KINDS).map((k) => `match ${k}`), ...Object.keys(TARGET_KINDS).filter((k) => k !== 'counter').map((k) => `target ${k}`)];
    expect(expected.filter((k) => !seen.has(k))).toEqual([]);
  });

  it('shared keywords: each sample clause is claimed by exactly one kind', () => {
    // Clause starts that several kinds list as a keyword; parseRule reports ambiguity or none.
    const samples = [
      'ct state new',
      'ct status assured',
      'ct status dnat',
      'ct direction reply',
      'ct proto tcp',
      'ct original saddr 1.2.3.4',
      'ct expire 5',
      'ct mark 0x1',
      'ct mark != 0x1',
      'ct helper "ftp"',
      'ct mark set 0x1',
      'ct mark save',
      'ct helper set ftp',
      'ct notrack',
      'ct zone set 1',
      'mark 0x1',
      'mark != 0x1',
      'mark set 0x1',
      'mark and 0x1',
      'saddr 1.2.3.4',
      'saddr type local',
      'dscp ef',
      'dscp set ef',
      'tos 0x10/0x3f',
      'tos set 0x10',
      'ttl 64',
      'ttl set 64',
      'ttl < 5',
      'tcp option mss',
      'dccp option 5',
      'xt match cpu "--cpu 1"',
      'xt target AUDIT "--type drop"',
    ];
    for (const s of samples) {
      const r = parseRule(s);
      expect(r.diagnostics.map((d) => `${d.code}: ${d.message}`), s).toEqual([]);
    }
  });
});
