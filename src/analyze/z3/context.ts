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

/**
 * Checks a solver on the calling thread. z3-solver's own `check()` hands the work to a worker
 * thread, which costs ~0.4 s to start and a few milliseconds per call; nfproof asks many small
 * questions, so it calls the exported synchronous entry point instead (Z3's `timeout` parameter
 * still bounds it). Returns 'sat' | 'unsat' | 'unknown'.
 */
export function checkSync(api: Api, ctx: Z3Context, solver: Z3Solver): 'sat' | 'unsat' | 'unknown' {
  const em = (api as unknown as { em: { _Z3_solver_check?: (c: number, s: number) => number } }).em;
  const ptr = (x: unknown) => (x as { ptr: number }).ptr;
  if (!em._Z3_solver_check) throw new Error('z3-solver build without a synchronous check');
  const r = em._Z3_solver_check(ptr(ctx), ptr(solver));
  return r === 1 ? 'sat' : r === -1 ? 'unsat' : 'unknown';
}

let loaded: Api | undefined;

/** The initialised API, once z3() has resolved (for the synchronous check). */
export function z3Api(): Api | undefined {
  return loaded;
}

export function z3(): Promise<{ api: Api; ctx: Z3Context }> {
  pending ??= (async () => {
    const api = await init();
    loaded = api;
    const ctx = api.Context('nfproof') as unknown as Z3Context;
    return { api, ctx };
  })();
  return pending;
}
