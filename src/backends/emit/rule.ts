import { opaqueParts } from '../../ir/constraint.js';
import type { Rule } from '../../ir/policy.js';
import { matchConstraint, targetEffect, targetKind } from '../../kinds/index.js';
import type { ProtoMatch } from '../../kinds/match/proto.js';
import { diag } from '../../util/diagnostics.js';
import { viaAuxChains } from './aux-chains.js';
import { commentArgs, ruleCommentText } from './comment.js';
import { fitGroups, viaLevels } from './levels.js';
import { MERGED_MODULES, assembleLine, duplicateOptions, repeatedBuiltins, sectionsOf } from './line.js';
import {
  EMPTY,
  type EmittedRule,
  type Piece,
  type RuleEmitContext,
  type Variant,
  boundToChain,
  cross,
  pairwiseDisjoint,
  piecesOf,
  singleProto,
  terminates,
} from './pieces.js';

export type { EmittedRule, RuleEmitContext } from './pieces.js';

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


/** Whether two matches of the rule write an option that an iptables rule holds once. */
function conflicting(v: Variant): boolean {
  // (module, option) pairs seen so far, as parallel arrays: a rule has a handful, and this runs
  // for every rule, so no sets or joined strings.
  const mods: (string | null)[] = [];
  const names: string[] = [];
  const visit = (p: Piece | undefined): boolean => {
    if (!p) return false;
    const start = names.length;
    for (const f of p.fragments) {
      if (f.module !== null && !MERGED_MODULES.has(f.module)) continue;
      const name = f.args[0] === '!' ? f.args[1] : f.args[0];
      if (name === undefined) continue;
      for (let i = 0; i < start; i++) if (names[i] === name && mods[i] === f.module) return true;
      mods.push(f.module);
      names.push(name);
    }
    return false;
  };
  for (const p of v.protoPieces) if (visit(p)) return true;
  for (const ps of v.pieces) if (visit(ps[0])) return true;
  return false;
}

function targetWordsOf(rule: Rule, family: RuleEmitContext['family'], proto: number | undefined): readonly string[] {
  return targetKind(rule.target).iptables.emit(rule.target, proto === undefined ? { family } : { family, proto });
}

/** One `-A` line of the rule, or undefined (reported) when iptables cannot hold the pieces together. */
function writeLine(rule: Rule, ctx: RuleEmitContext, comment: readonly string[], chain: string, pieces: readonly Piece[], target: readonly string[]): string | undefined {
  const frags: (readonly Piece['fragments'][number][])[] = [];
  for (const p of pieces) frags.push(p.fragments);
  const parts = sectionsOf(frags);
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
}

function collect(xs: (string | undefined)[]): string[] | undefined {
  return xs.some((x) => x === undefined) ? undefined : (xs as string[]);
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
    if (groups.length > 1) return viaLevels(rule, groups, ctx, emitRule);
  }

  const combos = variants.reduce((n, v) => n + v.pieces.reduce((k, ps) => k * ps.length, 1), 0);
  // Which matches are stateful matters only when the rule becomes several lines.
  const stateful: boolean[] = combos > 1 ? others.map((m) => opaqueParts(matchConstraint(m, family)).length > 0) : [];
  if (combos === 0) {
    ctx.report(diag('warning', 'W-emit-never', rule.span, 'this rule can never match, so no iptables rule is written for it', 'a match in it excludes every packet (e.g. a negated full range)'));
    return EMPTY;
  }
  if (combos > MAX_LINES_PER_RULE) {
    return fail('E-emit-too-many', `this rule needs ${combos} iptables rules (the product of its value lists); nfproof stops at ${MAX_LINES_PER_RULE}`, 'split it into several rules, or make the lists shorter (ranges and prefixes count as one value)');
  }

  const effect = targetEffect(rule.target, family);
  const commentText = ruleCommentText(rule, { sourceTag: ctx.sourceTag }, ctx.report);
  const comment = commentText === undefined ? [] : commentArgs(commentText);

  const line = (chain: string, pieces: readonly Piece[], target: readonly string[]) => writeLine(rule, ctx, comment, chain, pieces, target);
  const targetWords = (proto: number | undefined) => targetWordsOf(rule, family, proto);

  const hasStateful = stateful.some(Boolean);
  const direct = combos === 1 || (terminates(effect) && !hasStateful);
  try {
    if (combos === 1) {
      // The common rule: one line, every match one piece.
      const v = variants.find((x) => x.pieces.every((ps) => ps.length === 1)) as Variant;
      const pieces: Piece[] = [...v.protoPieces];
      for (const ps of v.pieces) pieces.push(ps[0]);
      const one = writeLine(rule, ctx, comment, ctx.chain, pieces, targetWordsOf(rule, family, v.proto));
      return one === undefined ? EMPTY : { lines: [one], aux: [] };
    }
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
