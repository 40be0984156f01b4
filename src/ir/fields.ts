import type { Family } from '../util/ip.js';

/**
 * The header and metadata fields a rule can look at. Match kinds describe themselves as
 * constraints over these fields (see constraint.ts); the simulator reads them from a concrete
 * packet, the analyzer turns each into a Z3 bit-vector of the given width.
 *
 * Adding a field: add it here with its width and when it is present, then give the simulator's
 * packet view and the analyzer's encoding a value for it.
 */
export const NUMERIC_FIELDS = {
  saddr: { bits: 'addr', doc: 'source address' },
  daddr: { bits: 'addr', doc: 'destination address' },
  proto: { bits: 8, doc: 'IP protocol number (IPv6: the upper-layer protocol)' },
  sport: { bits: 16, doc: 'source port (tcp, udp, udplite, sctp, dccp)' },
  dport: { bits: 16, doc: 'destination port (tcp, udp, udplite, sctp, dccp)' },
  tcpflags: { bits: 8, doc: 'TCP flags byte: FIN=0x01 SYN=0x02 RST=0x04 PSH=0x08 ACK=0x10 URG=0x20 ECE=0x40 CWR=0x80' },
  icmptype: { bits: 8, doc: 'ICMP or ICMPv6 type' },
  icmpcode: { bits: 8, doc: 'ICMP or ICMPv6 code' },
  length: { bits: 16, doc: 'IP total length (IPv6: payload length + 40)' },
  ttl: { bits: 8, doc: 'IPv4 TTL / IPv6 hop limit' },
  dscp: { bits: 6, doc: 'DSCP bits of TOS / traffic class' },
  tos: { bits: 8, doc: 'the whole TOS byte / IPv6 traffic class (DSCP << 2 | ECN), as -m tos reads it' },
  fragment: { bits: 1, doc: '1 for a non-first fragment (iptables -f)' },
  pkttype: { bits: 2, doc: 'link-layer packet type as -m pkttype sees it: 0 unicast (host), 1 broadcast, 2 multicast, 3 otherhost' },
  srctype: { bits: 12, doc: 'addrtype bits of the source address (see ADDRTYPE in kinds/match/addrtype.ts)' },
  dsttype: { bits: 12, doc: 'addrtype bits of the destination address' },
  mark: { bits: 32, doc: 'packet mark (skb->mark)' },
  ctmark: { bits: 32, doc: 'connection mark' },
  ctstate: { bits: 8, doc: 'one of CT_STATE (a single bit set)' },
  ctstatus: { bits: 16, doc: 'IPS_* status bits of the connection' },
  ctdir: { bits: 1, doc: '0 original, 1 reply' },
  ctproto: { bits: 8, doc: 'layer-4 protocol of the connection' },
  ctorigsrc: { bits: 'addr', doc: 'original tuple source address' },
  ctorigdst: { bits: 'addr', doc: 'original tuple destination address' },
  ctreplsrc: { bits: 'addr', doc: 'reply tuple source address' },
  ctrepldst: { bits: 'addr', doc: 'reply tuple destination address' },
  ctorigsrcport: { bits: 16, doc: 'original tuple source port' },
  ctorigdstport: { bits: 16, doc: 'original tuple destination port' },
  ctreplsrcport: { bits: 16, doc: 'reply tuple source port' },
  ctrepldstport: { bits: 16, doc: 'reply tuple destination port' },
  cthelper: { bits: 8, doc: "helper of the connection's master (CT_HELPER id): set only on expected (RELATED) connections, as -m helper reads it" },
  macsrc: { bits: 48, doc: 'source MAC address (PREROUTING, INPUT, FORWARD only)' },
  uid: { bits: 32, doc: 'socket owner uid (locally generated packets only)' },
  gid: { bits: 32, doc: 'socket owner gid (locally generated packets only)' },
} as const satisfies Record<string, { bits: number | 'addr'; doc: string }>;

export type NumericField = keyof typeof NUMERIC_FIELDS;
export type IfaceField = 'iif' | 'oif';
export type Field = NumericField | IfaceField;

export function fieldBits(field: NumericField, family: Family): number {
  const b = NUMERIC_FIELDS[field].bits;
  return b === 'addr' ? (family === 'ipv4' ? 32 : 128) : b;
}

/** Protocol numbers. */
export const PROTO = {
  icmp: 1,
  igmp: 2,
  tcp: 6,
  udp: 17,
  dccp: 33,
  gre: 47,
  esp: 50,
  ah: 51,
  icmpv6: 58,
  sctp: 132,
  udplite: 136,
} as const;

/** Protocols whose headers carry 16-bit source and destination ports. */
export const PORT_PROTOS: readonly number[] = [PROTO.tcp, PROTO.udp, PROTO.dccp, PROTO.sctp, PROTO.udplite];

/** TCP flag bits as in the header byte. */
export const TCP_FLAG = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80 } as const;

/**
 * Connection tracking state as the conntrack/state matches see it. The bit values are the
 * kernel's (XT_CONNTRACK_STATE_BIT: INVALID 1<<0, ESTABLISHED 1<<1, RELATED 1<<2, NEW 1<<3,
 * UNTRACKED 1<<6) so that masks read the same as in xt_conntrack. SNAT/DNAT are "virtual
 * states" of --ctstate that come from the status bits; they are not stored in this field.
 */
export const CT_STATE = { INVALID: 1, ESTABLISHED: 2, RELATED: 4, NEW: 8, UNTRACKED: 64 } as const;
export type CtStateName = keyof typeof CT_STATE;

/** IPS_* conntrack status bits (include/uapi/linux/netfilter/nf_conntrack_common.h). */
export const CT_STATUS = {
  EXPECTED: 1 << 0,
  SEEN_REPLY: 1 << 1,
  ASSURED: 1 << 2,
  CONFIRMED: 1 << 3,
  SRC_NAT: 1 << 4,
  DST_NAT: 1 << 5,
  SEQ_ADJUST: 1 << 6,
  SRC_NAT_DONE: 1 << 7,
  DST_NAT_DONE: 1 << 8,
  DYING: 1 << 9,
} as const;
export type CtStatusName = keyof typeof CT_STATUS;

/**
 * A concrete packet as a rule sees it at one point of the pipeline. The simulator builds one
 * per hook traversal; kinds' constraints are evaluated against it. `undefined` means the field
 * does not exist for this packet (no ports on ICMP, no uid on forwarded traffic): a constraint
 * on a missing field never matches. Interfaces that do not apply (iif on OUTPUT) are "" because
 * that is what the kernel compares against (so `! -i eth0` matches there).
 */
export interface PacketView {
  readonly family: Family;
  readonly iif: string;
  readonly oif: string;
  num(field: NumericField): bigint | undefined;
}

/**
 * Conntrack helpers by name, numbered for the `cthelper` field (-m helper). The kernel compares
 * the helper's name with the first strlen(name) characters of the rule's (xt_helper.c), so a
 * rule naming `ftp-21` matches the `ftp` helper.
 */
export const CT_HELPER = {
  ftp: 1,
  tftp: 2,
  irc: 3,
  sip: 4,
  amanda: 5,
  pptp: 6,
  sane: 7,
  'netbios-ns': 8,
  snmp: 9,
  'snmp_trap': 10,
  RAS: 11,
  'Q.931': 12,
  'H.245': 13,
} as const;
export type CtHelperName = keyof typeof CT_HELPER;
