import { TCP_FLAG } from '../../../src/ir/fields.js';
import type { Packet } from '../../../src/netfilter/packet.js';
import { parseAddress } from '../../../src/util/ip.js';

/**
 * A compact way to write TCP test sequences, shared by the unit tests and the kernel tests
 * (which put the very same segments on the wire): `c('S', 1000)` is a SYN from the client,
 * `s('SA', 5000, 1001)` the server's SYN/ACK.
 */

export interface Seg {
  readonly from: 'c' | 's';
  /** Flag letters: S A F R P U E C (scapy's notation). */
  readonly flags: string;
  readonly seq: number;
  readonly ack: number;
  readonly win: number;
  /** Payload bytes (text); `len` builds `len` bytes of "x" instead. */
  readonly payload?: string;
  readonly len?: number;
  readonly mss?: number;
  readonly wscale?: number;
  readonly sackok?: boolean;
  readonly sack?: readonly (readonly [number, number])[];
}

export type SegOptions = Partial<Pick<Seg, 'win' | 'payload' | 'len' | 'mss' | 'wscale' | 'sackok' | 'sack'>>;

export function c(flags: string, seq: number, ack = 0, opts: SegOptions = {}): Seg {
  return { from: 'c', flags, seq, ack, win: 64240, ...opts };
}

export function s(flags: string, seq: number, ack = 0, opts: SegOptions = {}): Seg {
  return { from: 's', flags, seq, ack, win: 65160, ...opts };
}

const LETTER: Readonly<Record<string, number>> = {
  F: TCP_FLAG.FIN,
  S: TCP_FLAG.SYN,
  R: TCP_FLAG.RST,
  P: TCP_FLAG.PSH,
  A: TCP_FLAG.ACK,
  U: TCP_FLAG.URG,
  E: TCP_FLAG.ECE,
  C: TCP_FLAG.CWR,
};

export function flagBits(flags: string): number {
  let bits = 0;
  for (const ch of flags) {
    const b = LETTER[ch];
    if (b === undefined) throw new Error(`unknown TCP flag letter ${ch}`);
    bits |= b;
  }
  return bits;
}

export function payloadOf(seg: Seg): Uint8Array {
  if (seg.payload !== undefined) return new TextEncoder().encode(seg.payload);
  return new Uint8Array(seg.len ?? 0).fill(0x78);
}

export interface Endpoints {
  readonly client: string;
  readonly server: string;
  readonly cport: number;
  readonly sport: number;
  /** Behind NAT: the address the client sends to (before DNAT), when not `server`. */
  readonly serverSeenByClient?: string;
  /** Behind NAT: the address the server answers to (after SNAT), when not `client`. */
  readonly clientSeenByServer?: string;
}

export const DEFAULT_ENDPOINTS: Endpoints = { client: '10.0.1.2', server: '10.0.2.2', cport: 40000, sport: 80 };

function addr(text: string): bigint {
  const a = parseAddress(text);
  if (!a) throw new Error(`bad address ${text}`);
  return a.value;
}

/** The Packet the tracker sees for a scripted segment. */
export function segPacket(seg: Seg, ep: Endpoints = DEFAULT_ENDPOINTS): Packet {
  const fromClient = seg.from === 'c';
  return {
    family: ep.client.includes(':') ? 'ipv6' : 'ipv4',
    src: addr(fromClient ? ep.client : ep.server),
    dst: addr(fromClient ? ep.server : ep.client),
    proto: 6,
    ttl: 64,
    sport: fromClient ? ep.cport : ep.sport,
    dport: fromClient ? ep.sport : ep.cport,
    tcp: {
      flags: flagBits(seg.flags),
      seq: seg.seq >>> 0,
      ack: seg.ack >>> 0,
      window: seg.win,
      ...(seg.mss !== undefined ? { mss: seg.mss } : {}),
      ...(seg.wscale !== undefined ? { wscale: seg.wscale } : {}),
      ...(seg.sackok ? { sackPerm: true } : {}),
      ...(seg.sack ? { sack: seg.sack } : {}),
    },
    payload: payloadOf(seg),
  };
}

/** One line for test output: `c→s SA 5000:5000 ack 1001 win 65160`. */
export function describeSeg(seg: Seg): string {
  const len = payloadOf(seg).length;
  return `${seg.from === 'c' ? 'c→s' : 's→c'} ${seg.flags} ${seg.seq >>> 0}(+${len}) ack ${seg.ack >>> 0} win ${seg.win}`;
}
