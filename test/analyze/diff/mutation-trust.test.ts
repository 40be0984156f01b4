import { describe, expect, it } from 'vitest';
import { checkCase, newTally, trustCases } from './support/trust.js';

/**
 * Trust in `nfproof diff`, checked against the simulator (not the analyzer's own interpreter):
 * random policies, each edited once the way a pull request would (two rules swapped, a rule
 * deleted, widened by dropping a match, its verdict changed; or an edit that changes nothing:
 * re-emitted and re-imported, two rules of different protocols swapped). Then:
 *
 *  - an edit that changes nothing is proved equivalent;
 *  - when random packets through the simulator find a difference, the diff reports one;
 *  - every witness the diff reports is replayed in the simulator on both sides and shows the
 *    difference (no replay may disagree), so when sampling finds nothing but the diff reports
 *    a difference, that difference is real (sampling is incomplete): the property requires a
 *    replayed witness exactly then.
 *
 * Half of the diffs are run without the host model (routing left open); sampling always uses
 * the generated host. The check itself is in support/trust.ts.
 *
 * Runtime: ~30-40 s on an idle 2-core machine, minutes under load. NFPROOF_SEED picks another
 * set of cases, NFPROOF_DIFF_RUNS how many; a sweep over seeds finds cases to shrink into
 * hand-checked tests in diff.test.ts.
 */
const seed = Number(process.env.NFPROOF_SEED ?? 42);
const RUNS = Number(process.env.NFPROOF_DIFF_RUNS ?? 40);

describe('nfproof diff against the simulator on mutated random policies', () => {
  it('reports a difference exactly when the simulator shows one', async () => {
    const tally = newTally();
    const problems: string[] = [];
    for (const [run, c] of trustCases(seed, RUNS).entries()) {
      const problem = await checkCase(c.policy, c.mutation, c.noHost, seed, run, tally);
      if (problem) problems.push(problem);
    }
    console.log(`diff trust (seed ${seed}): ${JSON.stringify(tally)}`);
    expect(problems.slice(0, 3).join('\n\n'), `${problems.length} of ${tally.cases} cases fail`).toBe('');
    // Not vacuous: some edits change something, shown by the diff (with replayed witnesses)
    // and at least once by sampling alone. Random policies hold many rules no packet reaches,
    // so most edits change nothing, and sampling finds the narrow differences only sometimes:
    // for another seed (a sweep) a set of 40 cases may hold none it finds, which says nothing
    // against the property, so the floors are held for the default seed and logged otherwise.
    const floors = { reemit: tally.byKind['reemit'] ?? 0, reported: tally.reported, sampled: tally.sampled };
    if (process.env.NFPROOF_SEED === undefined) {
      expect(floors.reemit).toBeGreaterThan(0);
      expect(floors.reported).toBeGreaterThan(RUNS / 10);
      expect(floors.sampled).toBeGreaterThan(0);
    } else if (!floors.reemit || floors.reported <= RUNS / 10 || !floors.sampled) console.log(`diff trust (seed ${seed}): few cases show a difference here ${JSON.stringify(floors)}`);
  }, 900_000);
});
