import { PROTO, TCP_FLAG } from '../../../src/ir/fields.js';
import type { SimInput } from '../../../src/netfilter/api.js';
import type { Packet, TcpHeader } from '../../../src/netfilter/packet.js';
import { type Family, parseAddress } from '../../../src/util/ip.js';

/**
 * Small builders for the packets scenarios send, so a scenario reads like a packet trace:
 *
 *   at(0, 'eth0', tcp('192.168.18.2:120', '202.10.10.1:30', 'S', { seq: 1000 }))
 */
export function addr(text: string): { family: Family; value: bigint } {
  const a = parseAddress(text);
  if (!a) throw new Error(`not an address: ${text}`);
  return a;
}

/** `192.168.1.1:80` or `[fd00::1]:80`. */
export function endpoint(text: string): { family: Family; value: bigint; port: number } {
  const m = /^\[(.+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (!m) throw new Error(`not ADDR:PORT: ${text}`);
  return { ...addr(m[1]), port: Number(m[2]) };
}

const FLAG_LETTERS: Record<string, number> = {
  F: TCP_FLAG.FIN,
  S: TCP_FLAG.SYN,
  R: TCP_FLAG.RST,
  P: TCP_FLAG.PSH,
  A: TCP_FLAG.ACK,
  U: TCP_FLAG.URG,
  E: TCP_FLAG.ECE,
  C: TCP_FLAG.CWR,
};

/** `SA` → SYN|ACK; the letters of tcpdump's flag notation. */
export function tcpFlags(letters: string): number {
  let f = 0;
  for (const ch of letters) {
    const bit = FLAG_LETTERS[ch];
    if (bit === undefined) throw new Error(`unknown TCP flag ${ch} in ${letters}`);
    f |= bit;
  }
  return f;
}

export interface TcpExtra extends Partial<Omit<TcpHeader, 'flags'>> {
  readonly ttl?: number;
  readonly payload?: string | Uint8Array;
  readonly ipId?: number;
}

function bytes(p: string | Uint8Array | undefined): Uint8Array {
  return p === undefined ? new Uint8Array(0) : typeof p === 'string' ? new TextEncoder().encode(p) : p;
}

export function tcp(from: string, to: string, flags: string, extra: TcpExtra = {}): Packet {
  const s = endpoint(from);
  const d = endpoint(to);
  if (s.family !== d.family) throw new Error(`${from} and ${to} are of different families`);
  const { ttl, payload, ipId, ...hdr } = extra;
  return {
    family: s.family,
    src: s.value,
    dst: d.value,
    proto: PROTO.tcp,
    ttl: ttl ?? 64,
    ...(ipId !== undefined ? { ipId } : {}),
    sport: s.port,
    dport: d.port,
    tcp: { flags: tcpFlags(flags), seq: hdr.seq ?? 0, ack: hdr.ack ?? 0, window: hdr.window ?? 64240, ...hdr },
    payload: bytes(payload),
  };
}

export function udp(from: string, to: string, payload: string | Uint8Array = '', extra: { ttl?: number; ipId?: number } = {}): Packet {
  const s = endpoint(from);
  const d = endpoint(to);
  if (s.family !== d.family) throw new Error(`${from} and ${to} are of different families`);
  return { family: s.family, src: s.value, dst: d.value, proto: PROTO.udp, ttl: extra.ttl ?? 64, ...(extra.ipId !== undefined ? { ipId: extra.ipId } : {}), sport: s.port, dport: d.port, payload: bytes(payload) };
}

/** ICMP/ICMPv6 echo request (`reply` for an echo reply). */
export function ping(from: string, to: string, id: number, seq = 1, opts: { reply?: boolean; ttl?: number; payload?: string } = {}): Packet {
  const s = addr(from);
  const d = addr(to);
  const v4 = s.family === 'ipv4';
  return {
    family: s.family,
    src: s.value,
    dst: d.value,
    proto: v4 ? PROTO.icmp : PROTO.icmpv6,
    ttl: opts.ttl ?? 64,
    icmp: { type: v4 ? (opts.reply ? 0 : 8) : opts.reply ? 129 : 128, code: 0, id, seq },
    payload: bytes(opts.payload ?? 'nfproof'),
  };
}

/**
 * An ICMP error from `from` about `offending` (the packet as it was received by whoever
 * complains): IPv4 type/code, or ICMPv6 when the addresses are IPv6.
 */
export function icmpError(from: string, to: string, type: number, code: number, offending: Packet, extra: { mtu?: number; ttl?: number } = {}): Packet {
  const s = addr(from);
  const d = addr(to);
  return {
    family: s.family,
    src: s.value,
    dst: d.value,
    proto: s.family === 'ipv4' ? PROTO.icmp : PROTO.icmpv6,
    ttl: extra.ttl ?? 64,
    icmp: { type, code, inner: offending, ...(extra.mtu !== undefined ? { mtu: extra.mtu } : {}) },
    payload: new Uint8Array(0),
  };
}

/**
 * A simulator input: packet `p` arriving at time `t` on `device` ('local' for locally
 * generated, which the harness sends from a root-owned raw socket: uid and gid 0).
 */
export function at(t: number, device: string, p: Packet): SimInput {
  return device === 'local' ? { t, ingress: { kind: 'local' }, packet: p, uid: 0, gid: 0 } : { t, ingress: { kind: 'iface', device }, packet: p };
}

/** The same packet with some fields changed (e.g. the reply direction). */
export function swap(p: Packet): Packet {
  return { ...p, src: p.dst, dst: p.src, ...(p.sport !== undefined ? { sport: p.dport, dport: p.sport } : {}) };
}

/** A TCP segment going back the way `p` came: from p's destination to p's source. */
export function answer(p: Packet, flags: string, extra: TcpExtra = {}): Packet {
  const { ttl, payload, ipId, ...hdr } = extra;
  return {
    family: p.family,
    src: p.dst,
    dst: p.src,
    proto: PROTO.tcp,
    ttl: ttl ?? 64,
    ...(ipId !== undefined ? { ipId } : {}),
    sport: p.dport,
    dport: p.sport,
    tcp: { flags: tcpFlags(flags), seq: hdr.seq ?? 0, ack: hdr.ack ?? 0, window: hdr.window ?? 64240, ...hdr },
    payload: bytes(payload),
  };
}
