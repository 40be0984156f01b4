import type { TargetEffect } from '../../ir/effect.js';
import type { Rule } from '../../ir/policy.js';
import type { Match } from '../../kinds/index.js';
import { diag } from '../../util/diagnostics.js';
import { EMPTY, type EmittedRule, type Piece, type RuleEmitContext, type Variant, cross, dependsOnProto, keyOf } from './pieces.js';

export function viaAuxChains(
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
