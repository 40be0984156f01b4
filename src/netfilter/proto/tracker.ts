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
  /** nf_conntrack_tcp_ignore_invalid_rst: accept RSTs below the peer's last ACK (default off). */
  readonly tcpIgnoreInvalidRst?: boolean;
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
  gre_timeout: 30,
  gre_timeout_stream: 180,
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
  /**
   * IPS_SEEN_REPLY already set (a packet went the reply way before this one). nf_conntrack_in()
   * sets the bit only after the tracker accepted the first reply packet, so that packet still
   * sees `false` (this is what makes a RST answering a SYN delete the entry).
   */
  readonly seenReply: boolean;
  /** IPS_ASSURED already set. */
  readonly assured: boolean;
  /**
   * Virtual time in seconds. UDP needs it: a flow gets the long "stream" timeout only when it
   * is still active more than 2 s after it was created. Without it, UDP assumes that much time passed.
   */
  readonly now?: number;
  /** Seconds until the entry expires (nf_ct_expires); TCP may shorten the timer of a desynchronised connection. */
  readonly expiresIn?: number;
  /** IPS_NAT_CLASH: the entry lost a NAT clash; UDP and GRE never make it ASSURED. */
  readonly natClash?: boolean;
  /**
   * NAT sequence adjustment (nf_ct_seq_offset, set by helpers that resize payloads, e.g. FTP):
   * the offset added to sequence numbers of direction `dir` after `seq`. TCP window tracking
   * subtracts it from ACKs of the other direction.
   */
  readonly seqOffset?: (dir: Direction, seq: number) => number;
}

export interface TrackResult {
  /**
   * `accept`: the packet belongs to the connection, state updated.
   * `invalid`: the packet is INVALID for the rules (state and timeout untouched).
   * `restart`: the entry must be destroyed and the packet tracked again as a new connection
   *            (e.g. a SYN reopening a connection in TIME_WAIT or CLOSE).
   */
  readonly verdict: 'accept' | 'invalid' | 'restart';
  /**
   * `accept`: the new timeout in seconds; undefined means "leave the timer as it is" (ignored
   * segments, a retransmitted SYN). `invalid`: when set, the entry's timer is lowered to it even
   * though the packet is INVALID (the kernel's nf_tcp_handle_invalid).
   */
  readonly timeout?: number;
  /**
   * `accept` only: the packet belongs to the connection but changed nothing (the kernel's
   * "ignore" cases: e.g. a SYN on an established entry, a retransmission of acknowledged data).
   * The rules still see the connection's state (ESTABLISHED…), not INVALID.
   */
  readonly ignored?: boolean;
  /**
   * `accept` only: destroy the entry once this packet has been handled (the packet itself still
   * belongs to it for the rules), e.g. a RST that is the only answer to a SYN (nf_ct_kill_acct).
   */
  readonly kill?: boolean;
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
  create(pkt: Packet, sys: TrackerSysctls, now?: number): { readonly state: S; readonly timeout: number } | { readonly invalid: string };
  /** A packet of an existing connection, in direction `dir`. May mutate `state`. */
  update(state: S, pkt: Packet, dir: Direction, ctx: TrackContext): TrackResult;
  /** State name for `conntrack -L` (TCP: ESTABLISHED…); undefined for stateless protocols. */
  stateName(state: S): string | undefined;
  /** Deep copy, for snapshots. */
  clone(state: S): S;
  /**
   * l4proto->can_early_drop (TCP: connections that are closing). Used by the conntrack GC
   * worker (gc_worker_can_early_drop) once the table holds 95% of nf_conntrack_max: it evicts
   * entries that are not ASSURED or for which this returns true. Not used by the early_drop()
   * of the allocation path, which only takes non-ASSURED entries. Absent: never.
   */
  canEarlyDrop?(state: S): boolean;
}
