import type { Packet } from '../packet.js';

/**
 * The contract between the conntrack table (src/netfilter/conntrack*.ts) and the per-protocol
 * trackers (tcp.ts, udp.ts, icmp.ts, generic.ts), mirroring the kernel's split between
 * nf_conntrack_core.c and nf_conntrack_proto_*.c.
 */

/** 0 = IP_CT_DIR_ORIGINAL, 1 = IP_CT_DIR_REPLY. */
export type Direction = 0 | 1;

/** The sysctls trackers read (net.netfilter.nf_conntrack_*), with the kernel's defaults. */
export interface TrackerSysctls {
  readonly tcpLoose: boolean;
  readonly tcpBeLiberal: boolean;
  readonly tcpMaxRetrans: number;
  /** Timeouts in seconds, keyed by the sysctl name without the `nf_conntrack_` prefix: `tcp_timeout_established`, `udp_timeout`, `icmp_timeout`, `generic_timeout`… */
  readonly timeouts: Readonly<Record<string, number>>;
}

export const DEFAULT_TIMEOUTS: Readonly<Record<string, number>> = {
  tcp_timeout_syn_sent: 120,
  tcp_timeout_syn_recv: 60,
  tcp_timeout_established: 432000,
  tcp_timeout_fin_wait: 120,
  tcp_timeout_close_wait: 60,
  tcp_timeout_last_ack: 30,
  tcp_timeout_time_wait: 120,
  tcp_timeout_close: 10,
  tcp_timeout_max_retrans: 300,
  tcp_timeout_unacknowledged: 300,
  udp_timeout: 30,
  udp_timeout_stream: 120,
  icmp_timeout: 30,
  icmpv6_timeout: 30,
  generic_timeout: 600,
};

export const DEFAULT_TRACKER_SYSCTLS: TrackerSysctls = {
  tcpLoose: true,
  tcpBeLiberal: false,
  tcpMaxRetrans: 3,
  timeouts: DEFAULT_TIMEOUTS,
};

/** What the connection looks like to a tracker when a packet of it arrives. */
export interface TrackContext {
  readonly sys: TrackerSysctls;
  /** IPS_SEEN_REPLY already set (a packet went the reply way before this one). */
  readonly seenReply: boolean;
  /** IPS_ASSURED already set. */
  readonly assured: boolean;
}

export interface TrackResult {
  /**
   * `accept`: the packet belongs to the connection, state updated.
   * `invalid`: the packet is INVALID for the rules (state and timeout untouched).
   * `restart`: the entry must be destroyed and the packet tracked again as a new connection
   *            (e.g. a SYN reopening a connection in TIME_WAIT or CLOSE).
   */
  readonly verdict: 'accept' | 'invalid' | 'restart';
  /** New timeout in seconds when accepted. */
  readonly timeout?: number;
  /** Set IPS_ASSURED (the kernel sets it e.g. when a TCP handshake completes, or UDP sees traffic both ways). */
  readonly assured?: boolean;
  /** Short reason for INVALID, for traces ("out of window", "invalid transition SYN in ESTABLISHED"…). */
  readonly reason?: string;
}

/** One tracker per protocol family of trackers; `S` is its per-connection state (mutable). */
export interface ProtoTracker<S> {
  readonly name: string;
  /** Protocol numbers it handles. */
  readonly protos: readonly number[];
  /**
   * A packet with no entry: the initial state and timeout of the new connection, or an
   * `invalid` result when this packet cannot start one (e.g. a lone FIN, or an ACK with tcp_loose=0).
   */
  create(pkt: Packet, sys: TrackerSysctls): { readonly state: S; readonly timeout: number } | { readonly invalid: string };
  /** A packet of an existing connection, in direction `dir`. May mutate `state`. */
  update(state: S, pkt: Packet, dir: Direction, ctx: TrackContext): TrackResult;
  /** State name for `conntrack -L` (TCP: ESTABLISHED…); undefined for stateless protocols. */
  stateName(state: S): string | undefined;
  /** Deep copy, for snapshots. */
  clone(state: S): S;
}
