import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { emitRuleset } from '../../src/backends/emit/index.js';
import { EMIT_REFUSALS } from '../../src/backends/emit/rule.js';
import { importIptablesSave } from '../../src/backends/import/index.js';
import { NUMERIC_FIELDS, type NumericField } from '../../src/ir/fields.js';
import { TABLE_HOOKS } from '../../src/ir/netfilter.js';
import type { Policy } from '../../src/ir/policy.js';
import { FAMILIES, type Family } from '../../src/util/ip.js';
import { interestingValues, walk } from './chain-walk.js';
import { randomPolicy } from './random-policy.js';
import { policyArb } from '../gen/policy.js';

/**
 * The emitter's rewrites (cross products, auxiliary chains, levels) keep the meaning: for random
 * policies and random packets, walking the original IR and walking what the emitted file reads
 * back as (import of the emitted text) give the same verdict and the same non-terminating
 * targets, each run the same number of times. The kernel test shows the kernel stores exactly
 * the emitted rules; this shows those rules mean the policy. Runtime ≈ 5 s.
 */
const seed = Number(process.env.NFPROOF_SEED ?? 42);
let refused = 0;

function roundTrip(policy: Policy, family: Family): Policy | string | undefined {
  const emitted = emitRuleset(policy, family, { sourceComments: false });
  const errors = emitted.diagnostics.filter((d) => d.severity === 'error');
  // A rule the emitter refuses by design (test/backends/emit.test.ts checks those) leaves
  // nothing to compare.
  if (errors.length > 0 && errors.every((d) => EMIT_REFUSALS.has(d.code))) {
    refused++;
    return undefined;
  }
  if (errors.length) return `emit: ${errors[0].message}`;
  const back = importIptablesSave(emitted.text, 'emitted.rules', undefined, { family });
  if (!back.policy) return `re-import: ${back.diagnostics.find((d) => d.severity === 'error')?.message}\n${emitted.text}`;
  return back.policy;
}

/** Walks every hook of every table of one family on 100 packets, original against re-imported. */
function sameWalks(policy: Policy, family: Family, packetSeed: number): void {
        const back = roundTrip(policy, family);
        if (back === undefined) return;
        if (typeof back === 'string') throw new Error(back);
        const { nums, ifaces } = interestingValues(policy, family);
        let s = packetSeed;
        const rnd = (n: number) => {
          s = (Math.imul(s, 1103515245) + 12345) & 0x7fffffff;
          return s % n;
        };
        for (let k = 0; k < 100; k++) {
          const values = new Map<NumericField, bigint | undefined>();
          for (const f of Object.keys(NUMERIC_FIELDS) as NumericField[]) {
            const vs = nums.get(f) ?? [0n];
            values.set(f, rnd(8) === 0 ? undefined : vs[rnd(vs.length)]);
          }
          const packet = { family, id: `${packetSeed}:${k}`, iif: ifaces[rnd(ifaces.length)], oif: ifaces[rnd(ifaces.length)], num: (f: NumericField) => values.get(f) };
          for (const table of policy.rulesets[family].tables) {
            const other = back.rulesets[family].tables.find((t) => t.name === table.name);
            expect(other, `table ${table.name} re-imported`).toBeDefined();
            for (const hook of TABLE_HOOKS[table.name]) {
              const want = walk(table, hook, family, packet);
              const got = walk(other!, hook, family, packet);
              expect(got, `${table.name} ${hook} packet ${packet.id}`).toEqual(want);
            }
          }
        }
}

describe.each(FAMILIES)('emitted %s rules mean the policy', (family) => {
  it('same verdicts and side effects on random packets (backends generator)', () => {
    fc.assert(
      fc.property(randomPolicy(family), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (policy, packetSeed) => sameWalks(policy, family, packetSeed)),
      { seed, numRuns: 40 },
    );
  });

  it('same verdicts and side effects on random packets (test/gen/policy.ts)', () => {
    fc.assert(
      fc.property(policyArb({ families: [family] }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (policy, packetSeed) => sameWalks(policy, family, packetSeed)),
      { seed, numRuns: 30, endOnFailure: true },
    );
    console.info(`[emit-semantics] ${family}: ${refused} random policies so far had a rule the emitter refuses by design`);
  });
});
