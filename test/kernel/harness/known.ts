/**
 * Kernel refusals of generated policies that are someone else's open bug, not what the property
 * at hand checks: counted and printed by the properties instead of failing them. Each entry says
 * whose it is; remove it when fixed. Anything else the kernel refuses fails the property.
 */
export const KNOWN_REFUSALS: readonly (readonly [RegExp, string])[] = [
  // test/gen/policy.ts + src/ir/check: a user chain no built-in chain reaches has no hooks, so the
  // placement check lets DROP/REJECT into a nat-table chain; iptables refuses them there anywhere.
  [/The "nat" table is not intended for filtering/, 'filtering target in an unreachable nat chain (syntax: generator/checker)'],
  // src/backends/emit: a rule with `-m statistic`, then `-m policy`, then `-m statistic` again:
  // iptables hands the second statistic's `--mode nth` to the policy match ("policy match:
  // invalid mode"), checked with ip6tables-legacy-restore 1.8.9; the same matches in another
  // order load. Found by save-reimport with NFPROOF_SEED=1001, 1000 runs.
  [/policy match: invalid mode "(nth|random)"/, 'a second -m statistic after -m policy: its --mode goes to policy (backends: emitter match order)'],
];

export function knownRefusal(stderr: string): string | undefined {
  return KNOWN_REFUSALS.find(([re]) => re.test(stderr))?.[1];
}

/** Counts of skipped cases by reason, printed at the end of a property. */
export class SkipLog {
  private readonly counts = new Map<string, number>();

  add(reason: string): void {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
  }

  report(what: string): void {
    if (this.counts.size) console.info(`${what} skipped: ${[...this.counts].map(([k, n]) => `${n}× ${k}`).join(', ')}`);
    this.counts.clear();
  }
}
