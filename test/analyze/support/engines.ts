import type { PacketInput } from '../../../src/analyze/concrete/input.js';
import { runPacket } from '../../../src/analyze/concrete/interp.js';
import { buildContext } from '../../../src/analyze/diff/context.js';
import { pointOf, valAt } from '../../../src/analyze/diff/point.js';
import { termHas } from '../../../src/analyze/diff/space.js';
import { startPieces } from '../../../src/analyze/diff/start.js';
import { buildFamilyModel } from '../../../src/analyze/model/build.js';
import { toSimPacket } from '../../../src/analyze/replay.js';
import { type Z3Bool, z3 } from '../../../src/analyze/z3/context.js';
import { Encoder } from '../../../src/analyze/z3/encode.js';
import { Session, newZ3Stats } from '../../../src/analyze/z3/session.js';
import { CT_STATE, type NumericField } from '../../../src/ir/fields.js';
import type { Policy } from '../../../src/ir/policy.js';
import { createSimulator } from '../../../src/netfilter/simulator.js';
import { type Family, formatAddress, parseAddress } from '../../../src/util/ip.js';

/**
 * One packet through all four engines that must agree — the simulator, the analyzer's concrete
 * interpreter, its Z3 encoding (packet variables pinned) and the diff's walk (focused on the
 * packet) — for hand-checked cases of a behaviour learned from the kernel.
 */
export interface Seen {
  readonly verdict: string;
  readonly egress?: string;
  /** The source address as the packet leaves or is delivered (after NAT); only when asked for. */
  readonly source?: string;
}

/** What each engine is asked to tell besides the verdict. */
interface Ask {
  readonly source?: boolean;
}

const addr = (a: string) => parseAddress(a)!.value;

/** A locally generated UDP packet with every field an ordinary value (the walk needs them all). */
export function localUdp(family: Family, src: string, dst: string, dport: number): PacketInput {
  return {
    family,
    ingress: { kind: 'local' },
    fields: { saddr: addr(src), daddr: addr(dst), proto: 17n, sport: 4000n, dport: BigInt(dport), length: 100n, ttl: 64n, tos: 0n, fragment: 0n, uid: 0n, gid: 0n },
    ctState: 'NEW',
  };
}

/** A UDP packet arriving on `device` from the wire, every field an ordinary value. */
export function ifaceUdp(family: Family, device: string, src: string, dst: string, dport: number): PacketInput {
  return {
    family,
    ingress: { kind: 'iface', device },
    fields: { saddr: addr(src), daddr: addr(dst), proto: 17n, sport: 4000n, dport: BigInt(dport), length: 100n, ttl: 64n, tos: 0n, fragment: 0n, macsrc: 0x020000000001n },
    ctState: 'NEW',
  };
}

/** The source field of a Seen, when asked for and the packet was not dropped. */
function sourceOf(ask: Ask, family: Family, verdict: string, value: () => bigint | undefined): { source?: string } {
  if (!ask.source || verdict === 'dropped') return {};
  const v = value();
  return v === undefined ? {} : { source: formatAddress(family, v) };
}

function simulate(policy: Policy, p: PacketInput, ask: Ask): Seen {
  const sim = createSimulator(policy);
  const out =
    p.ingress.kind === 'local'
      ? sim.process({ t: 0, ingress: { kind: 'local' }, packet: toSimPacket(p), uid: 0, gid: 0 })
      : sim.process({ t: 0, ingress: { kind: 'iface', device: p.ingress.device }, packet: toSimPacket(p) });
  return {
    verdict: out.verdict,
    ...(out.verdict !== 'dropped' && out.egress ? { egress: out.egress.device } : {}),
    ...sourceOf(ask, p.family, out.verdict, () => (out.egress?.packet ?? out.delivered)?.src),
  };
}

function interpret(policy: Policy, p: PacketInput, ask: Ask): Seen {
  const out = runPacket(buildFamilyModel(policy, p.family), p);
  return { verdict: out.verdict, ...(out.verdict !== 'dropped' ? { egress: out.egress } : {}), ...sourceOf(ask, p.family, out.verdict, () => out.final.saddr) };
}

async function solve(policy: Policy, p: PacketInput, ask: Ask): Promise<Seen> {
  const { ctx } = await z3();
  const model = buildFamilyModel(policy, p.family);
  const enc = new Encoder(ctx, model, { prefix: 'e.', ingress: p.ingress.kind });
  const out = enc.encode();
  const session = new Session(ctx, out.assumptions, 10_000, newZ3Stats());
  try {
    const pins: Z3Bool[] = [];
    for (const [f, v] of out.vars.fields) {
      const val = p.fields[f as NumericField];
      if (val !== undefined) pins.push(v.eq(enc.lit(val, enc.bits(f))));
    }
    if (out.vars.ctstate) pins.push(out.vars.ctstate.eq(enc.lit(CT_STATE[p.ctState], 8)));
    for (const [key, v] of out.vars.choices) {
      const given = p.choices?.[key];
      if (given !== undefined) pins.push(v.eq(enc.lit(given, v.sort.size())));
    }
    if (p.ingress.kind === 'iface' && out.vars.iif) pins.push(out.vars.iif.eq(enc.ifaceIndex(p.ingress.device)));
    if (out.vars.helperPresent) pins.push(enc.not(out.vars.helperPresent));
    const a = await session.ask(...pins);
    if (a.kind !== 'sat') throw new Error(`solver: ${a.kind}`);
    const is = (t: Z3Bool) => ctx.isTrue(a.model.eval(t, true));
    const verdict = is(out.local) ? 'local' : is(out.forwarded) ? 'forwarded' : is(out.sent) ? 'sent' : 'dropped';
    const egress = model.ifaces.nameOf(Number((a.model.eval(out.egress, true) as unknown as { value(): bigint }).value()));
    const source = () => (a.model.eval(out.final.vals.get('saddr')!, true) as unknown as { value(): bigint }).value();
    return { verdict, ...(verdict === 'sent' || verdict === 'forwarded' ? { egress } : {}), ...sourceOf(ask, p.family, verdict, source) };
  } finally {
    session.release();
  }
}

function walk(policy: Policy, p: PacketInput, ask: Ask): Seen {
  const ctx = buildContext(policy, policy, p.family);
  const point = pointOf(ctx.space, ctx.a, p);
  const from = startPieces(ctx).find((q) => q.terms.some((t) => termHas(ctx.space, t, point)));
  const leaf = from && ctx.a.walker.runFocused(from, point);
  if (!leaf) throw new Error('the walk has no leaf for the packet');
  const o = leaf.out;
  return {
    verdict: o.verdict,
    ...(o.verdict !== 'dropped' && o.egress ? { egress: ctx.space.ifaces.nameOf(Number(valAt(o.egress, point))) } : {}),
    ...sourceOf(ask, p.family, o.verdict, () => valAt(o.final.saddr, point)),
  };
}

/** The packet in every engine; `ask.source` adds the source address after NAT to each answer. */
export async function allEngines(policy: Policy, p: PacketInput, ask: Ask = {}): Promise<Record<string, Seen>> {
  return { simulator: simulate(policy, p, ask), interpreter: interpret(policy, p, ask), z3: await solve(policy, p, ask), walk: walk(policy, p, ask) };
}

/** What allEngines returns when every engine sees `s`. */
export const same = (s: Seen): Record<string, Seen> => ({ simulator: s, interpreter: s, z3: s, walk: s });
