import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { joinRawWords, splitRawWords } from '../../src/kinds/helpers.js';
import { parseRule } from './support/dsl.js';
import { printMatch } from '../../src/kinds/index.js';

const seed = Number(process.env.NFPROOF_SEED ?? 42);

describe('raw iptables words kept by the opaque kinds', () => {
  it('split(join(words)) gives the words back, whatever they hold', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: fc.constantFrom('a', 'b', ' ', '"', "'", '\\', '-', '\t', 'é') })), (words) => {
        expect(splitRawWords(joinRawWords(words))).toEqual(words);
      }),
      { seed, numRuns: 300 },
    );
  });
  it('an xt match with awkward words survives DSL print and parse', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: fc.constantFrom('x', ' ', '"', '\\', '#', '{', ',', ';') }), { minLength: 1, maxLength: 4 }), (args) => {
        const m = { kind: 'opaque' as const, module: 'string', args, span: { file: 'x', start: { line: 0, col: 0, offset: 0 }, end: { line: 0, col: 0, offset: 0 } } };
        const text = printMatch(m);
        const back = parseRule(text).matches[0];
        expect(back?.kind === 'opaque' ? back.args : undefined, text).toEqual(args);
      }),
      { seed, numRuns: 200 },
    );
  });
});
