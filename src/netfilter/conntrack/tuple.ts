import { PROTO } from '../../ir/fields.js';
import type { Family } from '../../util/ip.js';
import type { CtTuple } from '../api.js';

/**
 * A conntrack tuple in the numeric form the table stores: addresses as 32-bit words (one for
 * IPv4, four for IPv6, most significant first), 16-bit "ports", the protocol. For ICMP and
 * ICMPv6 the kernel keeps the echo id on the source side and type/code on the destination side
 * (nf_conntrack_tuple: src.u.icmp.id, dst.u.icmp.type/code); we do the same with
 * sport = id and dport = type << 8 | code.
 *
 * Tuples are scratch objects: the hot path reuses a few of them instead of allocating.
 */
export class Tuple {
  readonly src = new Uint32Array(4);
  readonly dst = new Uint32Array(4);
  sport = 0;
  dport = 0;
  proto = 0;

  copyFrom(o: Tuple): this {
    this.src.set(o.src);
    this.dst.set(o.dst);
    this.sport = o.sport;
    this.dport = o.dport;
    this.proto = o.proto;
    return this;
  }

  equals(o: Tuple, words: number): boolean {
    if (this.proto !== o.proto || this.sport !== o.sport || this.dport !== o.dport) return false;
    for (let k = 0; k < words; k++) if (this.src[k] !== o.src[k] || this.dst[k] !== o.dst[k]) return false;
    return true;
  }
}

export function wordsOf(family: Family): 1 | 4 {
  return family === 'ipv4' ? 1 : 4;
}

/** Writes an address into 32-bit words (most significant first). */
export function addrToWords(family: Family, a: bigint, out: Uint32Array): void {
  if (family === 'ipv4') {
    out[0] = Number(a);
    return;
  }
  out[0] = Number(BigInt.asUintN(32, a >> 96n));
  out[1] = Number(BigInt.asUintN(32, a >> 64n));
  out[2] = Number(BigInt.asUintN(32, a >> 32n));
  out[3] = Number(BigInt.asUintN(32, a));
}

export function wordsToAddr(family: Family, w: ArrayLike<number>, off = 0): bigint {
  if (family === 'ipv4') return BigInt(w[off]);
  return (BigInt(w[off]) << 96n) | (BigInt(w[off + 1]) << 64n) | (BigInt(w[off + 2]) << 32n) | BigInt(w[off + 3]);
}

export function isIcmpProto(proto: number): boolean {
  return proto === PROTO.icmp || proto === PROTO.icmpv6;
}

/** Protocols whose tuple carries ports (the kernel's port-based l4 trackers). */
export function hasPorts(proto: number): boolean {
  return proto === PROTO.tcp || proto === PROTO.udp || proto === PROTO.udplite || proto === PROTO.sctp || proto === PROTO.dccp;
}

/** ICMP request/reply pairs conntrack can invert (nf_conntrack_proto_icmp.c invmap). */
const ICMP_INVERSE: Readonly<Record<number, number>> = { 8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17 };
const ICMPV6_INVERSE: Readonly<Record<number, number>> = { 128: 129, 129: 128, 139: 140, 140: 139 };

export function icmpInverseType(proto: number, type: number): number | undefined {
  return proto === PROTO.icmp ? ICMP_INVERSE[type] : ICMPV6_INVERSE[type];
}

/**
 * nf_ct_invert_tuple: swap the sides. Returns false when the protocol cannot invert it (an ICMP
 * type without a reply type), in which case conntrack cannot track the packet.
 */
export function invertTuple(t: Tuple, out: Tuple, words: number): boolean {
  if (isIcmpProto(t.proto)) {
    const inv = icmpInverseType(t.proto, t.dport >> 8);
    if (inv === undefined) return false;
    const code = t.dport & 0xff;
    for (let k = 0; k < words; k++) {
      const s = t.src[k];
      out.src[k] = t.dst[k];
      out.dst[k] = s;
    }
    out.sport = t.sport;
    out.dport = (inv << 8) | code;
    out.proto = t.proto;
    return true;
  }
  for (let k = 0; k < words; k++) {
    const s = t.src[k];
    out.src[k] = t.dst[k];
    out.dst[k] = s;
  }
  const sp = t.sport;
  out.sport = t.dport;
  out.dport = sp;
  out.proto = t.proto;
  return true;
}

/** The public (snapshot) form of a tuple. */
export function tupleSnapshot(family: Family, t: Tuple): CtTuple {
  const base = { src: wordsToAddr(family, t.src), dst: wordsToAddr(family, t.dst), proto: t.proto };
  if (isIcmpProto(t.proto)) return { ...base, icmpType: t.dport >> 8, icmpCode: t.dport & 0xff, icmpId: t.sport };
  if (hasPorts(t.proto)) return { ...base, sport: t.sport, dport: t.dport };
  return base;
}
