import fc from 'fast-check';
import type { PacketInput } from '../../../../src/analyze/concrete/input.js';
import { buildFamilyModel } from '../../../../src/analyze/model/build.js';
import { toSimPacket } from '../../../../src/analyze/replay.js';
import { PORT_PROTOS, PROTO } from '../../../../src/ir/fields.js';
import type { Policy } from '../../../../src/ir/policy.js';
import type { SimInput, SimOutcome, Simulator } from '../../../../src/netfilter/api.js';
import type { Ingress, Packet } from '../../../../src/netfilter/packet.js';
import { createSimulator } from '../../../../src/netfilter/simulator.js';
import type { Family } from '../../../../src/util/ip.js';
import { packetArb } from '../../support/packets.js';

/**
 * Looking for a difference between two policies the independent way: random packets through
 * the simulator (src/netfilter, checked against the kernel), one simulator per side with the
 * same host model. Each sample is a short connection: a first packet, and when both sides
 * treat it alike and let it through, the answer from the other end and a second packet of the
 * first direction, so packets of established connections in both directions are compared too.
 *
 * Compared per packet: dropped or not; when dropped, what the host answers (REJECT); when
 * not, delivered here / forwarded / sent, the device it leaves by, and its addresses and ports
 * as they leave (after NAT).
 */
export interface SampledDifference {
  readonly step: 'first' | 'reply' | 'again';
  readonly packet: string;
  readonly old: string;
  readonly new: string;
}

const TIME_APART = 1e7; // every connection of the previous sample has expired (longest timeout: 5 days)

function fmtAddr(family: Family, a: bigint): string {
  if (family === 'ipv4') return [24n, 16n, 8n, 0n].map((s) => String((a >> s) & 0xffn)).join('.');
  return a.toString(16);
}

export function describePacket(p: Packet, ingress: Ingress): string {
  const ports = p.sport !== undefined ? ` ${p.sport}->${p.dport}` : '';
  const flags = p.tcp ? ` flags 0x${p.tcp.flags.toString(16)}` : p.icmp ? ` icmp ${p.icmp.type}/${p.icmp.code}` : '';
  return `${ingress.kind === 'iface' ? `in ${ingress.device}` : 'local'} proto ${p.proto} ${fmtAddr(p.family, p.src)} -> ${fmtAddr(p.family, p.dst)}${ports}${flags}${p.fragment ? ' fragment' : ''} ttl ${p.ttl}`;
}

/** What the comparison looks at, as one line (equal lines: no difference). */
export function outcomeLine(o: SimOutcome): string {
  if (o.verdict === 'dropped') {
    const answers = o.responses.map((r) => `${r.packet.proto}${r.packet.icmp ? `:${r.packet.icmp.type}/${r.packet.icmp.code}` : ''}${r.packet.tcp ? `:0x${r.packet.tcp.flags.toString(16)}` : ''}`);
    return `dropped${answers.length ? ` answered ${answers.join(',')}` : ''}`;
  }
  const p = o.egress?.packet ?? o.delivered;
  const ports = p && PORT_PROTOS.includes(p.proto) && !p.fragment ? ` ${p.sport}->${p.dport}` : '';
  return `${o.verdict}${o.egress ? ` out of ${o.egress.device}` : ''}${p ? ` as ${fmtAddr(p.family, p.src)} -> ${fmtAddr(p.family, p.dst)}${ports}` : ''}`;
}

/** Two simulators, one per side, fed the same packets at the same times. */
export class SimPair {
  private readonly a: Simulator;
  private readonly b: Simulator;
  private t = 0;

  constructor(oldPolicy: Policy, newPolicy: Policy) {
    this.a = createSimulator(oldPolicy, { trace: true });
    this.b = createSimulator(newPolicy, { trace: true });
  }

  /** Runs one packet on both sides; undefined when both answer alike or a side cannot decide. */
  step(input: Omit<SimInput, 't'>): { a: SimOutcome; b: SimOutcome } {
    const x = { ...input, t: this.t };
    this.t += 0.001;
    return { a: this.a.process(x), b: this.b.process(x) };
  }

  nextSample(): void {
    this.t += TIME_APART;
  }
}

const undecided = (o: SimOutcome) => (o.unknowns?.length ?? 0) > 0;

/** The packet coming back: from where the first one went, to where it came from (as they left). */
function answerTo(first: SimInput, o: SimOutcome): Omit<SimInput, 't'> | undefined {
  const p = o.egress?.packet ?? o.delivered;
  if (!p || p.fragment) return undefined;
  const back: Packet = { ...p, src: p.dst, dst: p.src, ttl: 64, payload: new Uint8Array(0) };
  if (p.sport !== undefined) {
    back.sport = p.dport;
    back.dport = p.sport;
  }
  if (p.tcp) back.tcp = { flags: p.tcp.flags === 0x02 ? 0x12 : 0x10, seq: 0, ack: 0, window: 64240 };
  if (p.icmp) {
    const reply = p.icmp.type === 8 ? 0 : p.icmp.type === 128 ? 129 : undefined;
    if (reply === undefined) return undefined;
    back.icmp = { ...p.icmp, type: reply };
  }
  // Delivered here: the local process answers. Sent or forwarded out of a device: the peer
  // answers on it (over lo, the answer is this host's again).
  const local = o.verdict === 'local' || o.egress?.device === 'lo';
  const ingress: Ingress = local ? { kind: 'local' } : { kind: 'iface', device: o.egress!.device };
  void first;
  return { ingress, packet: back, ...(p.tcp ? { fill: { seq: true, ack: true } } : {}) };
}

function again(first: SimInput): Omit<SimInput, 't'> | undefined {
  const p = first.packet;
  if (p.fragment || (p.tcp === undefined && p.icmp === undefined && !PORT_PROTOS.includes(p.proto))) return undefined;
  const next: Packet = { ...p, payload: new Uint8Array(0) };
  if (p.tcp) next.tcp = { ...p.tcp, flags: 0x10 };
  if (p.icmp && p.icmp.type !== 8 && p.icmp.type !== 128) return undefined;
  if (p.icmp) next.icmp = { ...p.icmp, seq: (p.icmp.seq ?? 0) + 1 };
  return { ingress: first.ingress, packet: next, ...(p.tcp ? { fill: { seq: true, ack: true } } : {}), ...(first.uid !== undefined ? { uid: first.uid, gid: first.gid } : {}) };
}

/**
 * Random first packets (biased toward values the rules of either side mention), each followed
 * by its connection's answer and a second packet when both sides let it through alike.
 * Returns the first difference found, and how many packets were compared.
 */
export function sampleDifference(
  oldPolicy: Policy,
  newPolicy: Policy,
  opts: { readonly seed: number; readonly perFamily: number },
): { found?: SampledDifference; compared: number } {
  const host = oldPolicy.host;
  if (!host) throw new Error('sampling needs a host model');
  const pair = new SimPair(oldPolicy, { ...newPolicy, host });
  let compared = 0;
  for (const family of ['ipv4', 'ipv6'] as const) {
    if (oldPolicy.rulesets[family].tables.length === 0 && newPolicy.rulesets[family].tables.length === 0) continue;
    const devices = new Set(host.interfaces.map((i) => i.device));
    const inputs: PacketInput[] = [];
    for (const [k, p] of [oldPolicy, newPolicy].entries()) {
      const model = buildFamilyModel({ ...p, host }, family);
      inputs.push(...fc.sample(packetArb(model), { seed: opts.seed + k, numRuns: Math.ceil(opts.perFamily / 2) }));
    }
    for (const input of inputs) {
      if (input.ingress.kind === 'iface' && !devices.has(input.ingress.device)) continue;
      const first: SimInput = {
        t: 0,
        ingress: input.ingress.kind === 'iface' ? { kind: 'iface', device: input.ingress.device } : { kind: 'local' },
        packet: toSimPacket(input),
        ...(input.ingress.kind === 'local' ? { uid: Number(input.fields.uid ?? 0n), gid: Number(input.fields.gid ?? 0n) } : {}),
      };
      pair.nextSample();
      const steps: { name: SampledDifference['step']; make: (prev: SimOutcome) => Omit<SimInput, 't'> | undefined }[] = [
        { name: 'first', make: () => first },
        { name: 'reply', make: (prev) => answerTo(first, prev) },
        { name: 'again', make: () => again(first) },
      ];
      let prev: SimOutcome | undefined;
      for (const s of steps) {
        const x = prev ? s.make(prev) : s.name === 'first' ? first : undefined;
        if (!x) break;
        let r;
        try {
          r = pair.step(x);
        } catch {
          break; // a packet the simulator refuses (it says why elsewhere); not a comparison
        }
        if (undecided(r.a) || undecided(r.b)) break;
        compared++;
        const la = outcomeLine(r.a);
        const lb = outcomeLine(r.b);
        if (la !== lb) return { found: { step: s.name, packet: describePacket(x.packet, x.ingress), old: la, new: lb }, compared };
        if (r.a.verdict === 'dropped') break;
        prev = r.a;
      }
    }
  }
  return { compared };
}

export { PROTO };
