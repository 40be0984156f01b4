import { init } from 'z3-solver';

/**
 * One Z3 context for the whole process. Starting the WASM build takes a few hundred
 * milliseconds, so it is done once, on first use, and every query reuses it.
 */
type Api = Awaited<ReturnType<typeof init>>;
export type Z3Context = ReturnType<Api['Context']> & { readonly __brand?: 'nfproof' };
export type Z3Bool = ReturnType<Z3Context['Bool']['val']>;
export type Z3BV = ReturnType<Z3Context['BitVec']['const']>;
export type Z3Solver = InstanceType<Z3Context['Solver']>;
export type Z3Model = ReturnType<Z3Solver['model']>;

let pending: Promise<{ api: Api; ctx: Z3Context }> | undefined;

export function z3(): Promise<{ api: Api; ctx: Z3Context }> {
  pending ??= (async () => {
    const api = await init();
    const ctx = api.Context('nfproof') as unknown as Z3Context;
    return { api, ctx };
  })();
  return pending;
}

/** Outcome of one satisfiability question. */
export type SatResult = { readonly kind: 'sat'; readonly model: Z3Model } | { readonly kind: 'unsat' } | { readonly kind: 'unknown'; readonly reason: string };

/**
 * Checks the conjunction of `assertions` in a fresh solver with a time limit. A timeout or any
 * other incompleteness is "unknown" with Z3's reason, never a verdict.
 */
export async function check(ctx: Z3Context, assertions: readonly Z3Bool[], timeoutMs: number): Promise<SatResult> {
  const s = new ctx.Solver();
  s.set('timeout', Math.max(1, Math.floor(timeoutMs)));
  for (const a of assertions) s.add(a);
  const r = await s.check();
  if (r === 'sat') return { kind: 'sat', model: s.model() };
  if (r === 'unsat') return { kind: 'unsat' };
  return { kind: 'unknown', reason: s.reasonUnknown() || 'unknown' };
}
