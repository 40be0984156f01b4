import type { Constraint } from '../ir/constraint.js';
import type { Policy } from '../ir/policy.js';
import { type Match, matchKind } from '../kinds/index.js';
import { type Family, FAMILIES } from '../util/ip.js';
import type { ChainCounters, CtEntrySnapshot, CtExpectationSnapshot, SimInput, SimOptions, SimOutcome, Simulator } from './api.js';
import { IPS } from './conntrack/status.js';
import { tupleSnapshot } from './conntrack/tuple.js';
import { FamilyEngine } from './engine.js';
import { type Frame, TEMPLATE_CT, frameView, traceEvent } from './frame.js';
import { Host } from './host.js';
import { parseTrackerSysctls, trackerFor, trackerSysctlName } from './proto/registry.js';
import { type CompileOptions, compileRuleset, type OpaqueEnv } from './rules/compile.js';
import { FamilyState, type SimConfig } from './state.js';

/**
 * createSimulator: a simulated host running a policy. One pipeline per address family (the
 * ruleset of each family, its conntrack table), one virtual clock, one nf_conntrack_max for
 * both (the kernel's limit is per network namespace).
 */

export class SimulationError extends Error {
  constructor(
    message: string,
    readonly line?: number,
  ) {
    super(message);
    this.name = 'SimulationError';
  }
}

/** The kernel's default nf_conntrack_max on this class of machine. */
export const DEFAULT_MAX_ENTRIES = 262144;
const DEFAULT_BUCKETS = 65536;

function sysctlValue(all: Readonly<Record<string, string>>, ...names: string[]): string | undefined {
  for (const [k, v] of Object.entries(all)) {
    const short = k.replace(/^net\.(netfilter|ipv4|ipv6)\./, '').replace(/^conf\.all\./, '');
    if (names.includes(short) || names.includes(k)) return v;
  }
  return undefined;
}

function intSysctl(all: Readonly<Record<string, string>>, fallback: number, ...names: string[]): number {
  const v = sysctlValue(all, ...names);
  if (v === undefined) return fallback;
  if (!/^\d+$/.test(v.trim())) throw new SimulationError(`sysctl ${names[0]}: expected a non-negative integer, got "${v}"`);
  return Number(v);
}

/** Non-tracker sysctls nfproof understands (everything else is refused with a clear message). */
const HOST_SYSCTLS = [
  'send_redirects',
  'icmp_ratemask',
  'icmp.ratemask',
  'icmp.ratelimit',
  'nf_conntrack_max',
  'nf_conntrack_buckets',
  'ip_forward',
  'ip_default_ttl',
  'icmp_ratelimit',
  'forwarding',
  'nf_conntrack_acct',
  'nf_conntrack_checksum',
  'nf_conntrack_helper',
];

/**
 * net.ipv6.icmp.ratemask: a list of ICMPv6 types and ranges ("0-1,3-127", the default: every
 * error but "packet too big"); empty means none is limited.
 */
function parseV6RateMask(v: string | undefined): ReadonlySet<number> {
  const text = v ?? '0-1,3-127';
  const out = new Set<number>();
  for (const part of text.split(',').map((x) => x.trim()).filter(Boolean)) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new SimulationError(`net.ipv6.icmp.ratemask: "${part}" is not a type or a range`);
    for (let t = Number(m[1]); t <= Number(m[2] ?? m[1]) && t <= 255; t++) out.add(t);
  }
  return out;
}

export interface HostSettings {
  readonly cfg: SimConfig;
  readonly ipForward: boolean;
  /** Seconds per token of the per-destination ICMP error limiter (icmp_ratelimit ms / 1000). */
  readonly icmpRateLimit: number;
  /** Which ICMP types the limiter applies to: icmp_ratemask (IPv4 bits) and net.ipv6.icmp.ratemask. */
  readonly icmpRateMask: { readonly ipv4: number; readonly ipv6: ReadonlySet<number> };
  /** net.ipv4.conf.all.send_redirects (default 1). */
  readonly sendRedirects: boolean;
}

export function resolveConfig(policy: Policy, options: SimOptions): HostSettings {
  const all: Record<string, string> = { ...(policy.host?.sysctls ?? {}), ...(options.sysctls ?? {}) };
  const tracker = parseTrackerSysctls(all);
  if (tracker.errors.length > 0) throw new SimulationError(tracker.errors.join('; '));
  // Unknown names are a mistake when the user passes them; the policy's host model may list
  // sysctls the simulator has no use for (rp_filter…), which are left alone.
  const fromUser = new Set(Object.keys(options.sysctls ?? {}));
  const unknown = tracker.unknown.filter(
    (n) => fromUser.has(n) && !HOST_SYSCTLS.includes(n.replace(/^net\.(netfilter|ipv4|ipv6)\./, '').replace(/^conf\.all\./, '')),
  );
  if (unknown.length > 0) {
    throw new SimulationError(`unknown sysctl ${unknown.map((n) => trackerSysctlName(n)).join(', ')} (known: nf_conntrack_* timeouts, tcp_loose, tcp_be_liberal, tcp_max_retrans, nf_conntrack_max, nf_conntrack_buckets, ip_forward, ip_default_ttl, icmp_ratelimit)`);
  }
  const maxEntries = options.maxEntries ?? intSysctl(all, DEFAULT_MAX_ENTRIES, 'nf_conntrack_max');
  const buckets = intSysctl(all, DEFAULT_BUCKETS, 'nf_conntrack_buckets');
  if (buckets < 1) throw new SimulationError('nf_conntrack_buckets must be at least 1');
  return {
    cfg: {
      maxEntries,
      buckets,
      sys: tracker.sys,
      defaultTtl: intSysctl(all, 64, 'ip_default_ttl'),
      trace: options.trace ?? true,
      seed: options.seed ?? 0,
    },
    ipForward: intSysctl(all, 1, 'ip_forward', 'forwarding') !== 0,
    icmpRateLimit: intSysctl(all, 1000, 'icmp_ratelimit', 'icmp.ratelimit') / 1000,
    sendRedirects: intSysctl(all, 1, 'send_redirects') !== 0,
    icmpRateMask: {
      ipv4: intSysctl(all, 0x1818, 'icmp_ratemask'),
      ipv6: parseV6RateMask(sysctlValue(all, 'icmp.ratemask')),
    },
  };
}

/**
 * nf_ct_expires(ct) / HZ for the packet's connection. An unconfirmed entry still holds its
 * timeout relative (the clock is added at confirmation), and nf_ct_expires clamps "relative
 * minus now" at 0, so it reads 0 (on a machine up for less than 5 minutes or past 2^31
 * jiffies the signed difference would wrap; nfproof assumes neither). A raw-table template
 * has no timeout either.
 */
function ctExpiresOf(f: Frame): number | undefined {
  if (f.ct === TEMPLATE_CT) return 0;
  if (f.ct < 0) return undefined;
  if (!f.table.isConfirmed(f.ct)) return 0;
  return Math.max(0, Math.floor(f.table.expires[f.ct] - f.now + 1e-9));
}

/** State of stateful matches (kinds' evaluate hooks) for one simulator. */
class OpaqueState implements OpaqueEnv {
  private readonly local = new Map<string, unknown>();
  private readonly shared = new Map<string, unknown>();
  /** SimInput.assume of the packet being handled. */
  assumed: Readonly<Record<string, boolean>> | undefined;

  decide(m: Match, key: string, c: Extract<Constraint, { op: 'opaque' }>, f: Frame): boolean {
    const given = this.assumed?.[c.key];
    if (given !== undefined) return given;
    const kind = matchKind(m);
    if (!kind.evaluate) return this.unknown(f, c);
    const local = this.local;
    const shared = this.shared;
    const v = kind.evaluate(m, c, {
      packet: frameView(f),
      now: f.now,
      hook: f.hook,
      ctExpires: ctExpiresOf(f),
      local<T>(init: () => T): T {
        if (!local.has(key)) local.set(key, init());
        return local.get(key) as T;
      },
      shared<T>(name: string, init: () => T): T {
        if (!shared.has(name)) shared.set(name, init());
        return shared.get(name) as T;
      },
    });
    return v === undefined ? this.unknown(f, c) : v;
  }

  private unknown(f: Frame, c: Extract<Constraint, { op: 'opaque' }>): boolean {
    (f.unknowns ??= []).push(`${c.key}: ${c.reason} (assumed not to match)`);
    traceEvent(f, 'unknown', `unknown match ${c.key} (${c.reason}): assumed not to match`);
    return false;
  }
}

class PolicySimulator implements Simulator {
  private clock = Number.NEGATIVE_INFINITY;
  /** gc worker state shared by both families (one table in the kernel). */
  private readonly gc: { tableFullAt: number | undefined } = { tableFullAt: undefined };
  private readonly states = new Map<Family, FamilyState>();
  private readonly engines = new Map<Family, FamilyEngine>();
  readonly max: number;

  constructor(policy: Policy, options: SimOptions, compileOpts: CompileOptions) {
    const settings = resolveConfig(policy, options);
    const { cfg } = settings;
    this.max = cfg.maxEntries;
    const host = new Host(policy.host, { forwarding: settings.ipForward });
    const opaque = new OpaqueState();
    this.opaque = opaque;
    for (const family of FAMILIES) {
      const rs = compileRuleset(policy.rulesets[family], opaque, compileOpts);
      const st = new FamilyState(family, rs, host, cfg, () => this.totalCount(), this.gc);
      this.states.set(family, st);
      this.engines.set(family, new FamilyEngine(st, settings));
    }
    this.host = host;
    this.v4 = this.engines.get('ipv4')!;
    this.v6 = this.engines.get('ipv6')!;
    const v4 = this.states.get('ipv4')!;
    const v6 = this.states.get('ipv6')!;
    v4.peer = v6;
    v6.peer = v4;
  }

  private readonly host: Host;
  private readonly opaque: OpaqueState;
  private readonly v4: FamilyEngine;
  private readonly v6: FamilyEngine;

  get now(): number {
    return this.clock === Number.NEGATIVE_INFINITY ? 0 : this.clock;
  }

  private totalCount(): number {
    let n = 0;
    for (const s of this.states.values()) n += s.table.count;
    return n;
  }

  advanceTo(t: number): void {
    if (t < this.clock) throw new SimulationError(`time goes backwards: ${t} s after ${this.clock} s`);
    this.clock = t;
    if (this.gc.tableFullAt !== undefined && t > this.gc.tableFullAt) this.runGcEarlyDrop();
  }

  /**
   * After "table full" the kernel's gc worker, on its next run, evicts what may be dropped early
   * while the table stays above 95 % of nf_conntrack_max. When it runs is not deterministic
   * (its own schedule, usually well under a second); nfproof runs it at the first later moment.
   */
  private runGcEarlyDrop(): void {
    this.gc.tableFullAt = undefined;
    const max95 = Math.floor(this.max / 100) * 95;
    for (const st of this.states.values()) {
      const t = st.table;
      t.gcEarlyDrop(this.clock, max95, () => this.totalCount(), (i) => {
        if ((t.status[i] & IPS.ASSURED) === 0) return true;
        const tracker = trackerFor(t.protoOf(i));
        return tracker.canEarlyDrop?.(t.state[i]) ?? false;
      });
    }
  }

  process(input: SimInput): SimOutcome {
    if (!Number.isFinite(input.t)) throw new SimulationError('packet time must be a finite number of seconds', input.line);
    if (input.t < this.clock) throw new SimulationError(`packet time ${input.t} s is earlier than the previous packet (${this.clock} s)`, input.line);
    this.clock = input.t;
    if (this.gc.tableFullAt !== undefined && input.t > this.gc.tableFullAt) this.runGcEarlyDrop();
    if (input.ingress.kind === 'iface' && this.host.hasModel && !this.host.devices.has(input.ingress.device)) {
      const known = [...this.host.devices].join(', ');
      throw new SimulationError(`unknown interface "${input.ingress.device}" (the host has: ${known})`, input.line);
    }
    this.opaque.assumed = input.assume;
    try {
      return (input.packet.family === 'ipv4' ? this.v4 : this.v6).process(input);
    } finally {
      this.opaque.assumed = undefined;
    }
  }

  entries(family?: Family): CtEntrySnapshot[] {
    const out: CtEntrySnapshot[] = [];
    for (const [fam, st] of this.states) {
      if (family && fam !== family) continue;
      const t = st.table;
      t.reapExpired(this.now);
      for (const i of t.confirmedEntries()) {
        if (t.expires[i] <= this.now) continue;
        // A UDP entry that lost a NAT clash is only in the reply hash: ctnetlink does not list it.
        if (t.status[i] & IPS.NAT_CLASH) continue;
        const tracker = trackerFor(t.protoOf(i));
        const state = tracker.stateName(t.state[i]);
        const ext = t.ext[i];
        const helper = ext?.helper;
        out.push({
          family: fam,
          original: tupleSnapshot(fam, t.getTuple(i, 0, st.t1)),
          reply: tupleSnapshot(fam, t.getTuple(i, 1, st.t1)),
          ...(state !== undefined ? { tcpState: state } : {}),
          timeout: Math.floor(t.expires[i] - this.now + 1e-9),
          status: t.status[i],
          mark: t.mark[i],
          zone: t.zoneOf(i),
          ...(helper ? { helper } : {}),
          ...(ext?.randomized ? { randomized: [...ext.randomized] } : {}),
        });
      }
    }
    return out;
  }

  expectations(): CtExpectationSnapshot[] {
    const out: CtExpectationSnapshot[] = [];
    for (const [family, st] of this.states) {
      for (const e of st.expect.all(this.now)) {
        out.push({
          family,
          tuple: tupleSnapshot(family, e.tuple),
          master: tupleSnapshot(family, st.table.getTuple(e.master, 0, st.t1)),
          timeout: Math.floor(e.expires - this.now + 1e-9),
          helper: e.helper,
        });
      }
    }
    return out;
  }

  count(): number {
    for (const st of this.states.values()) st.table.reapExpired(this.now);
    return this.totalCount();
  }

  counters(): ChainCounters[] {
    const out: ChainCounters[] = [];
    for (const [family, st] of this.states) {
      for (const table of st.rs.tables.values()) {
        for (const c of table.order) {
          out.push({
            family,
            table: table.name,
            chain: c.name,
            ...(c.hook ? { policy: [c.policyPackets, c.policyBytes] as const } : {}),
            rules: c.rules.map((_, i) => [c.packets[i], c.bytes[i]] as const),
          });
        }
      }
    }
    return out;
  }

  flush(): void {
    for (const st of this.states.values()) {
      const t = st.table;
      // Removing a master removes its expectations too (table.onRemove).
      for (const i of t.confirmedEntries()) t.remove(i);
      for (const table of st.rs.tables.values()) {
        for (const c of table.order) {
          c.packets.fill(0);
          c.bytes.fill(0);
          c.policyPackets = 0;
          c.policyBytes = 0;
        }
      }
    }
  }

  /** For the CLI: the family states (formatters read tables directly). */
  familyState(family: Family): FamilyState {
    return this.states.get(family)!;
  }
}

export function createSimulator(policy: Policy, options: SimOptions = {}, compileOpts: CompileOptions = {}): Simulator {
  return new PolicySimulator(policy, options, compileOpts);
}
