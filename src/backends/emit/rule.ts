import { opaqueParts } from '../../ir/constraint.js';
import type { TargetEffect } from '../../ir/effect.js';
import type { Rule } from '../../ir/policy.js';
import type { IptablesFragment } from '../../kinds/iptables.js';
import { type Match, matchConstraint, matchKind, targetEffect, targetKind } from '../../kinds/index.js';
import type { ProtoMatch } from '../../kinds/match/proto.js';
import { type Diagnostic, diag } from '../../util/diagnostics.js';
import type { Family } from '../../util/ip.js';
import { intersect } from '../../util/intervals.js';
import { commentArgs, ruleCommentText } from './comment.js';
import { MERGED_MODULES, assembleLine, duplicateOptions, repeatedBuiltins, sectionsOf } from './line.js';

/**
 * One IR rule → iptables lines. A rule whose matches hold several values (an address set, a
 * port list longer than multiport allows, a protocol set) does not fit one iptables rule; each
 * kind's `split` cuts its match into pieces that do, and the rule matches when one piece of
 * every match does. Two ways to write that:
 *
 * - **cross product** in the rule's own chain, one line per combination of pieces. Right when
 *   the target ends the packet's walk through the chain (ACCEPT, DROP, REJECT, NAT, RETURN,
 *   goto): the first line that matches decides, the later ones are never reached.
 * - **auxiliary chains** when the target lets the packet go on (LOG, MARK, jump …): a cross
 *   product would run the target once per matching combination. The rule becomes
 *   `-A C <single-valued tests> -j C~N`; chain `C~N` holds one line per combination, each
 *   `-g C~N~t`; chain `C~N~t` holds the target. The goto means that after the first
 *   combination that matches, the packet falls off `C~N~t` straight back to the line after
 *   the jump in C — the target ran exactly once. For a `jump X` target the combinations go
 *   to X directly (`-g X`): X's RETURN then comes back to C, as the original jump would.
 *
 * Stateful or unknown matches (limit, recent, hashlimit, anything with an opaque constraint)
 * must not be evaluated once per combination either (each evaluation takes a token, sets a
 * recent entry …). When a multi-valued rule has one, the auxiliary form is used with the
 * stateful matches in `C~N~t`, so they run once, after every stateless test passed.
 *
 * RETURN and goto cannot move into an auxiliary chain: RETURN there would return to C instead
 * of from C, and a goto from there returns to C when its chain ends instead of to C's caller.
 * Such rules use the cross product. With a stateful match as well, that is exact only when no
 * packet can pass the stateless tests of two lines (the pieces are pairwise disjoint sets):
 * then the stateful matches go last on each line and run once. Otherwise the rule is refused.
 */

/** More lines than this for one rule is almost certainly a mistake (or a job for ipset). */
export const MAX_LINES_PER_RULE = 10_000;

/**
 * Error codes with which the emitter refuses a rule that no iptables rule (or chain of them)
 * can hold with the same meaning; everything else it is asked to write, it writes.
 */
export const EMIT_REFUSALS: ReadonlySet<string> = new Set(['E-emit-repeated-option', 'E-emit-duplicate-option', 'E-emit-stateful-return', 'E-emit-stateful-set']);

/** Modules whose options need `-p` of their protocol in the same iptables rule. */
const PROTO_MODULES: ReadonlySet<string> = new Set(['tcp', 'udp', 'sctp', 'dccp', 'icmp', 'icmp6', 'multiport', 'udplite']);

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

/** One way of writing a match: the piece and its fragments. */
interface Piece {
  readonly match: Match;
  readonly fragments: readonly IptablesFragment[];
  /** Fragments as text, to compare pieces (made when first needed, see keyOf). */
  key?: string;
}

function keyOf(p: Piece): string {
  p.key ??= p.fragments.map((f) => `${f.module ?? ''}:${f.args.join(' ')}`).join('|');
  return p.key;
}

function emitPiece(m: Match, family: Family, proto: number | undefined): Piece {
  return { match: m, fragments: matchKind(m).iptables.emit(m, proto === undefined ? { family } : { family, proto }) };
}

function splitMatch(m: Match, family: Family, proto: number | undefined): readonly Match[] {
  const k = matchKind(m);
  return k.iptables.split ? k.iptables.split(m, proto === undefined ? { family } : { family, proto }) : [m];
}

/** The pieces of a match, written the same way only once (a set listing a value twice). */
function piecesOf(m: Match, family: Family, proto: number | undefined): Piece[] {
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
interface Variant {
  readonly proto?: number;
  /** The protocol pieces chosen for this variant (one per proto match). */
  readonly protoPieces: readonly Piece[];
  /** Pieces of every other match, in rule order (index-aligned with `others`). */
  readonly pieces: readonly (readonly Piece[])[];
}

const EMPTY: EmittedRule = { lines: [], aux: [] };

function terminates(e: TargetEffect): boolean {
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
function boundToChain(e: TargetEffect): boolean {
  return e.type === 'return' || e.type === 'goto';
}

function cross<T>(lists: readonly (readonly T[])[]): T[][] {
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
function pairwiseDisjoint(pieces: readonly Piece[], family: Family): boolean {
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

function singleProto(pieces: readonly Piece[]): number | undefined {
  const positive = new Set(
    pieces.flatMap((p) => {
      const m = p.match as ProtoMatch;
      return !m.negated && m.protos.length === 1 ? [m.protos[0]] : [];
    }),
  );
  return positive.size === 1 ? [...positive][0] : undefined;
}

function dependsOnProto(pieces: readonly Piece[]): boolean {
  return pieces.some((p) => p.fragments.some((f) => f.module !== null && PROTO_MODULES.has(f.module)));
}

/**
 * Keys of the options a match writes that an iptables rule holds once: built-in options
 * (`-i`, `-s` …) and the options of the merged tcp/udp sections. Two matches with a common
 * key cannot share one iptables rule.
 */
function exclusiveKeys(m: Match, family: Family, proto: number | undefined): string[] {
  const k = matchKind(m);
  const ectx = { family, ...(proto !== undefined ? { proto } : {}) };
  const first = (k.iptables.split ? k.iptables.split(m, ectx) : [m])[0];
  if (first === undefined) return [];
  return k.iptables.emit(first, ectx).flatMap((f) => {
    const name = f.args.find((a) => a !== '!');
    if (name === undefined) return [];
    if (f.module === null) return [`-${name}`];
    return MERGED_MODULES.has(f.module) ? [`${f.module}${name}`] : [];
  });
}

/**
 * Splits a rule's matches into groups that each fit one iptables rule, in rule order: a new
 * group starts at a match that repeats an option of the current group (`iif eth0 iif != eth1`,
 * `dport 1-100 dport != 50`). A single protocol match goes into every group, since the
 * protocol's own options need `-p` in the same rule.
 */
function fitGroups(rule: Rule, family: Family): Match[][] {
  const protos = rule.matches.filter((m): m is ProtoMatch => m.kind === 'proto');
  const shared: Match[] = protos.length === 1 ? protos : [];
  const p0 = protos.length === 1 ? protos[0] : undefined;
  const proto = p0 && !p0.negated && p0.protos.length === 1 ? p0.protos[0] : undefined;
  const groups: Match[][] = [[]];
  let keys = new Set<string>(shared.flatMap((m) => exclusiveKeys(m, family, proto)));
  for (const m of rule.matches) {
    if (shared.includes(m)) continue;
    const mk = exclusiveKeys(m, family, proto);
    if (mk.some((k) => keys.has(k))) {
      groups.push([]);
      keys = new Set(shared.flatMap((x) => exclusiveKeys(x, family, proto)));
    }
    groups[groups.length - 1].push(m);
    mk.forEach((k) => keys.add(k));
  }
  return groups.map((g) => [...shared, ...g]);
}

/**
 * A rule whose matches do not fit one iptables rule becomes a chain of levels: the first group
 * in the rule's chain jumps to level 2, each level goes (`-g`) to the next, the last holds the
 * target. A level that does not match falls off its chain and, because every level after the
 * first was entered by goto, returns straight to the line after the jump in the rule's chain;
 * the target runs at most once, and stateful matches are still tested in rule order.
 */
function viaLevels(rule: Rule, groups: readonly Match[][], ctx: RuleEmitContext): EmittedRule {
  const effect = targetEffect(rule.target, ctx.family);
  if (boundToChain(effect)) {
    ctx.report(
      diag('error', 'E-emit-repeated-option', rule.span, `this ${effect.type} rule repeats a test that an iptables rule holds once, and a ${effect.type} cannot move into a helper chain without changing its meaning`, 'combine the repeated tests into one value (e.g. saddr { 10.0.0.0/8, !10.1.0.0/16 })'),
    );
    return EMPTY;
  }
  const names = groups.slice(1).map((_, i) => ctx.allocateChain(`${ctx.chain}~${ctx.ruleIndex}${i === 0 ? '' : `~${i + 1}`}`));
  const lines: string[] = [];
  const aux: { name: string; lines: readonly string[] }[] = [];
  for (let i = 0; i < groups.length; i++) {
    const last = i === groups.length - 1;
    const target: Rule['target'] = last ? rule.target : { kind: 'jump', mode: i === 0 ? 'jump' : 'goto', chain: names[i], span: rule.span };
    const chain = i === 0 ? ctx.chain : names[i - 1];
    // Every level carries the rule's comment; say what is wrong with it once.
    const report = i === 0 ? ctx.report : (d: Diagnostic) => (d.code.startsWith('W-comment') ? undefined : ctx.report(d));
    const out = emitRule({ ...rule, matches: groups[i], target }, { ...ctx, chain, ruleIndex: i === 0 ? ctx.ruleIndex : 1, levelsDone: true, report });
    if (out.lines.length === 0) return EMPTY;
    if (i === 0) lines.push(...out.lines);
    else aux.push({ name: chain, lines: out.lines });
    aux.push(...out.aux);
  }
  return { lines, aux };
}

/** Whether two matches of the rule write an option that an iptables rule holds once. */
function conflicting(v: Variant): boolean {
  const seen = new Set<string>();
  for (const ps of [...v.protoPieces.map((p) => [p]), ...v.pieces]) {
    const first = ps[0];
    if (!first) continue;
    const mine = new Set<string>();
    for (const f of first.fragments) {
      const name = f.args.find((a) => a !== '!');
      if (name === undefined) continue;
      if (f.module === null) mine.add(`-${name}`);
      else if (MERGED_MODULES.has(f.module)) mine.add(`${f.module}${name}`);
    }
    for (const k of mine) {
      if (seen.has(k)) return true;
      seen.add(k);
    }
  }
  return false;
}

export function emitRule(rule: Rule, ctx: RuleEmitContext): EmittedRule {
  const { family } = ctx;
  const fail = (code: string, message: string, hint?: string): EmittedRule => {
    ctx.report(diag('error', code, rule.span, message, hint));
    return EMPTY;
  };

  const protoMatches = rule.matches.filter((m): m is ProtoMatch => m.kind === 'proto');
  const others = rule.matches.filter((m) => m.kind !== 'proto');
  let variants: Variant[];
  try {
    const protoChoices = cross(protoMatches.map((m) => piecesOf(m, family, undefined)));
    variants = protoChoices.map((protoPieces) => {
      const proto = singleProto(protoPieces);
      return { proto, protoPieces, pieces: others.map((m) => piecesOf(m, family, proto)) };
    });
  } catch (e) {
    return fail('E-emit-kind', `cannot write this rule for iptables: ${e instanceof Error ? e.message : String(e)}`);
  }

  if (!ctx.levelsDone && variants.some(conflicting)) {
    const groups = fitGroups(rule, family);
    if (groups.length > 1) return viaLevels(rule, groups, ctx);
  }

  const combos = variants.reduce((n, v) => n + v.pieces.reduce((k, ps) => k * ps.length, 1), 0);
  // Which matches are stateful matters only when the rule becomes several lines.
  const stateful = combos > 1 ? others.map((m) => opaqueParts(matchConstraint(m, family)).length > 0) : others.map(() => false);
  if (combos === 0) {
    ctx.report(diag('warning', 'W-emit-never', rule.span, 'this rule can never match, so no iptables rule is written for it', 'a match in it excludes every packet (e.g. a negated full range)'));
    return EMPTY;
  }
  if (combos > MAX_LINES_PER_RULE) {
    return fail('E-emit-too-many', `this rule needs ${combos} iptables rules (the product of its value lists); nfproof stops at ${MAX_LINES_PER_RULE}`, 'split it into several rules, or make the lists shorter (ranges and prefixes count as one value)');
  }

  const effect = targetEffect(rule.target, family);
  const tKind = targetKind(rule.target);
  const targetWords = (proto: number | undefined) => tKind.iptables.emit(rule.target, { family, ...(proto !== undefined ? { proto } : {}) });
  const commentText = ruleCommentText(rule, { sourceTag: ctx.sourceTag }, ctx.report);
  const comment = commentText === undefined ? [] : commentArgs(commentText);

  const line = (chain: string, pieces: readonly Piece[], target: readonly string[]): string | undefined => {
    const parts = sectionsOf(pieces.map((p) => p.fragments));
    const repeated = repeatedBuiltins(parts.builtins);
    if (repeated.length > 0) {
      ctx.report(
        diag(
          'error',
          'E-emit-repeated-option',
          rule.span,
          `this rule tests \`${repeated[0]}\` twice; an iptables rule holds that test only once`,
          'combine the two into one value (e.g. one address set with exclusions: saddr { 10.0.0.0/8, !10.0.0.1 })',
        ),
      );
      return undefined;
    }
    const dups = duplicateOptions(parts.sections);
    if (dups.length > 0) {
      ctx.report(
        diag(
          'error',
          'E-emit-duplicate-option',
          rule.span,
          `this rule tests \`${dups[0]}\` twice; iptables-nft keeps only one of the two tests, so the rule would mean something else`,
          'merge the two tests into one value set (e.g. dport { 1-49, 51-100 } instead of dport 1-100 and dport != 50)',
        ),
      );
      return undefined;
    }
    return assembleLine(chain, parts, comment, target);
  };
  const collect = (xs: (string | undefined)[]): string[] | undefined => (xs.some((x) => x === undefined) ? undefined : (xs as string[]));

  const hasStateful = stateful.some(Boolean);
  const direct = combos === 1 || (terminates(effect) && !hasStateful);
  try {
    if (direct) {
      const lines: (string | undefined)[] = [];
      for (const v of variants) {
        for (const combo of cross(v.pieces)) lines.push(line(ctx.chain, [...v.protoPieces, ...combo], targetWords(v.proto)));
      }
      const ok = collect(lines);
      return ok ? { lines: ok, aux: [] } : EMPTY;
    }
    if (boundToChain(effect)) {
      // A RETURN or goto must stay here. If no packet can match two combinations, the cross
      // product with the stateful matches last on each line is exact: the line whose stateless
      // tests pass is the only one that ever runs them.
      if (variants.every((v) => v.pieces.every((ps, i) => stateful[i] || pairwiseDisjoint(ps, family)))) {
        const lines: (string | undefined)[] = [];
        for (const v of variants) {
          for (const combo of cross(v.pieces)) {
            const ordered = [...combo.filter((_, i) => !stateful[i]), ...combo.filter((_, i) => stateful[i])];
            lines.push(line(ctx.chain, [...v.protoPieces, ...ordered], targetWords(v.proto)));
          }
        }
        const ok = collect(lines);
        return ok ? { lines: ok, aux: [] } : EMPTY;
      }
      return fail(
        'E-emit-stateful-return',
        `a ${effect.type} rule with several values and a stateful match (${others.filter((_, i) => stateful[i]).map((m) => m.kind).join(', ')}) cannot be written for iptables without changing its meaning`,
        'split the rule into one rule per value, or test the stateful match in a rule of its own',
      );
    }
    return viaAuxChains(rule, ctx, variants, others, stateful, effect, { line, collect, targetWords });
  } catch (e) {
    return fail('E-emit-kind', `cannot write this rule for iptables: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function viaAuxChains(
  rule: Rule,
  ctx: RuleEmitContext,
  variants: readonly Variant[],
  others: readonly Match[],
  stateful: readonly boolean[],
  effect: TargetEffect,
  h: {
    line(chain: string, pieces: readonly Piece[], target: readonly string[]): string | undefined;
    collect(xs: (string | undefined)[]): string[] | undefined;
    targetWords(proto: number | undefined): readonly string[];
  },
): EmittedRule {
  const oneVariant = variants.length === 1;
  const first = variants[0];
  // Which matches can be tested once, in the rule's own chain: single-valued, the same in every
  // protocol variant, stateless, and not needing a protocol that differs per variant.
  const inMain = others.map((_, i) => {
    if (stateful[i]) return false;
    const ps = variants.map((v) => v.pieces[i]);
    if (ps.some((p) => p.length !== 1) || ps.some((p) => keyOf(p[0]) !== keyOf(ps[0][0]))) return false;
    return oneVariant || !dependsOnProto(ps[0]);
  });
  for (let i = 0; i < others.length; i++) {
    if (stateful[i] && variants.some((v) => v.pieces[i].length !== 1)) {
      ctx.report(diag('error', 'E-emit-stateful-set', others[i].span, `this ${others[i].kind} match has several values and is stateful; nfproof cannot write it without running it more than once`, 'give it a single value'));
      return EMPTY;
    }
  }
  const statefulPieces = first.pieces.filter((_, i) => stateful[i]).map((ps) => ps[0]);
  if (!oneVariant && dependsOnProto(statefulPieces)) {
    ctx.report(diag('error', 'E-emit-stateful-set', rule.span, 'a stateful match that needs the protocol cannot be combined with a protocol set here', 'write one rule per protocol'));
    return EMPTY;
  }

  const altChain = ctx.allocateChain(`${ctx.chain}~${ctx.ruleIndex}`);
  const jumpTarget = effect.type === 'jump' && statefulPieces.length === 0 ? effect.chain : undefined;
  const targetChain = jumpTarget === undefined ? ctx.allocateChain(`${ctx.chain}~${ctx.ruleIndex}~t`) : undefined;

  const mainPieces = [...(oneVariant ? first.protoPieces : []), ...first.pieces.filter((_, i) => inMain[i]).map((ps) => ps[0])];
  const main = h.line(ctx.chain, mainPieces, ['-j', altChain]);

  const altLines: (string | undefined)[] = [];
  for (const v of variants) {
    const rest = v.pieces.filter((_, i) => !inMain[i] && !stateful[i]);
    for (const combo of cross(rest)) {
      const needProto = !oneVariant || dependsOnProto(combo);
      altLines.push(h.line(altChain, [...(needProto ? v.protoPieces : []), ...combo], ['-g', jumpTarget ?? (targetChain as string)]));
    }
  }

  const aux: { name: string; lines: string[] }[] = [];
  const alts = h.collect(altLines);
  if (main === undefined || !alts) return EMPTY;
  aux.push({ name: altChain, lines: alts });
  if (targetChain !== undefined) {
    // The protocol goes along: stateful matches may need it, and so may the target (REJECT
    // --reject-with tcp-reset, DNAT/REDIRECT with ports are refused without -p in the rule).
    const proto = oneVariant ? first.proto : undefined;
    const t = h.line(targetChain, [...(oneVariant ? first.protoPieces : []), ...statefulPieces], h.targetWords(proto));
    if (t === undefined) return EMPTY;
    aux.push({ name: targetChain, lines: [t] });
  }
  return { lines: [main], aux };
}
