import { PROTO } from '../../ir/fields.js';
import type { Hook } from '../../ir/netfilter.js';
import { bswap32, jhash2 } from '../conntrack/hash.js';
import { IPS, IPS_NAT_MASK } from '../conntrack/status.js';
import { type CtExt } from '../conntrack/table.js';
import { type Tuple, hasPorts, invertTuple, isIcmpProto, wordsToAddr } from '../conntrack/tuple.js';
import { CTINFO, type Frame } from '../frame.js';
import type { Packet } from '../packet.js';
import { ACCEPT, DROP } from '../rules/exec.js';
import type { FamilyState } from '../state.js';

/**
 * NAT bindings (net/netfilter/nf_nat_core.c, nf_nat_proto.c, nf_nat_masquerade.c,
 * nf_nat_redirect.c, xt_NETMAP.c), rewritten for nfproof.
 *
 * A binding is made once per connection and manip type (SRC at POSTROUTING/INPUT, DST at
 * PREROUTING/OUTPUT), by a NAT target in the nat table or, when the chain ends without one, as
 * a null binding to the same address. Making it means choosing a unique tuple in the asked
 * range (get_unique_tuple) and storing its inverse as the connection's REPLY tuple; every
 * packet of the connection is then rewritten from the tuples (nf_nat_packet), in both
 * directions. Where the kernel draws at random (a port on a clash, --random), nfproof draws
 * from a seeded sequence and records which reply-tuple field was drawn.
 */

export type Manip = 'src' | 'dst';

export const RANGE = {
  MAP_IPS: 1,
  PROTO_SPECIFIED: 2,
  PROTO_RANDOM: 4,
  PERSISTENT: 8,
  PROTO_RANDOM_FULLY: 16,
  PROTO_OFFSET: 32,
} as const;
const RANDOM_ALL = RANGE.PROTO_RANDOM | RANGE.PROTO_RANDOM_FULLY;

/** struct nf_nat_range2, addresses as words (most significant first). */
export interface NatRange2 {
  flags: number;
  readonly minAddr: Uint32Array;
  readonly maxAddr: Uint32Array;
  minProto: number;
  maxProto: number;
  baseProto: number;
}

export function newRange(): NatRange2 {
  return { flags: 0, minAddr: new Uint32Array(4), maxAddr: new Uint32Array(4), minProto: 0, maxProto: 0, baseProto: 0 };
}

export function resetRange(r: NatRange2): NatRange2 {
  r.flags = 0;
  r.minAddr.fill(0);
  r.maxAddr.fill(0);
  r.minProto = 0;
  r.maxProto = 0;
  r.baseProto = 0;
  return r;
}

export function hookManip(hook: Hook): Manip {
  return hook === 'PREROUTING' || hook === 'OUTPUT' ? 'dst' : 'src';
}

function statusBit(m: Manip): number {
  return m === 'src' ? IPS.SRC_NAT : IPS.DST_NAT;
}

function doneBit(m: Manip): number {
  return m === 'src' ? IPS.SRC_NAT_DONE : IPS.DST_NAT_DONE;
}

export function natInitialized(S: FamilyState, i: number, m: Manip): boolean {
  return (S.table.status[i] & doneBit(m)) !== 0;
}

/** Compares two address word arrays (unsigned, most significant first). */
function cmpAddr(a: Uint32Array, b: Uint32Array, words: number): number {
  for (let k = 0; k < words; k++) if (a[k] !== b[k]) return a[k] < b[k] ? -1 : 1;
  return 0;
}

function l4InRange(t: Tuple, m: Manip, min: number, max: number): boolean {
  if (isIcmpProto(t.proto)) return t.sport >= min && t.sport <= max;
  if (hasPorts(t.proto) || t.proto === PROTO.gre) {
    const port = m === 'src' ? t.sport : t.dport;
    return port >= min && port <= max;
  }
  return true;
}

/** in_range: would source-mapping to tuple `t` fit the range? */
function inRange(S: FamilyState, t: Tuple, r: NatRange2): boolean {
  if (r.flags & RANGE.MAP_IPS && (cmpAddr(t.src, r.minAddr, S.words) < 0 || cmpAddr(t.src, r.maxAddr, S.words) > 0)) return false;
  if (!(r.flags & RANGE.PROTO_SPECIFIED)) return true;
  return l4InRange(t, 'src', r.minProto, r.maxProto);
}

/** nf_nat_used_tuple: does another connection already receive replies on this tuple's inverse? */
function usedTuple(S: FamilyState, t: Tuple, ct: number, now: number): boolean {
  const reply = S.u1;
  invertTuple(t, reply, S.words);
  return S.table.isTaken(reply, ct, now, S.u2);
}

/**
 * find_appropriate_src: an existing connection from the same source (address, port, protocol)
 * already mapped within this range keeps its mapping for the new one ("endpoint-independent"
 * mapping; newest connection first).
 */
function findAppropriateSrc(S: FamilyState, orig: Tuple, out: Tuple, r: NatRange2, zone: number, ct: number, now: number): boolean {
  const table = S.table;
  const reply = S.u3;
  for (let c = table.nextBySource(orig, zone, -1); c >= 0; c = table.nextBySource(orig, zone, c)) {
    if (c === ct || table.expires[c] <= now) continue;
    table.getTuple(c, 1, reply);
    invertTuple(reply, out, S.words);
    out.dst.set(orig.dst);
    out.dport = orig.dport;
    out.proto = orig.proto;
    if (isIcmpProto(orig.proto)) out.dport = orig.dport;
    if (inRange(S, out, r)) return true;
  }
  return false;
}

/** reciprocal_scale on full 32-bit operands, exactly. */
function scale32(j: number, dist: number): number {
  return Number((BigInt(j >>> 0) * BigInt(dist >>> 0)) >> 32n);
}

/**
 * find_best_ips_proto: picks the address inside a multi-address range by hashing source and
 * destination (jhash2 over the address as the kernel lays it out in memory, little-endian
 * x86): the same client goes to the same NAT address, deterministically.
 */
function findBestIps(S: FamilyState, t: Tuple, r: NatRange2, m: Manip, zone: number): void {
  if (!(r.flags & RANGE.MAP_IPS)) return;
  const v = m === 'src' ? t.src : t.dst;
  const words = S.words;
  if (cmpAddr(r.minAddr, r.maxAddr, words) === 0) {
    for (let k = 0; k < words; k++) v[k] = r.minAddr[k];
    return;
  }
  // union nf_inet_addr is 16 bytes: IPv4 hashes its one word followed by three zero words.
  const key = [0, 0, 0, 0];
  for (let k = 0; k < words; k++) key[k] = bswap32(t.src[k]);
  const max = words - 1;
  const persistent = (r.flags & RANGE.PERSISTENT) !== 0;
  let j = jhash2(key, persistent ? 0 : (bswap32(t.dst[max]) ^ zone) >>> 0);
  let full = false;
  for (let k = 0; k <= max; k++) {
    let minip: number;
    let dist: number;
    if (!full) {
      minip = r.minAddr[k];
      dist = (r.maxAddr[k] - minip + 1) >>> 0;
    } else {
      minip = 0;
      dist = 0xffffffff;
    }
    v[k] = (minip + scale32(j, dist)) >>> 0;
    if (v[k] !== r.maxAddr[k]) full = true;
    if (!persistent) j = (j ^ bswap32(t.dst[k])) >>> 0;
  }
}

/**
 * nf_nat_l4proto_unique_tuple: find a port (ICMP: id) that makes the tuple unique. Without a
 * given range the source port stays in its class: below 512 → 1-511, below 1024 → 600-1023,
 * else 1024-65535 (privileged ports stay privileged); a DNAT without a port range keeps the
 * port. The search starts at a random offset (nfproof: seeded) and tries at most 128 ports,
 * then smaller windows at new offsets. Returns whether the port was drawn at random.
 */
function uniqueL4(S: FamilyState, t: Tuple, r: NatRange2, m: Manip, ct: number, now: number): boolean {
  let key: 'sport' | 'dport';
  let min: number;
  let size: number;
  if (isIcmpProto(t.proto)) {
    key = 'sport';
    if (!(r.flags & RANGE.PROTO_SPECIFIED)) {
      min = 0;
      size = 65536;
    } else {
      min = r.minProto;
      size = r.maxProto - r.minProto + 1;
    }
  } else if (hasPorts(t.proto)) {
    key = m === 'src' ? 'sport' : 'dport';
    if (!(r.flags & RANGE.PROTO_SPECIFIED)) {
      if (m === 'dst') return false;
      const port = t[key];
      if (port < 1024) {
        if (port < 512) {
          min = 1;
          size = 511;
        } else {
          min = 600;
          size = 1023 - 600 + 1;
        }
      } else {
        min = 1024;
        size = 65535 - 1024 + 1;
      }
    } else {
      let lo = r.minProto;
      let hi = r.maxProto;
      if (hi < lo) [lo, hi] = [hi, lo];
      min = lo;
      size = hi - lo + 1;
    }
  } else {
    return false;
  }
  let off = r.flags & RANGE.PROTO_OFFSET ? (t[key] - r.baseProto) & 0xffff : S.rng.nextU16();
  let attempts = Math.min(size, 128);
  for (;;) {
    for (let n = 0; n < attempts; n++, off = (off + 1) & 0xffff) {
      t[key] = min + (off % size);
      if (!usedTuple(S, t, ct, now)) return size > 1 && (r.flags & RANGE.PROTO_OFFSET) === 0;
    }
    if (attempts >= size || attempts < 16) return size > 1 && (r.flags & RANGE.PROTO_OFFSET) === 0;
    attempts = Math.floor(attempts / 2);
    off = S.rng.nextU16();
  }
}

/** get_unique_tuple; returns whether the l4 part was drawn at random. */
function uniqueTuple(S: FamilyState, out: Tuple, orig: Tuple, r: NatRange2, ct: number, m: Manip, now: number): boolean {
  const zone = S.table.zoneOf(ct);
  if (m === 'src' && !(r.flags & RANDOM_ALL)) {
    if (inRange(S, orig, r)) {
      if (!usedTuple(S, orig, ct, now)) {
        out.copyFrom(orig);
        return false;
      }
    } else if (findAppropriateSrc(S, orig, out, r, zone, ct, now)) {
      if (!usedTuple(S, out, ct, now)) return false;
    }
  }
  out.copyFrom(orig);
  findBestIps(S, out, r, m, zone);
  if (!(r.flags & RANDOM_ALL)) {
    if (r.flags & RANGE.PROTO_SPECIFIED) {
      if (
        !(r.flags & RANGE.PROTO_OFFSET) &&
        l4InRange(out, m, r.minProto, r.maxProto) &&
        (r.minProto === r.maxProto || !usedTuple(S, out, ct, now))
      ) {
        return false;
      }
    } else if (!usedTuple(S, out, ct, now)) {
      return false;
    }
  }
  return uniqueL4(S, out, r, m, ct, now);
}

/**
 * nf_nat_setup_info: bind connection `i` for manip `m` within range `r`. The connection must
 * still be unconfirmed (its first packet is on its way).
 */
export function setupInfo(S: FamilyState, i: number, r: NatRange2, m: Manip, now: number): void {
  const table = S.table;
  if (table.isConfirmed(i) || natInitialized(S, i, m)) return;
  const curr = S.n1;
  invertTuple(table.getTuple(i, 1, S.t3), curr, S.words);
  const next = S.n2;
  const random = uniqueTuple(S, next, curr, r, i, m, now);
  if (!next.equals(curr, S.words)) {
    const reply = S.n3;
    invertTuple(next, reply, S.words);
    table.setTuple(i, 1, reply);
    table.status[i] |= statusBit(m);
    if (random) {
      const ext: CtExt = (table.ext[i] ??= {});
      const field = isIcmpProto(next.proto) ? 'icmpId' : m === 'src' ? 'dport' : 'sport';
      (ext.randomized ??= []).push(field);
    }
  }
  if (m === 'src') table.addBySource(i);
  table.status[i] |= doneBit(m);
}

/** nf_nat_alloc_null_binding: map to the address the connection already has (ports may still move on a clash). */
export function nullBinding(S: FamilyState, i: number, m: Manip, now: number): void {
  const r = resetRange(S.r1);
  r.flags = RANGE.MAP_IPS;
  const reply = S.table.getTuple(i, 1, S.t3);
  const ip = m === 'src' ? reply.dst : reply.src;
  r.minAddr.set(ip);
  r.maxAddr.set(ip);
  setupInfo(S, i, r, m, now);
}

/**
 * nf_nat_manip_pkt: rewrite the packet to look like `target` on the manipulated side
 * (addresses, ports; the ICMP echo id for ICMP, whatever the manip type).
 */
export function manipPacket(S: FamilyState, p: Packet, target: Tuple, m: Manip): void {
  if (isIcmpProto(p.proto) && p.icmp) {
    // icmp_manip_pkt rewrites the echo id field; ICMPv6 only for echo request/reply.
    if (p.proto === PROTO.icmp || p.icmp.type === 128 || p.icmp.type === 129) p.icmp.id = target.sport;
  } else if (hasPorts(p.proto) && !p.fragment) {
    if (m === 'src') {
      if (p.sport !== undefined) p.sport = target.sport;
    } else if (p.dport !== undefined) p.dport = target.dport;
  }
  if (m === 'src') p.src = wordsToAddr(S.family, target.src);
  else p.dst = wordsToAddr(S.family, target.dst);
}

/** nf_nat_packet: apply the connection's binding for this hook's manip type and the packet's direction. */
export function natPacket(S: FamilyState, f: Frame, m: Manip): void {
  const i = f.ct;
  const dir = f.ctDir;
  let bit = statusBit(m);
  if (dir === 1) bit ^= IPS_NAT_MASK;
  if (!(S.table.status[i] & bit)) return;
  const target = S.t3;
  invertTuple(S.table.getTuple(i, (1 - dir) as 0 | 1, S.t4), target, S.words);
  manipPacket(S, f.pkt, target, m);
  if (S.words === 1) {
    // The tuple already holds the IPv4 address as a number: no bigint conversion needed.
    if (m === 'src') f.srcN = target.src[0];
    else f.dstN = target.dst[0];
  }
}

/**
 * nf_nat_icmp_reply_translation: an ICMP error RELATED to a NATed connection gets its quoted
 * packet translated back (the inner header is a packet of the connection going the other way)
 * and its outer header translated like a packet of the connection.
 */
export function icmpReplyTranslation(S: FamilyState, f: Frame, m: Manip): number {
  const i = f.ct;
  const dir = f.ctDir;
  const table = S.table;
  const p = f.pkt;
  const inner = p.icmp?.inner;
  if (!inner) return ACCEPT;
  const redirect = (S.family === 'ipv4' && p.icmp?.type === 5) || (S.family === 'ipv6' && p.icmp?.type === 137);
  if (redirect) {
    // Redirects for NATed connections would let the hosts bypass us: the kernel drops them.
    const st = table.status[i];
    if ((st & (IPS.SRC_NAT_DONE | IPS.DST_NAT_DONE)) !== (IPS.SRC_NAT_DONE | IPS.DST_NAT_DONE) || st & IPS_NAT_MASK) return DROP;
  }
  let bit = statusBit(m);
  if (dir === 1) bit ^= IPS_NAT_MASK;
  if (!(table.status[i] & bit)) return ACCEPT;
  const other = table.getTuple(i, (1 - dir) as 0 | 1, S.t4);
  manipPacket(S, inner, other, m === 'src' ? 'dst' : 'src');
  const target = S.t3;
  invertTuple(other, target, S.words);
  // The kernel runs the outer rewrite with an ICMP tuple, so icmp_manip_pkt also writes the
  // inverted tuple's port into bytes 4-5 of the error (its unused field). nfproof's packet
  // model has no such field for errors (wire.ts sends it as zero); only the address changes here.
  if (m === 'src') p.src = wordsToAddr(S.family, target.src);
  else p.dst = wordsToAddr(S.family, target.dst);
  f.refresh();
  return ACCEPT;
}

/** Whether the frame's ctinfo makes it a connection's first packet for NAT purposes. */
export function natFirstPacket(ctinfo: number): boolean {
  return ctinfo === CTINFO.NEW || ctinfo === CTINFO.RELATED || ctinfo === CTINFO.RELATED_REPLY;
}
