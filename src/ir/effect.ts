import type { Interval } from '../util/intervals.js';

/**
 * What a target does, in neutral terms. Target kinds map their IR node to one of these; the
 * simulator executes it and the analyzer encodes it, so neither needs to know each target.
 */
export type TargetEffect =
  | { readonly type: 'accept' }
  | { readonly type: 'drop' }
  /** Drop and answer: a TCP RST or an ICMP/ICMPv6 error of the given type/code. */
  | { readonly type: 'reject'; readonly reply: RejectReply }
  | { readonly type: 'return' }
  | { readonly type: 'jump'; readonly chain: string }
  | { readonly type: 'goto'; readonly chain: string }
  /** Non-terminating: do the side effects, go on with the next rule. */
  | { readonly type: 'continue'; readonly actions: readonly SideEffect[] }
  /** Sets up the connection's NAT binding and accepts (terminates the nat chain). */
  | { readonly type: 'nat'; readonly nat: NatAction }
  /**
   * A target nfproof does not model (QUEUE, TPROXY, an unknown extension). The simulator
   * reports it; the analyzer treats the rule's outcome as unknown, never as proved.
   */
  | { readonly type: 'opaque'; readonly name: string; readonly reason: string; readonly terminates: 'yes' | 'no' | 'maybe' };

export type RejectReply =
  | { readonly type: 'tcp-reset' }
  | { readonly type: 'icmp'; readonly icmpType: number; readonly code: number }
  | { readonly type: 'icmpv6'; readonly icmpType: number; readonly code: number };

export type MarkField = 'mark' | 'ctmark';

export type SideEffect =
  | { readonly type: 'log'; readonly prefix?: string; readonly level?: number; readonly group?: number }
  /** field = (field & ~mask) ^ xor  — MARK/CONNMARK --set-xmark; set-mark V/M is mask M, xor V. */
  | { readonly type: 'xmark'; readonly field: MarkField; readonly mask: bigint; readonly xor: bigint }
  /**
   * to = (to & ~toMask) ^ (from & fromMask) — CONNMARK --save-mark (mark → ctmark) and
   * --restore-mark (ctmark → mark), as the kernel computes it (xt_connmark.c).
   */
  | { readonly type: 'copy-mark'; readonly from: MarkField; readonly to: MarkField; readonly fromMask: bigint; readonly toMask: bigint }
  /** raw table: leave the packet untracked (NOTRACK, CT --notrack). */
  | { readonly type: 'notrack' }
  /** raw table CT target: attach a helper, zone… to the connection created by this packet. */
  | { readonly type: 'ct-template'; readonly helper?: string; readonly zone?: number }
  /** TOS / traffic-class byte rewrite (DSCP, TOS targets): tos = (tos & ~mask) ^ xor (8 bits). */
  | { readonly type: 'rewrite-tos'; readonly mask: number; readonly xor: number }
  /** TTL / hop-limit rewrite (TTL, HL targets); inc/dec saturate at 255/0 as the kernel does. */
  | { readonly type: 'rewrite-ttl'; readonly op: 'set' | 'inc' | 'dec'; readonly value: number }
  /** A header rewrite nfproof does not model (TCPMSS, CHECKSUM, CLASSIFY…): no effect on any field a rule reads. */
  | { readonly type: 'unmodelled'; readonly name: string };

/**
 * The NAT mapping a rule asks for (struct nf_nat_range2). Absent address range: keep the
 * address (or, for masquerade/redirect, take the interface's address). Absent port range:
 * keep the port unless it clashes.
 */
export interface NatAction {
  readonly type: 'snat' | 'dnat' | 'masquerade' | 'redirect' | 'netmap';
  readonly addr?: Interval;
  readonly ports?: Interval;
  /** NETMAP: map the prefix, keeping host bits; addr is then the target prefix range. */
  readonly random: boolean;
  readonly fullyRandom: boolean;
  readonly persistent: boolean;
}
