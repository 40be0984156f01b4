import { PROTO } from '../ir/fields.js';
import type { Family } from '../util/ip.js';
import { type IcmpHeader, type Packet, type TcpHeader, transportLength } from './packet.js';

/**
 * Packets on the wire: nfproof's Packet model ⇄ the bytes of an IPv4/IPv6 datagram (and an
 * Ethernet frame around it). The kernel harness sends these bytes into real network
 * namespaces and decodes what comes out; the simulator's CLI uses them for pcap input/output.
 *
 * What is modelled, byte for byte: IPv4 (no options) and IPv6 (no extension headers when
 * encoding; common ones skipped when decoding), TCP with the MSS / SACK-permitted / window
 * scale options, UDP and UDP-Lite, ICMP and ICMPv6 echo (id, sequence, data) and errors that
 * quote an inner packet, other protocols as opaque payload, and every checksum. TCP options are
 * laid out in 4-byte units (`MSS`, `NOP NOP SACK_PERM`, `NOP WSCALE`) so that the length agrees
 * with transportLength() in packet.ts, which the simulator uses for byte counters.
 *
 * Round trip: decodeIp(encodeIp(p)).packet equals normalizePacket(p) (a fast-check property
 * in test/netfilter/wire.test.ts).
 */

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_VLAN = 0x8100;

const IPV4_HEADER = 20;
const IPV6_HEADER = 40;
const TCP_HEADER = 20;

/** ICMP types whose header carries an identifier and sequence number (echo, timestamp, info, mask). */
const ICMP4_ID_TYPES: ReadonlySet<number> = new Set([0, 8, 13, 14, 15, 16, 17, 18]);
const ICMP6_ID_TYPES: ReadonlySet<number> = new Set([128, 129]);
/** ICMP types that quote the packet that caused them. */
const ICMP4_ERROR_TYPES: ReadonlySet<number> = new Set([3, 4, 5, 11, 12]);
const ICMP6_ERROR_TYPES: ReadonlySet<number> = new Set([1, 2, 3, 4]);

export function isIcmpProto(family: Family, proto: number): boolean {
  return family === 'ipv4' ? proto === PROTO.icmp : proto === PROTO.icmpv6;
}

/** An ICMP/ICMPv6 type that quotes an offending packet (destination unreachable, time exceeded…). */
export function isIcmpErrorType(family: Family, type: number): boolean {
  return (family === 'ipv4' ? ICMP4_ERROR_TYPES : ICMP6_ERROR_TYPES).has(type);
}

/** Fragmentation needed (IPv4) and packet too big (IPv6) carry the next-hop MTU. */
function carriesMtu(family: Family, type: number, code: number): boolean {
  return family === 'ipv4' ? type === 3 && code === 4 : type === 2;
}

function hasIcmpId(family: Family, type: number): boolean {
  return (family === 'ipv4' ? ICMP4_ID_TYPES : ICMP6_ID_TYPES).has(type);
}

/** Protocols whose first four bytes are source and destination port and that we lay out like UDP. */
function isUdpLike(proto: number): boolean {
  return proto === PROTO.udp || proto === PROTO.udplite;
}

// ---------------------------------------------------------------------------------------------
// Checksums

/** One's-complement sum of 16-bit words (not yet folded or inverted). */
function sum16(bytes: Uint8Array, start = 0, end = bytes.length, acc = 0): number {
  let s = acc;
  let i = start;
  for (; i + 1 < end; i += 2) s += (bytes[i] << 8) | bytes[i + 1];
  if (i < end) s += bytes[i] << 8;
  return s;
}

function fold(s: number): number {
  let x = s;
  while (x > 0xffff) x = (x & 0xffff) + Math.floor(x / 0x10000);
  return x;
}

/** The Internet checksum (RFC 1071) of a byte range, ready to store. */
export function internetChecksum(bytes: Uint8Array, start = 0, end = bytes.length, acc = 0): number {
  return ~fold(sum16(bytes, start, end, acc)) & 0xffff;
}

function addrBytes(family: Family, value: bigint): Uint8Array {
  const n = family === 'ipv4' ? 4 : 16;
  const out = new Uint8Array(n);
  let v = value;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

function readAddr(bytes: Uint8Array, at: number, n: number): bigint {
  let v = 0n;
  for (let i = 0; i < n; i++) v = (v << 8n) | BigInt(bytes[at + i]);
  return v;
}

/** Sum of the pseudo-header that TCP, UDP and ICMPv6 checksums cover. */
function pseudoHeaderSum(family: Family, src: Uint8Array, dst: Uint8Array, proto: number, length: number): number {
  let s = sum16(src) + sum16(dst);
  if (family === 'ipv4') return s + proto + length;
  s += Math.floor(length / 0x10000) + (length & 0xffff);
  return s + proto;
}

// ---------------------------------------------------------------------------------------------
// Encoding

/** TCP option bytes in the order Linux sends them, each padded to 4 bytes. */
function tcpOptions(tcp: TcpHeader): number[] {
  const out: number[] = [];
  if (tcp.mss !== undefined) out.push(2, 4, (tcp.mss >> 8) & 0xff, tcp.mss & 0xff);
  if (tcp.sackPerm) out.push(1, 1, 4, 2);
  if (tcp.wscale !== undefined) out.push(1, 3, 3, tcp.wscale & 0xff);
  return out;
}

/** The transport part (header + data) of a packet, with its checksum left at zero. */
function encodeTransport(p: Packet): Uint8Array {
  const len = transportLength(p);
  const out = new Uint8Array(len);
  const dv = new DataView(out.buffer);
  if (p.fragment) {
    out.set(p.payload.subarray(0, len));
    return out;
  }
  if (p.tcp) {
    const opts = tcpOptions(p.tcp);
    const headerLen = TCP_HEADER + opts.length;
    dv.setUint16(0, p.sport ?? 0);
    dv.setUint16(2, p.dport ?? 0);
    dv.setUint32(4, p.tcp.seq >>> 0);
    dv.setUint32(8, p.tcp.ack >>> 0);
    out[12] = (headerLen / 4) << 4;
    out[13] = p.tcp.flags & 0xff;
    dv.setUint16(14, p.tcp.window & 0xffff);
    out.set(opts, TCP_HEADER);
    out.set(p.payload, headerLen);
    return out;
  }
  if (p.icmp) {
    out[0] = p.icmp.type;
    out[1] = p.icmp.code;
    if (p.icmp.inner) {
      if (p.icmp.mtu !== undefined && carriesMtu(p.family, p.icmp.type, p.icmp.code)) {
        if (p.family === 'ipv4') dv.setUint16(6, p.icmp.mtu);
        else dv.setUint32(4, p.icmp.mtu);
      }
      out.set(encodeIp(p.icmp.inner).subarray(0, len - 8), 8);
    } else if (hasIcmpId(p.family, p.icmp.type)) {
      dv.setUint16(4, p.icmp.id ?? 0);
      dv.setUint16(6, p.icmp.seq ?? 0);
      out.set(p.payload, 8);
    } else {
      // Other types: the four rest-of-header bytes are not modelled (sent as zero), data follows.
      out.set(p.payload, 8);
    }
    return out;
  }
  if (p.sport !== undefined) {
    dv.setUint16(0, p.sport);
    dv.setUint16(2, p.dport ?? 0);
    // UDP-Lite puts the checksum coverage here; 0 means "the whole datagram".
    dv.setUint16(4, p.proto === PROTO.udplite ? 0 : len);
    out.set(p.payload, 8);
    return out;
  }
  out.set(p.payload);
  return out;
}

/** Where the transport checksum sits, or undefined when the protocol has none we compute. */
function checksumOffset(p: Packet): number | undefined {
  if (p.fragment) return undefined;
  if (p.tcp) return 16;
  if (p.icmp) return 2;
  if (isUdpLike(p.proto) && p.sport !== undefined) return 6;
  return undefined;
}

/** Encodes the packet as an IP datagram (no link layer), with lengths and checksums filled in. */
export function encodeIp(p: Packet): Uint8Array {
  const l4 = encodeTransport(p);
  const src = addrBytes(p.family, p.src);
  const dst = addrBytes(p.family, p.dst);
  const csumAt = checksumOffset(p);
  if (csumAt !== undefined) {
    // ICMPv4 is the one transport checksum without a pseudo-header.
    const pseudo = p.icmp && p.family === 'ipv4' ? 0 : pseudoHeaderSum(p.family, src, dst, p.proto, l4.length);
    let c = internetChecksum(l4, 0, l4.length, pseudo);
    if (c === 0 && isUdpLike(p.proto)) c = 0xffff; // zero means "no checksum" for UDP
    l4[csumAt] = c >> 8;
    l4[csumAt + 1] = c & 0xff;
  }
  if (p.family === 'ipv4') {
    const out = new Uint8Array(IPV4_HEADER + l4.length);
    const dv = new DataView(out.buffer);
    out[0] = 0x45;
    out[1] = (p.tos ?? 0) & 0xff;
    dv.setUint16(2, out.length);
    dv.setUint16(4, (p.ipId ?? 0) & 0xffff);
    // A non-first fragment: offset one 8-byte unit, "more fragments" clear.
    dv.setUint16(6, p.fragment ? 1 : 0);
    out[8] = p.ttl & 0xff;
    out[9] = p.proto;
    out.set(src, 12);
    out.set(dst, 16);
    dv.setUint16(10, internetChecksum(out, 0, IPV4_HEADER));
    out.set(l4, IPV4_HEADER);
    return out;
  }
  const frag = p.fragment ? 8 : 0;
  const out = new Uint8Array(IPV6_HEADER + frag + l4.length);
  const dv = new DataView(out.buffer);
  const tc = (p.tos ?? 0) & 0xff;
  dv.setUint32(0, (6 << 28) | (tc << 20));
  dv.setUint16(4, frag + l4.length);
  out[6] = p.fragment ? 44 : p.proto;
  out[7] = p.ttl & 0xff;
  out.set(src, 8);
  out.set(dst, 24);
  if (p.fragment) {
    out[40] = p.proto;
    dv.setUint16(42, 1 << 3); // offset one unit, M clear
  }
  out.set(l4, IPV6_HEADER + frag);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoding

export interface Decoded {
  readonly packet: Packet;
  /** Every checksum we could verify was right (IPv4 header, TCP/UDP/ICMP). Quoted inner packets are not verified. */
  readonly checksumOk: boolean;
  /** Things the model drops or could not read (unknown TCP options, IP options, truncation…). */
  readonly notes: readonly string[];
}

export type DecodeResult = ({ readonly ok: true } & Decoded) | { readonly ok: false; readonly error: string };

interface DecodeOptions {
  /**
   * The bytes are an ICMP error's quote of another packet: lengths in the headers may promise
   * more than is there, and missing transport fields read as zero.
   */
  readonly quoted?: boolean;
}

function fail(error: string): DecodeResult {
  return { ok: false, error };
}

/** Decodes an IP datagram (version taken from the first nibble). */
export function decodeIp(bytes: Uint8Array, opts: DecodeOptions = {}): DecodeResult {
  if (bytes.length < 1) return fail('empty packet');
  const version = bytes[0] >> 4;
  if (version === 4) return decodeIpv4(bytes, opts);
  if (version === 6) return decodeIpv6(bytes, opts);
  return fail(`IP version ${version} is neither 4 nor 6`);
}

function decodeIpv4(bytes: Uint8Array, opts: DecodeOptions): DecodeResult {
  if (bytes.length < IPV4_HEADER) return fail(`IPv4 header needs 20 bytes, got ${bytes.length}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ihl = (bytes[0] & 0x0f) * 4;
  if (ihl < IPV4_HEADER || ihl > bytes.length) return fail(`bad IPv4 header length ${ihl}`);
  const notes: string[] = [];
  if (ihl > IPV4_HEADER) notes.push('IPv4 options ignored');
  const total = dv.getUint16(2);
  let end = total;
  if (total < ihl) return fail(`IPv4 total length ${total} is shorter than the header`);
  if (total > bytes.length) {
    if (!opts.quoted) return fail(`IPv4 total length ${total} but only ${bytes.length} bytes`);
    end = bytes.length;
  } else if (total < bytes.length && !opts.quoted) {
    notes.push(`${bytes.length - total} bytes of link-layer padding ignored`);
  }
  const fragField = dv.getUint16(6);
  const fragOffset = fragField & 0x1fff;
  const moreFragments = (fragField & 0x2000) !== 0;
  if (moreFragments && fragOffset === 0) notes.push('first fragment of a fragmented packet: transport data is incomplete');
  const headerOk = opts.quoted || internetChecksum(bytes, 0, ihl) === 0;
  const base = {
    family: 'ipv4' as const,
    tos: bytes[1],
    ipId: dv.getUint16(4),
    ttl: bytes[8],
    proto: bytes[9],
    src: readAddr(bytes, 12, 4),
    dst: readAddr(bytes, 16, 4),
  };
  const l4 = bytes.subarray(ihl, end);
  const pseudo = pseudoHeaderSum('ipv4', bytes.subarray(12, 16), bytes.subarray(16, 20), base.proto, total - ihl);
  const r = decodeTransport(base, l4, fragOffset !== 0, pseudo, opts, notes, total > bytes.length);
  return r.ok ? { ...r, checksumOk: r.checksumOk && headerOk } : r;
}

/** Extension headers we step over to find the upper-layer protocol. */
const IPV6_EXT_HEADERS: ReadonlySet<number> = new Set([0, 43, 60]);

function decodeIpv6(bytes: Uint8Array, opts: DecodeOptions): DecodeResult {
  if (bytes.length < IPV6_HEADER) return fail(`IPv6 header needs 40 bytes, got ${bytes.length}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const notes: string[] = [];
  const payloadLen = dv.getUint16(4);
  let end = IPV6_HEADER + payloadLen;
  if (end > bytes.length) {
    if (!opts.quoted) return fail(`IPv6 payload length ${payloadLen} but only ${bytes.length - IPV6_HEADER} bytes`);
    end = bytes.length;
  } else if (end < bytes.length && !opts.quoted) {
    notes.push(`${bytes.length - end} bytes of link-layer padding ignored`);
  }
  let next = bytes[6];
  let at = IPV6_HEADER;
  let fragment = false;
  for (;;) {
    if (IPV6_EXT_HEADERS.has(next)) {
      if (at + 8 > end) return fail('truncated IPv6 extension header');
      notes.push(`IPv6 extension header ${next} skipped`);
      const len = (bytes[at + 1] + 1) * 8;
      next = bytes[at];
      at += len;
    } else if (next === 44) {
      if (at + 8 > end) return fail('truncated IPv6 fragment header');
      const off = dv.getUint16(at + 2) >> 3;
      const more = (dv.getUint16(at + 2) & 1) !== 0;
      if (off !== 0) fragment = true;
      else if (more) notes.push('first fragment of a fragmented packet: transport data is incomplete');
      next = bytes[at];
      at += 8;
    } else break;
  }
  if (at > end) return fail('IPv6 extension headers run past the packet');
  const base = {
    family: 'ipv6' as const,
    tos: (dv.getUint32(0) >>> 20) & 0xff,
    ttl: bytes[7],
    proto: next,
    src: readAddr(bytes, 8, 16),
    dst: readAddr(bytes, 24, 16),
  };
  const upperLen = IPV6_HEADER + payloadLen - at;
  const pseudo = pseudoHeaderSum('ipv6', bytes.subarray(8, 24), bytes.subarray(24, 40), next, upperLen);
  return decodeTransport(base, bytes.subarray(at, end), fragment, pseudo, opts, notes, IPV6_HEADER + payloadLen > bytes.length);
}

type IpFields = Pick<Packet, 'family' | 'tos' | 'ipId' | 'ttl' | 'proto' | 'src' | 'dst'>;

function decodeTransport(
  ip: IpFields,
  l4: Uint8Array,
  fragment: boolean,
  pseudo: number,
  opts: DecodeOptions,
  notes: string[],
  truncated: boolean,
): DecodeResult {
  const dv = new DataView(l4.buffer, l4.byteOffset, l4.byteLength);
  const family = ip.family;
  const packet = (extra: Partial<Packet>, payload: Uint8Array): Packet => ({ ...ip, ...extra, payload: Uint8Array.from(payload) });
  // A checksum we can verify only when we hold the whole transport segment.
  const verify = (withPseudo: boolean): boolean =>
    opts.quoted || truncated ? true : internetChecksum(l4, 0, l4.length, withPseudo ? pseudo : 0) === 0;

  if (fragment) {
    return { ok: true, packet: packet({ fragment: true }, l4), checksumOk: true, notes };
  }
  if (ip.proto === PROTO.tcp) {
    if (l4.length < TCP_HEADER) {
      if (!opts.quoted) return fail(`TCP header needs 20 bytes, got ${l4.length}`);
      const at = (n: number, w: 2 | 4): number => (l4.length >= n + w ? (w === 2 ? dv.getUint16(n) : dv.getUint32(n)) : 0);
      const tcp: TcpHeader = { flags: l4.length > 13 ? l4[13] : 0, seq: at(4, 4), ack: at(8, 4), window: at(14, 2) };
      return { ok: true, packet: packet({ sport: at(0, 2), dport: at(2, 2), tcp }, new Uint8Array(0)), checksumOk: true, notes };
    }
    const headerLen = (l4[12] >> 4) * 4;
    if (headerLen < TCP_HEADER || (headerLen > l4.length && !opts.quoted)) return fail(`bad TCP data offset ${headerLen}`);
    const tcp: TcpHeader = { flags: l4[13], seq: dv.getUint32(4), ack: dv.getUint32(8), window: dv.getUint16(14) };
    readTcpOptions(l4.subarray(TCP_HEADER, Math.min(headerLen, l4.length)), tcp, notes);
    if ((l4[12] & 0x0f) !== 0) notes.push('TCP reserved/NS bits ignored');
    if (dv.getUint16(18) !== 0) notes.push('TCP urgent pointer ignored');
    return {
      ok: true,
      packet: packet({ sport: dv.getUint16(0), dport: dv.getUint16(2), tcp }, l4.subarray(Math.min(headerLen, l4.length))),
      checksumOk: verify(true),
      notes,
    };
  }
  if (isUdpLike(ip.proto)) {
    if (l4.length < 8) {
      if (!opts.quoted || l4.length < 4) return fail(`UDP header needs 8 bytes, got ${l4.length}`);
      return { ok: true, packet: packet({ sport: dv.getUint16(0), dport: dv.getUint16(2) }, new Uint8Array(0)), checksumOk: true, notes };
    }
    const udpLen = dv.getUint16(4);
    let payloadEnd = l4.length;
    if (ip.proto === PROTO.udp && !opts.quoted && !truncated) {
      if (udpLen < 8 || udpLen > l4.length) return fail(`UDP length ${udpLen} does not fit the ${l4.length}-byte datagram`);
      payloadEnd = udpLen;
    }
    const noChecksum = ip.proto === PROTO.udp && family === 'ipv4' && dv.getUint16(6) === 0;
    return {
      ok: true,
      packet: packet({ sport: dv.getUint16(0), dport: dv.getUint16(2) }, l4.subarray(8, payloadEnd)),
      checksumOk: noChecksum || verify(true),
      notes,
    };
  }
  if (isIcmpProto(family, ip.proto)) {
    if (l4.length < 4 || (l4.length < 8 && !opts.quoted)) return fail(`ICMP header needs 8 bytes, got ${l4.length}`);
    const type = l4[0];
    const code = l4[1];
    const checksumOk = verify(family === 'ipv6');
    const u16 = (n: number): number => (l4.length >= n + 2 ? dv.getUint16(n) : 0);
    if (isIcmpErrorType(family, type) && l4.length > 8 && !opts.quoted) {
      const inner = decodeIp(l4.subarray(8), { quoted: true });
      if (!inner.ok) {
        notes.push(`quoted packet unreadable (${inner.error}); kept as payload`);
        return { ok: true, packet: packet({ icmp: { type, code } }, l4.subarray(8)), checksumOk, notes };
      }
      const icmp: IcmpHeader = { type, code, inner: inner.packet };
      if (carriesMtu(family, type, code)) icmp.mtu = family === 'ipv4' ? u16(6) : dv.getUint32(4);
      return { ok: true, packet: packet({ icmp }, new Uint8Array(0)), checksumOk, notes };
    }
    if (hasIcmpId(family, type)) {
      return { ok: true, packet: packet({ icmp: { type, code, id: u16(4), seq: u16(6) } }, l4.subarray(8)), checksumOk, notes };
    }
    if (l4.length >= 8 && dv.getUint32(4) !== 0) notes.push(`ICMP type ${type} rest-of-header ignored`);
    return { ok: true, packet: packet({ icmp: { type, code } }, l4.subarray(Math.min(8, l4.length))), checksumOk, notes };
  }
  return { ok: true, packet: packet({}, l4), checksumOk: true, notes };
}

function readTcpOptions(opts: Uint8Array, tcp: TcpHeader, notes: string[]): void {
  for (let i = 0; i < opts.length; ) {
    const kind = opts[i];
    if (kind === 0) break; // end of option list
    if (kind === 1) {
      i++;
      continue;
    }
    const len = opts[i + 1];
    if (len === undefined || len < 2 || i + len > opts.length) {
      notes.push('malformed TCP options');
      return;
    }
    if (kind === 2 && len === 4) tcp.mss = (opts[i + 2] << 8) | opts[i + 3];
    else if (kind === 3 && len === 3) tcp.wscale = opts[i + 2];
    else if (kind === 4 && len === 2) tcp.sackPerm = true;
    else notes.push(`TCP option ${kind} ignored`);
    i += len;
  }
}

/**
 * The form a packet takes after a trip through the wire: optional fields that always exist
 * on the wire become explicit (IPv4 identification and TOS), fields the family has not are
 * dropped, and ICMP errors quote only what fits. decodeIp(encodeIp(p)).packet deep-equals this.
 */
export function normalizePacket(p: Packet): Packet {
  const out: Packet = { family: p.family, src: p.src, dst: p.dst, proto: p.proto, ttl: p.ttl & 0xff, tos: (p.tos ?? 0) & 0xff, payload: p.payload };
  if (p.family === 'ipv4') out.ipId = (p.ipId ?? 0) & 0xffff;
  if (p.fragment) {
    out.fragment = true;
    return out;
  }
  if (p.sport !== undefined || p.tcp) {
    out.sport = p.sport ?? 0;
    out.dport = p.dport ?? 0;
  }
  if (p.tcp) {
    const t: TcpHeader = { flags: p.tcp.flags & 0xff, seq: p.tcp.seq >>> 0, ack: p.tcp.ack >>> 0, window: p.tcp.window & 0xffff };
    if (p.tcp.mss !== undefined) t.mss = p.tcp.mss;
    if (p.tcp.sackPerm) t.sackPerm = true;
    if (p.tcp.wscale !== undefined) t.wscale = p.tcp.wscale;
    out.tcp = t;
  }
  if (p.icmp) {
    const { type, code } = p.icmp;
    if (p.icmp.inner && isIcmpErrorType(p.family, type)) {
      const quoted = decodeIp(encodeIp(p).subarray((p.family === 'ipv4' ? IPV4_HEADER : IPV6_HEADER) + 8), { quoted: true });
      const icmp: IcmpHeader = { type, code, inner: quoted.ok ? quoted.packet : p.icmp.inner };
      if (carriesMtu(p.family, type, code)) icmp.mtu = p.icmp.mtu ?? 0;
      out.icmp = icmp;
      out.payload = new Uint8Array(0);
    } else if (hasIcmpId(p.family, type)) {
      out.icmp = { type, code, id: p.icmp.id ?? 0, seq: p.icmp.seq ?? 0 };
    } else {
      out.icmp = { type, code };
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Ethernet

export interface EthernetFrame {
  readonly dst: Uint8Array;
  readonly src: Uint8Array;
  readonly ethertype: number;
  /** The frame's payload (for IP, the datagram). */
  readonly payload: Uint8Array;
}

export function encodeEthernet(dst: Uint8Array, src: Uint8Array, ethertype: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(14 + payload.length);
  out.set(dst.subarray(0, 6), 0);
  out.set(src.subarray(0, 6), 6);
  out[12] = ethertype >> 8;
  out[13] = ethertype & 0xff;
  out.set(payload, 14);
  return out;
}

/** An Ethernet frame carrying this packet. */
export function encodeFrame(p: Packet, dst: Uint8Array, src: Uint8Array): Uint8Array {
  return encodeEthernet(dst, src, p.family === 'ipv4' ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6, encodeIp(p));
}

/** Splits an Ethernet II frame (one 802.1Q tag is stepped over). */
export function decodeEthernet(frame: Uint8Array): EthernetFrame | undefined {
  if (frame.length < 14) return undefined;
  let type = (frame[12] << 8) | frame[13];
  let at = 14;
  if (type === ETHERTYPE_VLAN && frame.length >= 18) {
    type = (frame[16] << 8) | frame[17];
    at = 18;
  }
  return { dst: frame.subarray(0, 6), src: frame.subarray(6, 12), ethertype: type, payload: frame.subarray(at) };
}

/** A MAC address as bytes, from `aa:bb:cc:dd:ee:ff`. */
export function parseMac(text: string): Uint8Array {
  const parts = text.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-f]{1,2}$/i.test(p))) throw new Error(`not a MAC address: ${text}`);
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

export function formatMac(mac: Uint8Array): string {
  return Array.from(mac.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(':');
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function fromHex(hex: string): Uint8Array {
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}
