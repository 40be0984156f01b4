import fc from 'fast-check';
import { PROTO } from '../../src/ir/fields.js';
import { checkRule } from '../../src/ir/check/placement.js';
import { restrictRule } from '../../src/ir/lower.js';
import { type Hook, TABLE_HOOKS, type TableName } from '../../src/ir/netfilter.js';
import type { Chain, Expectation, Flow, HostModel, Interface, Policy, Route, Rule, Ruleset, Table } from '../../src/ir/policy.js';
import { MATCH_KINDS, type Match, type Target, printMatch, printTarget } from '../../src/kinds/index.js';
import { makeFlow } from '../../src/syntax/expect.js';
import type { Diagnostic } from '../../src/util/diagnostics.js';
import { FAMILIES, type Family } from '../../src/util/ip.js';
import { NO_SPAN } from '../../src/util/span.js';
import type { AddrItem } from '../../src/kinds/values.js';
import { type GenContext, MATCH_ARBITRARIES, TARGET_ARBITRARIES, addrItem } from './kinds/index.js';

/**
 * A fast-check arbitrary for a whole valid Policy, as lowering would produce it from .nfp:
 *
 * - a host model (interfaces lan/wan/dmz/mgmt on devices eth0/eth1/wan0/veth, with addresses
 *   of both families, routes, sysctls) — the devices are the ones the iface arbitrary draws;
 * - per table and family: every built-in chain (policy ACCEPT or, for filter, sometimes DROP),
 *   then user chains that built-in or earlier user chains jump/goto to (never a loop);
 * - rules drawn from every registered kind (test/gen/kinds), each restricted to its family as
 *   lowering does, and dropped when the kernel would refuse it where it sits (checkRule: NAT
 *   targets outside their hooks, hook-bound matches, the kinds' own validate) — so the policy
 *   loads with iptables-restore;
 * - tables of both families are sometimes "shared" (same chains, family-neutral rules in both,
 *   plus some family-only rules), as an inet table of the DSL would lower;
 * - expectations with flows of header/state matches.
 *
 * Every node carries NO_SPAN. Use with a fixed seed:
 *
 *     fc.assert(fc.property(policyArb({ tables: ['filter'] }), (p) => …), { seed: Number(process.env.NFPROOF_SEED ?? 42) })
 *
 * Options restrict families, tables, kinds and sizes, e.g. for a harness that cannot build
 * everything (`matchKinds: ['addr', 'port', 'proto', 'ct-state']`).
 */
export interface PolicyGenOptions {
  /** Families that get rulesets (default both). */
  readonly families?: readonly Family[];
  /** Tables that may appear (default raw, mangle, nat, filter). Each appears with probability 3/4. */
  readonly tables?: readonly TableName[];
  /** Most rules per chain, jumps not counted (default 5). */
  readonly maxRules?: number;
  /** Most user chains per table (default 3). */
  readonly maxUserChains?: number;
  /** Generate a host model (default true). Without one, interface names are used as devices. */
  readonly host?: boolean;
  /** Match kinds to draw from (default: all registered). */
  readonly matchKinds?: readonly Match['kind'][];
  /** Target kinds to draw from (default: all registered; jumps come from the chain structure). */
  readonly targetKinds?: readonly Target['kind'][];
  /** Most matches per rule besides the protocol (default 3). */
  readonly maxMatches?: number;
  /** Generate expectations (default true). */
  readonly expectations?: boolean;
  /** Rule comments (default true). */
  readonly comments?: boolean;
  /** Address and port values that refer to defines (`saddr @nets`, default true). */
  readonly defines?: boolean;
}

const span = NO_SPAN;
type G = fc.GeneratorValue;

/** Host interfaces: logical name, device (the devices the iface arbitrary draws) and subnets. */
const IFACES = [
  { name: 'lan', device: 'eth0', v4: 0xc0a81200n, v6: 0xfd000018000000000000000000000000n },
  { name: 'wan', device: 'eth1', v4: 0xc0a81400n, v6: 0x20010db8000000000000000000000000n },
  { name: 'dmz', device: 'wan0', v4: 0x0a0a0000n, v6: 0xfd0000dd000000000000000000000000n },
  { name: 'mgmt', device: 'veth', v4: 0xac100000n, v6: 0xfd0000ee000000000000000000000000n },
] as const;

function genHost(g: G, families: readonly Family[]): HostModel {
  const interfaces: Interface[] = IFACES.map((i) => ({
    name: i.name,
    device: i.device,
    addresses: [
      ...(families.includes('ipv4') && g(fc.boolean) ? [{ family: 'ipv4' as const, addr: i.v4 + 1n, prefixLen: 24 }] : []),
      ...(families.includes('ipv6') && g(fc.boolean) ? [{ family: 'ipv6' as const, addr: i.v6 + 1n, prefixLen: 64 }] : []),
    ],
    span,
  }));
  const routes: Route[] = [];
  for (const i of interfaces) {
    for (const a of i.addresses) {
      if (!g(fc.boolean)) continue;
      const def = g(fc.boolean);
      const metric = g(() => fc.option(fc.integer({ min: 0, max: 1000 }), { nil: undefined }));
      routes.push({
        family: a.family,
        dest: def ? { family: a.family, addr: 0n, len: 0 } : a.family === 'ipv4' ? { family: 'ipv4', addr: 0x0a000000n, len: 8 } : { family: 'ipv6', addr: 0xfd000000000000000000000000000000n, len: 8 },
        ...(g(fc.boolean) || def ? { via: a.addr + 253n } : {}),
        device: i.device,
        ...(metric !== undefined ? { metric } : {}),
        span,
      });
    }
  }
  const sysctls: Record<string, string> = {};
  for (const [k, vs] of [
    ['nf_conntrack_tcp_loose', ['0', '1']],
    ['nf_conntrack_tcp_be_liberal', ['0', '1']],
    ['nf_conntrack_udp_timeout', ['30', '60']],
  ] as const) {
    if (g(fc.boolean)) sysctls[k] = g(() => fc.constantFrom(...vs));
  }
  return { name: g(() => fc.constantFrom('gw', 'fw1', 'edge')), interfaces, routes, sysctls, span };
}

/** What rules may refer to: the host's interfaces and the named values. */
interface Env {
  readonly host?: HostModel;
  readonly defs?: Defines;
}

/** Which matches and targets a generated rule may use. */
interface KindPool {
  readonly matches: readonly Match['kind'][];
  readonly targets: readonly Target['kind'][];
}

/**
 * Named values, as `define` gives them (and the importer's folding): an address set with items
 * of both families and a port set. A use in one family carries that family's items and the
 * name in `ref`, exactly as lowering produces it from `saddr @nets`.
 */
interface Defines {
  readonly nets: Readonly<Record<Family, readonly AddrItem[]>>;
  readonly ports: readonly (readonly [number, number])[];
}

function genDefines(g: G): Defines {
  return {
    nets: { ipv4: g(() => fc.array(addrItem('ipv4'), { minLength: 1, maxLength: 3 })), ipv6: g(() => fc.array(addrItem('ipv6'), { minLength: 1, maxLength: 3 })) },
    ports: g(() => fc.array(fc.integer({ min: 1, max: 65535 }).map((p) => [p, p] as const), { minLength: 1, maxLength: 4 })),
  };
}

function useDefines(ms: readonly Match[], defs: Defines | undefined, family: Family, g: G): Match[] {
  if (!defs) return [...ms];
  return ms.map((m) => {
    if (m.kind === 'addr' && g(fc.integer, { min: 0, max: 3 }) === 0) return { ...m, value: { items: defs.nets[family], excluded: [], ref: 'nets' } };
    if (m.kind === 'port' && g(fc.integer, { min: 0, max: 3 }) === 0) return { ...m, value: { items: defs.ports, ref: 'web_ports' } };
    return m;
  });
}

/** Interface names in rules: a device, or its logical name (lowering resolves it into `alias`). */
function aliasIfaces(ms: readonly Match[], host: HostModel | undefined, g: G): Match[] {
  return ms.map((m) => {
    if (m.kind !== 'iface' || !host || m.wildcard) return m;
    const i = host.interfaces.find((x) => x.device === m.device);
    return i && g(fc.boolean) ? { ...m, alias: i.name } : m;
  });
}

function genMatches(g: G, ctx: GenContext, pool: readonly Match['kind'][], max: number, env: Env, flow: boolean): Match[] {
  const out: Match[] = [];
  let proto: number | undefined;
  if (pool.includes('proto') && g(fc.boolean)) {
    proto = g(() => fc.constantFrom<number>(PROTO.tcp, PROTO.udp, ctx.family === 'ipv4' ? PROTO.icmp : PROTO.icmpv6));
    out.push({ kind: 'proto', negated: false, protos: [proto], span });
  }
  const here: GenContext = { ...ctx, ...(proto !== undefined ? { proto } : {}) };
  const usable = pool.filter((k) => (k !== 'proto' || proto === undefined) && (!flow || MATCH_KINDS[k].inFlows) && MATCH_ARBITRARIES[k](here) !== undefined);
  const n = usable.length === 0 ? 0 : g(fc.integer, { min: 0, max });
  for (let i = 0; i < n; i++) {
    const kind = g(() => fc.constantFrom(...usable));
    const arb = MATCH_ARBITRARIES[kind](here) as fc.Arbitrary<Match>;
    out.push(g(() => arb));
  }
  return aliasIfaces(useDefines(out, env.defs, ctx.family, g), env.host, g);
}

const COMMENTS = ['web from inside', 'say "hi"', 'back\\slash', 'ünïcode ✓', 'a # not a comment', 'x'];

/** A rule valid where it sits, or undefined when the draw was one the kernel refuses. */
function genRule(
  g: G,
  place: { table: TableName; chain: { name: string; hook?: Hook }; hooks: readonly Hook[]; family: Family },
  pool: KindPool,
  opts: Required<Pick<PolicyGenOptions, 'maxMatches' | 'comments'>>,
  env: Env,
  target?: Target,
): Rule | undefined {
  const ctx: GenContext = { family: place.family, table: place.table, hooks: place.hooks };
  const matches = genMatches(g, ctx, pool.matches, opts.maxMatches, env, false);
  const proto = matches.find((m) => m.kind === 'proto')?.protos[0];
  let t = target;
  if (!t) {
    const tctx = { ...ctx, ...(proto !== undefined ? { proto } : {}), chains: [] as string[] };
    const usable = pool.targets.filter((k) => k !== 'jump' && TARGET_ARBITRARIES[k](tctx) !== undefined);
    if (usable.length === 0) return undefined;
    const kind = g(() => fc.constantFrom(...usable));
    t = g(() => TARGET_ARBITRARIES[kind](tctx) as fc.Arbitrary<Target>);
  }
  const comment = opts.comments && g(fc.boolean) && g(fc.boolean) ? g(() => fc.constantFrom(...COMMENTS)) : undefined;
  const rule: Rule = { matches, target: t, ...(comment !== undefined ? { comment } : {}), span };
  const restricted = restrictRule(rule, place.family);
  if (!restricted) return undefined;
  const problems: Diagnostic[] = [];
  checkRule(restricted, place, (d) => problems.push(d));
  return problems.some((d) => d.severity === 'error') ? undefined : restricted;
}

interface ChainPlan {
  readonly name: string;
  readonly hook?: Hook;
  readonly policy?: 'ACCEPT' | 'DROP';
  /** Chains that jump here (user chains only). */
  readonly callers: readonly string[];
  readonly mode: readonly ('jump' | 'goto')[];
}

const USER_NAMES = ['logdrop', 'web', 'ssh_in', 'Zone-A', 'svc.dns', 'x1'];

function planChains(g: G, table: TableName, maxUser: number): { plans: ChainPlan[]; hooks: Map<string, Hook[]> } {
  const builtins: ChainPlan[] = TABLE_HOOKS[table].map((h) => ({
    name: h,
    hook: h,
    policy: table === 'filter' && g(fc.boolean) ? 'DROP' : 'ACCEPT',
    callers: [],
    mode: [],
  }));
  const names = g(() => fc.shuffledSubarray(USER_NAMES, { minLength: 0, maxLength: maxUser }));
  const users: ChainPlan[] = [];
  const hooks = new Map<string, Hook[]>(builtins.map((b) => [b.name, [b.hook!]]));
  for (const name of names) {
    // Callers: built-ins or earlier user chains, so the graph has no loop.
    const candidates = [...builtins.map((b) => b.name), ...users.map((u) => u.name)];
    const callers = g(() => fc.subarray(candidates, { minLength: 0, maxLength: 2 }));
    const mode = callers.map(() => g(() => fc.constantFrom('jump' as const, 'goto' as const)));
    users.push({ name, callers, mode });
    hooks.set(name, [...new Set(callers.flatMap((c) => hooks.get(c) ?? []))]);
  }
  return { plans: [...builtins, ...users], hooks };
}

function isNeutral(r: Rule, family: Family): boolean {
  const other: Family = family === 'ipv4' ? 'ipv6' : 'ipv4';
  const there = restrictRule(r, other);
  return there !== undefined && text(there) === text(r);
}

function text(r: Rule): string {
  return [...r.matches.map(printMatch), printTarget(r.target)].join(' ') + (r.comment ?? '');
}

function genTables(g: G, name: TableName, families: readonly Family[], pool: KindPool, opts: Required<PolicyGenOptions>, env: Env): Partial<Record<Family, Table>> {
  const shared = families.length === 2 && g(fc.boolean);
  const plan = planChains(g, name, opts.maxUserChains);
  const chainsFor = (fams: readonly Family[]): Record<Family, Chain[]> => {
    const out: Record<Family, Chain[]> = { ipv4: [], ipv6: [] };
    for (const c of plan.plans) {
      const hooks = plan.hooks.get(c.name) ?? [];
      const rules: Record<Family, Rule[]> = { ipv4: [], ipv6: [] };
      const n = g(fc.integer, { min: 0, max: opts.maxRules });
      for (let i = 0; i < n; i++) {
        const f = g(() => fc.constantFrom(...fams));
        const r = genRule(g, { table: name, chain: c, hooks, family: f }, pool, opts, env);
        if (!r) continue;
        // In a shared table a family-neutral rule goes into both families, as `inet` lowers it.
        const into = fams.length === 2 && isNeutral(r, f) && g(fc.boolean) ? fams : [f];
        into.forEach((x) => rules[x].push(r));
      }
      // The jumps into each user chain, at random places in the callers.
      for (const callee of plan.plans) {
        const k = callee.callers.indexOf(c.name);
        if (k < 0) continue;
        for (const f of fams) {
          const jump: Target = { kind: 'jump', mode: callee.mode[k], chain: callee.name, span };
          const r = genRule(g, { table: name, chain: c, hooks, family: f }, { ...pool, targets: [] }, { ...opts, maxMatches: 1 }, env, jump) ?? { matches: [], target: jump, span };
          const at = g(fc.integer, { min: 0, max: rules[f].length });
          rules[f].splice(at, 0, r);
        }
      }
      for (const f of fams) {
        out[f].push({ name: c.name, ...(c.hook ? { hook: c.hook, policy: c.policy ?? 'ACCEPT' } : {}), rules: rules[f], span });
      }
    }
    return out;
  };
  const result: Partial<Record<Family, Table>> = {};
  if (shared) {
    const chains = chainsFor(families);
    for (const f of families) result[f] = { name, chains: chains[f], span };
  } else {
    // Both families with tables of their own, or only one of them.
    const which = families.length === 2 ? g(() => fc.constantFrom<readonly Family[]>(families, ['ipv4'], ['ipv6'])) : families;
    for (const f of which) result[f] = { name, chains: chainsFor([f])[f], span };
  }
  return result;
}

function genFlow(g: G, family: Family, pool: readonly Match['kind'][], env: Env): Flow | undefined {
  const matches = genMatches(g, { family }, pool, 3, env, true);
  if (matches.length === 0) return undefined;
  const noop = () => undefined;
  const flow = makeFlow(matches, g(fc.boolean) ? family : undefined, span, noop);
  if (!flow || flow.family || !env.defs) return flow;
  // A flow of both families sees a define whole, both families' items, as lowering gives it.
  const whole = [...env.defs.nets.ipv4, ...env.defs.nets.ipv6];
  return { ...flow, matches: flow.matches.map((m) => (m.kind === 'addr' && m.value.ref === 'nets' ? { ...m, value: { ...m.value, items: whole } } : m)) };
}

function genExpectations(g: G, families: readonly Family[], pool: readonly Match['kind'][], env: Env, userChains: readonly string[]): Expectation[] {
  const out: Expectation[] = [];
  const n = g(fc.integer, { min: 0, max: 4 });
  const vias = ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING', ...userChains];
  for (let i = 0; i < n; i++) {
    const family = g(() => fc.constantFrom(...families));
    const via = g(fc.boolean) ? g(() => fc.constantFrom(...vias)) : undefined;
    const kind = g(() => fc.constantFrom('reachable' as const, 'unreachable' as const, 'only' as const, 'no-findings' as const));
    if (kind === 'no-findings') {
      out.push({ kind, finding: g(() => fc.constantFrom('shadowed' as const, 'redundant' as const, 'unreachable' as const)), span });
      continue;
    }
    const flow = genFlow(g, family, pool, env);
    if (!flow) continue;
    if (kind === 'reachable') {
      const bits = (flow.family ?? family) === 'ipv4' ? 32 : 128;
      const t = g(fc.boolean)
        ? {
            ...(g(fc.boolean) ? { daddr: g(fc.bigInt, { min: 1n, max: (1n << BigInt(bits)) - 1n }) } : {}),
            dport: g(fc.integer, { min: 1, max: 65535 }),
            span,
          }
        : undefined;
      out.push({ kind, flow, ...(via ? { via } : {}), ...(t ? { translated: t } : {}), withReply: g(fc.boolean), span });
    } else if (kind === 'unreachable') {
      out.push({ kind, flow, ...(via ? { via } : {}), span });
    } else {
      const within = genFlow(g, family, pool, env);
      if (!within) continue;
      const more = genFlow(g, family, pool, env);
      out.push({ kind, allowed: more ? [flow, more] : [flow], within, ...(via ? { via } : {}), span });
    }
  }
  return out;
}

export function policyArb(options: PolicyGenOptions = {}): fc.Arbitrary<Policy> {
  const opts: Required<PolicyGenOptions> = {
    families: options.families ?? FAMILIES,
    tables: options.tables ?? ['raw', 'mangle', 'nat', 'filter'],
    maxRules: options.maxRules ?? 5,
    maxUserChains: options.maxUserChains ?? 3,
    host: options.host ?? true,
    matchKinds: options.matchKinds ?? (Object.keys(MATCH_ARBITRARIES) as Match['kind'][]),
    targetKinds: options.targetKinds ?? (Object.keys(TARGET_ARBITRARIES) as Target['kind'][]),
    maxMatches: options.maxMatches ?? 3,
    expectations: options.expectations ?? true,
    comments: options.comments ?? true,
    defines: options.defines ?? true,
  };
  const pool: KindPool = { matches: opts.matchKinds, targets: opts.targetKinds };
  return fc.gen().map((g) => {
    const host = opts.host ? genHost(g, opts.families) : undefined;
    const env: Env = { ...(host ? { host } : {}), ...(opts.defines ? { defs: genDefines(g) } : {}) };
    const byFamily: Record<Family, Table[]> = { ipv4: [], ipv6: [] };
    for (const t of opts.tables) {
      if (g(fc.integer, { min: 0, max: 3 }) === 0) continue;
      const tables = genTables(g, t, opts.families, pool, opts, env);
      for (const f of FAMILIES) if (tables[f]) byFamily[f].push(tables[f]!);
    }
    const order = ['raw', 'mangle', 'nat', 'filter', 'security'];
    const rulesets = Object.fromEntries(
      FAMILIES.map((f) => [f, { family: f, tables: byFamily[f].sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name)) } satisfies Ruleset]),
    ) as unknown as Record<Family, Ruleset>;
    const userChains = [...new Set(FAMILIES.flatMap((f) => byFamily[f].flatMap((t) => t.chains.filter((c) => !c.hook).map((c) => c.name))))];
    const expectations = opts.expectations ? genExpectations(g, opts.families, pool.matches, env, userChains) : [];
    return { ...(host ? { host } : {}), rulesets, expectations, sources: ['<generated>'], origin: 'nfp' } satisfies Policy;
  });
}
