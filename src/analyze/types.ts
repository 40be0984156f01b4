import type { CtStateName } from '../ir/fields.js';
import type { Hook, TableName } from '../ir/netfilter.js';
import type { Expectation, Flow } from '../ir/policy.js';
import type { Severity } from '../util/diagnostics.js';
import type { Family } from '../util/ip.js';
import type { Span } from '../util/span.js';
import type { ConcreteOutcome, Verdict } from './concrete/interp.js';
import type { PacketInput } from './concrete/input.js';

/**
 * What `nfproof check` and `nfproof query` produce. Reports (text, JSON, SARIF, JUnit) render
 * these; nothing here depends on Z3.
 */

/** A rule, as messages and reports point at it. */
export interface RuleRef {
  readonly family: Family;
  readonly table: TableName;
  readonly chain: string;
  /** 0-based position in its chain. */
  readonly index: number;
  readonly span: Span;
  /** The rule as DSL text. */
  readonly text: string;
}

export interface ChainRef {
  readonly family: Family;
  readonly table: TableName;
  readonly name: string;
  readonly span: Span;
}

export type FindingKind =
  /** No packet can reach the rule (its chain is never entered by a matching packet, or its tests contradict). */
  | 'unreachable'
  /** Every packet it matches is decided earlier with a different action. */
  | 'shadowed'
  /** Every packet it matches is decided earlier with the same action, or removing it changes no verdict. */
  | 'redundant'
  /** A later rule matches a superset of an earlier one with a different action (the earlier one is an exception). */
  | 'generalization'
  /** Two rules overlap partly with different actions: their order decides the overlap. */
  | 'correlation'
  /** A user chain no packet enters. */
  | 'unused-chain'
  /** A NAT rule no connection's first packet can reach. */
  | 'nat-never-fires'
  /** The solver could not decide within its time limit. */
  | 'undecided';

/** One step of a witness's walk: a rule that matched, or a policy / routing decision. */
export interface WitnessStep {
  readonly hook: Hook;
  readonly table: TableName;
  readonly chain: string;
  readonly rule?: RuleRef;
  readonly action: string;
}

/** A concrete packet that demonstrates a claim, with what the model says happens to it. */
export interface Witness {
  readonly input: PacketInput;
  /** One line: `tcp 203.0.113.7:40000 -> 10.0.0.5:22 in eth0 [NEW]`. */
  readonly summary: string;
  readonly verdict: Verdict;
  readonly dropReason?: string;
  readonly egress?: string;
  /** Header as it leaves (after NAT), when it does. */
  readonly egressSummary?: string;
  readonly path: readonly WitnessStep[];
  /** Unmodelled matches/targets the outcome depends on (their assumed values are in input). */
  readonly dependsOn: readonly string[];
  /** The server's reply, for `with reply` expectations. */
  readonly reply?: Witness;
  /** What the simulator said when the packet was replayed. */
  replay?: ReplayResult;
}

export type ReplayResult =
  | { readonly status: 'agrees'; readonly detail: string }
  | { readonly status: 'disagrees'; readonly detail: string }
  | { readonly status: 'not-replayed'; readonly detail: string };

export interface Finding {
  readonly kind: FindingKind;
  readonly severity: Severity;
  /** Stable code for CI tools: `nfproof/shadowed` … */
  readonly code: string;
  readonly message: string;
  readonly rule?: RuleRef;
  readonly chain?: ChainRef;
  /** Other rules involved (the earlier rules that decide a shadowed rule's packets…). */
  readonly related: readonly { readonly rule: RuleRef; readonly note: string }[];
  readonly witness?: Witness;
  readonly hint?: string;
  /** How it was decided: the box pre-pass or Z3. */
  readonly decidedBy: 'prepass' | 'z3' | 'structure';
  /**
   * For a rule of a table of both families: the families the finding holds in (both, or the
   * one it is about). Absent for single-family tables.
   */
  readonly families?: readonly Family[];
}

export type ExpectationStatus = 'proved' | 'failed' | 'unknown';

export interface ExpectationResult {
  readonly expectation: Expectation;
  readonly status: ExpectationStatus;
  readonly message: string;
  /** A counterexample for `failed`; an example for `proved` reachability. */
  readonly witness?: Witness;
  readonly reason?: string;
}

/** An inconsistency inside nfproof (encoding vs concrete model vs simulator): never hidden. */
export interface InternalError {
  readonly message: string;
  readonly witness?: Witness;
  readonly rule?: RuleRef;
}

export interface CheckStats {
  rules: number;
  /** Rules settled by the box pre-pass. */
  prepassDecided: number;
  /** Rules that needed Z3. */
  z3Decided: number;
  undecided: number;
  z3Queries: number;
  z3Ms: number;
  prepassMs: number;
  /** Building findings (relations, anomalies, witnesses). */
  findingsMs: number;
  expectationsMs: number;
  replayMs: number;
  totalMs: number;
  replayed: number;
  replayAgreed: number;
}

export interface CheckReport {
  readonly findings: readonly Finding[];
  readonly expectations: readonly ExpectationResult[];
  /** What the analysis assumed (no host model, unmodelled matches…), stated to the user. */
  readonly assumptions: readonly string[];
  readonly internalErrors: readonly InternalError[];
  readonly stats: CheckStats;
}

/** `nfproof query`: the outcomes a flow can get. */
export interface QueryOutcome {
  readonly family: Family;
  readonly verdict: Verdict;
  /** The rules that decided it (terminal rule, NAT rules, or the chain policy). */
  readonly deciding: readonly { readonly rule?: RuleRef; readonly action: string }[];
  readonly witness: Witness;
}

export interface QueryReport {
  readonly flow: Flow;
  readonly outcomes: readonly QueryOutcome[];
  /** Verdicts the solver could not rule in or out. */
  readonly unknown: readonly string[];
  readonly assumptions: readonly string[];
  readonly internalErrors: readonly InternalError[];
}

export type { ConcreteOutcome, PacketInput, Verdict, CtStateName };
