import { PORT_PROTOS, PROTO } from '../ir/fields.js';
import type { HostModel, Interface, Policy, Route } from '../ir/policy.js';
import type { SimOutcome, Simulator } from '../netfilter/api.js';
import type { Packet } from '../netfilter/packet.js';
import { createSimulator } from '../netfilter/simulator.js';
import { familyBits, formatAddress } from '../util/ip.js';
import { NO_SPAN } from '../util/span.js';
import { opaqueParts } from '../ir/constraint.js';
import { CHOICE, type ConcreteOutcome, DEFAULT_ICMP_ID, runPacket } from './concrete/interp.js';
import type { PacketInput } from './concrete/input.js';
import { icmpProto } from './model/fields.js';
import { DEFAULT_FIELDS } from './box/candidates.js';
import type { FamilyModel } from './model/build.js';
import { withLinkLocalAddress } from './model/routing.js';
import type { CheckReport, InternalError, ReplayResult, Witness } from './types.js';

/**
 * Replaying witnesses in the simulator (src/netfilter), the concrete semantics nfproof checks
 * against the kernel. The analyzer's model and the simulator were written apart; a witness
 * on which they disagree is an internal error, reported, never hidden.
 *
 * Without a host model the analyzer leaves routing open; the replay then builds a small host
 * that routes the witness the way the model chose (its devices, the address it is delivered
 * to, a route for its destination).
 */

const HEADER = { ipv4: 20, ipv6: 40 } as const;

export function toSimPacket(input: PacketInput): Packet {
  const f = { ...DEFAULT_FIELDS[input.family], ...input.fields };
  const proto = Number(f.proto ?? 6n);
  const fragment = (f.fragment ?? 0n) === 1n;
  const ports = !fragment && PORT_PROTOS.includes(proto);
  const icmp = !fragment && proto === icmpProto(input.family);
  const l4 = fragment ? 0 : proto === PROTO.tcp ? 20 : ports || icmp ? 8 : 0;
  const length = Number(f.length ?? 0n);
  const payloadLen = Math.max(0, length - HEADER[input.family] - l4);
  const p: Packet = {
    family: input.family,
    src: f.saddr ?? 0n,
    dst: f.daddr ?? 0n,
    proto,
    ttl: Number(f.ttl ?? 64n),
    tos: Number(f.tos ?? (f.dscp ?? 0n) << 2n),
    payload: new Uint8Array(payloadLen),
    ...(fragment ? { fragment: true } : {}),
    // lo has no Ethernet header: no source MAC there.
    ...(f.macsrc !== undefined && input.ingress.kind === 'iface' && input.ingress.device !== 'lo' ? { macSrc: f.macsrc } : {}),
  };
  if (ports) {
    p.sport = Number(f.sport ?? 0n);
    p.dport = Number(f.dport ?? 0n);
    if (proto === PROTO.tcp) p.tcp = { flags: Number(f.tcpflags ?? 0x02n), seq: 1000, ack: 0, window: 64240 };
  }
  if (icmp) p.icmp = { type: Number(f.icmptype ?? 8n), code: Number(f.icmpcode ?? 0n), id: Number(input.choices?.[CHOICE.icmpId] ?? DEFAULT_ICMP_ID), seq: 1 };
  return p;
}

/**
 * Devices of a made-up host whose address the simulator picks itself: MASQUERADE's egress and
 * REDIRECT's ingress device (ReplayPool.plan keeps their address lists apart).
 */
export function pickedAddressDevices(model: FamilyModel, runs: readonly { input: PacketInput; out: ConcreteOutcome }[]): Set<string> {
  const out = new Set<string>();
  for (const { input, out: o } of runs) {
    const fired = (type: 'masquerade' | 'redirect') =>
      o.fired.some((id) => {
        const e = model.rules[id].effect;
        return e.type === 'nat' && e.nat.type === type;
      });
    if (fired('masquerade') && o.oif && o.oif !== 'lo') out.add(o.oif);
    if (fired('redirect') && input.ingress.kind === 'iface' && input.ingress.device !== 'lo') out.add(input.ingress.device);
  }
  return out;
}

/** The made-up device that carries the address MASQUERADE out of lo took (see replayHost). */
const LO_SOURCE_DEVICE = 'nfpsrc0';

/** fe80::1, the address a made-up interface gets when it only needs one of its family. */
const LINK_LOCAL_SOURCE = 0xfe800000000000000000000000000001n;

/** A host that routes this one packet as the model decided (only used without a host model). */
export function replayHost(model: FamilyModel, input: PacketInput, out: ConcreteOutcome, also?: { input: PacketInput; out: ConcreteOutcome }): HostModel {
  const fam = model.family;
  const host = familyBits(fam);
  let ifs = new Map<string, Set<bigint>>();
  const routes: Route[] = [];
  let groupDevice: { device: string; addr: bigint } | undefined;
  let loSource: bigint | undefined;
  const dev = (d: string | undefined) => {
    if (d && !ifs.has(d)) ifs.set(d, new Set());
    return d;
  };
  const route = (dst: bigint, device: string | undefined) => {
    if (!device || device === 'lo') return;
    if (routes.some((r) => r.dest.addr === dst)) return;
    routes.push({ family: fam, dest: { family: fam, addr: dst, len: host }, device, span: NO_SPAN });
  };
  for (const x of [{ input, out }, ...(also ? [also] : [])]) {
    const ingress = x.input.ingress.kind === 'iface' ? x.input.ingress.device : undefined;
    dev(ingress);
    dev(x.out.oif || undefined);
    if (ingress && x.out.routeChoice === 'local') {
      // Delivered here: the (translated) destination is one of this host's addresses.
      ifs.get(ingress)?.add(x.out.final.daddr);
    } else if (ingress && x.out.routeChoice === 'forward') route(x.out.final.daddr, x.out.oif);
    if (x.input.ingress.kind === 'local') {
      const daddr = x.input.fields.daddr;
      if (daddr !== undefined) route(daddr, x.out.firstOif);
      // A group address from a local socket leaves by the host's first interface, which needs
      // an IPv6 address (Host.multicastOutput6): the socket's own source, or a link-local one.
      if (fam === 'ipv6' && daddr !== undefined && daddr >> 120n === 0xffn && x.out.firstOif && x.out.firstOif !== 'lo') {
        const saddr = x.input.fields.saddr ?? 0n;
        groupDevice = { device: x.out.firstOif, addr: saddr >> 125n === 1n ? saddr : LINK_LOCAL_SOURCE };
      }
      route(x.out.final.daddr, x.out.oif);
      // Sent over lo: the destination is one of this host's own addresses (127/8 always is).
      if (x.out.oif === 'lo' && !(fam === 'ipv4' && x.out.final.daddr >> 24n === 0x7fn)) dev('lo') && ifs.get('lo')?.add(x.out.final.daddr);
    }
    // Replies go back the way the request came.
    if (ingress && x.input.fields.saddr !== undefined) route(x.input.fields.saddr, ingress);
    // MASQUERADE/REDIRECT without a host take the documentation address on the device: that
    // address is the device's own (not so for SNAT, DNAT or NETMAP, whose addresses are given).
    const natFired = (type: 'masquerade' | 'redirect') => x.out.fired.some((id) => {
      const e = model.rules[id].effect;
      return e.type === 'nat' && e.nat.type === type;
    });
    const own = [
      { b: x.out.binding.snat, d: x.out.oif, by: natFired('masquerade') },
      { b: x.out.binding.dnat, d: ingress, by: natFired('redirect') },
    ];
    for (const { b, d, by } of own) if (b && by && d && d !== 'lo') ifs.get(d)?.add(b.toAddr);
    // MASQUERADE out of lo (IPv4) takes the host's first address of universe scope: the made-up
    // address goes first, on a device of its own (IPv6 takes the destination, already local).
    if (fam === 'ipv4' && x.out.oif === 'lo' && x.out.binding.snat && natFired('masquerade')) loSource = x.out.binding.snat.toAddr;
  }
  if (loSource !== undefined) ifs = new Map([[LO_SOURCE_DEVICE, new Set([loSource])], ...[...ifs].filter(([d]) => d !== LO_SOURCE_DEVICE)]);
  if (groupDevice) {
    const addrs = ifs.get(groupDevice.device) ?? new Set<bigint>();
    if (addrs.size === 0) addrs.add(groupDevice.addr);
    ifs.delete(groupDevice.device);
    ifs = new Map([[groupDevice.device, addrs], ...ifs]);
  }
  const interfaces: Interface[] = [...ifs].filter(([name, addrs]) => name !== 'lo' || addrs.size > 0).map(([name, addrs]) => ({
    name,
    device: name,
    addresses: [...addrs].map((a) => ({ family: fam, addr: a, prefixLen: host })),
    span: NO_SPAN,
  }));
  return { name: 'replay', interfaces, routes, sysctls: {}, span: NO_SPAN };
}

/**
 * The simulator's dispatch index (built for chains of many rules) costs seconds to build on a
 * policy of thousands of rules and pays off only over many packets; a replay runs a few, so
 * its simulators walk every chain rule by rule (same rule semantics, ~10x faster to build).
 */
const LINEAR = { dispatchThreshold: Number.POSITIVE_INFINITY } as const;

type Step = { readonly input: PacketInput; readonly fill?: boolean; readonly assume?: Readonly<Record<string, boolean>> };

/**
 * One simulator for many witnesses: compiling a large policy takes a while, so witnesses share
 * a simulator, each run far enough in (virtual) time that the previous one's connections have
 * expired. Without a host model, witnesses whose made-up hosts agree share one combined host.
 */
export class ReplayPool {
  private readonly sims = new Map<number, { sim: Simulator; t: number }>();
  private readonly hosts: HostModel[] = [];
  /** Per batch: devices whose address list must stay as one witness made it (see plan). */
  private readonly pinned: Set<string>[] = [];
  private policySim?: { sim: Simulator; t: number };

  /**
   * Each simulator costs a compilation of the policy (~0.3 s at 5,000 rules), so witnesses share
   * made-up hosts: at most six, three for policies past a few thousand rules.
   */
  private readonly maxBatches: number;

  constructor(private readonly policy: Policy) {
    const rules = (['ipv4', 'ipv6'] as const).reduce((n, f) => n + policy.rulesets[f].tables.reduce((m, t) => m + t.chains.reduce((k, c) => k + c.rules.length, 0), 0), 0);
    this.maxBatches = rules > 3000 ? 3 : 6;
  }

  /**
   * Reserves a place for a witness needing this made-up host; returns its batch (undefined: no
   * room). `pinned` devices had their address chosen by MASQUERADE or REDIRECT: another
   * witness's address on the same device could change which one the simulator picks, so their
   * address lists are not shared.
   */
  plan(host: HostModel, pinned: ReadonlySet<string> = new Set()): number | undefined {
    for (let i = 0; i < this.hosts.length; i++) {
      if (!pinsHold(this.hosts[i], host, this.pinned[i], pinned)) continue;
      const merged = mergeHosts(this.hosts[i], host);
      if (merged) {
        if (merged !== this.hosts[i]) {
          this.hosts[i] = merged;
          this.sims.delete(i);
        }
        for (const d of pinned) this.pinned[i].add(d);
        return i;
      }
    }
    if (this.hosts.length >= this.maxBatches) return undefined;
    this.hosts.push(host);
    this.pinned.push(new Set(pinned));
    return this.hosts.length - 1;
  }

  /** Runs packets in the simulator of a batch (or of the policy's own host model). */
  run(batch: number | undefined, steps: readonly Step[]): SimOutcome[] {
    let e: { sim: Simulator; t: number };
    if (batch === undefined) e = this.policySim ??= { sim: createSimulator(this.policy, { trace: true }, LINEAR), t: 0 };
    else {
      let x = this.sims.get(batch);
      if (!x) {
        x = { sim: createSimulator({ ...this.policy, host: this.hosts[batch] }, { trace: true }, LINEAR), t: 0 };
        this.sims.set(batch, x);
      }
      e = x;
    }
    // Every tracked connection has expired 10^7 virtual seconds later (the longest timeout is 5 days).
    e.t += 1e7;
    return steps.map((st, i) => {
      const uid = st.input.fields.uid;
      const gid = st.input.fields.gid;
      return e.sim.process({
        t: e.t + i * 0.001,
        ingress: st.input.ingress.kind === 'iface' ? { kind: 'iface', device: st.input.ingress.device } : { kind: 'local' },
        packet: toSimPacket(st.input),
        ...(st.fill ? { fill: { seq: true, ack: true } } : {}),
        ...(st.assume && Object.keys(st.assume).length ? { assume: st.assume } : {}),
        ...(st.input.ingress.kind === 'local' && uid !== undefined ? { uid: Number(uid) } : {}),
        ...(st.input.ingress.kind === 'local' && gid !== undefined ? { gid: Number(gid) } : {}),
      });
    });
  }
}

/** Merging keeps the address list of every pinned device as it is on the side that pinned it. */
function pinsHold(a: HostModel, b: HostModel, pinnedA: ReadonlySet<string>, pinnedB: ReadonlySet<string>): boolean {
  const addrs = (h: HostModel, d: string) => (h.interfaces.find((i) => i.device === d)?.addresses ?? []).map((x) => x.addr).join(',');
  const keeps = (mine: HostModel, other: HostModel, d: string) => addrs(other, d) === '' || addrs(other, d) === addrs(mine, d);
  return [...pinnedA].every((d) => keeps(a, b, d)) && [...pinnedB].every((d) => keeps(b, a, d));
}

/** Two made-up hosts as one, unless they disagree about an address (local in one, routed in the other). */
function mergeHosts(a: HostModel, b: HostModel): HostModel | undefined {
  const local = new Map<bigint, string>();
  for (const i of a.interfaces) for (const x of i.addresses) local.set(x.addr, i.device);
  const routed = new Map<bigint, string>();
  for (const r of a.routes) routed.set(r.dest.addr, r.device);
  let changed = false;
  const ifs = new Map(a.interfaces.map((i) => [i.device, { ...i, addresses: [...i.addresses] }]));
  const routes = [...a.routes];
  for (const i of b.interfaces) {
    for (const x of i.addresses) {
      if (routed.has(x.addr) || (local.has(x.addr) && local.get(x.addr) !== i.device)) return undefined;
    }
  }
  for (const r of b.routes) {
    if (local.has(r.dest.addr) || (routed.has(r.dest.addr) && routed.get(r.dest.addr) !== r.device)) return undefined;
  }
  for (const i of b.interfaces) {
    const mine = ifs.get(i.device);
    if (!mine) {
      ifs.set(i.device, { ...i, addresses: [...i.addresses] });
      changed = true;
      continue;
    }
    for (const x of i.addresses) {
      if (!local.has(x.addr)) {
        mine.addresses.push(x);
        changed = true;
      }
    }
  }
  for (const r of b.routes) {
    if (!routed.has(r.dest.addr)) {
      routes.push(r);
      changed = true;
    }
  }
  return changed ? { ...a, interfaces: [...ifs.values()], routes } : a;
}

/** Compares the model's outcome with the simulator's for one packet; undefined when they agree. */
export function compareOutcome(model: FamilyModel, mine: ConcreteOutcome, sim: SimOutcome): string | undefined {
  if (mine.verdict !== sim.verdict) return `model says ${mine.verdict}${mine.dropReason ? ` (${mine.dropReason})` : ''}, simulator says ${sim.verdict}${sim.dropReason ? ` (${sim.dropReason})` : ''}`;
  if ((mine.verdict === 'forwarded' || mine.verdict === 'sent') && sim.egress && mine.egress !== sim.egress.device) {
    return `model sends it out of ${mine.egress}, simulator out of ${sim.egress.device}`;
  }
  const mineRules = mine.fired.map((id) => model.rules[id]).map((r) => `${r.table}/${r.chain}#${r.index}`);
  // Steps marked [answer] belong to packets the host sent in response (REJECT, ICMP errors).
  const simRules = sim.trace.filter((s) => s.rule !== undefined && !s.action.startsWith('[answer]')).map((s) => `${s.table}/${s.chain}#${s.rule}`);
  if (mineRules.join(' ') !== simRules.join(' ')) return `rules matched differ: model [${mineRules.join(', ')}], simulator [${simRules.join(', ')}]`;
  const leaving = sim.egress?.packet ?? sim.delivered;
  if (leaving && mine.verdict !== 'dropped') {
    if (leaving.src !== mine.final.saddr || leaving.dst !== mine.final.daddr) {
      const pair = (s: bigint, d: bigint) => `${formatAddress(model.family, s)} -> ${formatAddress(model.family, d)}`;
      return `addresses after NAT differ: model ${pair(mine.final.saddr, mine.final.daddr)}, simulator ${pair(leaving.src, leaving.dst)}`;
    }
    const natPortsFree = model.rules.some((r) => r.effect.type === 'nat' && ((r.effect.nat.ports && r.effect.nat.ports[0] !== r.effect.nat.ports[1]) || r.effect.nat.random || r.effect.nat.fullyRandom));
    if (!natPortsFree && leaving.sport !== undefined && (BigInt(leaving.sport) !== mine.final.sport || BigInt(leaving.dport ?? 0) !== mine.final.dport)) return 'ports after NAT differ';
  }
  return undefined;
}

/** What replaying one witness needs: its packets, its made-up host, and how to judge the result. */
interface Prepared {
  readonly steps: Step[];
  readonly host?: HostModel;
  /** Devices of the made-up host whose address MASQUERADE or REDIRECT picked. */
  readonly pinned: ReadonlySet<string>;
  judge(sims: SimOutcome[]): ReplayResult;
}

/** Keys of the opaque matches in the model's rules (the answers a replay can hand the simulator). */
const MATCH_KEYS = new WeakMap<FamilyModel, ReadonlySet<string>>();
function matchKeys(model: FamilyModel): ReadonlySet<string> {
  let keys = MATCH_KEYS.get(model);
  if (!keys) {
    keys = new Set(model.rules.flatMap((r) => opaqueParts(r.constraint).map((o) => o.key)));
    MATCH_KEYS.set(model, keys);
  }
  return keys;
}

/**
 * The answers a run took for opaque matches (rate limits, recent lists, unmodelled modules),
 * for the simulator to take too; undefined when the run also rests on something the simulator
 * cannot be told (an unmodelled target's verdict, address types without a host model).
 */
function assumedAnswers(model: FamilyModel, input: PacketInput, out: ConcreteOutcome): Record<string, boolean> | undefined {
  const keys = matchKeys(model);
  const answers: Record<string, boolean> = {};
  for (const k of out.opaqueUsed) {
    if (!keys.has(k)) return undefined;
    answers[k] = input.opaque?.[k] ?? false;
  }
  return answers;
}

/** What a witness's answers were about, for the replay's message. */
function reasonsOf(model: FamilyModel, answers: Readonly<Record<string, boolean>>): string {
  const reasons = new Set<string>();
  for (const r of model.rules) for (const o of opaqueParts(r.constraint)) if (o.key in answers) reasons.add(o.reason.replace(/:.*$/, ''));
  return [...reasons].join('; ');
}

function prepare(policy: Policy, model: FamilyModel, w: Witness): Prepared | ReplayResult {
  const input = w.input;
  if (input.ctState === 'RELATED') return { status: 'not-replayed', detail: 'a RELATED packet needs a helper or an ICMP error to set up' };
  if (input.ctState === 'INVALID') return { status: 'not-replayed', detail: 'the model treats INVALID as a given state; the simulator derives it from the tracker' };
  if (input.ctState !== 'NEW') return { status: 'not-replayed', detail: 'an ESTABLISHED packet on its own: the connection it belongs to is not part of the witness' };
  const mine = runPacket(model, input);
  // The simulator answers opaque matches as the witness assumed them (SimInput.assume): the
  // replay checks what the model did with those answers, whatever the token buckets or lists
  // would say. An unmodelled target's verdict cannot be handed over that way.
  const answers = assumedAnswers(model, input, mine);
  if (!answers) return { status: 'not-replayed', detail: 'depends on an unmodelled target or on address types without a host model' };
  // A made-up host cannot join arbitrary multicast groups: without a host model, leave those.
  const multicast = (a: bigint | undefined) => a !== undefined && model.routing.sim.isMulticast(model.family, a);
  if (!policy.host && (multicast(input.fields.daddr) || multicast(mine.final.daddr))) {
    return { status: 'not-replayed', detail: 'multicast group membership is unknown without a host model' };
  }
  const steps: Step[] = [{ input, assume: answers }];
  const replyOut = w.reply ? runPacket(model, w.reply.input) : undefined;
  const replyAnswers = w.reply && replyOut ? assumedAnswers(model, w.reply.input, replyOut) : undefined;
  if (w.reply && !replyAnswers) return { status: 'not-replayed', detail: 'its reply depends on an unmodelled target' };
  if (w.reply) steps.push({ input: w.reply.input, fill: true, assume: replyAnswers });
  let host = policy.host ? undefined : replayHost(model, input, mine, w.reply && replyOut ? { input: w.reply.input, out: replyOut } : undefined);
  // The model took the destination as the interface's own link-local address: so must the host.
  for (const o of [mine, replyOut]) {
    const ll = o?.ownLinkLocal;
    if (ll) host = withLinkLocalAddress(host ?? policy.host!, ll.device, ll.addr);
  }
  const pinned = pickedAddressDevices(model, [{ input, out: mine }, ...(w.reply && replyOut ? [{ input: w.reply.input, out: replyOut }] : [])]);
  const given = (a: Readonly<Record<string, boolean>> | undefined) => (a && Object.keys(a).length ? ` (answering ${reasonsOf(model, a)} as the witness assumes)` : '');
  return {
    steps,
    ...(host ? { host } : {}),
    pinned,
    judge(sims) {
      const diff = compareOutcome(model, mine, sims[0]);
      if (diff) return { status: 'disagrees', detail: diff + given(answers) };
      if (w.reply && replyOut) {
        const d2 = compareOutcome(model, replyOut, sims[1]);
        if (d2) return { status: 'disagrees', detail: `reply: ${d2}${given(replyAnswers)}` };
        w.reply.replay = { status: 'agrees', detail: `simulator: ${sims[1].verdict}${given(replyAnswers)}` };
      }
      return { status: 'agrees', detail: `simulator: ${sims[0].verdict}${sims[0].egress ? ` out of ${sims[0].egress.device}` : ''}${given(answers)}` };
    },
  };
}

/** Replays one witness (and its reply); the result is also stored on the witness. */
export function replayWitness(policy: Policy, model: FamilyModel, w: Witness): ReplayResult {
  const p = prepare(policy, model, w);
  const pool = new ReplayPool(policy);
  const result = 'judge' in p ? runPrepared(pool, p, p.host ? pool.plan(p.host, p.pinned) : undefined) : p;

  w.replay = result;
  return result;
}

function runPrepared(pool: ReplayPool, p: Prepared, batch: number | undefined): ReplayResult {
  try {
    return p.judge(pool.run(batch, p.steps));
  } catch (e) {
    return { status: 'not-replayed', detail: `simulator refused the witness: ${e instanceof Error ? e.message : String(e)}` };
  }
}

/** Replays every witness of a report; disagreements become internal errors. */
export function replayReport(policy: Policy, models: readonly FamilyModel[], report: CheckReport): { replayed: number; agreed: number; errors: InternalError[] } {
  const witnesses: { w: Witness; rule?: InternalError['rule'] }[] = [
    ...report.findings.flatMap((f) => (f.witness && f.kind !== 'generalization' && f.kind !== 'correlation' ? [{ w: f.witness, ...(f.rule ? { rule: f.rule } : {}) }] : [])),
    ...report.expectations.flatMap((e) => (e.witness ? [{ w: e.witness }] : [])),
  ];
  return replayWitnesses(policy, models, witnesses);
}

/** Replays witnesses sharing simulators; results are stored on them, disagreements returned. */
export function replayWitnesses(
  policy: Policy,
  models: readonly FamilyModel[],
  witnesses: readonly { w: Witness; rule?: InternalError['rule'] }[],
): { replayed: number; agreed: number; errors: InternalError[] } {
  const errors: InternalError[] = [];
  let replayed = 0;
  let agreed = 0;
  const byFamily = new Map(models.map((m) => [m.family, m]));
  const pool = new ReplayPool(policy);
  // Plan every witness first (so made-up hosts are merged before any simulator is built).
  const planned = witnesses.map(({ w, rule }) => {
    const model = byFamily.get(w.input.family);
    const p = model ? prepare(policy, model, w) : ({ status: 'not-replayed', detail: 'no model of its family' } as ReplayResult);
    const batch = 'judge' in p && p.host ? pool.plan(p.host, p.pinned) : undefined;
    const noRoom = 'judge' in p && p.host !== undefined && batch === undefined;
    return { w, rule, p, batch, noRoom };
  });
  for (const { w, rule, p, batch, noRoom } of planned) {
    const r: ReplayResult = noRoom
      ? { status: 'not-replayed', detail: 'its made-up host conflicts with the ones the other witnesses share (give the policy a host model)' }
      : 'judge' in p
        ? runPrepared(pool, p, batch)
        : p;
    w.replay = r;
    if (r.status === 'not-replayed') continue;
    replayed++;
    if (r.status === 'agrees') agreed++;
    else errors.push({ message: `the simulator disagrees with the analyzer on a witness: ${r.detail}`, witness: w, ...(rule ? { rule } : {}) });
  }
  return { replayed, agreed, errors };
}
