import type { Verdict } from '../concrete/interp.js';
import type { PacketInput } from '../concrete/input.js';
import type { RuleRef, Witness } from '../types.js';
import type { Family } from '../../util/ip.js';
import type { Span } from '../../util/span.js';
import type { DiffKind } from './compare.js';

/**
 * What `nfproof diff` produces. Reports (text, JSON, SARIF, Markdown) render these; nothing
 * here depends on Z3 or on the diff's internal header space.
 */
export type { DiffKind };

/** equivalent: proved for every packet; different: at least one class differs; unknown: neither could be shown. */
export type DiffStatus = 'equivalent' | 'different' | 'unknown';

/** The step of one side's walk that decides a difference. */
export interface DiffDecision {
  /** The rule, when a rule decides. */
  readonly rule?: RuleRef;
  /** `ACCEPT`, `DROP`, `REJECT`, `DNAT`, `policy DROP of filter/FORWARD`, `martian`… */
  readonly action: string;
  /** Where to point: the rule, or the chain whose policy decides. */
  readonly span?: Span;
}

export interface DiffSide {
  readonly verdict: Verdict;
  /** One line: `dropped by filter/FORWARD rule 3 (DROP)` / `forwarded out of eth1 as tcp …`. */
  readonly summary: string;
  readonly decision?: DiffDecision;
  /** The witness packet's walk through this side (the analyzer's witness form). */
  readonly witness: Witness;
}

/** A cube of header space: every packet in it is in the class. */
export interface DiffCube {
  /** The cube in the DSL's flow syntax. */
  readonly flow: string;
  /** What else it needs beyond headers (environment choices, unmodelled tests, `saddr = daddr`). */
  readonly conditions: readonly string[];
  /** Field → printed value, for machine readers. */
  readonly fields: Readonly<Record<string, string>>;
}

/**
 * One class of packets whose outcome changed the same way, decided by the same rules on each
 * side: a union of disjoint cubes, with one witness packet replayed on both sides.
 */
export interface DiffClass {
  readonly family: Family;
  readonly kind: DiffKind;
  /** The class as disjoint cubes, merged where adjacent. */
  readonly cubes: readonly DiffCube[];
  /** A packet of the class, as the old side reads it. */
  readonly witness: { readonly summary: string; readonly input: PacketInput };
  readonly old: DiffSide;
  readonly new: DiffSide;
  /** What the simulator said when the witness was replayed on both sides. */
  readonly replay: { readonly status: 'agrees' | 'not-replayed'; readonly detail: string };
  /** How the class was found: the exact box walk, or Z3 (then the cube may be a part of a larger class). */
  readonly decidedBy: 'boxes' | 'z3';
  /** Unmodelled matches/targets the difference depends on. */
  readonly dependsOn: readonly string[];
}

/** A region where neither equivalence nor a difference could be shown. */
export interface DiffUnknown {
  readonly family: Family;
  readonly reason: string;
  /** The region, as a cube, when it is one. */
  readonly region?: string;
}

export interface DiffInternalError {
  readonly family: Family;
  readonly message: string;
  readonly witness?: string;
}

export interface FamilyDiffStats {
  readonly changedRules: { readonly old: number; readonly new: number };
  /** Boxes of the region where differences can lie. */
  readonly regionBoxes: number;
  readonly leaves: { readonly old: number; readonly new: number };
  readonly rawCubes: number;
  readonly z3Queries: number;
  readonly z3Ms: number;
  /** Milliseconds per phase: both models and the region to look at, box walks, comparing their leaves, Z3, building the classes. */
  readonly phases: { readonly setup: number; readonly walk: number; readonly compare: number; readonly z3: number; readonly classes: number };
  readonly ms: number;
}

export interface FamilyDiff {
  readonly family: Family;
  readonly status: DiffStatus;
  /** Differences the allow list does not expect. */
  readonly classes: readonly DiffClass[];
  /** Differences the allow list expects. */
  readonly allowed: readonly DiffClass[];
  readonly unknown: readonly DiffUnknown[];
  readonly internalErrors: readonly DiffInternalError[];
  readonly stats: FamilyDiffStats;
}

export interface DiffReport {
  readonly old: string;
  readonly new: string;
  /** equivalent, different (expected or not), or unknown. */
  readonly status: DiffStatus;
  readonly families: readonly FamilyDiff[];
  /** Families left out, and why (`ipv6: new.rules is an IPv4 dump`). */
  readonly skipped: readonly { readonly family: Family; readonly reason: string }[];
  readonly classes: readonly DiffClass[];
  readonly unknown: readonly DiffUnknown[];
  readonly internalErrors: readonly DiffInternalError[];
  /** What the comparison took for granted, stated to the user. */
  readonly assumptions: readonly string[];
  /** Differences the --allow file expects, left out of `classes`. */
  readonly allowed: readonly DiffClass[];
  /** Lines of the --allow file that matched no difference (stale entries). */
  readonly allowUnused: readonly { readonly line: number; readonly text: string }[];
  readonly ms: number;
}
