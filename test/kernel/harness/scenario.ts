import { importIptablesSave } from '../../../src/backends/import/index.js';
import { TABLES, TABLE_HOOKS, type TableName } from '../../../src/ir/netfilter.js';
import type { HostModel, Policy, Ruleset } from '../../../src/ir/policy.js';
import { createSimulator } from '../../../src/netfilter/simulator.js';
import type { Family } from '../../../src/util/ip.js';
import { type DifferentialResult, type SimulatorLike, differential } from './differential.js';
import { hostModel } from './host.js';
import { type InputSpec, type KernelRun, replay } from './run.js';
import { SIMULATOR_SYSCTLS, Topology, type TopologyOptions } from './topology.js';

/**
 * A scenario: a host, iptables rules (the same text goes into the kernel and, through the
 * importer, into the simulator), sysctls, and the packets to send. `expectKernel` holds the
 * facts derived by hand about what the kernel must do; they are checked on every run, and in
 * differential mode the simulator must in addition agree with the kernel on everything.
 */
export interface Scenario {
  readonly name: string;
  readonly host: HostModel;
  readonly rules: Partial<Record<Family, string>>;
  /** Conntrack/IP sysctls for both the kernel namespace and the simulator. */
  readonly sysctls?: Readonly<Record<string, string>>;
  readonly inputs: readonly InputSpec[];
  readonly expectKernel?: (run: KernelRun) => void;
  readonly topology?: Omit<TopologyOptions, 'sysctls'>;
  /** Allowed conntrack timeout difference (s). */
  readonly timeoutTolerance?: number;
}

/** The two-interface gateway most scenarios use (the source document's addresses). */
export const GATEWAY: HostModel = hostModel({
  name: 'gw',
  interfaces: {
    lan: ['eth0', '192.168.18.1/24', 'fd00:18::1/64'],
    wan: ['eth1', '192.168.20.1/24', 'fd00:20::1/64'],
  },
  routes: ['default via 192.168.20.254 dev wan', 'default6 via fd00:20::fe dev wan'],
});

/** The scenario's rules as a policy for the simulator (imported per family, plus the host model). */
export function scenarioPolicy(s: Scenario): Policy {
  const rulesets: Record<Family, Ruleset> = { ipv4: { family: 'ipv4', tables: [] }, ipv6: { family: 'ipv6', tables: [] } };
  for (const family of ['ipv4', 'ipv6'] as const) {
    const text = s.rules[family];
    if (!text) continue;
    const r = importIptablesSave(text, `${s.name}.rules.${family === 'ipv4' ? 'v4' : 'v6'}`, undefined, { family });
    const errors = r.diagnostics.filter((d) => d.severity === 'error');
    if (!r.policy || errors.length) throw new Error(`scenario ${s.name}: the importer refused the ${family} rules:\n${errors.map((d) => `${d.span.start.line}: ${d.message}`).join('\n')}`);
    rulesets[family] = r.policy.rulesets[family];
  }
  return { host: s.host, rulesets, expectations: [], sources: [], origin: 'iptables-save' };
}

/** Builds a simulator for a policy with the scenario's sysctls. */
export type SimulatorFactory = (policy: Policy, sysctls: Readonly<Record<string, string>>) => SimulatorLike;

const simulate: SimulatorFactory = (policy, sysctls) => createSimulator(policy, { sysctls: { ...SIMULATOR_SYSCTLS, ...sysctls } });

/** The simulator, unless NFPROOF_KERNEL_ONLY=1 asks for the hand-derived kernel facts only (useful when writing them). */
export function loadSimulator(): SimulatorFactory | undefined {
  return process.env.NFPROOF_KERNEL_ONLY === '1' ? undefined : simulate;
}

export interface ScenarioResult {
  readonly kernel: KernelRun;
  /** Present when a simulator exists. */
  readonly diff?: DifferentialResult;
}

function familiesOf(s: Scenario): Family[] {
  return (['ipv4', 'ipv6'] as const).filter((f) => s.rules[f] !== undefined);
}

/**
 * Runs a scenario and checks it: the hand-derived kernel facts, and (with a simulator) that
 * the simulator agrees with the kernel. Both kinds of failure are reported together.
 */
export async function checkScenario(s: Scenario, opts: { simulator?: SimulatorFactory | 'none' } = {}): Promise<ScenarioResult> {
  const r = await runScenario(s, opts);
  const problems: string[] = [];
  try {
    s.expectKernel?.(r.kernel);
  } catch (e) {
    // vitest's assertion errors keep the two values apart from the message: show them too.
    const err = e as { message?: string; actual?: unknown; expected?: unknown };
    const values = err.actual !== undefined ? `\n  actual:   ${JSON.stringify(err.actual, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}\n  expected: ${JSON.stringify(err.expected, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))}` : '';
    problems.push(`the kernel did not do what the scenario derives by hand:\n${err.message ?? String(e)}${values}`);
  }
  if (r.diff && r.diff.disagreements.length) problems.push(`the simulator disagrees with the kernel:\n${r.diff.report}`);
  if (problems.length) throw new Error(`${s.name}\n\n${problems.join('\n\n')}`);
  return r;
}

/** Runs a scenario on the kernel (and, when there is a simulator, against it), without judging it. */
export async function runScenario(s: Scenario, opts: { simulator?: SimulatorFactory | 'none' } = {}): Promise<ScenarioResult> {
  const make = opts.simulator === 'none' ? undefined : (opts.simulator ?? loadSimulator());
  const topo = await Topology.create(s.host, { ...(s.topology ?? {}), sysctls: s.sysctls ?? {} });
  try {
    for (const f of familiesOf(s)) topo.loadRules(f, s.rules[f] as string);
    const families = familiesOf(s);
    let result: ScenarioResult;
    if (make) {
      const sim = make(scenarioPolicy(s), s.sysctls ?? {});
      const diff = await differential(topo, sim, s.inputs, { families, timeoutTolerance: s.timeoutTolerance });
      result = { kernel: { steps: diff.steps, final: diff.final, stray: [] }, diff };
    } else {
      result = { kernel: await replay(topo, s.inputs, { families }) };
    }
    return result;
  } finally {
    topo.dispose();
  }
}

export type TableSpec = readonly string[] | { readonly policies?: Readonly<Record<string, 'ACCEPT' | 'DROP'>>; readonly rules: readonly string[] };

/**
 * iptables-restore text from rule lines, table by table: built-in chains are declared with
 * their policy (ACCEPT unless given), user chains from the `-A NAME` lines that use them.
 *
 *   restore({ nat: ['-A POSTROUTING -o eth1 -j MASQUERADE'] })
 */
export function restore(spec: Partial<Record<TableName, TableSpec>>): string {
  const out: string[] = [];
  for (const table of TABLES) {
    const t = spec[table];
    if (!t) continue;
    const rules = 'rules' in t ? t.rules : t;
    const policies = 'rules' in t ? (t.policies ?? {}) : {};
    out.push(`*${table}`);
    for (const hook of TABLE_HOOKS[table]) out.push(`:${hook} ${policies[hook] ?? 'ACCEPT'} [0:0]`);
    const users = [...new Set(rules.map((r) => /^-A (\S+)/.exec(r)?.[1]).filter((c): c is string => !!c && !(TABLE_HOOKS[table] as readonly string[]).includes(c)))];
    for (const u of users) out.push(`:${u} - [0:0]`);
    out.push(...rules, 'COMMIT');
  }
  return `${out.join('\n')}\n`;
}
