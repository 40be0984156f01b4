import { type Family, formatAddress } from '../../util/ip.js';
import { CT_STATUS, PORT_PROTOS } from '../../ir/fields.js';
import type { HostModel } from '../../ir/policy.js';
import type { CtEntrySnapshot, SimInput, SimOutcome, Simulator } from '../../netfilter/api.js';
import type { Packet } from '../../netfilter/packet.js';
import { createSimulator } from '../../netfilter/simulator.js';
import { type ConcreteOutcome, UNKNOWN_ADDR, isAnswer, runPacket } from '../concrete/interp.js';
import type { PacketInput } from '../concrete/input.js';
import { icmpProto } from '../model/fields.js';
import { compareOutcome, pickedAddressDevices, replayHost, toSimPacket } from '../replay.js';
import type { DiffKind } from './compare.js';
import type { DiffContext } from './context.js';

/**
 * Replaying a difference's witness in the simulator on both sides. Each side's simulation must
 * agree with the analyzer's model of that side, and the two simulations must show the claimed
 * difference; anything else is an internal error of nfproof, reported, never hidden.
 *
 * A packet of an existing connection (ESTABLISHED) is replayed after its connection is set up
 * by the rules themselves: its first packet and the answer, then the witness; the model is then
 * asked again with the connection the simulator made (its mark, status, tuple), since the
 * witness as found leaves those open. When the rules of a side do not let the connection come
 * about (its first packet is dropped, NAT rewrites it), the witness is not replayed.
 *
 * Without a host model the replay host is built from what the model chose for the witness (the
 * analyzer's replayHost), once for both sides, so both simulators route alike.
 */
export type PairReplay = { readonly status: 'agrees' | 'disagrees' | 'not-replayed'; readonly detail: string };

export interface Run {
  readonly input: PacketInput;
  readonly out: ConcreteOutcome;
}

/** Which kind of difference two model outcomes show (family.ts concreteKind). */
export type KindOf = (a: ConcreteOutcome, b: ConcreteOutcome) => DiffKind | undefined;

type Step = Omit<SimInput, 't'>;

function stepOf(input: PacketInput, packet: Packet = toSimPacket(input), fill = false): Step {
  const uid = input.fields.uid;
  const gid = input.fields.gid;
  return {
    ingress: input.ingress.kind === 'iface' ? { kind: 'iface', device: input.ingress.device } : { kind: 'local' },
    packet,
    ...(fill && packet.tcp ? { fill: { seq: true, ack: true } } : {}),
    ...(input.ingress.kind === 'local' && uid !== undefined ? { uid: Number(uid) } : {}),
    ...(input.ingress.kind === 'local' && gid !== undefined ? { gid: Number(gid) } : {}),
  };
}

/** The kind of difference two simulations show (undefined: none). */
function simKind(a: SimOutcome, b: SimOutcome): DiffKind | undefined {
  const da = a.verdict !== 'dropped';
  const db = b.verdict !== 'dropped';
  if (da !== db) return db ? 'allowed' : 'denied';
  if (!da) {
    // The rule that drops: a REJECT on one side and a DROP (or another REJECT) on the other.
    // Whether the kernel then sends the answer (not for fragments, broadcasts…) is its business.
    // The answer's own walk through OUTPUT is in the trace too (event 'answer'): the rule that
    // dropped it there is not the rule that dropped the packet, so it is skipped.
    const how = (o: SimOutcome) => {
      const last = [...o.trace].reverse().find((s) => s.event !== 'answer' && (s.rule !== undefined || s.action.startsWith('policy')));
      return last ? last.action.replace(/\s+/g, ' ') : o.dropReason ?? '';
    };
    return how(a) !== how(b) ? 'deny-changed' : undefined;
  }
  const pa = a.egress?.packet ?? a.delivered;
  const pb = b.egress?.packet ?? b.delivered;
  if (pa && pb) {
    if (pa.src !== pb.src || pa.dst !== pb.dst) return 'nat';
    if (PORT_PROTOS.includes(pa.proto) && !pa.fragment && (pa.sport !== pb.sport || pa.dport !== pb.dport)) return 'nat';
  }
  if (a.verdict !== b.verdict || a.egress?.device !== b.egress?.device) return 'rerouted';
  return undefined;
}

const where = (o: SimOutcome) => `${o.verdict}${o.egress ? ` out of ${o.egress.device}` : ''}`;

export function replayPair(ctx: DiffContext, kind: DiffKind, a: Run, b: Run, dependsOn: readonly string[], kindOf: KindOf): PairReplay {
  if (dependsOn.length) return { status: 'not-replayed', detail: `depends on what nfproof does not model: ${dependsOn.join('; ')}` };
  const state = a.input.ctState;
  if (isAnswer(ctx.a.model, a.input)) return { status: 'not-replayed', detail: 'the host makes its answers itself: a replay would need the packet it answers (not done)' };
  if (state !== 'NEW' && state !== 'ESTABLISHED') return { status: 'not-replayed', detail: `a ${state} packet needs ${state === 'RELATED' ? 'a helper or an ICMP error' : 'a tracker that refuses it'} to set it up` };
  const pa = ctx.a.model.policy;
  const pb = ctx.b.model.policy;
  // A made-up host joins only the groups the kernel joins by itself: a packet the model, with
  // routing left open, takes in for another group (delivered, or dropped in INPUT) would be
  // dropped before INPUT by its simulator.
  if (!pa.host && !pb.host && [a.out, b.out].some((o) => o.routeChoice === 'local' && unjoinedGroup(ctx.family, o.final.daddr))) {
    return { status: 'not-replayed', detail: 'delivered to a multicast group: without a host model there is no host that joined it to replay on' };
  }
  // MASQUERADE and REDIRECT take a made-up address of the device without a host model; a
  // witness that carries that very address would find it local on the made-up host, where the
  // model leaves open whether it is (the real address of the device is another).
  if (!pa.host && !pb.host && madeUpAddressUsed(ctx, a, b)) {
    return { status: 'not-replayed', detail: `the witness carries ${formatAddress(ctx.family, UNKNOWN_ADDR[ctx.family])}, the address MASQUERADE or REDIRECT takes without a host model, so no made-up host replays both sides` };
  }
  const host =
    pa.host ??
    pb.host ??
    bothHosts(replayHost(ctx.a.model, a.input, a.out), replayHost(ctx.b.model, b.input, b.out), pickedAddressDevices(ctx.a.model, [a]), pickedAddressDevices(ctx.b.model, [b]));
  try {
    const simsOn = () => ({ a: createSimulator({ ...pa, host }, { trace: true }), b: createSimulator({ ...pb, host }, { trace: true }) });
    const sims = simsOn();
    if (state !== 'NEW') {
      const reply = (a.input.fields.ctdir ?? 0n) === 1n;
      if (!reply || whereTo(a, b)) return replayEstablished(ctx, kind, a, b, sims, kindOf);
      // A reply both sides drop: its connection's first packet came from this host or from one
      // of the other devices; each is tried, on simulators of their own.
      const ingress = a.input.ingress.kind === 'iface' ? a.input.ingress.device : undefined;
      const origins: Step['ingress'][] = [{ kind: 'local' }, ...host.interfaces.map((i) => i.device).filter((d) => d !== ingress && d !== 'lo').map((device) => ({ kind: 'iface', device }) as const)];
      let first: PairReplay | undefined;
      for (const origin of origins) {
        const r = replayEstablished(ctx, kind, a, b, first ? simsOn() : sims, kindOf, origin);
        if (r.status !== 'not-replayed') return r;
        first ??= r;
      }
      return { status: 'not-replayed', detail: `where the connection of a reply came from is not known (the witness is dropped on both sides; from this host: ${first?.detail ?? 'not tried'})` };
    }
    const r = replayNew(ctx, kind, a, b, sims);
    if (r.status !== 'disagrees' || pa.host || pb.host) return r;
    // Without a host model the two sides may route the witness differently (a destination DNAT
    // changed has its own pick), and one made-up host cannot always do both: each side on a host
    // made for it alone still has to agree with its model.
    const own = (p: typeof pa, side: DiffContext['a'], run: Run) => createSimulator({ ...p, host: replayHost(side.model, run.input, run.out) }, { trace: true }).process({ t: 0, ...stepOf(run.input) });
    const da = compareOutcome(ctx.a.model, a.out, own(pa, ctx.a, a));
    const db = compareOutcome(ctx.b.model, b.out, own(pb, ctx.b, b));
    if (da || db) return r;
    return { status: 'not-replayed', detail: 'without a host model the two sides need different made-up hosts (each side agrees on its own)' };
  } catch (e) {
    return { status: 'not-replayed', detail: `the simulator refused the witness: ${e instanceof Error ? e.message : String(e)}` };
  }
}

/** A MASQUERADE or REDIRECT fired on a side, and the witness's addresses include the address it took. */
function madeUpAddressUsed(ctx: DiffContext, a: Run, b: Run): boolean {
  const made = UNKNOWN_ADDR[ctx.family];
  const fired = (side: DiffContext['a'], r: Run) =>
    r.out.fired.some((id) => {
      const e = side.model.rules[id].effect;
      return e.type === 'nat' && (e.nat.type === 'masquerade' || e.nat.type === 'redirect');
    });
  const carries = (r: Run) => r.input.fields.saddr === made || r.input.fields.daddr === made;
  return (fired(ctx.a, a) || fired(ctx.b, b)) && (carries(a) || carries(b));
}

/** A multicast address other than the all-nodes groups every interface joins (224.0.0.1, ff01::1, ff02::1). */
function unjoinedGroup(family: Family, daddr: bigint): boolean {
  if (family === 'ipv4') return daddr >> 28n === 0xen && daddr !== 0xe0000001n;
  return daddr >> 120n === 0xffn && daddr !== 0xff010000000000000000000000000001n && daddr !== 0xff020000000000000000000000000001n;
}

type Sims = { readonly a: Simulator; readonly b: Simulator };

/**
 * One made-up host for both sides: each side's (analyzer replayHost, from its own model's run)
 * joined — the devices with the addresses of both, the routes of both (the first side's route
 * for a destination wins; the sides route alike but for where NAT sent them).
 */
function bothHosts(a: HostModel, b: HostModel, pickedA: ReadonlySet<string>, pickedB: ReadonlySet<string>): HostModel {
  const interfaces = a.interfaces.map((i) => ({ ...i, addresses: [...i.addresses] }));
  for (const i of b.interfaces) {
    const mine = interfaces.find((x) => x.device === i.device);
    if (!mine) interfaces.push({ ...i, addresses: [...i.addresses] });
    else {
      const extra = i.addresses.filter((x) => !mine.addresses.some((y) => y.addr === x.addr));
      // The simulator's MASQUERADE and REDIRECT take the device's first address: where only the
      // new side picks one, its address goes first.
      if (pickedB.has(i.device) && !pickedA.has(i.device)) mine.addresses.unshift(...extra);
      else mine.addresses.push(...extra);
    }
  }
  const routes = [...a.routes, ...b.routes.filter((r) => !a.routes.some((x) => x.dest.addr === r.dest.addr && x.dest.len === r.dest.len))];
  return { ...a, interfaces, routes };
}

/** Both sides' simulations against their models, then the difference they show. */
function judge(ctx: DiffContext, kind: DiffKind, a: Run, b: Run, sa: SimOutcome, sb: SimOutcome): PairReplay {
  const da = compareOutcome(ctx.a.model, a.out, sa);
  if (da) return { status: 'disagrees', detail: `old side: the simulator disagrees with the model: ${da}` };
  const db = compareOutcome(ctx.b.model, b.out, sb);
  if (db) return { status: 'disagrees', detail: `new side: the simulator disagrees with the model: ${db}` };
  const k = simKind(sa, sb);
  if (k !== kind) return { status: 'disagrees', detail: `the simulator shows ${k ?? 'no difference'} where the diff claims ${kind}` };
  return { status: 'agrees', detail: `simulator: old ${where(sa)}, new ${where(sb)}` };
}

function replayNew(ctx: DiffContext, kind: DiffKind, a: Run, b: Run, sims: Sims): PairReplay {
  const sa = sims.a.process({ t: 0, ...stepOf(a.input) });
  const sb = sims.b.process({ t: 0, ...stepOf(b.input) });
  return judge(ctx, kind, a, b, sa, sb);
}

// ---- packets of existing connections -------------------------------------------------------

/** The packet that opens a connection with this header: a TCP SYN, an ICMP echo request. */
function opener(p: Packet): Packet {
  const out: Packet = { ...p, payload: new Uint8Array(0) };
  if (p.tcp) out.tcp = { ...p.tcp, flags: 0x02, seq: 1000, ack: 0 };
  if (p.icmp) out.icmp = { ...p.icmp, type: p.family === 'ipv4' ? 8 : 128, code: 0 };
  return out;
}

/** The answer to a packet as it left: addresses and ports swapped (a SYN-ACK, an echo reply). */
function answer(p: Packet): Packet {
  const out: Packet = { ...p, src: p.dst, dst: p.src, ttl: 64, payload: new Uint8Array(0) };
  if (p.sport !== undefined) {
    out.sport = p.dport;
    out.dport = p.sport;
  }
  if (p.tcp) out.tcp = { ...p.tcp, flags: p.tcp.flags === 0x02 ? 0x12 : 0x10, seq: 5000, ack: 0 };
  if (p.icmp) out.icmp = { ...p.icmp, type: p.family === 'ipv4' ? 0 : 129 };
  return out;
}

/** Where a packet that reached `o` is answered from: this host's own socket, or the device it left by. */
function answeredFrom(o: SimOutcome): Step['ingress'] | undefined {
  if (o.verdict === 'dropped') return undefined;
  if (o.verdict === 'local' || o.egress?.device === 'lo') return { kind: 'local' };
  return o.egress ? { kind: 'iface', device: o.egress.device } : undefined;
}

/** Did NAT rewrite the packet on its way (then the connection is NATed)? */
function rewritten(sent: Packet, o: SimOutcome): boolean {
  const p = o.egress?.packet ?? o.delivered;
  return !!p && (p.src !== sent.src || p.dst !== sent.dst || p.sport !== sent.sport || p.dport !== sent.dport);
}

function entryOf(sim: Simulator, family: PacketInput['family'], p: Packet): CtEntrySnapshot | undefined {
  const icmpId = p.icmp?.id;
  const isIcmp = p.proto === icmpProto(family);
  return sim.entries(family).find((e) => {
    const t = e.original;
    const r = e.reply;
    const same = (x: typeof t) => x.proto === p.proto && x.src === p.src && x.dst === p.dst && (isIcmp ? x.icmpId === icmpId : x.sport === p.sport && x.dport === p.dport);
    return same(t) || same(r);
  });
}

/**
 * The witness with the connection the simulator made: its state, direction, mark, status (the
 * bits the model knows) and tuple, no master helper.
 */
function withConnection(input: PacketInput, e: CtEntrySnapshot, dir: 'original' | 'reply'): PacketInput {
  const fam = input.family;
  // Tuple "ports" as conntrack keeps them (interp.ts tuplePorts): ports, or an ICMP id and type/code.
  const ports = (t: CtEntrySnapshot['original']) =>
    PORT_PROTOS.includes(t.proto)
      ? { src: BigInt(t.sport ?? 0), dst: BigInt(t.dport ?? 0) }
      : t.proto === icmpProto(fam)
        ? { src: BigInt(t.icmpId ?? 0), dst: (BigInt(t.icmpType ?? 0) << 8n) | BigInt(t.icmpCode ?? 0) }
        : { src: 0n, dst: 0n };
  const o = ports(e.original);
  const r = ports(e.reply);
  return {
    ...input,
    ctState: 'ESTABLISHED',
    fields: {
      ...input.fields,
      ctdir: dir === 'original' ? 0n : 1n,
      ctmark: BigInt(e.mark),
      // The status bits the model knows (IPS_EXPECTED … IPS_DYING).
      ctstatus: BigInt(e.status) & 0x3ffn,
      ctproto: BigInt(e.original.proto),
      ctorigsrc: e.original.src,
      ctorigdst: e.original.dst,
      ctreplsrc: e.reply.src,
      ctrepldst: e.reply.dst,
      ctorigsrcport: o.src,
      ctorigdstport: o.dst,
      ctreplsrcport: r.src,
      ctrepldstport: r.dst,
    },
  };
}

/**
 * An ESTABLISHED witness: its connection set up on each side by the rules themselves (first
 * packet, answer; for a witness in the reply direction, the first packet the other way), then
 * the witness; the models are asked again with the connection each simulator made.
 */
function replayEstablished(ctx: DiffContext, kind: DiffKind, a: Run, b: Run, sims: Sims, kindOf: KindOf, origin?: Step['ingress']): PairReplay {
  const fam = ctx.family;
  const w = toSimPacket(a.input);
  if (w.fragment || (!PORT_PROTOS.includes(w.proto) && w.proto !== icmpProto(fam))) {
    return { status: 'not-replayed', detail: 'only TCP, UDP-like and ICMP connections are set up for a replay' };
  }
  if (w.icmp && w.icmp.type !== (fam === 'ipv4' ? 8 : 128) && w.icmp.type !== (fam === 'ipv4' ? 0 : 129)) {
    return { status: 'not-replayed', detail: 'an ICMP packet of an existing connection is an echo request or reply' };
  }
  const reply = (a.input.fields.ctdir ?? 0n) === 1n;
  // The side that opened the connection: the witness's own, or (for a reply) where it goes.
  const there = reply ? (origin ?? whereTo(a, b)) : undefined;
  if (reply && !there) return { status: 'not-replayed', detail: 'where the connection of a reply came from is not known (the witness is dropped on both sides)' };
  let t = 0;
  const run = (sim: Simulator, s: Step) => sim.process({ ...s, t: (t += 0.001) });
  const inputs: Record<'a' | 'b', PacketInput> = { a: a.input, b: b.input };
  const outs: Partial<Record<'a' | 'b', SimOutcome>> = {};
  const untracked = (key: 'a' | 'b') => !ctx[key].model.features.tracking || (key === 'a' ? a : b).out.ctState === 'UNTRACKED';
  const witnessStep = (key: 'a' | 'b') => stepOf(inputs[key], w.tcp ? { ...w, tcp: { ...w.tcp, flags: w.tcp.flags & ~0x02 } } : w, true);
  for (const key of ['a', 'b'] as const) {
    const sim = sims[key];
    const name = key === 'a' ? 'old' : 'new';
    // A ruleset that never asks for conntrack is not tracked at all, and a packet raw sends
    // NOTRACK skips the connection lookup: nothing to set up.
    if (untracked(key)) {
      outs[key] = run(sim, witnessStep(key));
      continue;
    }
    const first: Step = there ? { ingress: there, packet: opener(answer(w)) } : stepOf(inputs[key], opener(w));
    const o1 = run(sim, first);
    if (o1.verdict === 'dropped') return { status: 'not-replayed', detail: `its connection cannot be set up on the ${name} side: the first packet is dropped (${o1.dropReason ?? 'dropped'})` };
    if (rewritten(first.packet, o1)) return { status: 'not-replayed', detail: `its connection is NATed on the ${name} side` };
    const from = answeredFrom(o1);
    const back = o1.egress?.packet ?? o1.delivered;
    if (!from || !back) return { status: 'not-replayed', detail: `the answer to its connection's first packet has nowhere to come from on the ${name} side` };
    run(sim, { ingress: from, packet: answer(back), ...(back.tcp ? { fill: { seq: true, ack: true } } : {}) });
    // TCP: the opener's ACK completes the handshake.
    if (first.packet.tcp) run(sim, { ...first, packet: { ...first.packet, tcp: { ...first.packet.tcp, flags: 0x10 } }, fill: { seq: true, ack: true } });
    outs[key] = run(sim, witnessStep(key));
  }
  const runs: Partial<Record<'a' | 'b', Run>> = {};
  const conns: string[] = [];
  for (const key of ['a', 'b'] as const) {
    const o = outs[key]!;
    const name = key === 'a' ? 'old' : 'new';
    const side = ctx[key];
    if (untracked(key)) {
      runs[key] = key === 'a' ? a : b;
      continue;
    }
    if (o.ctState !== 'ESTABLISHED') return { status: 'not-replayed', detail: `on the ${name} side the simulator's connection gives the witness the state ${o.ctState}` };
    const e = entryOf(sims[key], fam, w);
    if (!e) return { status: 'not-replayed', detail: `the simulator kept no connection for the witness on the ${name} side` };
    if (e.status & (CT_STATUS.SRC_NAT | CT_STATUS.DST_NAT)) return { status: 'not-replayed', detail: `its connection is NATed on the ${name} side` };
    const input = withConnection(inputs[key], e, o.ctDir ?? 'original');
    runs[key] = { input, out: runPacket(side.model, input) };
    conns.push(`${name}: mark ${e.mark}, status 0x${e.status.toString(16)}`);
  }
  const ra = runs.a!;
  const rb = runs.b!;
  if (kindOf(ra.out, rb.out) !== kind) return { status: 'not-replayed', detail: `on the connection the rules make (${conns.join('; ')}) the packet is not in this class` };
  return judge(ctx, kind, ra, rb, outs.a!, outs.b!);
}

/** Where a witness in the reply direction goes, as the models route it (the side that does not drop it). */
function whereTo(a: Run, b: Run): Step['ingress'] | undefined {
  for (const r of [a, b]) {
    const o = r.out;
    if (o.verdict === 'local') return { kind: 'local' };
    if ((o.verdict === 'forwarded' || o.verdict === 'sent') && o.egress) return o.egress === 'lo' ? { kind: 'local' } : { kind: 'iface', device: o.egress };
  }
  return undefined;
}
