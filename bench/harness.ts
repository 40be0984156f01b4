/**
 * Benchmark plumbing: a bench file exports `benchmarks`, each measuring one figure an issue
 * asks for. `npm run bench` (bench/run.ts) runs every file in its own process (so heap
 * figures are not polluted by other benches) and writes bench/RESULTS.md.
 */
export interface Measurement {
  /** The figure, e.g. 1.2e6 */
  readonly value: number;
  /** Its unit, e.g. "packets/s", "ms", "MB", "bytes/entry". */
  readonly unit: string;
  /** Free-form detail for the table (inputs, sizes, peak RSS…). */
  readonly detail?: string;
  /** Peak resident memory in MB, for targets that bound memory as well as time. */
  readonly peakMb?: number;
}

export interface Benchmark {
  readonly name: string;
  /** The target from the issue, as text: "≥ 1,000,000 packets/s". */
  readonly target: string;
  /** Whether the measured value meets the target. */
  meets(m: Measurement): boolean;
  run(): Promise<Measurement> | Measurement;
}

/** Wall-clock time of fn in milliseconds. */
export async function timeMs(fn: () => unknown): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** Heap in use after a full GC (needs node --expose-gc, which `npm run bench` passes). */
export function heapUsedAfterGc(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    gc();
    gc();
  }
  return process.memoryUsage().heapUsed;
}

export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** A small seeded generator (xorshift32) in [0, 1): benches build the same inputs every run. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}
