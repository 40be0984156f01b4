import fc from 'fast-check';

/**
 * Time limits for a kernel property, so that a failing one cannot eat the CI budget.
 *
 * A kernel case takes a fraction of a second to seconds, and fast-check may try hundreds of
 * shrinking candidates after a failure. `interruptAfterTimeLimit` alone caps the whole run —
 * the passing runs too, so a cap tight enough for a failure would fail a merely slow machine.
 * Instead the shrinking gets its own budget: once a case has failed, candidates are run for
 * `shrinkMs` more; after that every further candidate is reported as passing without running,
 * so fast-check stops at once and reports the smallest failing case found so far (the case it
 * prints did fail on the kernel). The hard cap stays as a backstop for the runs themselves.
 */
export class TimeBox {
  private firstFailure: number | undefined;
  private skippedCandidates = 0;

  constructor(
    /** Time allowed for shrinking after the first failure. */
    readonly shrinkMs: number,
    /** Hard cap on the whole assertion (runs and shrinking), reported as a failure. */
    readonly totalMs: number,
  ) {}

  /** fast-check parameters carrying the hard cap. */
  get options(): Pick<fc.Parameters<unknown>, 'interruptAfterTimeLimit' | 'markInterruptAsFailure'> {
    return { interruptAfterTimeLimit: this.totalMs, markInterruptAsFailure: true };
  }

  /** The predicate with the shrinking budget applied (precondition skips are not failures). */
  wrap<Ts extends unknown[]>(predicate: (...args: Ts) => Promise<boolean | void>): (...args: Ts) => Promise<boolean | void> {
    return async (...args: Ts) => {
      if (this.firstFailure !== undefined && performance.now() - this.firstFailure >= this.shrinkMs) {
        this.skippedCandidates++;
        return true;
      }
      try {
        const ok = await predicate(...args);
        if (ok === false) this.failed();
        return ok;
      } catch (e) {
        if (!fc.PreconditionFailure.isFailure(e)) this.failed();
        throw e;
      }
    };
  }

  /** A line for the log when the budget cut shrinking short, else undefined. */
  summary(): string | undefined {
    if (this.skippedCandidates === 0) return undefined;
    return `shrinking stopped after ${(this.shrinkMs / 1000).toFixed(0)} s (${this.skippedCandidates} further candidates not run): the case reported is the smallest found by then`;
  }

  private failed(): void {
    this.firstFailure ??= performance.now();
  }
}
