import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { runPacket } from '../../../src/analyze/concrete/interp.js';
import { buildContext } from '../../../src/analyze/diff/context.js';
import { inputFor, pointOf, valAt } from '../../../src/analyze/diff/point.js';
import { termHas } from '../../../src/analyze/diff/space.js';
import { startPieces } from '../../../src/analyze/diff/start.js';
import type { Leaf } from '../../../src/analyze/diff/walk.js';
import { SLOT_COUNT } from '../../../src/analyze/model/fields.js';
import type { Policy } from '../../../src/ir/policy.js';
import { policyArb } from '../../gen/policy.js';
import { packetArb } from '../support/packets.js';

/**
 * The diff's box walk and the analyzer's concrete interpreter are two renderings of one
 * semantics. For random policies and random packets (with random answers for unmodelled tests
 * and random environment choices): the walk's pieces must partition the arriving packets, and
 * the piece holding a packet must predict what the interpreter does with it — verdict, drop
 * reason, egress and the header after NAT.
 *
 * Runtime: a few seconds.
 */
const seed = Number(process.env.NFPROOF_SEED ?? 42);

function check(policy: Policy, family: 'ipv4' | 'ipv6', run: number, mode: 'whole' | 'focused'): string | undefined {
  const ctx = buildContext(policy, policy, family, { limits: { maxPieces: mode === 'whole' ? 4000 : 30_000 } });
  const start = startPieces(ctx);
  let leaves: Leaf[] | undefined;
  if (mode === 'whole') {
    try {
      leaves = ctx.a.walker.run(start);
    } catch (e) {
      if (e instanceof Error && (e.name === 'Inexact' || e.name === 'OverBudget')) return 'skip';
      throw e;
    }
  }
  const packets = fc.sample(packetArb(ctx.a.model), { seed: seed + run, numRuns: 40 });
  const rand = fc.sample(fc.array(fc.bigInt(0n, 1n << 40n), { minLength: 64, maxLength: 64 }), { seed: seed + run, numRuns: 40 });
  let located = 0;
  for (let k = 0; k < packets.length; k++) {
    const base = pointOf(ctx.space, ctx.a, packets[k]);
    // Random answers for unmodelled tests and random environment choices, within their domains
    // (relations follow from the values they relate). A focused walk may add slots: extend and rerun.
    const extend = (p: readonly bigint[]) =>
      Array.from({ length: ctx.space.size }, (_, slot) => {
        if (slot < p.length && slot < SLOT_COUNT) return p[slot];
        if (slot < p.length && ctx.space.extraAt(slot)?.kind !== 'relation') return p[slot];
        const x = ctx.space.extraAt(slot)!;
        const r = rand[k][slot % 64];
        if (x.kind === 'opaque') return r & 1n;
        if (x.kind === 'relation') return p[x.a] === p[x.b] ? 1n : 0n;
        const [lo, hi] = x.domain[Number(r % BigInt(x.domain.length))];
        return lo + (r % (hi - lo + 1n));
      });
    let point = extend(base);
    let holders: Leaf[] = [];
    const holds = (l: Leaf) => l.piece.terms.some((t) => termHas(ctx.space, t, point));
    if (leaves) holders = leaves.filter(holds);
    else {
      const from = start.find((p) => p.terms.some((t) => termHas(ctx.space, t, point)));
      for (let tries = 0; from && tries < 5; tries++) {
        const size = ctx.space.size;
        const l = ctx.a.walker.runFocused(from, point);
        holders = l ? [l] : [];
        if (ctx.space.size === size) break;
        point = extend(point);
      }
    }
    if (holders.length === 0) continue;
    if (holders.length > 1) return `pieces overlap at ${JSON.stringify(point.map(String))}`;
    located++;
    const leaf = holders[0];
    const input = inputFor(ctx.space, ctx.a, point);
    const conc = runPacket(ctx.a.model, input);
    const where = `${family} ${JSON.stringify(input, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}\n${ctx.a.model.rules.map((r) => `  ${r.id} ${r.table}/${r.chain}: ${r.text}`).join('\n')}`;
    if (conc.verdict !== leaf.out.verdict) return `verdict: walk ${leaf.out.verdict} (${leaf.out.dropReason}), interpreter ${conc.verdict} (${conc.dropReason}) for ${where}`;
    if (conc.verdict === 'dropped') {
      if (conc.dropReason !== leaf.out.dropReason) return `drop reason: walk ${leaf.out.dropReason}, interpreter ${conc.dropReason} for ${where}`;
      continue;
    }
    if (leaf.out.egress && ctx.space.ifaces.nameOf(Number(valAt(leaf.out.egress, point))) !== conc.egress) {
      return `egress: walk ${ctx.space.ifaces.nameOf(Number(valAt(leaf.out.egress, point)))}, interpreter ${conc.egress} for ${where}`;
    }
    for (const f of ['saddr', 'daddr', 'sport', 'dport'] as const) {
      const v = leaf.out.final[f];
      if (v && valAt(v, point) !== conc.final[f]) return `final ${f}: walk ${valAt(v, point)}, interpreter ${conc.final[f]} for ${where}`;
    }
  }
  return located > 0 ? undefined : 'no packet located';
}

function cases() {
  return fc.sample(fc.tuple(policyArb({ maxRules: 4, maxUserChains: 2, expectations: false, comments: false, host: true }), fc.boolean()), { seed, numRuns: 40 });
}

describe('the diff walk agrees with the concrete interpreter', () => {
  for (const mode of ['whole', 'focused'] as const) {
    it(`${mode} walks, on random policies and packets`, () => {
      let checked = 0;
      let skipped = 0;
      for (const [policy, dropHost] of cases()) {
        const p = dropHost ? { ...policy, host: undefined } : policy;
        for (const family of ['ipv4', 'ipv6'] as const) {
          if (p.rulesets[family].tables.length === 0) continue;
          const problem = check(p, family, checked + skipped, mode);
          if (problem === 'skip') {
            skipped++;
            continue;
          }
          expect(problem, problem).toBeUndefined();
          checked++;
        }
      }
      console.log(`${mode}: ${checked} policies checked, ${skipped} beyond the whole walk (budget or no exact form)`);
      expect(checked).toBeGreaterThan(mode === 'whole' ? 15 : 40);
    }, 120_000);
  }
});
