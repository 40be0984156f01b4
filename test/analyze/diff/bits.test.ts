import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Val, constVal, evalVal, maskedVal, mergeBits, slotVal, xorMasked } from '../../../src/analyze/diff/sym.js';

/**
 * The diff walk keeps a mark or TOS byte after a masked write as bits of the arriving value:
 * (x & keep) ^ xor. Checked against the kernel's formulas written out by hand
 * (xt_MARK / xt_CONNMARK: new = (old & ~mask) ^ value; save/restore: (to & ~toMask) ^ (from & fromMask)),
 * for random masks and values. Runtime: well under a second.
 */
const seed = Number(process.env.NFPROOF_SEED ?? 42);
const W = 0xffffffffn;
const u32 = fc.bigInt(0n, W);
/** A value of slot 3: the slot itself, a constant, or bits of it after one or two masked writes. */
const val: fc.Arbitrary<Val> = fc.oneof(
  fc.constant(slotVal(3)),
  u32.map((c) => constVal(c)),
  fc.tuple(u32, u32).map(([m, x]) => xorMasked(slotVal(3), m, x, W)!),
  fc.tuple(u32, u32, u32, u32).map(([m1, x1, m2, x2]) => xorMasked(xorMasked(slotVal(3), m1, x1, W)!, m2, x2, W)!),
);

describe('bits of a mark after masked writes', () => {
  it('(a & ~mask) ^ b agrees with the formula on every value of the slot', () => {
    fc.assert(
      fc.property(val, u32, val, u32, (a, mask, b, x) => {
        const r = mergeBits(a, mask, b, W);
        expect(r).toBeDefined();
        expect(evalVal(r!, x)).toBe(((evalVal(a, x) & ~mask & W) ^ evalVal(b, x)) & W);
      }),
      { seed, numRuns: 500 },
    );
  });

  it('CONNMARK --restore-mark with masks: (mark & ~nfmask) ^ (ctmark & ctmask)', () => {
    fc.assert(
      fc.property(val, u32, u32, u32, (ct, nfmask, ctmask, x) => {
        const mark = constVal(0x5n);
        const part = maskedVal(ct, ctmask, W)!;
        const r = mergeBits(mark, nfmask, part, W)!;
        expect(evalVal(r, x)).toBe(((0x5n & ~nfmask & W) ^ (evalVal(ct, x) & ctmask)) & W);
      }),
      { seed, numRuns: 300 },
    );
  });

  it('bits of two different slots have no such form', () => {
    expect(mergeBits(slotVal(3), 0xffn, slotVal(4), W)).toBeUndefined();
    // A shifted slot (TTL after forwarding) neither.
    expect(xorMasked(slotVal(3, -1n), 0xfn, 1n, W)).toBeUndefined();
  });
});
