import { type Constraint, and } from '../ir/constraint.js';
import { CT_STATE, type NumericField, PROTO } from '../ir/fields.js';
import { HOOKS, type Hook } from '../ir/netfilter.js';
import type { Flow, Translation } from '../ir/policy.js';
import { matchConstraint } from '../kinds/index.js';
import { BoxDomain } from './box/box.js';
import { ConstraintBoxes } from './box/from-constraint.js';
import type { Prepass } from './box/prepass.js';
import type { FamilyModel } from './model/build.js';
import { FIELD_SLOT } from './model/fields.js';
import type { Z3Bool, Z3BV, Z3Context } from './z3/context.js';
import { Encoder, type SymOutcome } from './z3/encode.js';
import { ingressRegion, regionConstraint, relevanceFilter } from './z3/slice.js';
import { intersect, isSubset, subtract } from '../util/intervals.js';
import { familyMax } from '../util/ip.js';

/**
 * A flow (`tcp from 10.0.0.0/8 to 192.168.1.10 dport 22`) as a Z3 question over the pipeline:
 * its packets, where they come in, and what happens to them. Shared by `expect` statements and
 * `nfproof query`.
 *
 * Where packets come from: on an interface, unless the flow's source addresses are all this
 * host's own (then from a local socket). With a host model a packet comes in by the interface
 * its source is routed through (no spoofed sources), unless the flow names `iif`. A flow's
 * packet is the first of its connection (NEW) unless the flow tests `ct state`.
 */
export interface FlowEncoding {
  readonly ingress: 'iface' | 'local';
  readonly enc: Encoder;
  readonly out: SymOutcome;
  /** The packet belongs to the flow (and to the scenario). */
  readonly member: Z3Bool;
  /** Assertions every question about this encoding includes. */
  readonly base: Z3Bool[];
}

export function flowConstraint(flow: Flow, model: FamilyModel): Constraint {
  return and(...flow.matches.map((m) => matchConstraint(m, model.family)));
}

export function flowIngresses(model: FamilyModel, flow: Flow): ('iface' | 'local')[] {
  const c = flowConstraint(flow, model);
  const dom = new BoxDomain(model.family, model.ifaces.size);
  const over = new ConstraintBoxes(dom, model.ifaces).of(c).over;
  if (flow.matches.some((m) => m.kind === 'iface' && m.dir === 'in')) return ['iface'];
  const local = model.routing.local;
  if (!model.routing.hasHost || local.length === 0) return ['iface'];
  const srcs = over.map((b) => dom.values(b, FIELD_SLOT.saddr));
  const anyLocal = srcs.some((s) => intersect(s, local).length > 0);
  const allLocal = srcs.length > 0 && srcs.every((s) => isSubset(s, local));
  if (allLocal) return ['local'];
  return anyLocal ? ['iface', 'local'] : ['iface'];
}

function testsField(c: Constraint, f: NumericField): boolean {
  switch (c.op) {
    case 'in':
    case 'masked':
    case 'present':
      return c.field === f;
    case 'and':
    case 'or':
      return c.of.some((x) => testsField(x, f));
    case 'not':
      return testsField(c.of, f);
    default:
      return false;
  }
}

export function testsState(flow: Flow): boolean {
  return flow.matches.some((m) => m.kind === 'ct-state' || m.kind.startsWith('ct'));
}

export function encodeFlow(
  ctx: Z3Context,
  model: FamilyModel,
  flow: Flow,
  ingress: 'iface' | 'local',
  prefix: string,
  slice?: Prepass,
): FlowEncoding {
  const c = flowConstraint(flow, model);
  let relevant: ((r: import('./model/build.js').ModelRule) => boolean) | undefined;
  let region: ReturnType<typeof ingressRegion> | undefined;
  if (slice) {
    const over = new ConstraintBoxes(slice.dom, model.ifaces).of(c).over;
    region = ingressRegion(model, over, undefined, true);
    relevant = relevanceFilter(slice, region);
  }
  const enc = new Encoder(ctx, model, { prefix, ingress, ...(relevant ? { relevant } : {}) });
  const out = enc.encode();
  const parts: Z3Bool[] = [enc.flowMatches(c, out)];
  if (!testsState(flow)) parts.push(enc.ctStateVar().eq(enc.lit(CT_STATE.NEW, 8)));
  // Ordinary packets unless the flow says otherwise: a normal TTL, not a fragment.
  if (!testsField(c, 'ttl')) parts.push(enc.fieldVar('ttl').eq(enc.lit(64, 8)));
  if (!testsField(c, 'fragment')) parts.push(enc.fieldVar('fragment').eq(enc.lit(0, 1)));
  // A connection's first packet: a SYN for TCP, a request for ICMP (unless the flow says).
  if (!testsState(flow)) {
    if (!testsField(c, 'tcpflags')) parts.push(enc.fieldVar('tcpflags').eq(enc.lit(0x02, 8)));
    if (!testsField(c, 'icmptype')) parts.push(enc.inSet(enc.fieldVar('icmptype'), model.ct.icmpNew, 8));
  }
  // A client is reached back through the interface it came in by (no spoofed sources).
  if (ingress === 'iface') parts.push(enc.reversePath());
  if (ingress === 'iface' && enc.vars.iif) {
    // Packets that can exist on a wire: no martian source or destination (those the kernel
    // drops before any routing are not what a flow means).
    const bits = enc.bits('saddr');
    const sane = enc.and([
      enc.inSet(enc.fieldVar('saddr'), subtract(model.routing.saneSources('eth'), model.routing.broadcast, familyMax(model.family)), bits),
      enc.inSet(enc.fieldVar('daddr'), model.routing.saneDestinations('eth'), bits),
    ]);
    parts.push(enc.or([enc.vars.iif.eq(enc.ifaceIndex('lo')), sane]));
  }
  if (ingress === 'local' && model.routing.hasHost) parts.push(enc.inSet(enc.fieldVar('saddr'), model.routing.local, enc.bits('saddr')));
  if (region) parts.push(regionConstraint(enc, model, region));
  return { ingress, enc, out, member: enc.and(parts), base: [...out.assumptions] };
}

/** `via HOOK` or `via CHAIN`: the packet passed through it. Undefined when nothing has that name. */
export function viaTerm(model: FamilyModel, fe: FlowEncoding, via: string): Z3Bool | undefined {
  const hook = via.toUpperCase() as Hook;
  if ((HOOKS as readonly string[]).includes(hook)) return fe.out.atHook.get(hook) ?? fe.enc.or([]);
  const entered: Z3Bool[] = [];
  let known = false;
  for (const c of model.chains.values()) {
    if (c.name !== via) continue;
    known = true;
    const t = fe.out.entered.get(`${c.table}/${c.name}`);
    if (t) entered.push(t);
  }
  return known ? fe.enc.or(entered) : undefined;
}

/** The packet leaves with the header the translation says. */
export function translatedTerm(fe: FlowEncoding, t: Translation): Z3Bool {
  const enc = fe.enc;
  const fin = fe.out.final.vals;
  const parts: Z3Bool[] = [];
  const eq = (f: NumericField, v: bigint | number | undefined) => {
    if (v === undefined) return;
    const term = fin.get(f) ?? enc.fieldVar(f);
    parts.push(term.eq(enc.lit(BigInt(v), enc.bits(f))));
  };
  eq('saddr', t.saddr);
  eq('daddr', t.daddr);
  eq('sport', t.sport);
  eq('dport', t.dport);
  return enc.and(parts);
}

/**
 * The reply to a flow's packet: from where the packet went back to where it came from, with the
 * header reversed, as ESTABLISHED. `delivered` says it reaches the client with the client's
 * original addresses and ports (NAT undone) on the interface the request came in by.
 */
export function encodeReply(ctx: Z3Context, model: FamilyModel, fe: FlowEncoding, prefix: string): { delivered: Z3Bool; base: Z3Bool[]; enc: Encoder[]; outs: SymOutcome[] } {
  const o = fe.out;
  const e = fe.enc;
  const fin = (f: NumericField) => o.final.vals.get(f) ?? e.fieldVar(f);
  const init = (f: NumericField) => e.fieldVar(f);
  const proto = init('proto');
  const fields: Partial<Record<NumericField, Z3BV>> = {
    saddr: fin('daddr'),
    daddr: fin('saddr'),
    sport: fin('dport'),
    dport: fin('sport'),
    proto,
    fragment: e.lit(0, 1),
    tcpflags: e.lit(0x12, 8),
    icmpcode: e.lit(0, 8),
    icmptype: e.ite(init('icmptype').eq(e.lit(model.family === 'ipv4' ? 8 : 128, 8)), e.lit(model.family === 'ipv4' ? 0 : 129, 8), init('icmptype')),
    ttl: e.lit(64, 8),
    tos: e.lit(0, 8),
  };
  const base: Z3Bool[] = [];
  const encs: Encoder[] = [];
  const outs: SymOutcome[] = [];
  const ok: Z3Bool[] = [];
  const backToClient = (r: SymOutcome, re: Encoder): Z3Bool => {
    const v = r.final.vals;
    const same = (a: Z3BV | undefined, b: Z3BV) => (a ? a.eq(b) : re.lit(1, 1).eq(re.lit(1, 1)));
    const ports = e.or([proto.eq(e.lit(PROTO.tcp, 8)), proto.eq(e.lit(PROTO.udp, 8)), proto.eq(e.lit(PROTO.sctp, 8)), proto.eq(e.lit(PROTO.udplite, 8)), proto.eq(e.lit(PROTO.dccp, 8))]);
    return e.and([
      same(v.get('saddr'), init('daddr')),
      same(v.get('daddr'), init('saddr')),
      e.or([e.not(ports), e.and([same(v.get('sport'), init('dport')), same(v.get('dport'), init('sport'))])]),
    ]);
  };
  if (fe.ingress === 'iface') {
    // Forwarded request: the reply comes in by the request's egress and must leave by its ingress.
    const re = new Encoder(ctx, model, { prefix: `${prefix}f.`, ingress: 'iface', reply: { fields, iif: o.egress, binding: o.binding } });
    const r = re.encode();
    encs.push(re);
    outs.push(r);
    base.push(...r.assumptions);
    ok.push(e.and([o.forwarded, r.forwarded, r.egress.eq(fe.enc.vars.iif ?? r.egress), backToClient(r, re)]));
    // Delivered locally: a local socket answers.
    const le = new Encoder(ctx, model, { prefix: `${prefix}l.`, ingress: 'local', reply: { fields, binding: o.binding } });
    const l = le.encode();
    encs.push(le);
    outs.push(l);
    base.push(...l.assumptions);
    ok.push(e.and([o.local, l.sent, l.egress.eq(fe.enc.vars.iif ?? l.egress), backToClient(l, le)]));
  } else {
    const re = new Encoder(ctx, model, { prefix: `${prefix}i.`, ingress: 'iface', reply: { fields, iif: o.egress, binding: o.binding } });
    const r = re.encode();
    encs.push(re);
    outs.push(r);
    base.push(...r.assumptions);
    ok.push(e.and([o.sent, r.local, backToClient(r, re)]));
  }
  return { delivered: e.or(ok), base, enc: encs, outs };
}
