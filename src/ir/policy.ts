import type { Match, Target } from '../kinds/index.js';
import type { Family, IpPrefix } from '../util/ip.js';
import type { Span } from '../util/span.js';
import type { ChainPolicy, Hook, TableName } from './netfilter.js';

/**
 * The typed IR of a policy. Readonly all the way down; every node has a source span so any
 * finding, trace or emitted rule can point back at `file:line:col`.
 *
 * Families are split here: an `inet` (both families) table in the DSL becomes one table in
 * each ruleset, with rules restricted to what applies to that family. Consumers (emitter,
 * simulator, analyzer) therefore always work on one family, as the kernel does.
 */
export interface Policy {
  /** The firewall host: interfaces, addresses, routes. Absent for an imported dump. */
  readonly host?: HostModel;
  readonly rulesets: Readonly<Record<Family, Ruleset>>;
  readonly expectations: readonly Expectation[];
  /** Files the policy was read from, root first (includes follow). */
  readonly sources: readonly string[];
  readonly origin: 'nfp' | 'iptables-save';
}

export interface Ruleset {
  readonly family: Family;
  /** Only the tables the policy declares, in canonical order (raw, mangle, nat, filter, security). */
  readonly tables: readonly Table[];
}

export interface Table {
  readonly name: TableName;
  /** Built-in chains first in iptables-save order, then user chains in declaration order. */
  readonly chains: readonly Chain[];
  readonly span: Span;
}

export interface Chain {
  readonly name: string;
  /** Set for built-in chains: the hook they hang on (the name, uppercase). */
  readonly hook?: Hook;
  /** Built-in chains only. */
  readonly policy?: ChainPolicy;
  readonly rules: readonly Rule[];
  readonly span: Span;
  /** Counters from an imported `iptables-save -c` dump ([packets, bytes]). */
  readonly counters?: readonly [bigint, bigint];
}

export interface Rule {
  /** Conjunction: the rule matches when every match does. */
  readonly matches: readonly Match[];
  readonly target: Target;
  /** User comment (`comment "…"` / `-m comment --comment`), kept apart from the file:line tag. */
  readonly comment?: string;
  readonly span: Span;
  readonly counters?: readonly [bigint, bigint];
}

export interface HostModel {
  readonly name: string;
  readonly interfaces: readonly Interface[];
  readonly routes: readonly Route[];
  /** Conntrack/IP sysctls the policy expects (`sysctl nf_conntrack_tcp_loose 0`). */
  readonly sysctls: Readonly<Record<string, string>>;
  readonly span: Span;
}

export interface Interface {
  /** Logical name used in rules (`lan`). */
  readonly name: string;
  /** Kernel device (`eth0`); rules are emitted with it. */
  readonly device: string;
  /** Addresses with their prefix length; the first of each family is the primary one (MASQUERADE). */
  readonly addresses: readonly InterfaceAddress[];
  readonly span: Span;
}

export interface InterfaceAddress {
  readonly family: Family;
  readonly addr: bigint;
  readonly prefixLen: number;
}

export interface Route {
  readonly family: Family;
  /** `default` is 0.0.0.0/0 or ::/0. */
  readonly dest: IpPrefix;
  readonly via?: bigint;
  /** Device name (resolved from the logical interface name). */
  readonly device: string;
  readonly metric?: number;
  readonly span: Span;
}

/**
 * A class of packets described with the same match kinds rules use (restricted to header and
 * conntrack-state matches): `tcp from 10.0.0.0/8 to 192.168.1.10 dport 22 iif wan`.
 */
export interface Flow {
  readonly family?: Family;
  readonly matches: readonly Match[];
  readonly span: Span;
}

/** Expected header values after NAT: `translated daddr 192.168.18.10 dport 8080`. */
export interface Translation {
  readonly saddr?: bigint;
  readonly daddr?: bigint;
  readonly sport?: number;
  readonly dport?: number;
  readonly span: Span;
}

export type FindingKind = 'shadowed' | 'redundant' | 'unreachable';

export type Expectation =
  /** Every packet of the flow is delivered (locally or forwarded); optionally via a chain/hook, rewritten as given, and its replies come back. */
  | {
      readonly kind: 'reachable';
      readonly flow: Flow;
      readonly via?: string;
      readonly translated?: Translation;
      readonly withReply: boolean;
      readonly span: Span;
    }
  /** No packet of the flow is delivered. */
  | { readonly kind: 'unreachable'; readonly flow: Flow; readonly via?: string; readonly span: Span }
  /** Of the packets in `within`, only those in one of `allowed` are delivered. */
  | {
      readonly kind: 'only';
      readonly allowed: readonly Flow[];
      readonly within: Flow;
      readonly via?: string;
      readonly span: Span;
    }
  /** The analyzer finds no rule of this kind (`expect no shadowed rules`). */
  | { readonly kind: 'no-findings'; readonly finding: FindingKind; readonly span: Span };

/** Look up a chain by name in a table. */
export function findChain(table: Table, name: string): Chain | undefined {
  return table.chains.find((c) => c.name === name);
}

export function findTable(rs: Ruleset, name: TableName): Table | undefined {
  return rs.tables.find((t) => t.name === name);
}
