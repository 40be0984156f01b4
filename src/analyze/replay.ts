import { PORT_PROTOS, PROTO } from '../ir/fields.js';
import type { HostModel, Interface, Policy, Route } from '../ir/policy.js';
import type { SimOutcome } from '../netfilter/api.js';
import type { Packet } from '../netfilter/packet.js';
import { createSimulator } from '../netfilter/simulator.js';
import { familyBits } from '../util/ip.js';
import { NO_SPAN } from '../util/span.js';
import { type ConcreteOutcome, runPacket } from './concrete/interp.js';
import type { PacketInput } from './concrete/input.js';
import { icmpProto } from './model/fields.js';
import type { FamilyModel } from './model/build.js';
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
  const f = input.fields;
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
  if (icmp) p.icmp = { type: Number(f.icmptype ?? 8n), code: Number(f.icmpcode ?? 0n), id: 4242, seq: 1 };
  return p;
}

/** A host that routes this one packet as the model decided (only used without a host model). */
export function replayHost(model: FamilyModel, input: PacketInput, out: ConcreteOutcome, also?: { input: PacketInput; out: ConcreteOutcome }): HostModel {
  const fam = model.family;
  const host = familyBits(fam);
  const ifs = new Map<string, Set<bigint>>();
  const routes: Route[] = [];
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
      if (x.input.fields.daddr !== undefined) route(x.input.fields.daddr, x.out.firstOif);
      route(x.out.final.daddr, x.out.oif);
      // Sent over lo: the destination is one of this host's own addresses.
      if (x.out.oif === 'lo') dev('lo') && ifs.get('lo')?.add(x.out.final.daddr);
    }
    // Replies go back the way the request came.
    if (ingress && x.input.fields.saddr !== undefined) route(x.input.fields.saddr, ingress);
    // MASQUERADE/REDIRECT without a host take the documentation address on the device.
    for (const b of [x.out.binding.snat, x.out.binding.dnat]) {
      if (!b) continue;
      const d = b === x.out.binding.snat ? x.out.oif : ingress;
      if (d && d !== 'lo' && model.rules.some((r) => r.effect.type === 'nat' && (r.effect.nat.type === 'masquerade' || r.effect.nat.type === 'redirect'))) ifs.get(d)?.add(b.toAddr);
    }
  }
  const interfaces: Interface[] = [...ifs].filter(([name, addrs]) => name !== 'lo' || addrs.size > 0).map(([name, addrs]) => ({
    name,
    device: name,
    addresses: [...addrs].map((a) => ({ family: fam, addr: a, prefixLen: host })),
    span: NO_SPAN,
  }));
  return { name: 'replay', interfaces, routes, sysctls: {}, span: NO_SPAN };
}

type Step = { readonly input: PacketInput; readonly fill?: boolean };

function runSim(policy: Policy, steps: readonly Step[]): SimOutcome[] {
  const sim = createSimulator(policy, { trace: true });
  return steps.map((s, i) => {
    const packet = toSimPacket(s.input);
    const uid = s.input.fields.uid;
    const gid = s.input.fields.gid;
    return sim.process({
      t: i * 0.001,
      ingress: s.input.ingress.kind === 'iface' ? { kind: 'iface', device: s.input.ingress.device } : { kind: 'local' },
      packet,
      ...(s.fill ? { fill: { seq: true, ack: true } } : {}),
      ...(s.input.ingress.kind === 'local' && uid !== undefined ? { uid: Number(uid) } : {}),
      ...(s.input.ingress.kind === 'local' && gid !== undefined ? { gid: Number(gid) } : {}),
    });
  });
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
    if (leaving.src !== mine.final.saddr || leaving.dst !== mine.final.daddr) return 'addresses after NAT differ';
    const natPortsFree = model.rules.some((r) => r.effect.type === 'nat' && ((r.effect.nat.ports && r.effect.nat.ports[0] !== r.effect.nat.ports[1]) || r.effect.nat.random || r.effect.nat.fullyRandom));
    if (!natPortsFree && leaving.sport !== undefined && (BigInt(leaving.sport) !== mine.final.sport || BigInt(leaving.dport ?? 0) !== mine.final.dport)) return 'ports after NAT differ';
  }
  return undefined;
}

/** Replays one witness (and its reply); the result is also stored on the witness. */
export function replayWitness(policy: Policy, model: FamilyModel, w: Witness): ReplayResult {
  const result = replayInner(policy, model, w);
  w.replay = result;
  return result;
}

function replayInner(policy: Policy, model: FamilyModel, w: Witness): ReplayResult {
  if (w.dependsOn.length) return { status: 'not-replayed', detail: 'depends on an unmodelled match or target' };
  const input = w.input;
  const mine = runPacket(model, input);
  if (input.ctState === 'RELATED') return { status: 'not-replayed', detail: 'a RELATED packet needs a helper or an ICMP error to set up' };
  if (input.ctState === 'INVALID') return { status: 'not-replayed', detail: 'the model treats INVALID as a given state; the simulator derives it from the tracker' };
  const simPolicy = (extra?: { input: PacketInput; out: ConcreteOutcome }) => (policy.host ? policy : { ...policy, host: replayHost(model, input, mine, extra) });
  try {
    if (input.ctState === 'NEW') {
      const steps: Step[] = [{ input }];
      let replyOut: ConcreteOutcome | undefined;
      if (w.reply) {
        replyOut = runPacket(model, w.reply.input);
        steps.push({ input: w.reply.input, fill: true });
      }
      const sims = runSim(simPolicy(w.reply && replyOut ? { input: w.reply.input, out: replyOut } : undefined), steps);
      const diff = compareOutcome(model, mine, sims[0]);
      if (diff) return { status: 'disagrees', detail: diff };
      if (w.reply && replyOut) {
        const d2 = compareOutcome(model, replyOut, sims[1]);
        if (d2) return { status: 'disagrees', detail: `reply: ${d2}` };
        w.reply.replay = { status: 'agrees', detail: `simulator: ${sims[1].verdict}` };
      }
      return { status: 'agrees', detail: `simulator: ${sims[0].verdict}${sims[0].egress ? ` out of ${sims[0].egress.device}` : ''}` };
    }
    return { status: 'not-replayed', detail: 'an ESTABLISHED packet on its own: the connection it belongs to is not part of the witness' };
  } catch (e) {
    return { status: 'not-replayed', detail: `simulator refused the witness: ${e instanceof Error ? e.message : String(e)}` };
  }
}

/** Replays every witness of a report; disagreements become internal errors. */
export function replayReport(policy: Policy, models: readonly FamilyModel[], report: CheckReport): { replayed: number; agreed: number; errors: InternalError[] } {
  const errors: InternalError[] = [];
  let replayed = 0;
  let agreed = 0;
  const byFamily = new Map(models.map((m) => [m.family, m]));
  const witnesses: { w: Witness; rule?: InternalError['rule'] }[] = [
    ...report.findings.flatMap((f) => (f.witness ? [{ w: f.witness, ...(f.rule ? { rule: f.rule } : {}) }] : [])),
    ...report.expectations.flatMap((e) => (e.witness ? [{ w: e.witness }] : [])),
  ];
  for (const { w, rule } of witnesses) {
    const model = byFamily.get(w.input.family);
    if (!model) continue;
    const r = replayWitness(policy, model, w);
    if (r.status === 'not-replayed') continue;
    replayed++;
    if (r.status === 'agrees') agreed++;
    else errors.push({ message: `the simulator disagrees with the analyzer on a witness: ${r.detail}`, witness: w, ...(rule ? { rule } : {}) });
  }
  return { replayed, agreed, errors };
}
