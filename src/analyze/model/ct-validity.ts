import { CT_STATE, CT_STATUS } from '../../ir/fields.js';
import type { Packet } from '../../netfilter/packet.js';
import { icmpKind, icmpTracker, icmpv6Tracker } from '../../netfilter/proto/icmp.js';
import { parseTrackerSysctls } from '../../netfilter/proto/registry.js';
import { validFlagCombination } from '../../netfilter/proto/tcp-table.js';
import { tcpTracker } from '../../netfilter/proto/tcp.js';
import { type IntervalSet, normalize } from '../../util/intervals.js';
import type { Family } from '../../util/ip.js';

/**
 * Which packets can have which conntrack state, as the trackers decide it: only some TCP flag
 * combinations open a connection (SYN; an ACK too with tcp_loose), invalid combinations are
 * INVALID whatever the connection; ICMP requests open connections, errors are RELATED or
 * INVALID, neighbour discovery is UNTRACKED. The sets come from the simulator's own trackers
 * (src/netfilter/proto), so the analyzer cannot drift from them.
 */
export interface CtValidity {
  /** TCP flag bytes that can start a connection (state NEW). */
  readonly tcpNew: IntervalSet;
  /** TCP flag bytes conntrack accepts at all (others are INVALID). */
  readonly tcpValid: IntervalSet;
  /** ICMP/ICMPv6 types that can start a connection. */
  readonly icmpNew: IntervalSet;
  /** ICMP error types (RELATED to a connection, else INVALID). */
  readonly icmpError: IntervalSet;
  /** ICMPv6 types conntrack leaves UNTRACKED (neighbour discovery, MLD). */
  readonly icmpUntracked: IntervalSet;
}

const cache = new Map<string, CtValidity>();

function toSet(values: number[]): IntervalSet {
  return normalize(values.map((v) => [BigInt(v), BigInt(v)] as const));
}

export function ctValidity(family: Family, sysctls: Readonly<Record<string, string>>): CtValidity {
  const sys = parseTrackerSysctls(sysctls).sys;
  const key = `${family}|${sys.tcpLoose}`;
  const known = cache.get(key);
  if (known) return known;
  const base: Packet = { family, src: 1n, dst: 2n, proto: 6, ttl: 64, payload: new Uint8Array(0), sport: 1024, dport: 80 };
  const tcpNew: number[] = [];
  const tcpValid: number[] = [];
  for (let flags = 0; flags < 256; flags++) {
    if (validFlagCombination(flags)) tcpValid.push(flags);
    const r = tcpTracker.create({ ...base, tcp: { flags, seq: 1000, ack: flags & 0x10 ? 1 : 0, window: 64240 } }, sys, 0);
    if ('state' in r) tcpNew.push(flags);
  }
  const icmpNew: number[] = [];
  const icmpError: number[] = [];
  const icmpUntracked: number[] = [];
  const tracker = family === 'ipv4' ? icmpTracker : icmpv6Tracker;
  const proto = family === 'ipv4' ? 1 : 58;
  for (let type = 0; type < 256; type++) {
    const kind = icmpKind(family, type);
    if (kind === 'error') icmpError.push(type);
    if (kind === 'untracked') icmpUntracked.push(type);
    const r = tracker.create({ ...base, proto, sport: undefined, dport: undefined, icmp: { type, code: 0, id: 1, seq: 1 } }, sys, 0);
    if ('state' in r) icmpNew.push(type);
  }
  const v: CtValidity = {
    tcpNew: toSet(tcpNew),
    tcpValid: toSet(tcpValid),
    icmpNew: toSet(icmpNew),
    icmpError: toSet(icmpError),
    icmpUntracked: toSet(icmpUntracked),
  };
  cache.set(key, v);
  return v;
}

/** The state conntrack gives a packet the input declares NEW/ESTABLISHED/RELATED/INVALID. */
export function effectiveState(
  v: CtValidity,
  declared: number,
  proto: number,
  fragment: boolean,
  tcpflags: number | undefined,
  icmptype: number | undefined,
  icmpProtoNumber: number,
): number {
  // A non-first fragment carries no transport header to find its connection by: INVALID, as
  // the simulator treats it. (The kernel would reassemble first when conntrack is loaded.)
  if (fragment) return CT_STATE.INVALID;
  // ICMP of the other family (ICMPv4 in IPv6, ICMPv6 in IPv4): its tracker refuses the packet.
  if (proto === (icmpProtoNumber === 1 ? 58 : 1)) return CT_STATE.INVALID;
  const has = (set: IntervalSet, x: number) => set.some(([lo, hi]) => BigInt(x) >= lo && BigInt(x) <= hi);
  if (proto === 6 && tcpflags !== undefined) {
    if (!has(v.tcpValid, tcpflags)) return CT_STATE.INVALID;
    if (declared === CT_STATE.NEW && !has(v.tcpNew, tcpflags)) return CT_STATE.INVALID;
    return declared;
  }
  if (proto === icmpProtoNumber && icmptype !== undefined) {
    if (has(v.icmpUntracked, icmptype)) return CT_STATE.UNTRACKED;
    if (has(v.icmpError, icmptype)) return declared === CT_STATE.RELATED ? declared : CT_STATE.INVALID;
    if (declared === CT_STATE.NEW && !has(v.icmpNew, icmptype)) return CT_STATE.INVALID;
    return declared;
  }
  return declared;
}

/** The flags of a REJECT's TCP reset (nf_send_reset): RST, with ACK when the packet it answers had none. */
export const ANSWER_TCP_FLAGS: IntervalSet = [
  [0x04n, 0x04n],
  [0x14n, 0x14n],
];

/**
 * Whether a locally sent packet can be one this host's kernel sends in answer to another: an
 * ICMP error (icmp_send for an unreachable destination, an expired TTL, a REJECT) or the TCP
 * reset of a REJECT. Such an answer carries the connection of the packet it answers from the
 * start (icmp_glue_bits / icmpv6_getfrag / nf_send_reset call nf_ct_attach), RELATED in the
 * direction opposite to that packet's, so even raw/OUTPUT sees it and conntrack leaves it be.
 * The analyzer takes one as a local packet whose input declares RELATED and whose
 * CHOICE.answer is 1 (the simulator makes the real ones: netfilter/answers.ts).
 */
/** An ICMP (or ICMPv6) error message: conntrack relates it to the connection it quotes. */
export function isIcmpError(v: CtValidity, proto: number, icmptype: number | undefined, icmpProtoNumber: number): boolean {
  return proto === icmpProtoNumber && icmptype !== undefined && v.icmpError.some(([lo, hi]) => BigInt(icmptype) >= lo && BigInt(icmptype) <= hi);
}

export function canBeAnswer(v: CtValidity, proto: number, fragment: boolean, tcpflags: number | undefined, icmptype: number | undefined, icmpProtoNumber: number): boolean {
  if (fragment) return false;
  if (proto === 6) return tcpflags !== undefined && ANSWER_TCP_FLAGS.some(([lo]) => BigInt(tcpflags) === lo);
  return isIcmpError(v, proto, icmptype, icmpProtoNumber);
}

/**
 * Whether the connection's protocol (ct proto) is the packet's own: conntrack finds an
 * ESTABLISHED packet's connection by the packet's tuple, and a RELATED one other than an ICMP
 * error is its own (expected) connection or, for a REJECT's TCP reset, the connection it
 * answers. Only an ICMP error's connection is another packet's (the one it quotes).
 */
export function ctProtoIsOwn(v: CtValidity, state: number, proto: number, icmptype: number | undefined, icmpProtoNumber: number): boolean {
  if (state === CT_STATE.ESTABLISHED) return true;
  if (state !== CT_STATE.RELATED) return false;
  return !isIcmpError(v, proto, icmptype, icmpProtoNumber);
}

/**
 * Status bits every ESTABLISHED packet's connection has: conntrack only finds confirmed entries
 * (an unconfirmed one is in no hash table yet), and a connection is ESTABLISHED once a reply
 * was seen — or the packet is that reply, which sets SEEN_REPLY before any rule sees it
 * (nf_conntrack_in, resolve_normal_ct).
 */
export const ESTABLISHED_STATUS = CT_STATUS.CONFIRMED | CT_STATUS.SEEN_REPLY;
