import { CT_STATE, NUMERIC_FIELDS, type NumericField, PORT_PROTOS, PROTO } from '../../ir/fields.js';
import type { Hook } from '../../ir/netfilter.js';
import { type Family, familyBits } from '../../util/ip.js';
import { maxOf } from '../../util/intervals.js';

/**
 * The analyzer's view of packet fields: a dense slot per numeric field (so boxes are arrays),
 * the width each has in one family, and when a field exists on a packet.
 *
 * Presence follows src/ir/constraint.ts: a test on a missing field is false. Which fields are
 * missing depends on the protocol (ports only for port protocols, and not on a non-first
 * fragment), on the conntrack state (ct* fields only when the packet has a connection), and on
 * where the packet is (a source MAC only on the receive side, a socket owner only for locally
 * generated packets).
 */
export const FIELDS: readonly NumericField[] = Object.keys(NUMERIC_FIELDS) as NumericField[];
export const FIELD_SLOT: Readonly<Record<NumericField, number>> = Object.fromEntries(FIELDS.map((f, i) => [f, i])) as Record<
  NumericField,
  number
>;
export const IIF_SLOT = FIELDS.length;
export const OIF_SLOT = FIELDS.length + 1;
/** Number of slots in a box: every numeric field, then iif and oif (interface class indices). */
export const SLOT_COUNT = FIELDS.length + 2;

/**
 * 'ctports' is no longer any field's presence (tuple ports exist on every connection, see
 * PRESENCE); it stays in the type while src/analyze/diff still names it.
 */
export type Presence = 'always' | 'ports' | 'tcp' | 'icmp' | 'ct' | 'ctports' | 'helper' | 'mac' | 'socket';

const PRESENCE: Readonly<Record<NumericField, Presence>> = {
  saddr: 'always',
  daddr: 'always',
  proto: 'always',
  sport: 'ports',
  dport: 'ports',
  tcpflags: 'tcp',
  icmptype: 'icmp',
  icmpcode: 'icmp',
  length: 'always',
  ttl: 'always',
  dscp: 'always',
  tos: 'always',
  fragment: 'always',
  pkttype: 'always',
  srctype: 'always',
  dsttype: 'always',
  mark: 'always',
  ctmark: 'ct',
  ctstate: 'always',
  ctstatus: 'ct',
  ctdir: 'ct',
  ctproto: 'ct',
  ctorigsrc: 'ct',
  ctorigdst: 'ct',
  ctreplsrc: 'ct',
  ctrepldst: 'ct',
  // Tuple "ports" are the tuple's u.all, which xt_conntrack reads for every protocol: ports,
  // an ICMP query's identifier and type/code, 0 for the rest (kernel case in
  // test/kernel/conntrack-match.test.ts). So they exist whenever the connection does.
  ctorigsrcport: 'ct',
  ctorigdstport: 'ct',
  ctreplsrcport: 'ct',
  ctrepldstport: 'ct',
  // Only connections that were expected by a helper have a master (ESTABLISHED or RELATED).
  cthelper: 'helper',
  macsrc: 'mac',
  uid: 'socket',
  gid: 'socket',
};

export function presenceOf(f: NumericField): Presence {
  return PRESENCE[f];
}

export function bitsOf(f: NumericField, family: Family): number {
  const b = NUMERIC_FIELDS[f].bits;
  return b === 'addr' ? familyBits(family) : b;
}

/** Largest real value of the field. */
export function fieldMax(f: NumericField, family: Family): bigint {
  return maxOf(bitsOf(f, family));
}

/**
 * The value boxes use for "this packet has no such field": one above the largest real value,
 * so that a set of real values never contains it and complementing within [0, ABSENT] keeps it.
 */
export function absentValue(f: NumericField, family: Family): bigint {
  return fieldMax(f, family) + 1n;
}

/** Domain top of a box slot: real values and, for fields that can be missing, ABSENT. */
export function slotTop(slot: number, family: Family, ifaceCount: number): bigint {
  if (slot >= FIELDS.length) return BigInt(ifaceCount - 1);
  const f = FIELDS[slot];
  return presenceOf(f) === 'always' ? fieldMax(f, family) : absentValue(f, family);
}

export function icmpProto(family: Family): number {
  return family === 'ipv4' ? PROTO.icmp : PROTO.icmpv6;
}

/** Conntrack states that come with a connection (ct* fields present). */
export const TRACKED_STATES: readonly number[] = [CT_STATE.NEW, CT_STATE.ESTABLISHED, CT_STATE.RELATED];

/** Fields computed from another one (the model keeps only the source as a variable). */
export const DERIVED: Partial<Record<NumericField, { readonly from: NumericField; readonly shift: number }>> = {
  // DSCP is the top six bits of the TOS / traffic-class byte.
  dscp: { from: 'tos', shift: 2 },
};

/** Where a packet is, as far as presence of mac/socket fields goes. */
export interface PresenceContext {
  readonly hook: Hook;
  /** Locally generated (has a socket). */
  readonly local: boolean;
  readonly iif: string;
}

/**
 * Whether a field exists on a concrete packet: the single definition the concrete interpreter
 * uses; the box and Z3 encodings express the same rule over sets and terms.
 */
export function isPresent(
  f: NumericField,
  family: Family,
  value: bigint,
  proto: bigint,
  fragment: bigint,
  ctstate: bigint,
  where: PresenceContext,
): boolean {
  switch (PRESENCE[f]) {
    case 'always':
      return true;
    case 'ports':
      return fragment === 0n && PORT_PROTOS.includes(Number(proto));
    case 'tcp':
      return fragment === 0n && proto === BigInt(PROTO.tcp);
    case 'icmp':
      return fragment === 0n && proto === BigInt(icmpProto(family));
    case 'ct':
    case 'ctports':
      return TRACKED_STATES.includes(Number(ctstate));
    case 'helper':
      // The value ABSENT (one above the maximum) stands for "no master connection".
      return (ctstate === BigInt(CT_STATE.ESTABLISHED) || ctstate === BigInt(CT_STATE.RELATED)) && value <= fieldMax(f, family);
    case 'mac':
      return macPresentAt(where.hook) && where.iif !== 'lo' && where.iif !== '';
    case 'socket':
      return where.local && socketPresentAt(where.hook);
  }
}

/** xt_mac reads the Ethernet header: only where the packet came in from a device. */
export function macPresentAt(hook: Hook): boolean {
  return hook === 'PREROUTING' || hook === 'INPUT' || hook === 'FORWARD';
}

/** xt_owner needs the sending socket: locally generated packets on OUTPUT and POSTROUTING. */
export function socketPresentAt(hook: Hook): boolean {
  return hook === 'OUTPUT' || hook === 'POSTROUTING';
}
