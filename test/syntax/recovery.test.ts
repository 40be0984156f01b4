import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { printPolicy } from '../../src/syntax/index.js';
import { policyArb } from '../gen/policy.js';
import { SEED, parse } from './support.js';

/** Error recovery: each mistake is reported, and none hides another. */
describe('error recovery', () => {
  it('reports five independent mistakes as five errors, one per line', () => {
    const text = [
      'define web = { 80, 443 }',
      'table filter {',
      '  chain input policy drop {',
      '    tcp dport @webb accept', // undefined define
      '    udp dport 99999 accept', // port out of range
      '    saddr 10.0.0.300 drop', // bad address
      '    tcp dport @web acept', // typo in the action
      '    jump nowhere', // undefined chain
      '  }',
      '}',
    ].join('\n');
    const errors = parse(text).diagnostics.filter((d) => d.severity === 'error');
    expect(errors.map((d) => [d.span.start.line, d.code])).toEqual([
      [4, 'E-undefined-define'],
      [5, 'E-bad-port'],
      [6, 'E-bad-address'],
      [7, 'E-unknown-word'],
      [8, 'E-undefined-chain'],
    ]);
  });

  it('reports several mistakes in one rule', () => {
    const errors = parse('table filter { chain input { tcp dport 99999 saddr 1.2.3.400 frobnicate accept } }').diagnostics.filter((d) => d.severity === 'error');
    expect(errors.map((d) => d.code)).toEqual(['E-bad-port', 'E-bad-address', 'E-unknown-word']);
  });

  it('keeps reading after structural mistakes (bad define, unquoted include, unclosed set)', () => {
    const text = ['define a { 1.2.3.4 }', 'include x.nfp', 'table filter {', '  chain input {', '    tcp dport { 80, 443 accept', '    udp dport 99999 accept', '  }', '}'].join('\n');
    const errors = parse(text).diagnostics.filter((d) => d.severity === 'error');
    expect(errors.map((d) => [d.span.start.line, d.code])).toEqual([
      [1, 'E-syntax'],
      [2, 'E-syntax'],
      [5, 'E-unclosed'],
      [6, 'E-bad-port'],
    ]);
  });

  it('finds every word spliced into random valid policies, at its line', () => {
    // A printed random policy parses cleanly; an unknown word added to k of its rule lines must
    // give exactly k errors, on those lines.
    fc.assert(
      fc.property(policyArb({ expectations: false }), fc.array(fc.nat(), { minLength: 1, maxLength: 5 }), (policy, picks) => {
        const lines = printPolicy(policy).split('\n');
        // Rule lines: indented twice, not a chain header or closing brace.
        const ruleLines = lines.map((l, i) => [l, i] as const).filter(([l]) => /^ {4}\S/.test(l)).map(([, i]) => i);
        if (ruleLines.length === 0) return;
        const chosen = [...new Set(picks.map((p) => ruleLines[p % ruleLines.length]))].sort((a, b) => a - b);
        for (const i of chosen) lines[i] = `${lines[i]} frobnicate`;
        const errors = parse(lines.join('\n')).diagnostics.filter((d) => d.severity === 'error');
        expect(errors.map((d) => [d.span.start.line, d.code])).toEqual(chosen.map((i) => [i + 1, 'E-unknown-word']));
      }),
      { seed: SEED, numRuns: 40, endOnFailure: true },
    );
  });
});
