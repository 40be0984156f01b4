import type { ChainCounters, CtEntrySnapshot, SimInput, SimOutcome } from '../../../src/netfilter/api.js';
import type { Family } from '../../../src/util/ip.js';
import { type Disagreement, PortMap, compareCounters, compareEntries, compareStep, formatDisagreements, inputForKernel } from './compare.js';
import { checkSpan, describeEvent, type KernelFinal, type KernelStep, snapshot, stepOnKernel, waitUntilDue } from './run.js';
import type { Topology } from './topology.js';

/**
 * Lock-step differential run: each input goes to the simulator, then (translated through the
 * port map) to the kernel, and the two outcomes are compared before the next input. At the
 * end, conntrack tables, counts and rule counters are compared.
 */

/** What the harness needs from a simulator (src/netfilter's Simulator satisfies it). */
export interface SimulatorLike {
  process(input: SimInput): SimOutcome;
  entries(): readonly CtEntrySnapshot[];
  counters(): readonly ChainCounters[];
}

export interface DifferentialOptions {
  readonly families?: readonly Family[];
  readonly timeoutTolerance?: number;
  readonly maxSpan?: number;
  /** Compare rule counters (default true). */
  readonly counters?: boolean;
}

export interface DifferentialResult {
  readonly disagreements: readonly Disagreement[];
  readonly outcomes: readonly SimOutcome[];
  readonly steps: readonly KernelStep[];
  readonly final: KernelFinal;
  readonly simEntries: readonly CtEntrySnapshot[];
  /** Things not compared, and why. */
  readonly notes: readonly string[];
  /** Port bindings the kernel chose differently (random/clash), as learned. */
  readonly portBindings: number;
  /** The readable report. */
  readonly report: string;
}

export async function differential(topo: Topology, sim: SimulatorLike, inputs: readonly SimInput[], opts: DifferentialOptions = {}): Promise<DifferentialResult> {
  checkSpan(inputs, opts.maxSpan);
  const map = new PortMap();
  const disagreements: Disagreement[] = [];
  const notes: string[] = [];
  const outcomes: SimOutcome[] = [];
  const steps: KernelStep[] = [];
  for (const e of await topo.agent.drain()) notes.push(`before the run: ${describeEvent(topo, e)}`);
  const t0 = inputs[0]?.t ?? 0;
  const start = performance.now();
  for (const [i, input] of inputs.entries()) {
    const outcome = sim.process(input);
    await waitUntilDue(input, t0, start);
    const step = await stepOnKernel(topo, inputForKernel(input, map));
    outcomes.push(outcome);
    steps.push(step);
    disagreements.push(...compareStep(i, outcome, { ...step, input }, map));
    for (const o of step.other) notes.push(`packet ${i + 1}: kernel capture not understood: ${o}`);
  }
  for (const e of await topo.agent.drain()) disagreements.push({ kind: 'packet', where: 'after the run', detail: `unexpected capture: ${describeEvent(topo, e)}` });
  const final = snapshot(topo, opts.families);
  const simEntries = sim.entries();
  disagreements.push(...compareEntries(simEntries, final.entries, map, { timeoutTolerance: opts.timeoutTolerance }));
  if (simEntries.length !== final.count) {
    disagreements.push({ kind: 'count', where: 'nf_conntrack_count', detail: `simulator ${simEntries.length}, kernel ${final.count}` });
  }
  if (opts.counters ?? true) disagreements.push(...compareCounters(sim.counters(), final.chains, notes));
  return {
    disagreements,
    outcomes,
    steps,
    final,
    simEntries,
    notes,
    portBindings: map.size,
    report: formatDisagreements(disagreements),
  };
}
