import type { TargetEffect } from '../../ir/effect.js';
import type { ModelChain, ModelRule } from '../model/build.js';
import type { Box } from './box.js';
import type { Prepass } from './prepass.js';

/**
 * Relations between rules of one chain, decided on boxes: whether a live rule can be removed
 * without changing any verdict, and the classic pairwise anomalies (generalization,
 * correlation). Only rules whose matches boxes describe exactly take part in the pairwise
 * relations; the removal check is sound with over-approximations.
 */

export function sameEffect(a: TargetEffect, b: TargetEffect): boolean {
  if (a.type !== b.type) return false;
  if (a.type === 'reject' && b.type === 'reject') return JSON.stringify(a.reply) === JSON.stringify(b.reply);
  return a.type === 'accept' || a.type === 'drop';
}

export function isVerdict(e: TargetEffect): boolean {
  return e.type === 'accept' || e.type === 'drop' || e.type === 'reject';
}

function logOnly(e: TargetEffect): boolean {
  return e.type === 'continue' && e.actions.every((a) => a.type === 'log' || a.type === 'unmodelled');
}

/**
 * A live rule with a verdict is removable when every packet it decides would get the same
 * verdict from the rest of the chain: the later rules that can see those packets either have
 * the same verdict or only log, up to the point where they are all decided (or the built-in
 * chain's policy is that verdict). Returns what takes over, or undefined.
 */
export function removableBecause(prepass: Prepass, chain: ModelChain, r: ModelRule, dead: ReadonlySet<number>): { by: number[]; policy: boolean } | undefined {
  if (!isVerdict(r.effect)) return undefined;
  const dom = prepass.dom;
  let rest: Box[] = [...prepass.reachMatch[r.id]];
  const by: number[] = [];
  let ops = 0;
  for (const j of chain.rules.slice(r.index + 1)) {
    if (rest.length === 0) break;
    const over = prepass.boxes[j.id].over;
    const meets = over.some((m) =>
      rest.some((x) => {
        const z = dom.intersect(m, x);
        return z !== undefined && !dom.isEmpty(z);
      }),
    );
    if (!meets) continue;
    if (logOnly(j.effect)) continue;
    if (!sameEffect(j.effect, r.effect) || dead.has(j.id)) return undefined;
    const under = prepass.boxes[j.id].under;
    let next: Box[] = rest;
    for (const u of under) {
      next = next.flatMap((x) => {
        ops++;
        return dom.subtract(x, u);
      });
    }
    next = next.filter((b) => !dom.isEmpty(b));
    if (next.length !== rest.length || next.some((b, i) => b !== rest[i])) by.push(j.id);
    rest = next;
    if (ops > 20_000 || rest.length > 512) return undefined;
  }
  if (rest.length === 0) return by.length ? { by, policy: false } : undefined;
  const policy = chain.policy;
  const policyMatches = chain.hook !== undefined && ((policy ?? 'ACCEPT') === 'ACCEPT' ? r.effect.type === 'accept' : r.effect.type === 'drop');
  return policyMatches ? { by, policy: true } : undefined;
}

export type Anomaly = { readonly kind: 'generalization' | 'correlation'; readonly earlier: number; readonly later: number };

/**
 * Guards: rules that test only conntrack state (`ct state invalid drop`) or only interfaces
 * (`iif lo accept`). They overlap almost everything by design, so pairing them is noise.
 */
function guardOnly(r: ModelRule): boolean {
  return r.source.matches.length > 0 && r.source.matches.every((m) => m.kind === 'ct-state' || m.kind === 'iface');
}

/**
 * Pairs (earlier i, later j) of live rules, one accepting and one dropping or rejecting, that
 * overlap: j a strict superset of i (generalization), or a partial overlap (correlation).
 * Catch-all and broad closing rules and pure state guards are left out: their overlaps are
 * what they are written for.
 */
export function anomalies(prepass: Prepass, chain: ModelChain, live: ReadonlySet<number>, limitPerRule = 5): Anomaly[] {
  const dom = prepass.dom;
  const candidates = chain.rules.filter(
    (r) => live.has(r.id) && isVerdict(r.effect) && prepass.boxes[r.id].exact && r.source.matches.length > 0 && !guardOnly(r),
  );
  const out: Anomaly[] = [];
  const subset = (a: readonly Box[], b: readonly Box[]): boolean => {
    let rest: Box[] = [...a];
    for (const y of b) rest = rest.flatMap((x) => dom.subtract(x, y));
    return rest.every((x) => dom.isEmpty(x));
  };
  for (let jj = 0; jj < candidates.length; jj++) {
    const j = candidates[jj];
    // A broad closing rule (`tcp reject`, `iif wan drop`) is meant to have exceptions before it.
    const broad = j.source.matches.every((m) => m.kind === 'proto' || m.kind === 'iface' || m.kind === 'ct-state');
    if (broad) continue;
    const mj = prepass.boxes[j.id].over;
    let found = 0;
    for (let ii = 0; ii < jj && found < limitPerRule; ii++) {
      const i = candidates[ii];
      // Dropping and rejecting are the same decision here: the packet does not get through.
      if (sameEffect(i.effect, j.effect) || (i.effect.type !== 'accept' && j.effect.type !== 'accept')) continue;
      const mi = prepass.boxes[i.id].over;
      const meet = mi.some((x) => mj.some((y) => {
        const z = dom.intersect(x, y);
        return z !== undefined && !dom.isEmpty(z);
      }));
      if (!meet) continue;
      if (subset(mj, mi)) continue; // j inside i: j is dead, reported as shadowed already
      const kind = subset(mi, mj) ? 'generalization' : 'correlation';
      out.push({ kind, earlier: i.id, later: j.id });
      found++;
    }
  }
  return out;
}
