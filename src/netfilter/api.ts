import type { CtStateName } from '../ir/fields.js';
import type { Hook, TableName } from '../ir/netfilter.js';
import type { Family } from '../util/ip.js';
import type { Span } from '../util/span.js';
import type { Ingress, Packet } from './packet.js';

/**
 * The simulator's public contract, shared by the CLI (`nfproof simulate`), the kernel
 * differential harness (which compares these results with the real kernel) and the analyzer
 * (which replays its witnesses). The implementation lives beside this file.
 */

/** One packet handed to the simulated host. */
export interface SimInput {
  /** Virtual time in seconds (non-decreasing); entries expire against it. */
  readonly t: number;
  readonly ingress: Ingress;
  readonly packet: Packet;
  /** Line in the packet file, for messages. */
  readonly line?: number;
  /**
   * Header values the author left out, to be filled in by the simulator: TCP `seq`/`ack`
   * follow the connection (what each side sent so far; a SYN gets a deterministic ISN), `src`
   * of a locally generated packet is the address the route picks. The outcome's `input` holds
   * the completed packet (the kernel harness sends that one).
   */
  readonly fill?: { readonly seq?: boolean; readonly ack?: boolean; readonly src?: boolean };
  /**
   * Routing decided by the caller instead of the host model: delivered locally, or sent out of
   * a device. Needed for policies without a host model (imported iptables-save dumps); the
   * analyzer uses it to replay a witness along the path its model chose.
   */
  readonly route?: { readonly kind: 'local' } | { readonly kind: 'forward'; readonly device: string };
  /** Socket owner of a locally generated packet (-m owner); default root (0) for `local`. */
  readonly uid?: number;
  readonly gid?: number;
  /**
   * Answers for opaque matches (rate limits, recent lists, unmodelled modules) by constraint
   * key, taken instead of the kinds' state while this packet is handled. The analyzer replays
   * a witness under the answers its model assumed, so a replay compares the pipeline, never
   * the token buckets' history. Keys not listed are decided as usual.
   */
  readonly assume?: Readonly<Record<string, boolean>>;
}

/** A conntrack tuple as `conntrack -L` prints it. */
export interface CtTuple {
  readonly src: bigint;
  readonly dst: bigint;
  readonly proto: number;
  readonly sport?: number;
  readonly dport?: number;
  /** ICMP/ICMPv6 type, code and id (echo); printed as `type=8 code=0 id=1234`. */
  readonly icmpType?: number;
  readonly icmpCode?: number;
  readonly icmpId?: number;
}

/** A connection as `conntrack -L -o extended` shows it. */
export interface CtEntrySnapshot {
  readonly family: Family;
  readonly original: CtTuple;
  readonly reply: CtTuple;
  /** TCP state name (ESTABLISHED, SYN_SENT…), absent for other protocols. */
  readonly tcpState?: string;
  /** Seconds left, rounded down, as the kernel prints it. */
  readonly timeout: number;
  /** IPS_* status bits (ir/fields.ts CT_STATUS); [ASSURED]/[UNREPLIED] derive from them. */
  readonly status: number;
  readonly mark: number;
  readonly zone: number;
  readonly helper?: string;
  /**
   * Fields of the REPLY tuple the kernel would pick at random (a source port re-allocated on
   * a clash, --random): nfproof draws them from a seeded sequence, so a comparison with the
   * kernel must treat them as "some value in the range", not as this value.
   */
  readonly randomized?: readonly ('sport' | 'dport' | 'icmpId')[];
}

/** A pending expectation (`conntrack -L expect`): a data connection a helper announced. */
export interface CtExpectationSnapshot {
  readonly family: Family;
  /** The expected connection's tuple; its source port is a wildcard (printed as 0). */
  readonly tuple: CtTuple;
  /** The master connection's ORIGINAL tuple. */
  readonly master: CtTuple;
  /** Seconds left. */
  readonly timeout: number;
  readonly helper: string;
}

/** One step of a packet's walk, for traces: a rule that matched, or a chain's policy/end. */
export interface TraceStep {
  readonly hook: Hook;
  readonly table: TableName;
  readonly chain: string;
  /** 0-based rule index in the chain; undefined for the policy or an implicit return. */
  readonly rule?: number;
  readonly span?: Span;
  /** What happened: `ACCEPT`, `DROP`, `jump X`, `SNAT to …`, `LOG`, `policy DROP`, `return`… */
  readonly action: string;
  /**
   * Set for steps that are not a chain's doing but an event of the stack on the way:
   * conntrack (INVALID, RELATED, confirmed…), NAT (null binding moved a port), routing, a
   * helper, or the walk of an answer the host sent (REJECT). `table`/`chain` then only
   * place it near the table it happened next to.
   */
  readonly event?: 'conntrack' | 'nat' | 'routing' | 'helper' | 'answer' | 'unknown';
}

export type SimVerdict =
  /** Delivered to a local socket (INPUT passed). */
  | 'local'
  /** Forwarded and sent out of `egress.device`. */
  | 'forwarded'
  /** Locally generated and sent out of `egress.device` (or delivered locally on loopback). */
  | 'sent'
  | 'dropped';

export interface SimOutcome {
  readonly input: SimInput;
  readonly verdict: SimVerdict;
  /** Why it was dropped: `rule` (DROP/REJECT), `policy`, `invalid` (e.g. bad TCP), `no-route`, `table-full`, `nat-failed`. */
  readonly dropReason?: string;
  /** The packet as it leaves (after NAT), with the device it leaves by. */
  readonly egress?: { readonly device: string; readonly packet: Packet };
  /** The packet as a local socket receives it (after DNAT/REDIRECT). */
  readonly delivered?: Packet;
  /**
   * Packets the host sends because of this one: REJECT answers, ICMP errors. `local` marks an
   * answer addressed to the host itself: it goes over lo and is delivered, never on a wire.
   */
  readonly responses: readonly { readonly device: string; readonly packet: Packet; readonly local?: boolean }[];
  /** The state the rules saw (UNTRACKED for NOTRACK). */
  readonly ctState: CtStateName;
  /** Direction relative to the connection (absent when untracked/invalid). */
  readonly ctDir?: 'original' | 'reply';
  readonly trace: readonly TraceStep[];
  /** Why conntrack found the packet INVALID (tracker reason), when it did. */
  readonly invalidReason?: string;
  /** Matches or targets nfproof could not decide for this packet (opaque without evaluator). */
  readonly unknowns?: readonly string[];
}

/** Per-rule and per-policy counters, as `iptables -L -v -x -n` / `iptables-save -c` show them. */
export interface ChainCounters {
  readonly family: Family;
  readonly table: TableName;
  readonly chain: string;
  /** Built-in chains: policy counter [packets, bytes]. */
  readonly policy?: readonly [number, number];
  readonly rules: readonly (readonly [number, number])[];
}

export interface SimOptions {
  /** nf_conntrack_max; default 262144 (what this machine's kernel reports). */
  readonly maxEntries?: number;
  /** net.netfilter.* sysctls: nf_conntrack_tcp_loose, nf_conntrack_tcp_be_liberal, timeouts… */
  readonly sysctls?: Readonly<Record<string, string>>;
  /** Record a trace per packet (default true; benchmarks turn it off). */
  readonly trace?: boolean;
  /** Seed for the choices the kernel makes at random (default 0). */
  readonly seed?: number;
}

/** A simulated host running a policy (both families; see simulator.ts). */
export interface Simulator {
  /** Handles one packet at virtual time `input.t` (the clock moves forward to it). */
  process(input: SimInput): SimOutcome;
  /** Moves the virtual clock to `t` seconds; entries whose timeout passed are gone. */
  advanceTo(t: number): void;
  /** Current virtual time. */
  readonly now: number;
  /** Live (confirmed) conntrack entries, oldest first; one family or both. */
  entries(family?: Family): CtEntrySnapshot[];
  /** nf_conntrack_count (both families, like the per-namespace kernel counter). */
  count(): number;
  /** nf_conntrack_max. */
  readonly max: number;
  /** Rule and policy counters of every chain. */
  counters(): ChainCounters[];
  /** Pending expectations (helpers), oldest first. */
  expectations(): CtExpectationSnapshot[];
  /**
   * `conntrack -F`, `conntrack -F expect` and `iptables -Z` on every table: entries,
   * expectations and counters are gone; the clock and the host's own state (ICMP rate-limit
   * buckets per peer, stateful matches) stay, as they do on the kernel.
   */
  flush(): void;
}
