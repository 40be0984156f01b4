import { type Z3Bool, type Z3Context, type Z3Model, type Z3Solver, checkSync, z3Api } from './context.js';

export type Answer = { readonly kind: 'sat'; readonly model: Z3Model } | { readonly kind: 'unsat' } | { readonly kind: 'unknown'; readonly reason: string };

export interface Z3Stats {
  queries: number;
  sat: number;
  unsat: number;
  unknown: number;
  ms: number;
}

/**
 * A solver holding one encoding's assumptions; questions are asked incrementally (push, assert,
 * check, pop) so the encoding is sent to Z3 once. A timeout gives "unknown" with Z3's reason.
 */
export class Session {
  private readonly solver: Z3Solver;

  constructor(
    readonly ctx: Z3Context,
    base: readonly Z3Bool[],
    private readonly timeoutMs: number,
    private readonly stats: Z3Stats,
  ) {
    this.solver = new ctx.Solver();
    this.solver.set('timeout', Math.max(1, Math.floor(timeoutMs)));
    for (const a of base) this.solver.add(a);
  }

  async ask(...assertions: Z3Bool[]): Promise<Answer> {
    const t0 = performance.now();
    this.stats.queries++;
    this.solver.push();
    try {
      for (const a of assertions) this.solver.add(a);
      const api = z3Api();
      const r = api ? checkSync(api, this.ctx, this.solver) : await this.solver.check();
      if (r === 'sat') {
        this.stats.sat++;
        return { kind: 'sat', model: this.solver.model() };
      }
      if (r === 'unsat') {
        this.stats.unsat++;
        return { kind: 'unsat' };
      }
      this.stats.unknown++;
      const why = this.solver.reasonUnknown();
      return { kind: 'unknown', reason: why === 'timeout' || why === 'canceled' ? `solver timeout after ${this.timeoutMs} ms` : `solver gave up: ${why}` };
    } finally {
      this.solver.pop();
      this.stats.ms += performance.now() - t0;
    }
  }

  /** Frees the solver's WASM memory now rather than at garbage collection. */
  release(): void {
    (this.solver as unknown as { release?: () => void }).release?.();
  }
}

export function newZ3Stats(): Z3Stats {
  return { queries: 0, sat: 0, unsat: 0, unknown: 0, ms: 0 };
}
