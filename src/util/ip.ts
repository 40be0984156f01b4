import ipaddr from 'ipaddr.js';
import { type Interval, type IntervalSet, maxOf, normalize } from './intervals.js';

/**
 * IP address maths on bigint values. Parsing and printing go through ipaddr.js (a well-kept
 * library that knows every IPv4/IPv6 notation); nfproof itself only does interval arithmetic.
 */
export type Family = 'ipv4' | 'ipv6';
export const FAMILIES: readonly Family[] = ['ipv4', 'ipv6'];

export function familyBits(f: Family): number {
  return f === 'ipv4' ? 32 : 128;
}

export function familyMax(f: Family): bigint {
  return f === 'ipv4' ? maxOf(32) : maxOf(128);
}

export interface IpAddress {
  readonly family: Family;
  readonly value: bigint;
}

export interface IpPrefix {
  readonly family: Family;
  /** Network address (host bits cleared). */
  readonly addr: bigint;
  readonly len: number;
}

export interface IpRange {
  readonly family: Family;
  readonly first: bigint;
  readonly last: bigint;
}

function bytesToBigint(bytes: readonly number[]): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

function bigintToBytes(v: bigint, n: number): number[] {
  const out = new Array<number>(n);
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

const DOTTED_QUAD = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/;

/** Parses a plain address (no prefix, no brackets). IPv4-mapped IPv6 stays IPv6. */
export function parseAddress(text: string): IpAddress | undefined {
  if (text.includes(':')) {
    // ipaddr.js reads an embedded dotted quad as IPv4-mapped whatever precedes it ("::1.2.3.4"
    // became ::ffff:1.2.3.4), yet iptables-save prints ::/96 addresses that way: spell the
    // quad as two hex groups first.
    const embedded = /^(.*:)(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text);
    if (embedded) {
      const v4 = parseAddress(embedded[2]);
      if (!v4) return undefined;
      const n = Number(v4.value);
      text = `${embedded[1]}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
    }
    if (!ipaddr.IPv6.isValid(text)) return undefined;
    const a = ipaddr.IPv6.parse(text);
    if (a.zoneId) return undefined;
    return { family: 'ipv6', value: bytesToBigint(a.toByteArray()) };
  }
  // Only dotted quads: ipaddr.js also accepts "10" or "0x0a.1" forms that iptables users never mean.
  // Decimal octets without leading zeros (as ipaddr.js's isValidFourPartDecimal), read directly:
  // importing a large dump parses tens of thousands of addresses.
  const m = DOTTED_QUAD.exec(text);
  if (!m) return undefined;
  let value = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return { family: 'ipv4', value: BigInt(value) };
}

export function formatAddress(family: Family, value: bigint): string {
  if (family === 'ipv4') return bigintToBytes(value, 4).join('.');
  return ipaddr.fromByteArray(bigintToBytes(value, 16)).toString();
}

export function prefixMask(family: Family, len: number): bigint {
  const bits = familyBits(family);
  return len === 0 ? 0n : (maxOf(len) << BigInt(bits - len)) & maxOf(bits);
}

/**
 * Parses `addr/len` or a bare address (a host prefix). Also accepts a dotted netmask
 * (`10.0.0.0/255.0.0.0`), as iptables does. `hostBitsSet` tells the caller to warn.
 */
export function parsePrefix(text: string): (IpPrefix & { hostBitsSet: boolean }) | undefined {
  const slash = text.indexOf('/');
  const a = parseAddress(slash < 0 ? text : text.slice(0, slash));
  if (!a) return undefined;
  const bits = familyBits(a.family);
  let len = bits;
  if (slash >= 0) {
    const lenText = text.slice(slash + 1);
    if (/^\d{1,3}$/.test(lenText)) {
      len = Number(lenText);
    } else {
      const mask = parseAddress(lenText);
      if (!mask || mask.family !== a.family) return undefined;
      const l = maskToLength(a.family, mask.value);
      if (l === undefined) return undefined;
      len = l;
    }
    if (len > bits) return undefined;
  }
  const addr = a.value & prefixMask(a.family, len);
  return { family: a.family, addr, len, hostBitsSet: addr !== a.value };
}

function maskToLength(family: Family, mask: bigint): number | undefined {
  const bits = familyBits(family);
  for (let len = 0; len <= bits; len++) if (prefixMask(family, len) === mask) return len;
  return undefined;
}

export function formatPrefix(p: IpPrefix): string {
  return `${formatAddress(p.family, p.addr)}/${p.len}`;
}

export function prefixToInterval(p: IpPrefix): Interval {
  const hostBits = BigInt(familyBits(p.family) - p.len);
  return [p.addr, p.addr | ((1n << hostBits) - 1n)];
}

/** Parses `a-b` (both the same family, a ≤ b). */
export function parseRange(text: string): IpRange | undefined {
  const dash = text.indexOf('-');
  if (dash < 0) return undefined;
  const a = parseAddress(text.slice(0, dash));
  const b = parseAddress(text.slice(dash + 1));
  if (!a || !b || a.family !== b.family || a.value > b.value) return undefined;
  return { family: a.family, first: a.value, last: b.value };
}

export function formatRange(r: IpRange): string {
  return `${formatAddress(r.family, r.first)}-${formatAddress(r.family, r.last)}`;
}

/** Minimal list of prefixes whose union is exactly [lo, hi]. */
export function intervalToPrefixes(family: Family, [lo, hi]: Interval): IpPrefix[] {
  const bits = familyBits(family);
  const out: IpPrefix[] = [];
  let cur = lo;
  while (cur <= hi) {
    // Largest aligned block starting at cur that stays within hi.
    let size = 0;
    while (size < bits) {
      const next = size + 1;
      const blockMask = (1n << BigInt(next)) - 1n;
      if ((cur & blockMask) !== 0n || cur + blockMask > hi) break;
      size = next;
    }
    out.push({ family, addr: cur, len: bits - size });
    cur += 1n << BigInt(size);
  }
  return out;
}

export function setToPrefixes(family: Family, set: IntervalSet): IpPrefix[] {
  return set.flatMap((iv) => intervalToPrefixes(family, iv));
}

/** The interval set of a list of prefixes and ranges, normalized. */
export function addressSetOf(items: readonly (IpPrefix | IpRange)[]): IntervalSet {
  return normalize(items.map((i) => ('len' in i ? prefixToInterval(i) : ([i.first, i.last] as const))));
}

export function isFullRange(family: Family, set: IntervalSet): boolean {
  return set.length === 1 && set[0][0] === 0n && set[0][1] === familyMax(family);
}
