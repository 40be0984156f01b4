import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { complement, contains, intersect, maxOf, normalize, union } from '../../src/util/intervals.js';
import { formatAddress, intervalToPrefixes, parsePrefix, prefixToInterval } from '../../src/util/ip.js';

const SEED = Number(process.env.NFPROOF_SEED ?? 42);
const small = fc.array(fc.tuple(fc.bigInt(0n, 255n), fc.bigInt(0n, 255n)).map(([a, b]) => (a <= b ? ([a, b] as const) : ([b, a] as const))), { maxLength: 6 });

describe('interval sets', () => {
  it('agree with brute-force membership for union, intersection and complement', () => {
    fc.assert(
      fc.property(small, small, fc.bigInt(0n, 255n), (a, b, v) => {
        const inA = a.some(([lo, hi]) => lo <= v && v <= hi);
        const inB = b.some(([lo, hi]) => lo <= v && v <= hi);
        const na = normalize(a);
        const nb = normalize(b);
        expect(contains(union(na, nb), v)).toBe(inA || inB);
        expect(contains(intersect(na, nb), v)).toBe(inA && inB);
        expect(contains(complement(na, maxOf(8)), v)).toBe(!inA);
      }),
      { seed: SEED, numRuns: 500 },
    );
  });

  it('merges adjacent intervals', () => {
    expect(normalize([[5n, 9n], [0n, 4n], [11n, 12n]])).toEqual([[0n, 9n], [11n, 12n]]);
  });
});

describe('prefix covers', () => {
  it('covers 10.0.0.1-10.0.0.6 with the minimal prefix list (checked by hand)', () => {
    const lo = parsePrefix('10.0.0.1')!.addr;
    const hi = parsePrefix('10.0.0.6')!.addr;
    const got = intervalToPrefixes('ipv4', [lo, hi]).map((p) => `${formatAddress('ipv4', p.addr)}/${p.len}`);
    expect(got).toEqual(['10.0.0.1/32', '10.0.0.2/31', '10.0.0.4/31', '10.0.0.6/32']);
  });

  it('round-trips random IPv6 intervals exactly', () => {
    fc.assert(
      fc.property(fc.bigInt(0n, maxOf(128)), fc.bigInt(0n, 1n << 40n), (lo, width) => {
        const hi = lo + width > maxOf(128) ? maxOf(128) : lo + width;
        const ps = intervalToPrefixes('ipv6', [lo, hi]);
        const covered = normalize(ps.map(prefixToInterval));
        expect(covered).toEqual([[lo, hi]]);
      }),
      { seed: SEED, numRuns: 200 },
    );
  });

  it('masks host bits as iptables does and says so', () => {
    const p = parsePrefix('192.168.1.77/24')!;
    expect(formatAddress('ipv4', p.addr)).toBe('192.168.1.0');
    expect(p.hostBitsSet).toBe(true);
    expect(parsePrefix('10.0.0.0/255.0.0.0')!.len).toBe(8);
    expect(parsePrefix('10.0.0.0/33')).toBeUndefined();
    expect(parsePrefix('010.1.1.1')).toBeUndefined();
  });
});
