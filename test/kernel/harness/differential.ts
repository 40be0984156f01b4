import type { Policy } from '../../../src/ir/policy.js';
import type { ChainCounters, CtEntrySnapshot, SimInput, SimOutcome } from '../../../src/netfilter/api.js';
import type { Family } from '../../../src/util/ip.js';
import { type Disagreement, PortMap, compareCounters, compareEntries, compareStep, formatDisagreements, inputForKernel } from './compare.js';
import { type InputContext, type InputSpec, carriedOn, carriedOnWith, checkSpan, describeEvent, firstTime, type KernelFinal, type KernelStep, resolveInput, snapshot, stepOnKernel, waitUntilDue } from './run.js';
import { formatPacket } from './format.js';
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
  /** nf_conntrack_count; the number of entries when absent. */
  count?(): number;
}

export interface DifferentialOptions {
  readonly families?: readonly Family[];
  readonly timeoutTolerance?: number;
  readonly maxSpan?: number;
  /** Compare rule counters (default true). */
  readonly counters?: boolean;
  /** The policy the simulator runs: its rules' source tags map emitted rules back (see compareCounters). */
  readonly policy?: Policy;
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

export async function differential(topo: Topology, sim: SimulatorLike, specs: readonly InputSpec[], opts: DifferentialOptions = {}): Promise<DifferentialResult> {
  checkSpan(specs, opts.maxSpan);
  const map = new PortMap();
  const disagreements: Disagreement[] = [];
  const notes: string[] = [];
  const outcomes: SimOutcome[] = [];
  const steps: KernelStep[] = [];
  for (const e of await topo.agent.drain()) notes.push(`before the run: ${describeEvent(topo, e)}`);
  // A computed input (a reply) follows what the kernel did, in the simulator's port numbering:
  // when the simulator goes wrong, the kernel still gets the inputs its own behaviour calls for,
  // so the hand-derived kernel facts stay checkable and the first disagreement shows the cause.
  const ctx: InputContext = {
    out: (i) => {
      const k = steps[i] ? carriedOn(steps[i]) : undefined;
      return k ? map.packet('toSim', k) : (outcomes[i]?.egress?.packet ?? outcomes[i]?.delivered);
    },
    outDevice: (i) => {
      const k = steps[i] ? carriedOnWith(steps[i]) : undefined;
      if (k) return k.device;
      const o = outcomes[i];
      // Looped back through lo, it reached the host itself: the answer is the host's (seed 1013
      // built a reply arriving "by lo" when only the simulator had looped the request back).
      if (o?.egress?.device === 'lo') return 'local';
      return o?.egress?.device ?? (o?.verdict === 'local' ? 'local' : undefined);
    },
  };
  const t0 = firstTime(specs);
  const start = performance.now();
  // NFPROOF_DEBUG_STEPS: each input, what the simulator made of it and what the kernel sent.
  const debug = !!process.env.NFPROOF_DEBUG_STEPS;
  for (const [i, spec] of specs.entries()) {
    const input = resolveInput(spec, ctx);
    const local = input.ingress.kind === 'local';
    if (local && ((input.uid ?? 0) !== 0 || (input.gid ?? 0) !== 0)) {
      throw new Error(`packet ${i + 1}: the harness sends locally generated packets from a root socket; uid/gid other than 0 cannot be reproduced`);
    }
    if (debug) console.info(`    step ${i + 1}: ${formatPacket(input.packet)} in ${input.ingress.kind === 'local' ? 'local' : input.ingress.device}`);
    const outcome = sim.process(input);
    if (debug) {
      const out = [outcome.egress && `${outcome.egress.device}: ${formatPacket(outcome.egress.packet)}`, outcome.delivered && `local: ${formatPacket(outcome.delivered)}`];
      console.info(`      simulator ${outcome.verdict}${out.filter(Boolean).map((x) => `; ${x}`).join('')}`);
    }
    // The simulator completes what the author left out (seq/ack, a local source address): the
    // kernel gets the completed packet.
    const sent = outcome.input ?? input;
    await waitUntilDue(sent, t0, start);
    const step = await stepOnKernel(topo, inputForKernel(sent, map));
    if (debug) {
      const seen = [...step.emitted.map((e) => `${e.device}: ${formatPacket(e.packet)}`), ...step.delivered.map((d) => `local (in ${d.indev ?? '?'}): ${formatPacket(d.packet)}`)];
      console.info(`      kernel ${seen.length ? seen.join('; ') : 'nothing'}${step.sendError ? ` (${step.sendError})` : ''}`);
    }
    outcomes.push(outcome);
    steps.push(step);
    disagreements.push(...compareStep(i, outcome, { ...step, input: sent }, map));
    for (const o of step.other) notes.push(`packet ${i + 1}: kernel capture not understood: ${o}`);
  }
  for (const e of await topo.agent.drain()) disagreements.push({ kind: 'packet', where: 'after the run', detail: `unexpected capture: ${describeEvent(topo, e)}` });
  const final = snapshot(topo, opts.families);
  const simEntries = sim.entries();
  disagreements.push(...compareEntries(simEntries, final.entries, map, { timeoutTolerance: opts.timeoutTolerance }));
  const simCount = sim.count?.() ?? simEntries.length;
  if (simCount !== final.count) {
    disagreements.push({ kind: 'count', where: 'nf_conntrack_count', detail: `simulator ${simCount}, kernel ${final.count}` });
  }
  if (opts.counters ?? true) disagreements.push(...compareCounters(sim.counters(), final.chains, notes, opts.policy));
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
