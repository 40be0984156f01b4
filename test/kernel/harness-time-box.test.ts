import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TimeBox } from './harness/time-box.js';

/**
 * The kernel properties' time limits (harness/time-box.ts), on a made-up property without a
 * kernel: "n < 50" over 0..10000 fails, and shrinking walks down to 50 if it may. ~0.1 s.
 */
const SEED = Number(process.env.NFPROOF_SEED ?? 42);

async function run(box: TimeBox): Promise<{ counterexample: number | undefined; calls: number[] }> {
  const calls: number[] = [];
  const r = await fc.check(
    fc.asyncProperty(
      fc.integer({ min: 0, max: 10_000 }),
      box.wrap(async (n: number) => {
        calls.push(n);
        fc.pre(n !== 7); // a skipped case is no failure
        return n < 50;
      }),
    ),
    { seed: SEED, numRuns: 100, ...box.options },
  );
  return { counterexample: r.counterexample?.[0], calls };
}

describe('TimeBox', () => {
  it('lets shrinking run within its budget: the minimal case is found', async () => {
    const box = new TimeBox(60_000, 60_000);
    const { counterexample } = await run(box);
    expect(counterexample).toBe(50);
    expect(box.summary()).toBeUndefined();
  });

  it('stops shrinking once the budget is spent, and reports a case that really failed', async () => {
    const box = new TimeBox(0, 60_000);
    const { counterexample, calls } = await run(box);
    // With no time to shrink, the first failing value is the one reported, and nothing after
    // it ran: the last value the predicate saw is that failure.
    const firstFailure = calls.find((n) => n >= 50);
    expect(counterexample).toBe(firstFailure);
    expect(calls.at(-1)).toBe(firstFailure);
    expect(box.summary()).toMatch(/^shrinking stopped after 0 s \(\d+ further candidates not run\)/);
  });

  it('does not count precondition skips as failures', async () => {
    const box = new TimeBox(0, 60_000);
    const r = await fc.check(
      fc.asyncProperty(fc.integer({ min: 0, max: 3 }), box.wrap(async (n: number) => fc.pre(n !== 2))),
      { seed: SEED, numRuns: 50, ...box.options },
    );
    expect(r.failed).toBe(false);
    expect(box.summary()).toBeUndefined();
  });
});
