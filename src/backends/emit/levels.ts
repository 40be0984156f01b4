import type { Rule } from '../../ir/policy.js';
import { type Match, matchKind, targetEffect } from '../../kinds/index.js';
import type { ProtoMatch } from '../../kinds/match/proto.js';
import { type Diagnostic, diag } from '../../util/diagnostics.js';
import type { Family } from '../../util/ip.js';
import { MERGED_MODULES } from './line.js';
import { EMPTY, type EmittedRule, type RuleEmitContext, boundToChain } from './pieces.js';

/** The rule writer, passed in (rule.ts calls this module and is called back). */
export type EmitRule = (rule: Rule, ctx: RuleEmitContext) => EmittedRule;

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
export function fitGroups(rule: Rule, family: Family): Match[][] {
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
export function viaLevels(rule: Rule, groups: readonly Match[][], ctx: RuleEmitContext, emitRule: EmitRule): EmittedRule {
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
