import type { NumericField, PacketView } from '../ir/fields.js';
import { CT_HELPER, CT_STATE, CT_STATUS, type CtHelperName } from '../ir/fields.js';
import type { Hook } from '../ir/netfilter.js';
import type { Family } from '../util/ip.js';
import type { TraceStep } from './api.js';
import type { CtTable } from './conntrack/table.js';
import { Tuple, hasPorts, isIcmpProto, wordsToAddr } from './conntrack/tuple.js';
import type { Host } from './host.js';
import { type Packet, ipLength } from './packet.js';

/**
 * ip_conntrack_info values (include/uapi/linux/netfilter/nf_conntrack_common.h): what the
 * packet is to its connection. States for the rules derive from it (xt_conntrack).
 */
export const CTINFO = {
  ESTABLISHED: 0,
  RELATED: 1,
  NEW: 2,
  ESTABLISHED_REPLY: 3,
  RELATED_REPLY: 4,
  UNTRACKED: 7,
} as const;

/** skb->_nfct: no conntrack, a raw-table template (CT target), or an entry of the table. */
export const NO_CT = -1;
export const TEMPLATE_CT = -2;

/**
 * uid/gid of a packet sent from a kernel socket (the ICMP control socket): the socket exists,
 * but it has no file, so xt_owner's uid and gid tests fail (and their negations hold). A value
 * beyond 32 bits is in no uid range the owner kind can state.
 */
export const KERNEL_SOCKET_ID = 2 ** 32;

/** What the raw table's CT target attached: the template for the connection to be created. */
export interface CtTemplate {
  helper?: string;
  zone?: number;
}

/**
 * One packet on its way through the hooks: the packet itself (rewritten in place by NAT, it is
 * the simulator's own copy), the skb metadata rules can see (interfaces, mark, conntrack
 * reference), and the trace. Compiled rule predicates read these fields directly.
 */
export class Frame {
  family: Family = 'ipv4';
  pkt!: Packet;
  hook: Hook = 'PREROUTING';
  /** Index of `hook` in HOOKS order (PREROUTING 0 … POSTROUTING 4), for array lookups. */
  hookIndex = 0;
  iif = '';
  oif = '';
  /** skb->mark */
  mark = 0;
  /** Entry index, NO_CT or TEMPLATE_CT. */
  ct = NO_CT;
  ctinfo: number = CTINFO.NEW;
  /** Set when the packet has no conntrack because raw NOTRACK'ed it. */
  untracked = false;
  template: CtTemplate | undefined;
  /** Link-layer packet type: 0 unicast, 1 broadcast, 2 multicast. */
  pkttype = 0;
  uid: number | undefined;
  gid: number | undefined;
  now = 0;
  trace: TraceStep[] | undefined;
  /** Why the packet was dropped (`rule`, `policy`, `no-route`, `table-full`…). */
  dropReason: string | undefined;
  /** Why conntrack found the packet INVALID, when it did. */
  invalidReason: string | undefined;
  /** The tracker asked for the entry to go once this packet is through (nf_ct_kill_acct). */
  killAfter = false;
  /** The packet's TCP seq / ack were left out by the user: conntrack fills them in. */
  autoSeq = false;
  autoAck = false;
  /** The unconfirmed entry this packet created (freed if the packet dies before confirm). */
  createdCt = NO_CT;
  /** State and direction the rules saw after conntrack (for the outcome). */
  seenState = 0;
  seenDir: 0 | 1 | undefined;
  /** Packets the host sent because of this one (REJECT answers, ICMP errors). */
  responses: { device: string; packet: Packet; local?: boolean }[] | undefined;
  /** The packet as it arrived, with filled-in seq/ack/source. */
  arrived: Packet | undefined;
  /** The source address of a locally generated packet was chosen by routing. */
  pickedSource = false;
  /** Next hop of the route the packet takes out (MASQUERADE picks the address toward it). */
  nexthop: bigint | undefined;
  /** Matches nfproof could not decide (opaque constraints without an evaluator). */
  unknowns: string[] | undefined;
  /** Cached IPv4 addresses as numbers (refreshed whenever NAT rewrites the packet). */
  srcN = 0;
  dstN = 0;

  constructor(
    readonly table: CtTable,
    readonly host: Host,
  ) {}

  /** Call after changing pkt addresses. */
  refresh(): void {
    if (this.family === 'ipv4') {
      this.srcN = Number(this.pkt.src);
      this.dstN = Number(this.pkt.dst);
    }
  }

  get hasCt(): boolean {
    return this.ct >= 0;
  }

  /** The state bit xt_conntrack/xt_state see. */
  get ctStateBit(): number {
    if (this.untracked || this.ctinfo === CTINFO.UNTRACKED) return CT_STATE.UNTRACKED;
    if (this.ct === NO_CT) return CT_STATE.INVALID;
    // A template counts as a connection in state NEW (ctinfo IP_CT_NEW).
    return 1 << ((this.ctinfo % 3) + 1);
  }

  /** 0 original, 1 reply. */
  get ctDir(): 0 | 1 {
    return this.ctinfo >= CTINFO.ESTABLISHED_REPLY && this.ctinfo !== CTINFO.UNTRACKED ? 1 : 0;
  }

  hasPortsNow(): boolean {
    return !this.pkt.fragment && hasPorts(this.pkt.proto) && this.pkt.sport !== undefined;
  }
}

const ctScratch = new Tuple();

/**
 * A template's status: IPS_TEMPLATE (bit 11, nf_ct_tmpl_alloc) and IPS_CONFIRMED (set by
 * xt_ct_tg_check), so `--ctstatus CONFIRMED` matches it (checked on the kernel:
 * test/kernel/conntrack-match.test.ts).
 */
const TEMPLATE_STATUS = BigInt(CT_STATUS.CONFIRMED | (1 << 11));

/*
 * A raw-table CT template (TEMPLATE_CT) is a connection with zeroed tuples to xt_conntrack:
 * rules after `-j CT --zone 5` see --ctproto 0, --ctorigsrc 0.0.0.0, ports 0 and --ctdir
 * ORIGINAL (checked on the kernel in test/analyze/kernel-cases.test.ts).
 */
function ctTupleField(f: Frame, dir: 0 | 1, side: 'src' | 'dst'): bigint | undefined {
  if (f.ct === TEMPLATE_CT) return 0n;
  if (f.ct < 0) return undefined;
  const t = f.table.getTuple(f.ct, dir, ctScratch);
  return wordsToAddr(f.family, side === 'src' ? t.src : t.dst);
}

/**
 * --ctorigsrcport & co. read the tuple's `u.all` for every protocol (xt_conntrack
 * ct_proto_port_check_v3): the ports, for ICMP the echo id (source) and type << 8 | code
 * (destination), 0 for protocols without ports; nfproof's tuples hold exactly these.
 */
function ctPortField(f: Frame, dir: 0 | 1, side: 'src' | 'dst'): bigint | undefined {
  if (f.ct === TEMPLATE_CT) return 0n;
  if (f.ct < 0) return undefined;
  const t = f.table.getTuple(f.ct, dir, ctScratch);
  return BigInt(side === 'src' ? t.sport : t.dport);
}

/**
 * The reference field reader: every NumericField as a bigint, `undefined` when the packet has
 * no such field. Compiled predicates read faster paths but must agree with this (property test).
 */
export function readField(f: Frame, field: NumericField): bigint | undefined {
  const p = f.pkt;
  switch (field) {
    case 'saddr':
      return p.src;
    case 'daddr':
      return p.dst;
    case 'proto':
      return BigInt(p.proto);
    case 'sport':
      return f.hasPortsNow() ? BigInt(p.sport as number) : undefined;
    case 'dport':
      return f.hasPortsNow() && p.dport !== undefined ? BigInt(p.dport) : undefined;
    case 'tcpflags':
      return !p.fragment && p.tcp ? BigInt(p.tcp.flags) : undefined;
    case 'icmptype':
      return !p.fragment && p.icmp && isIcmpProto(p.proto) ? BigInt(p.icmp.type) : undefined;
    case 'icmpcode':
      return !p.fragment && p.icmp && isIcmpProto(p.proto) ? BigInt(p.icmp.code) : undefined;
    case 'length':
      return BigInt(ipLength(p));
    case 'ttl':
      return BigInt(p.ttl);
    case 'dscp':
      return BigInt((p.tos ?? 0) >> 2);
    case 'tos':
      return BigInt(p.tos ?? 0);
    case 'fragment':
      return p.fragment ? 1n : 0n;
    case 'pkttype':
      return BigInt(f.pkttype);
    case 'srctype':
      return BigInt(f.host.addrTypeField(f.family, p.src));
    case 'dsttype':
      return BigInt(f.host.addrTypeField(f.family, p.dst));
    case 'mark':
      return BigInt(f.mark >>> 0);
    case 'ctmark':
      return f.ct >= 0 ? BigInt(f.table.mark[f.ct]) : f.ct === TEMPLATE_CT ? 0n : undefined;
    case 'ctstate':
      return BigInt(f.ctStateBit);
    case 'ctstatus':
      return f.ct >= 0 ? BigInt(f.table.status[f.ct] & 0xffff) : f.ct === TEMPLATE_CT ? TEMPLATE_STATUS : undefined;
    case 'ctdir':
      return f.ct >= 0 ? BigInt(f.ctDir) : f.ct === TEMPLATE_CT ? 0n : undefined;
    case 'ctproto':
      return f.ct >= 0 ? BigInt(f.table.protoOf(f.ct)) : f.ct === TEMPLATE_CT ? 0n : undefined;
    case 'ctorigsrc':
      return ctTupleField(f, 0, 'src');
    case 'ctorigdst':
      return ctTupleField(f, 0, 'dst');
    case 'ctreplsrc':
      return ctTupleField(f, 1, 'src');
    case 'ctrepldst':
      return ctTupleField(f, 1, 'dst');
    case 'ctorigsrcport':
      return ctPortField(f, 0, 'src');
    case 'ctorigdstport':
      return ctPortField(f, 0, 'dst');
    case 'ctreplsrcport':
      return ctPortField(f, 1, 'src');
    case 'ctrepldstport':
      return ctPortField(f, 1, 'dst');
    case 'macsrc':
      return p.macSrc;
    case 'cthelper': {
      if (f.ct < 0) return undefined;
      const master = f.table.ext[f.ct]?.master;
      const name = master !== undefined ? f.table.ext[master]?.helper : undefined;
      const id = name !== undefined ? CT_HELPER[name as CtHelperName] : undefined;
      return id !== undefined ? BigInt(id) : undefined;
    }
    case 'uid':
      return f.uid !== undefined ? BigInt(f.uid) : undefined;
    case 'gid':
      return f.gid !== undefined ? BigInt(f.gid) : undefined;
    default: {
      const never: never = field;
      throw new Error(`unknown field ${String(never)}`);
    }
  }
}

/** A PacketView over a frame, for the reference evaluator and kinds' evaluate hooks. */
export function frameView(f: Frame): PacketView {
  return {
    family: f.family,
    iif: f.iif,
    oif: f.oif,
    num: (field) => readField(f, field),
  };
}

/** Records a stack event (not a rule) in the frame's trace. */
export function traceEvent(f: Frame, event: NonNullable<TraceStep['event']>, action: string): void {
  f.trace?.push({ hook: f.hook, table: 'raw', chain: event, action, event });
}
