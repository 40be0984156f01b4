import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatSource } from '../../src/syntax/format.js';
import { printPolicy } from '../../src/syntax/index.js';
import { policyArb } from '../gen/policy.js';
import { SEED, parse, withoutSpans } from './support.js';

/** `nfproof fmt`: layout only — same IR, comments kept, idempotent. */
function irOf(text: string) {
  const r = parse(text);
  expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
  return withoutSpans({ host: r.policy!.host, rulesets: r.policy!.rulesets, expectations: r.policy!.expectations });
}

/** Random re-spacing, indentation and comments that keep the meaning of a printed policy. */
function messUp(text: string, seed: readonly number[]): string {
  let k = 0;
  const pick = (n: number) => seed[k++ % seed.length] % n;
  return text
    .split('\n')
    .map((line, i) => {
      if (line.trim() === '') return line;
      // Spaces: 1-3 between words (never inside strings: they hold no double spaces here).
      let out = line.trim().replace(/ (?=(?:[^"]*"[^"]*")*[^"]*$)/g, () => ' '.repeat(1 + pick(3)));
      out = ' '.repeat(pick(7)) + out;
      if (pick(4) === 0) out += `   # note ${i}`;
      if (pick(6) === 0) out = `# about line ${i}\n${out}`;
      return out;
    })
    .join('\n');
}

describe('nfproof fmt', () => {
  it('keeps the meaning and every comment of random messy policies, and is idempotent', () => {
    fc.assert(
      fc.property(policyArb(), fc.array(fc.nat(), { minLength: 1, maxLength: 50 }), (policy, seed) => {
        const messy = messUp(printPolicy(policy), seed);
        const formatted = formatSource(messy, 'messy.nfp').text!;
        expect(irOf(formatted)).toEqual(irOf(messy));
        expect(formatSource(formatted, 'f.nfp').text).toBe(formatted);
        const comments = (t: string) => t.match(/# (note|about line) \d+/g) ?? [];
        expect(comments(formatted)).toEqual(comments(messy));
      }),
      { seed: SEED, numRuns: 40, endOnFailure: true },
    );
  });

  it('lays out blocks, statements and comments', () => {
    const messy = [
      '# header',
      '',
      '',
      'define  web={80,443}',
      'table filter {   # the filter',
      'chain input policy drop { ct state established,related accept ; iif lo accept',
      '      # own line',
      '  saddr {10.0.0.1 , !10.0.0.2} drop   # trailing',
      '}',
      '   chain empty{}',
      '}',
    ].join('\n');
    expect(formatSource(messy, 'x.nfp').text).toBe(
      [
        '# header',
        '',
        'define web = { 80, 443 }',
        'table filter {  # the filter',
        '  chain input policy drop {',
        '    ct state established,related accept',
        '    iif lo accept',
        '    # own line',
        '    saddr { 10.0.0.1, !10.0.0.2 } drop  # trailing',
        '  }',
        '  chain empty { }',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('breaks a long set, or one with comments, into one element per line', () => {
    const items = Array.from({ length: 12 }, (_, i) => `192.168.100.${i}`);
    const text = `define many = { ${items.join(', ')} }\ndefine c = {\n  10.0.0.1, # one\n  10.0.0.2\n}\n`;
    expect(formatSource(text, 'x.nfp').text).toBe(
      ['define many = {', ...items.map((i) => `  ${i},`), '}', 'define c = {', '  10.0.0.1,  # one', '  10.0.0.2,', '}', ''].join('\n'),
    );
  });

  it('does not format a file with syntax errors', () => {
    const r = formatSource('table filter {\n', 'x.nfp');
    expect(r.text).toBeUndefined();
    expect(r.diagnostics.map((d) => d.code)).toEqual(['E-unclosed']);
  });
});
