/**
 * Small, fast 32-bit hashes on numbers (no strings, no allocation): the conntrack table's
 * bucket hash, and Bob Jenkins' lookup3 `hashword`, which the kernel's NAT uses as `jhash2`
 * to spread connections over an address range (find_best_ips_proto). The latter must give the
 * kernel's exact values, since that choice is deterministic in the kernel and the differential
 * harness compares it.
 */

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

/** One murmur3 mixing round: folds the 32-bit word `k` into the running hash `h`. */
export function mix32(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = rotl(k, 15);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = rotl(h, 13);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** murmur3's finaliser: spreads the bits of `h` so that low and high bits both vary. */
export function final32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The kernel's reciprocal_scale: maps a 32-bit hash onto [0, n) with a multiply, not a modulo. */
export function reciprocalScale(h: number, n: number): number {
  return Math.floor(((h >>> 0) * n) / 4294967296);
}

/**
 * lookup3 `hashword` (the kernel's jhash2): hashes `k` (32-bit words) with `initval`.
 * Written from the published algorithm: three 32-bit lanes, a mixing step every three words,
 * a final avalanche on the last (up to) three.
 */
export function jhash2(k: ArrayLike<number>, initval: number): number {
  let a = (0xdeadbeef + (k.length << 2) + initval) | 0;
  let b = a;
  let c = a;
  let i = 0;
  let len = k.length;
  while (len > 3) {
    a = (a + k[i]) | 0;
    b = (b + k[i + 1]) | 0;
    c = (c + k[i + 2]) | 0;
    // mix
    a = (a - c) | 0; a ^= rotl(c, 4); c = (c + b) | 0;
    b = (b - a) | 0; b ^= rotl(a, 6); a = (a + c) | 0;
    c = (c - b) | 0; c ^= rotl(b, 8); b = (b + a) | 0;
    a = (a - c) | 0; a ^= rotl(c, 16); c = (c + b) | 0;
    b = (b - a) | 0; b ^= rotl(a, 19); a = (a + c) | 0;
    c = (c - b) | 0; c ^= rotl(b, 4); b = (b + a) | 0;
    len -= 3;
    i += 3;
  }
  if (len === 0) return c >>> 0;
  if (len === 3) c = (c + k[i + 2]) | 0;
  if (len >= 2) b = (b + k[i + 1]) | 0;
  a = (a + k[i]) | 0;
  // final
  c ^= b; c = (c - rotl(b, 14)) | 0;
  a ^= c; a = (a - rotl(c, 11)) | 0;
  b ^= a; b = (b - rotl(a, 25)) | 0;
  c ^= b; c = (c - rotl(b, 16)) | 0;
  a ^= c; a = (a - rotl(c, 4)) | 0;
  b ^= a; b = (b - rotl(a, 14)) | 0;
  c ^= b; c = (c - rotl(b, 24)) | 0;
  return c >>> 0;
}

/** Byte-swaps a 32-bit word: how a network-order address reads as a u32 on a little-endian CPU. */
export function bswap32(x: number): number {
  return (((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24)) >>> 0;
}

/**
 * A small deterministic PRNG (xorshift32) for the choices the kernel makes at random
 * (port re-allocation on a clash, --random): nfproof must be reproducible, so it draws from a
 * seeded sequence and marks the result as "random" for comparisons with the kernel.
 */
export class Xorshift32 {
  private s: number;

  constructor(seed: number) {
    this.s = (seed | 0) === 0 ? 0x9e3779b9 : seed | 0;
  }

  nextU32(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x;
    return x >>> 0;
  }

  nextU16(): number {
    return this.nextU32() >>> 16;
  }
}
