import type { TargetEffect } from '../../ir/effect.js';
import type { IptablesFragment } from '../../kinds/iptables.js';
import { type Match, matchConstraint, matchKind } from '../../kinds/index.js';
import type { ProtoMatch } from '../../kinds/match/proto.js';
import type { Diagnostic } from '../../util/diagnostics.js';
import { intersect } from '../../util/intervals.js';
import type { Family } from '../../util/ip.js';

/**
 * The vocabulary of the rule writer (rule.ts, aux-chains.ts, levels.ts): a match cut into the
 * pieces that each fit one iptables rule, the rule per choice of protocol, and small helpers
 * about targets and pieces.
 */
export interface RuleEmitContext {
  readonly family: Family;
  /** The chain the rule is in. */
  readonly chain: string;
  /** 1-based position of the rule in its chain (names the auxiliary chains). */
  readonly ruleIndex: number;
  readonly sourceTag: boolean;
  /** Set inside viaLevels: the matches already fit one rule. */
  readonly levelsDone?: boolean;
  /** Reserves a chain name in the table: `wanted`, or a variant of it that is still free. */
  allocateChain(wanted: string): string;
  report(d: Diagnostic): void;
}

export interface EmittedRule {
  /** Lines for the rule's own chain. */
  readonly lines: readonly string[];
  /** Auxiliary chains the rule needs, with their lines. */
  readonly aux: readonly { readonly name: string; readonly lines: readonly string[] }[];
}

/** Modules whose options need `-p` of their protocol in the same iptables rule. */
export const PROTO_MODULES: ReadonlySet<string> = new Set(['tcp', 'udp', 'sctp', 'dccp', 'icmp', 'icmp6', 'multiport', 'udplite']);

/** One way of writing a match: the piece and its fragments. */
export interface Piece {
  readonly match: Match;
  readonly fragments: readonly IptablesFragment[];
  /** Fragments as text, to compare pieces (made when first needed, see keyOf). */
  key?: string;
}

export function keyOf(p: Piece): string {
  p.key ??= p.fragments.map((f) => `${f.module ?? ''}:${f.args.join(' ')}`).join('|');
  return p.key;
}

export function emitPiece(m: Match, family: Family, proto: number | undefined): Piece {
  return { match: m, fragments: matchKind(m).iptables.emit(m, proto === undefined ? { family } : { family, proto }) };
}

export function splitMatch(m: Match, family: Family, proto: number | undefined): readonly Match[] {
  const k = matchKind(m);
  return k.iptables.split ? k.iptables.split(m, proto === undefined ? { family } : { family, proto }) : [m];
}

/** The pieces of a match, written the same way only once (a set listing a value twice). */
export function piecesOf(m: Match, family: Family, proto: number | undefined): Piece[] {
  const parts = splitMatch(m, family, proto);
  if (parts.length === 1) return [emitPiece(parts[0], family, proto)];
  const seen = new Set<string>();
  const out: Piece[] = [];
  for (const x of parts) {
    const p = emitPiece(x, family, proto);
    const k = keyOf(p);
    if (!seen.has(k)) {
      seen.add(k);
      out.push(p);
    }
  }
  return out;
}

/** The rule for one choice of protocol pieces. */
export interface Variant {
  readonly proto?: number;
  /** The protocol pieces chosen for this variant (one per proto match). */
  readonly protoPieces: readonly Piece[];
  /** Pieces of every other match, in rule order (index-aligned with `others`). */
  readonly pieces: readonly (readonly Piece[])[];
}

export const EMPTY: EmittedRule = { lines: [], aux: [] };

export function terminates(e: TargetEffect): boolean {
  switch (e.type) {
    case 'accept':
    case 'drop':
    case 'reject':
    case 'return':
    case 'goto':
    case 'nat':
      return true;
    case 'jump':
    case 'continue':
      return false;
    case 'opaque':
      return e.terminates === 'yes';
    default: {
      const never: never = e;
      throw new Error(`unhandled effect ${JSON.stringify(never)}`);
    }
  }
}

/** Whether the target must stay in the rule's own chain (see the module comment). */
export function boundToChain(e: TargetEffect): boolean {
  return e.type === 'return' || e.type === 'goto';
}

export function cross<T>(lists: readonly (readonly T[])[]): T[][] {
  if (lists.every((l) => l.length === 1)) return [lists.map((l) => l[0])];
  let out: T[][] = [[]];
  for (const l of lists) {
    const next: T[][] = [];
    for (const prefix of out) for (const x of l) next.push([...prefix, x]);
    out = next;
  }
  return out;
}

/**
 * Whether no packet can match two of the pieces: each piece a plain test of one field (an
 * address, port or protocol set) and the sets pairwise apart. Anything else counts as overlapping.
 */
export function pairwiseDisjoint(pieces: readonly Piece[], family: Family): boolean {
  if (pieces.length < 2) return true;
  const tests = pieces.map((p) => matchConstraint(p.match, family));
  for (let i = 0; i < tests.length; i++) {
    const a = tests[i];
    if (a.op !== 'in') return false;
    for (let j = i + 1; j < tests.length; j++) {
      const b = tests[j];
      if (b.op !== 'in' || b.field !== a.field || intersect(a.set, b.set).length > 0) return false;
    }
  }
  return true;
}

export function singleProto(pieces: readonly Piece[]): number | undefined {
  const positive = new Set(
    pieces.flatMap((p) => {
      const m = p.match as ProtoMatch;
      return !m.negated && m.protos.length === 1 ? [m.protos[0]] : [];
    }),
  );
  return positive.size === 1 ? [...positive][0] : undefined;
}

export function dependsOnProto(pieces: readonly Piece[]): boolean {
  return pieces.some((p) => p.fragments.some((f) => f.module !== null && PROTO_MODULES.has(f.module)));
}
