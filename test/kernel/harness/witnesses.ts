import { CHOICE, type ConcreteOutcome, runPacket } from '../../../src/analyze/concrete/interp.js';
import type { PacketInput } from '../../../src/analyze/concrete/input.js';
import type { FamilyModel } from '../../../src/analyze/model/build.js';
import { toSimPacket } from '../../../src/analyze/replay.js';
import type { Witness } from '../../../src/analyze/types.js';
import { PORT_PROTOS } from '../../../src/ir/fields.js';
import type { SimInput, SimOutcome } from '../../../src/netfilter/api.js';
import type { Packet } from '../../../src/netfilter/packet.js';
import { formatAddress } from '../../../src/util/ip.js';
import { type InputSpec, type KernelStep, carriedOnWith } from './run.js';

/**
 * Analyzer witnesses as kernel harness inputs (test/kernel/analyzer-witnesses.test.ts): what a
 * witness claims (verdict, egress device, the header as it leaves), whether the harness can
 * send it at all, and how the claim compares with what the simulator and the kernel did.
 *
 * The claim is re-derived from the witness's packet with the analyzer's concrete interpreter
 * (the model the witness came from) and must match what the witness itself says; the header
 * the analyzer claims is that run's `final` field values.
 */

export type ClaimVerdict = Witness['verdict'];

/** Header fields whose claimed value is a choice the analyzer made inside a NAT range: only their range is claimed. */
type LooseField = 'saddr' | 'daddr' | 'sport' | 'dport' | 'icmpid';

export interface Claim {
  readonly verdict: ClaimVerdict;
  /** Device it leaves by (forwarded/sent). */
  readonly egress?: string;
  readonly final: ConcreteOutcome['final'];
  readonly icmpId?: bigint;
  readonly loose: ReadonlyMap<LooseField, readonly [bigint, bigint] | undefined>;
  /** The claim rests on answers the witness assumed for opaque matches. */
  readonly assumed: readonly string[];
}

export type Prepared =
  | {
      readonly kind: 'run';
      readonly inputs: readonly InputSpec[];
      readonly claims: readonly Claim[];
      /** The analyzer's packets behind the claims (as sent: root socket, the peer's MAC). */
      readonly packets: readonly PacketInput[];
      /** The witness takes an IPv6 link-local destination as this device's own address: both sides get it. */
      readonly linkLocal?: { readonly device: string; readonly addr: bigint };
      /** How the packet was made sendable (e.g. root instead of uid 1000, same outcome in the model). */
      readonly notes: readonly string[];
    }
  | { readonly kind: 'skip'; readonly reason: string }
  /** The analyzer's own interpreter does not give the witness the outcome the witness states: an analyzer bug. */
  | { readonly kind: 'inconsistent'; readonly detail: string };

/** Two model runs that no observer on the wire could tell apart. */
function sameOutcome(a: ConcreteOutcome, b: ConcreteOutcome): boolean {
  const keys = ['saddr', 'daddr', 'sport', 'dport', 'ttl', 'tos', 'proto'] as const;
  return (
    a.verdict === b.verdict &&
    a.egress === b.egress &&
    a.dropReason === b.dropReason &&
    a.fired.join(',') === b.fired.join(',') &&
    keys.every((k) => a.final[k] === b.final[k]) &&
    a.icmpId === b.icmpId
  );
}

/**
 * The witness's packet as the harness can send it: from a root socket (the harness sends
 * locally generated packets as uid/gid 0) and with the peer's MAC. When the witness says
 * otherwise, the variant is used only if the model gives it exactly the same outcome.
 */
function sendable(model: FamilyModel, input: PacketInput, out: ConcreteOutcome, notes: string[]): PacketInput | string {
  let x = input;
  const drop = (field: 'uid' | 'gid' | 'macsrc', why: string): string | undefined => {
    const fields = { ...x.fields };
    delete fields[field];
    const alt: PacketInput = { ...x, fields: field === 'macsrc' ? fields : { ...fields, [field]: 0n } };
    if (!sameOutcome(out, runPacket(model, alt))) return why;
    // Every witness from an interface carries the model's default MAC: only owners are worth a note.
    if (field !== 'macsrc') notes.push(`${field} ${x.fields[field]} → 0 (same outcome in the model)`);
    x = alt;
    return undefined;
  };
  if (x.ingress.kind === 'local') {
    for (const f of ['uid', 'gid'] as const) {
      if ((x.fields[f] ?? 0n) !== 0n) {
        const why = drop(f, `needs a socket owned by ${f} ${x.fields[f]} (the harness sends from a root socket)`);
        if (why) return why;
      }
    }
  } else if (x.fields.macsrc !== undefined) {
    const why = drop('macsrc', 'needs a source MAC the harness cannot send (frames carry the peer’s own)');
    if (why) return why;
  }
  return x;
}

/** Why the harness cannot send this packet as the witness has it, or undefined. */
function unsendable(model: FamilyModel, input: PacketInput, devices: ReadonlySet<string>, role: 'packet' | 'reply', leavesBy: string | undefined): string | undefined {
  if (input.ingress.kind === 'iface' && !devices.has(input.ingress.device)) {
    return input.ingress.device === 'lo'
      ? 'arrives on lo from outside (the harness injects only on the host model’s interfaces)'
      : `arrives on ${input.ingress.device}, an interface the host model lacks`;
  }
  // The veths have the default MTU: a longer frame cannot be put on the wire (EMSGSIZE), and a
  // raw socket refuses a longer local packet for any device but lo.
  if ((input.fields.length ?? 0n) > BigInt(LINK_MTU) && (input.ingress.kind === 'iface' || leavesBy !== 'lo')) {
    return `longer than the ${LINK_MTU}-byte MTU of the harness's links`;
  }
  if ((input.fields.fragment ?? 0n) === 1n) return 'a non-first fragment (the kernel’s conntrack reassembles; the harness sends whole packets)';
  if (role === 'packet') {
    if (input.ctState === 'RELATED') return 'a RELATED packet on its own (needs a helper or a connection its ICMP error quotes)';
    if (input.ctState === 'INVALID') return 'INVALID taken as a given state (no tracker history to reproduce)';
    if (input.ctState === 'ESTABLISHED') return 'an ESTABLISHED packet without the connection it belongs to';
  }
  // Without a host model the witness chose the routing; the kernel needs a host to route.
  if (!model.routing.hasHost) return 'routing chosen by the witness (no host model)';
  return undefined;
}

/** The MTU of the harness's veths (the kernel's default for veth). */
const LINK_MTU = 1500;

const SOLICITED_NODE = 0xff0200000000000000000001ff000000n;
const ROUTERS_BY_FORWARD_CHANGE = [0xff010000000000000000000000000002n, 0xff050000000000000000000000000002n];

/**
 * A delivery to a group the harness's kernel has not joined though a real router would have:
 * a solicited-node group (ff02::1:ffXX:XXXX) — a real interface joins the group of each of its
 * addresses, but the harness's veths are NOARP and addrconf_join_solict skips NOARP devices
 * (test/kernel/routing.test.ts says the same) — or the interface- and site-local all-routers
 * groups (see below; checked on the kernel with an interface made before and one after
 * `net.ipv6.conf.all.forwarding=1`: `ip -6 maddr` lists ff01::2/ff05::2 only on the first).
 */
function solicitedDelivery(input: PacketInput, out: ConcreteOutcome): string | undefined {
  if (input.family !== 'ipv6' || out.verdict !== 'local') return undefined;
  const to = [input.fields.daddr, out.final.daddr].filter((d): d is bigint => d !== undefined);
  if (to.some((d) => d >> 24n === SOLICITED_NODE >> 24n)) return 'delivered to a solicited-node group, which the harness’s NOARP veths never join';
  // ipv6_add_dev joins only ff02::2 on an interface created while forwarding is on (the
  // harness's order); ff01::2 and ff05::2 are joined when forwarding is switched on for an
  // existing interface (dev_forward_change), which is what the simulator assumes.
  if (to.some((d) => ROUTERS_BY_FORWARD_CHANGE.includes(d))) return 'delivered to ff01::2/ff05::2, joined only when forwarding is switched on after the interface exists (the harness switches it on before)';
  return undefined;
}

/**
 * Fields whose claimed value is a NAT pick inside a range (or a random mapping), with that
 * range when known: the claim is then that the value lies in the range.
 */
function looseFields(model: FamilyModel, input: PacketInput, out: ConcreteOutcome): Map<LooseField, readonly [bigint, bigint] | undefined> {
  const loose = new Map<LooseField, readonly [bigint, bigint] | undefined>();
  for (const id of out.fired) {
    const e = model.rules[id].effect;
    if (e.type !== 'nat') continue;
    const src = e.nat.type === 'snat' || e.nat.type === 'masquerade';
    const dst = e.nat.type === 'dnat' || e.nat.type === 'redirect';
    const c = input.choices ?? {};
    // A range (or random mapping) leaves the pick to each side: the witness's is one of many.
    // (NETMAP maps a prefix onto another, keeping the host bits: no pick.)
    const addrRange = e.nat.type !== 'netmap' && e.nat.addr !== undefined && e.nat.addr[0] !== e.nat.addr[1];
    const portFree = (e.nat.ports !== undefined && e.nat.ports[0] !== e.nat.ports[1]) || e.nat.random || e.nat.fullyRandom;
    if (CHOICE.natAddr(id) in c || addrRange) {
      if (src || !dst) loose.set('saddr', e.nat.addr);
      if (dst || !src) loose.set('daddr', e.nat.addr);
    }
    if (CHOICE.natPort(id) in c || portFree) {
      if (src || !dst) loose.set('sport', e.nat.ports);
      if (dst || !src) loose.set('dport', e.nat.ports);
      loose.set('icmpid', e.nat.ports);
    }
  }
  return loose;
}

function claimOf(model: FamilyModel, input: PacketInput, out: ConcreteOutcome): Claim {
  return {
    verdict: out.verdict,
    ...(out.egress ? { egress: out.egress } : {}),
    final: out.final,
    ...(out.icmpId !== undefined ? { icmpId: out.icmpId } : {}),
    loose: looseFields(model, input, out),
    assumed: out.opaqueUsed.map((k) => `${k}=${input.opaque?.[k] ?? false}`),
  };
}

/** An opaque answer the kernel cannot be told: an unmodelled target, or address types without a host. */
function opaqueTarget(out: ConcreteOutcome): string | undefined {
  return out.opaqueUsed.find((k) => /^target\d+$/.test(k) || k.startsWith('addrtype:'));
}

function consistent(w: Witness, out: ConcreteOutcome, role: string): string | undefined {
  if (out.verdict !== w.verdict || (out.egress ?? '') !== (w.egress ?? '')) {
    return `${role}: the witness says ${w.verdict} ${w.egress ?? ''}, the analyzer's interpreter gives ${out.verdict} ${out.egress ?? ''}`;
  }
  return undefined;
}

/**
 * A witness (and its reply) as harness inputs with the claims to check, or why it cannot be
 * sent. `devices` are the topology's interfaces.
 */
export function prepareWitness(model: FamilyModel, w: Witness, devices: ReadonlySet<string>): Prepared {
  const out = runPacket(model, w.input);
  const bad = consistent(w, out, 'packet');
  if (bad) return { kind: 'inconsistent', detail: bad };
  const why = unsendable(model, w.input, devices, 'packet', out.egress);
  if (why) return { kind: 'skip', reason: why };
  const target = opaqueTarget(out);
  if (target) return { kind: 'skip', reason: `rests on an answer the kernel cannot be told (${target.replace(/\d+$/, '')})` };
  const solicited = solicitedDelivery(w.input, out);
  if (solicited) return { kind: 'skip', reason: solicited };
  const notes: string[] = [];
  const input = sendable(model, w.input, out, notes);
  if (typeof input === 'string') return { kind: 'skip', reason: input };
  const first: SimInput = {
    t: 0,
    ingress: input.ingress.kind === 'iface' ? { kind: 'iface', device: input.ingress.device } : { kind: 'local' },
    packet: toSimPacket(input),
  };
  const claim = claimOf(model, input, out);
  const inputs: InputSpec[] = [first];
  const claims: Claim[] = [claim];
  const packets: PacketInput[] = [input];
  if (w.reply) {
    const rOut = runPacket(model, w.reply.input);
    const rBad = consistent(w.reply, rOut, 'reply');
    if (rBad) return { kind: 'inconsistent', detail: rBad };
    const rWhy = unsendable(model, w.reply.input, devices, 'reply', rOut.egress);
    if (rWhy) return { kind: 'skip', reason: `reply: ${rWhy}` };
    const rTarget = opaqueTarget(rOut);
    if (rTarget) return { kind: 'skip', reason: `reply rests on an answer the kernel cannot be told (${rTarget.replace(/\d+$/, '')})` };
    const rInput = sendable(model, w.reply.input, rOut, notes);
    if (typeof rInput === 'string') return { kind: 'skip', reason: `reply: ${rInput}` };
    const ingress = rInput.ingress.kind === 'iface' ? { kind: 'iface' as const, device: rInput.ingress.device } : { kind: 'local' as const };
    const packet = toSimPacket(rInput);
    // The reply goes back to where the request went. When the request's NAT values were a
    // choice in a range, the sides may have chosen otherwise than the witness: answer the
    // packet as it really left (in the simulator's numbering; the harness maps the kernel's).
    const fromOut = claim.loose.size > 0;
    inputs.push(
      fromOut
        ? (ctx) => {
            const o = ctx.out(0);
            if (!o) return { t: 0, ingress, packet, fill: { seq: true, ack: true } };
            const icmp = packet.icmp && o.icmp ? { icmp: { ...packet.icmp, id: o.icmp.id } } : {};
            return { t: 0, ingress, packet: { ...packet, src: o.dst, dst: o.src, ...(o.sport !== undefined ? { sport: o.dport, dport: o.sport } : {}), ...icmp }, fill: { seq: true, ack: true } };
          }
        : { t: 0, ingress, packet, fill: { seq: true, ack: true } },
    );
    claims.push(claimOf(model, rInput, rOut));
    packets.push(rInput);
    if (fromOut) notes.push('reply addressed to the request as it left (its NAT values were a choice in a range)');
  }
  const ll = out.ownLinkLocal ?? (w.reply ? runPacket(model, w.reply.input).ownLinkLocal : undefined);
  return { kind: 'run', inputs, claims, packets, ...(ll ? { linkLocal: ll } : {}), notes };
}

/** What happened to one input, on one side, in the analyzer's words. */
export interface Observed {
  readonly verdict: ClaimVerdict;
  readonly device?: string;
  /** The packet as it left or was delivered. */
  readonly packet?: Packet;
  readonly detail?: string;
}

export function simObserved(o: SimOutcome): Observed {
  if (o.verdict === 'local') return { verdict: 'local', ...(o.delivered ? { packet: o.delivered } : {}) };
  if (o.verdict === 'forwarded' || o.verdict === 'sent') return { verdict: o.verdict, ...(o.egress ? { device: o.egress.device, packet: o.egress.packet } : {}) };
  return { verdict: 'dropped', ...(o.dropReason ? { detail: o.dropReason } : {}) };
}

export function kernelObserved(step: KernelStep): Observed {
  const local = step.input.ingress.kind === 'local';
  if (step.sendError) return { verdict: 'dropped', detail: `the socket refused it: ${step.sendError}` };
  const c = carriedOnWith(step);
  if (!c) return { verdict: 'dropped' };
  // A locally generated packet to one of our own addresses goes out over lo and comes back in.
  if (c.device === 'local') return local ? { verdict: 'sent', device: 'lo', packet: c.packet } : { verdict: 'local', packet: c.packet };
  return { verdict: local ? 'sent' : 'forwarded', device: c.device, packet: c.packet };
}

function inRange(v: bigint, r: readonly [bigint, bigint] | undefined): boolean {
  return r === undefined || (v >= r[0] && v <= r[1]);
}

/** Differences between a claim and what one side did; empty when the side does what the analyzer claims. */
export function claimDifferences(claim: Claim, seen: Observed, family: 'ipv4' | 'ipv6'): string[] {
  if (seen.verdict !== claim.verdict) return [`verdict ${seen.verdict}${seen.detail ? ` (${seen.detail})` : ''}, claimed ${claim.verdict}`];
  const out: string[] = [];
  if ((claim.verdict === 'forwarded' || claim.verdict === 'sent') && seen.device !== claim.egress) out.push(`leaves by ${seen.device}, claimed ${claim.egress}`);
  const p = seen.packet;
  if (claim.verdict === 'dropped' || !p) return out;
  const f = claim.final;
  const addr = (a: bigint) => formatAddress(family, a);
  const check = (name: LooseField | 'proto' | 'ttl' | 'tos', got: bigint | undefined, want: bigint | undefined, show: (v: bigint) => string = String) => {
    if (got === undefined || want === undefined) return;
    if (claim.loose.has(name as LooseField)) {
      if (got !== want && !inRange(got, claim.loose.get(name as LooseField))) out.push(`${name} ${show(got)}, claimed ${show(want)} or another pick in the NAT range`);
      return;
    }
    if (got !== want) out.push(`${name} ${show(got)}, claimed ${show(want)}`);
  };
  check('saddr', p.src, f.saddr, addr);
  check('daddr', p.dst, f.daddr, addr);
  check('proto', BigInt(p.proto), f.proto);
  if (PORT_PROTOS.includes(p.proto) && !p.fragment) {
    check('sport', p.sport === undefined ? undefined : BigInt(p.sport), f.sport);
    check('dport', p.dport === undefined ? undefined : BigInt(p.dport), f.dport);
  }
  if (p.icmp?.id !== undefined && claim.icmpId !== undefined && (p.icmp.type === 8 || p.icmp.type === 0 || p.icmp.type === 128 || p.icmp.type === 129)) {
    check('icmpid', BigInt(p.icmp.id), claim.icmpId);
  }
  check('ttl', BigInt(p.ttl), f.ttl);
  check('tos', BigInt(p.tos ?? 0), f.tos);
  return out;
}

/**
 * Whether other answers for the opaque matches the witness assumed (a TCP option, --ctexpire…)
 * make the analyzer's own model do what the simulator and kernel did: then the witness's
 * assumption, not the pipeline, is what the real packet contradicts. Returns those answers.
 */
export function explainedByAnswers(model: FamilyModel, input: PacketInput, seen: Observed): string | undefined {
  const keys = runPacket(model, input).opaqueUsed;
  if (keys.length === 0 || keys.length > 6) return undefined;
  for (let bits = 0; bits < 1 << keys.length; bits++) {
    const opaque = { ...input.opaque, ...Object.fromEntries(keys.map((k, i) => [k, ((bits >> i) & 1) === 1])) };
    const alt: PacketInput = { ...input, opaque };
    if (claimDifferences(claimOf(model, alt, runPacket(model, alt)), seen, input.family).length === 0) {
      return keys.map((k) => `${k}=${opaque[k]}`).join(', ');
    }
  }
  return undefined;
}
