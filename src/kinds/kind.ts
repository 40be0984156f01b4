import type { Constraint } from '../ir/constraint.js';
import type { TargetEffect } from '../ir/effect.js';
import type { Hook, TableName } from '../ir/netfilter.js';
import type { Family } from '../util/ip.js';
import type { Span } from '../util/span.js';
import type { DslContext, WordCursor } from './dsl.js';
import type { EmitContext, ImportClaim, ImportContext, ImportedOption, IptablesFragment } from './iptables.js';

/**
 * One match or target kind, complete: its IR shape (the type parameter), its DSL syntax, its
 * iptables form in both directions, and its meaning (a Constraint for matches, an effect for
 * targets). The registry (index.ts) lists all kinds; everything generic over rules — parser,
 * printer, emitter, importer, simulator, analyzer — goes through these records.
 */
export interface MatchKind<M extends { readonly kind: string; readonly span: Span }> {
  readonly kind: M['kind'];
  /** One line for `grammar/` and `--help`. */
  readonly doc: string;
  /** DSL synopsis lines, e.g. `dport [!=] PORTS`. */
  readonly syntax: readonly string[];
  /** Words that start this clause in the DSL. */
  readonly keywords: readonly string[];
  /** Usable in `expect`/`query` flows (header and state matches). */
  readonly inFlows: boolean;

  /**
   * Parses the clause at the cursor (which is on one of `keywords`). When several kinds share
   * a keyword (`ct state` / `ct mark`), `accepts` looks ahead to pick one.
   */
  accepts?(cur: WordCursor, ctx: DslContext): boolean;
  parse(cur: WordCursor, ctx: DslContext): M | undefined;
  /** Canonical DSL text; parse(print(m)) must give back m (round-trip property). */
  print(m: M): string;

  /**
   * Family restriction: the match as it applies to one family, or 'never' (no packet of that
   * family can match, e.g. an IPv4 address on IPv6) or 'always' (it constrains nothing there).
   */
  forFamily(m: M, family: Family): M | 'never' | 'always';

  /** Meaning, for the simulator and the analyzer. `family` is the ruleset's. */
  constraint(m: M, family: Family): Constraint;

  /**
   * Concrete value of the opaque part(s) of constraint() for the simulator: state on the
   * virtual clock (a limit's token bucket, recent lists, connlimit…). Called when evaluation
   * reaches one of this match's opaque constraints, in rule order, so side effects (recent
   * --set) happen exactly when the kernel would run the match. Return undefined when it cannot
   * decide; the simulator then treats the part as not matching and reports it as unknown.
   */
  evaluate?(m: M, opaque: Extract<Constraint, { op: 'opaque' }>, ctx: MatchEvalContext): boolean | undefined;

  /** Hooks where the kernel accepts this match (e.g. owner only on OUTPUT/POSTROUTING). Absent: everywhere. */
  hooks?(m: M): readonly Hook[] | undefined;
  /**
   * Where `hooks` is enforced. 'reachable' (default): in every chain, against each hook the
   * chain is reached from, as the kernel checks extensions. 'builtin': only for rules written
   * directly in a built-in chain, as iptables checks -i/-o (a user chain reached from OUTPUT
   * may hold `-i eth0`; checked with iptables-restore, it loads and simply never matches there).
   */
  readonly hookCheck?: 'reachable' | 'builtin';
  /** Extra checks that need the rule (port without tcp/udp…); report through `report`. */
  validate?(m: M, rule: RuleView, report: (code: string, span: Span, message: string, hint?: string) => void): void;

  readonly iptables: {
    /**
     * Splits a multi-valued match into pieces that each fit one iptables rule (a set of three
     * prefixes becomes three `-s`); the rule matches if any piece does. Absent: no split needed.
     */
    split?(m: M, ctx: EmitContext): readonly M[];
    emit(m: M, ctx: EmitContext): readonly IptablesFragment[];
    readonly claims: readonly ImportClaim[];
    /** Builds IR from the options of one section that this kind claims (all of them at once). */
    fromIptables(module: string | null, options: readonly ImportedOption[], ctx: ImportContext): readonly M[];
  };
}

export interface TargetKind<T extends { readonly kind: string; readonly span: Span }> {
  readonly kind: T['kind'];
  readonly doc: string;
  readonly syntax: readonly string[];
  readonly keywords: readonly string[];
  accepts?(cur: WordCursor, ctx: DslContext): boolean;
  parse(cur: WordCursor, ctx: DslContext): T | undefined;
  print(t: T): string;

  effect(t: T, family: Family): TargetEffect;

  /** Where the kernel accepts the target; a rule elsewhere is refused by iptables-restore. */
  readonly tables?: readonly TableName[];
  hooks?(t: T): readonly Hook[] | undefined;
  validate?(t: T, rule: RuleView, report: (code: string, span: Span, message: string, hint?: string) => void): void;
  forFamily?(t: T, family: Family): T | 'never';

  readonly iptables: {
    /** Target names this kind imports (`SNAT`); the jump kind also takes user chain names. */
    readonly names: readonly string[];
    emit(t: T, ctx: EmitContext): readonly string[];
    fromIptables(
      name: string,
      options: readonly ImportedOption[],
      ctx: ImportContext & { readonly isGoto: boolean; readonly span: Span },
    ): T | undefined;
  };
}

/** What a match's evaluate() sees in the simulator. */
export interface MatchEvalContext {
  readonly packet: import('../ir/fields.js').PacketView;
  /** Virtual time in seconds. */
  readonly now: number;
  readonly hook: Hook;
  /**
   * Whole seconds left before the packet's connection times out, as xt_conntrack reads it
   * (nf_ct_expires / HZ: 0 while the connection is unconfirmed, since its timeout is still
   * relative); undefined when the packet has no connection (invalid, untracked).
   */
  readonly ctExpires?: number;
  /** State private to this match in this rule (a token bucket), created on first use. */
  local<T>(init: () => T): T;
  /** State shared by name across the ruleset (recent lists), created on first use. */
  shared<T>(name: string, init: () => T): T;
}

/** What validate() may look at: the rest of the rule and where it sits. */
export interface RuleView {
  readonly table: TableName;
  readonly chain: string;
  /** Hooks from which this chain can be reached (its own hook for built-ins). */
  readonly hooks: readonly Hook[];
  readonly family: Family;
  readonly matches: readonly import('./index.js').Match[];
  readonly span: Span;
}
