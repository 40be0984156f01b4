import type { Family } from '../../util/ip.js';
import type { Packet } from '../packet.js';
import type { ProtoTracker, TrackerSysctls } from './tracker.js';

/**
 * ICMP and ICMPv6 tracking (net/netfilter/nf_conntrack_proto_icmp.c, _icmpv6.c, Linux 6.x).
 * Queries (echo, timestamp, …) are tracked as connections keyed by type, code and identifier;
 * a request creates the entry, the matching reply type with the same id belongs to it. Every
 * packet refreshes the timer; ICMP entries never become ASSURED. Error messages are not
 * connections: the simulator looks up the connection they quote (RELATED) — `icmpKind`
 * tells it which path a message takes, `icmpReplyType` how a query's tuple inverts.
 */

/** The per-entry state: nothing, everything is in the tuple. */
export type IcmpFlow = null;

/** Query types and their answers (invmap): IPv4 echo, timestamp, info, address mask. */
const V4_REPLY: ReadonlyMap<number, number> = new Map([
  [8, 0],
  [0, 8],
  [13, 14],
  [14, 13],
  [15, 16],
  [16, 15],
  [17, 18],
  [18, 17],
]);
/** IPv6 echo and node information queries. */
const V6_REPLY: ReadonlyMap<number, number> = new Map([
  [128, 129],
  [129, 128],
  [139, 140],
  [140, 139],
]);

/** Types that may create an entry (valid_new): the requests. */
const V4_NEW: ReadonlySet<number> = new Set([8, 13, 15, 17]);
const V6_NEW: ReadonlySet<number> = new Set([128, 139]);

/** ICMPv4 error types (icmp_is_err): they quote the packet that caused them. */
const V4_ERRORS: ReadonlySet<number> = new Set([3, 4, 5, 11, 12]);
/** Highest ICMPv4 type the kernel knows (NR_ICMP_TYPES); above it a message is INVALID. */
const V4_MAX_TYPE = 18;
/**
 * ICMPv6 neighbour discovery and multicast listener messages: never tracked (UNTRACKED),
 * so that a ruleset with `ctstate INVALID drop` does not break IPv6 itself.
 */
const V6_UNTRACKED: ReadonlySet<number> = new Set([130, 131, 132, 133, 134, 135, 136, 143, 151, 152]);
/** ICMPv6 redirect: handled like an error when it quotes a packet. */
const V6_REDIRECT = 137;

/** The type a reply to `type` carries, or undefined when `type` is not a query (nf_ct_invert_tuple fails). */
export function icmpReplyType(family: Family, type: number): number | undefined {
  return (family === 'ipv4' ? V4_REPLY : V6_REPLY).get(type);
}

/**
 * How conntrack treats an ICMP message before any lookup:
 * - `error`: quotes a packet; RELATED to the quoted connection if it exists (and the outer
 *   destination is that connection's endpoint), else INVALID;
 * - `query`: a request or reply, tracked by id (a reply without entry is INVALID);
 * - `untracked`: ICMPv6 neighbour discovery / MLD, UNTRACKED;
 * - `invalid`: INVALID outright (unknown ICMPv4 type, or a type that has no reply and is no error).
 */
export type IcmpKind = 'error' | 'query' | 'untracked' | 'invalid';

export function icmpKind(family: Family, type: number): IcmpKind {
  if (family === 'ipv4') {
    if (type > V4_MAX_TYPE) return 'invalid';
    if (V4_ERRORS.has(type)) return 'error';
    return V4_REPLY.has(type) ? 'query' : 'invalid';
  }
  if (V6_UNTRACKED.has(type)) return 'untracked';
  if (type < 128 || type === V6_REDIRECT) return 'error';
  return V6_REPLY.has(type) ? 'query' : 'invalid';
}

function makeIcmpTracker(family: Family, proto: number, timeoutName: string): ProtoTracker<IcmpFlow> {
  const timeout = (sys: TrackerSysctls): number => sys.timeouts[timeoutName] ?? 30;
  const valid = family === 'ipv4' ? V4_NEW : V6_NEW;
  return {
    name: family === 'ipv4' ? 'icmp' : 'icmpv6',
    protos: [proto],
    create(pkt: Packet, sys) {
      if (pkt.family !== family) return { invalid: `${family === 'ipv4' ? 'ICMP' : 'ICMPv6'} in an ${pkt.family} packet` };
      const type = pkt.icmp?.type;
      if (type === undefined) return { invalid: 'no ICMP header' };
      if (!valid.has(type)) return { invalid: `ICMP type ${type} cannot start a connection` };
      return { state: null, timeout: timeout(sys) };
    },
    update(_flow, _pkt, _dir, ctx) {
      // Every packet of the exchange refreshes the timer; replies do not end it (duplicates happen).
      return { verdict: 'accept', timeout: timeout(ctx.sys) };
    },
    stateName() {
      return undefined;
    },
    clone() {
      return null;
    },
  };
}

export const icmpTracker: ProtoTracker<IcmpFlow> = makeIcmpTracker('ipv4', 1, 'icmp_timeout');
export const icmpv6Tracker: ProtoTracker<IcmpFlow> = makeIcmpTracker('ipv6', 58, 'icmpv6_timeout');
