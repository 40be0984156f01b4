import type { NumericField } from '../../ir/fields.js';
import type { IntervalSet } from '../../util/intervals.js';
import { Prepass } from '../box/prepass.js';
import { CHOICE } from '../concrete/interp.js';
import type { FamilyModel } from '../model/build.js';
import { FIELDS, FIELD_SLOT, IIF_SLOT, OIF_SLOT, SLOT_COUNT, absentValue, bitsOf, fieldMax } from '../model/fields.js';
import type { Z3BV, Z3Bool, Z3Context, Z3Model } from '../z3/context.js';
import { Encoder, type SymOutcome } from '../z3/encode.js';
import { Session, type Z3Stats } from '../z3/session.js';
import { ingressRegion, relevanceFilter } from '../z3/slice.js';
import type { DiffContext, Side } from './context.js';
import { honourRelations, pointIn } from './point.js';
import type { Box, Point } from './space.js';
import { ANSWERED_DROP, describeReject, natDescriptor, natHookOf } from './walk.js';

/**
 * Both sides of a diff in Z3 over one packet: each ruleset encoded by the analyzer's Encoder
 * (its own variable names), then the variables that stand for the same thing linked — header
 * fields, input device, conntrack state, the environment's choices, the answers of paired
 * unmodelled tests. `differs` holds when the two outcomes differ the way the box walk compares
 * them (verdict, REJECT answer, egress, header after NAT).
 *
 * Used for what the box walk leaves: regions over its piece budget, or with a test that has no
 * exact box form. Questions carry a time limit; a timeout is an answer of its own ("unknown").
 */
export class Z3Pair {
  private readonly session: Session;
  private readonly encA: Encoder;
  private readonly encB: Encoder;
  readonly differs: Z3Bool;
  /** Space slot → a Z3 term for it (extra slots included), where the encodings have one. */
  private readonly terms = new Map<number, Z3BV | Z3Bool>();

  constructor(
    readonly ctx: Z3Context,
    readonly dc: DiffContext,
    readonly ingress: 'iface' | 'local',
    region: readonly Box[],
    timeoutMs: number,
    stats: Z3Stats,
    prepasses: { a: Prepass; b: Prepass },
  ) {
    const head = region.map((b) => b.slice(0, SLOT_COUNT));
    const enc = (side: Side, prefix: string, prepass: Prepass) =>
      new Encoder(ctx, side.model, { prefix, ingress, relevant: relevanceFilter(prepass, ingressRegion(side.model, head)) });
    this.encA = enc(dc.a, 'old.', prepasses.a);
    this.encB = enc(dc.b, 'new.', prepasses.b);
    const outA = this.encA.encode();
    const outB = this.encB.encode();
    const links = this.link(outA, outB);
    this.differs = this.difference(outA, outB);
    this.session = new Session(ctx, [...outA.assumptions, ...outB.assumptions, ...links], timeoutMs, stats);
  }

  release(): void {
    this.session.release();
  }

  /** Terms of boxes asked about before (a region's blocked boxes come back every round). */
  private readonly boxTerms = new WeakMap<Box, Z3Bool>();

  /** Is there a packet in `box`, outside `blocked`, on which the sides differ? */
  ask(box: Box, blocked: readonly Box[]) {
    return this.session.ask(this.boxTerm(box), ...blocked.map((b) => this.ctx.Not(this.boxTerm(b)) as Z3Bool), this.differs);
  }

  private boxTerm(box: Box): Z3Bool {
    let t = this.boxTerms.get(box);
    if (!t) this.boxTerms.set(box, (t = this.inBox(box)));
    return t;
  }

  // ---- linking ---------------------------------------------------------------------

  private link(outA: SymOutcome, outB: SymOutcome): Z3Bool[] {
    const { ctx, encA, encB, dc } = this;
    const links: Z3Bool[] = [];
    const eq = (x: Z3BV | Z3Bool, y: Z3BV | Z3Bool) => links.push((x as Z3BV).eq(y as Z3BV));
    for (const f of FIELDS) {
      if (f === 'dscp') continue;
      if (!encA.vars.fields.has(f) && !encB.vars.fields.has(f)) continue;
      eq(encA.fieldVar(f), encB.fieldVar(f));
      this.terms.set(FIELD_SLOT[f], encA.fieldVar(f));
    }
    const sa = encA.ctStateVar();
    eq(sa, encB.ctStateVar());
    this.terms.set(FIELD_SLOT.ctstate, sa);
    if (outA.vars.iif && outB.vars.iif) {
      eq(outA.vars.iif, outB.vars.iif);
      this.terms.set(IIF_SLOT, outA.vars.iif);
    }
    if (outA.vars.helperPresent && outB.vars.helperPresent) eq(outA.vars.helperPresent, outB.vars.helperPresent);
    // Extra slots: the space's keys of each side's variables.
    const bySlot = new Map<number, (Z3BV | Z3Bool)[]>();
    const add = (slot: number, v: Z3BV | Z3Bool) => bySlot.set(slot, [...(bySlot.get(slot) ?? []), v]);
    for (const [side, e] of [
      [dc.a, encA],
      [dc.b, encB],
    ] as const) {
      for (const [k, v] of e.vars.opaque) add(dc.space.extra({ kind: 'opaque', key: side.opaqueKey(k), reason: k }), v);
      for (const [k, v] of e.vars.choices) {
        // The diff takes an IPv6 packet to fe80::/64 as not for the interface's own link-local
        // address, which the host model does not list (as the simulator's host has it).
        if (k === CHOICE.ownLinkLocal) {
          links.push((v as Z3BV).eq(ctx.BitVec.val(1n, 1)) as Z3Bool);
          continue;
        }
        const c = this.choiceKey(side, k);
        if (c) add(dc.space.extra({ kind: 'choice', key: c.key, doc: c.key, domain: c.domain }), v);
      }
    }
    for (const [slot, vs] of bySlot) {
      this.terms.set(slot, vs[0]);
      for (const v of vs.slice(1)) eq(vs[0], v);
    }
    return links;
  }

  /** The space key and domain of an encoder's choice variable (as the walk names them). */
  private choiceKey(side: Side, key: string): { key: string; domain: IntervalSet } | undefined {
    if (key === CHOICE.route || key === CHOICE.routeNat || key === CHOICE.answer) return { key, domain: [[0n, 1n]] };
    if (key === CHOICE.oif) return { key, domain: this.dc.space.ifaces.nonEmpty() };
    if (key === CHOICE.icmpId) return { key, domain: [[0n, 0xffffn]] };
    const m = /^(nat|target)(\d+)(?:\.(addr|port))?$/.exec(key);
    if (!m) return undefined;
    const rule = side.model.rules[Number(m[2])];
    if (!rule) return undefined;
    if (m[1] === 'target') return { key: `target:${side.targetKey(rule)}`, domain: [[0n, 2n]] };
    if (rule.effect.type !== 'nat') return undefined;
    const nat = rule.effect.nat;
    const hook = natHookOf(side.model, rule);
    if (!hook) return undefined;
    const domain: IntervalSet = m[3] === 'addr' ? (nat.addr ? [nat.addr] : [[0n, fieldMax('saddr', this.dc.family)]]) : nat.ports ? [nat.ports] : [[0n, 0xffffn]];
    return { key: `nat.${m[3]} ${natDescriptor(nat, hook)}`, domain };
  }

  // ---- the difference --------------------------------------------------------------

  private difference(outA: SymOutcome, outB: SymOutcome): Z3Bool {
    const { ctx, encA, encB } = this;
    const xor = (x: Z3Bool, y: Z3Bool) => ctx.Xor(x, y) as Z3Bool;
    const ne = (x: Z3BV, y: Z3BV) => ctx.Not(x.eq(y)) as Z3Bool;
    const fin = (e: Encoder, o: SymOutcome, f: NumericField) => o.final.vals.get(f) ?? e.fieldVar(f);
    const verdict = ctx.Or(xor(outA.local, outB.local), xor(outA.forwarded, outB.forwarded), xor(outA.sent, outB.sent));
    const ports = encA.present(outA.final, 'sport');
    const header = ctx.And(
      outA.delivered,
      outB.delivered,
      ctx.Or(
        ne(fin(encA, outA, 'saddr'), fin(encB, outB, 'saddr')),
        ne(fin(encA, outA, 'daddr'), fin(encB, outB, 'daddr')),
        ctx.And(ports, ctx.Or(ne(fin(encA, outA, 'sport'), fin(encB, outB, 'sport')), ne(fin(encA, outA, 'dport'), fin(encB, outB, 'dport')))),
      ),
    );
    const egress = ctx.And(ctx.Or(ctx.And(outA.forwarded, outB.forwarded), ctx.And(outA.sent, outB.sent)), ne(outA.egress, outB.egress));
    const rejects = (m: FamilyModel, o: SymOutcome) => {
      const by = new Map<string, Z3Bool[]>();
      for (const r of m.rules) {
        if (r.effect.type !== 'reject') continue;
        const f = o.fire.get(r.id);
        if (!f) continue;
        const k = describeReject(r.effect.reply);
        by.set(k, [...(by.get(k) ?? []), f]);
      }
      return by;
    };
    const ra = rejects(this.dc.a.model, outA);
    const rb = rejects(this.dc.b.model, outB);
    // Drops the kernel answers itself count as kinds of denial too (walk.ts ANSWERED_DROP).
    ra.set(ANSWERED_DROP.ttl, [outA.ttlDrop]);
    rb.set(ANSWERED_DROP.ttl, [outB.ttlDrop]);
    ra.set(ANSWERED_DROP.unreachable, [outA.noRouteDrop]);
    rb.set(ANSWERED_DROP.unreachable, [outB.noRouteDrop]);
    const kinds = new Set([...ra.keys(), ...rb.keys()]);
    const any = (xs: Z3Bool[] | undefined) => (xs && xs.length ? (ctx.Or(...xs) as Z3Bool) : (ctx.Bool.val(false) as Z3Bool));
    const deny = ctx.And(outA.dropped, outB.dropped, ctx.Or(...[...kinds].map((k) => xor(any(ra.get(k)), any(rb.get(k))))));
    return ctx.Or(verdict, header, egress, deny) as Z3Bool;
  }

  // ---- boxes and points ------------------------------------------------------------

  /** The packet lies in the box (slots without a term, or standing for absence, are left free). */
  inBox(box: Box): Z3Bool {
    const { ctx, dc } = this;
    const fam = dc.family;
    const parts: Z3Bool[] = [];
    const hasHost = dc.a.model.routing.hasHost || dc.b.model.routing.hasHost;
    box.forEach((set, slot) => {
      if (set === undefined || slot === OIF_SLOT) return;
      if (slot < FIELDS.length) {
        const f = FIELDS[slot];
        if (f === 'dscp' || f === 'mark' || f === 'pkttype') return;
        if (hasHost && (f === 'srctype' || f === 'dsttype')) return;
        if (f === 'cthelper') {
          const hp = this.encA.vars.helperPresent;
          const abs = absentValue(f, fam);
          if (hp && set.length === 1 && set[0][0] === abs && set[0][1] === abs) parts.push(ctx.Not(hp) as Z3Bool);
          else if (hp && set[set.length - 1][1] < abs) parts.push(ctx.And(hp, this.encA.inSet(this.encA.fieldVar(f), set, bitsOf(f, fam))) as Z3Bool);
          return;
        }
        if (set[set.length - 1][1] > fieldMax(f, fam)) return;
        const t = f === 'ctstate' ? this.encA.ctStateVar() : this.encA.fieldVar(f);
        parts.push(this.encA.inSet(t, set, f === 'ctstate' ? 8 : bitsOf(f, fam)));
        return;
      }
      if (slot === IIF_SLOT) {
        const t = this.terms.get(IIF_SLOT) as Z3BV | undefined;
        if (t) parts.push(this.encA.ifaceIn(t, set));
        return;
      }
      const x = dc.space.extraAt(slot);
      if (!x) return;
      if (x.kind === 'relation') {
        const a = this.termOf(x.a);
        const b = this.termOf(x.b);
        if (!a || !b || a.sort.size() !== b.sort.size()) return;
        const same = a.eq(b) as Z3Bool;
        if (set.length === 1 && set[0][0] === 1n && set[0][1] === 1n) parts.push(same);
        else if (set.length === 1 && set[0][1] === 0n) parts.push(ctx.Not(same) as Z3Bool);
        return;
      }
      const t = this.terms.get(slot);
      if (!t) return;
      if (x.kind === 'opaque') {
        const b = t as Z3Bool;
        if (set.length === 1 && set[0][0] === 1n) parts.push(b);
        else if (set.length === 1 && set[0][1] === 0n) parts.push(ctx.Not(b) as Z3Bool);
        return;
      }
      const bv = t as Z3BV;
      parts.push(this.encA.inSet(bv, clip(set, (1n << BigInt(bv.sort.size())) - 1n), bv.sort.size()));
    });
    return parts.length ? (ctx.And(...parts) as Z3Bool) : (ctx.Bool.val(true) as Z3Bool);
  }

  private termOf(slot: number): Z3BV | undefined {
    if (slot < FIELDS.length) return FIELDS[slot] === 'ctstate' ? this.encA.ctStateVar() : this.encA.fieldVar(FIELDS[slot]);
    const t = this.terms.get(slot);
    return t && 'size' in t.sort ? (t as Z3BV) : undefined;
  }

  /** A model as a point of the box (values the encodings do not mention are picked from the box). */
  readPoint(m: Z3Model, box: Box): Point | undefined {
    const { dc } = this;
    const space = dc.space;
    const base = [...pointIn(space, box)];
    const bv = (t: Z3BV) => (m.eval(t, true) as unknown as { value(): bigint }).value();
    const inSet = (slot: number, v: bigint) => space.values(box, slot).some(([lo, hi]) => v >= lo && v <= hi);
    for (let slot = 0; slot < space.size; slot++) {
      if (slot === OIF_SLOT) continue;
      let v: bigint | undefined;
      if (slot < FIELDS.length) {
        const f = FIELDS[slot];
        if (f === 'dscp' || f === 'mark' || f === 'pkttype') continue;
        if (f === 'cthelper') {
          const hp = this.encA.vars.helperPresent;
          v = hp && !this.ctx.isTrue(m.eval(hp, true)) ? absentValue(f, dc.family) : bv(this.encA.fieldVar(f));
        } else if (f === 'ctstate') v = bv(this.encA.ctStateVar());
        else if (this.encA.vars.fields.has(f) || this.encB.vars.fields.has(f)) v = bv(this.encA.fieldVar(f));
      } else if (slot === IIF_SLOT) {
        const t = this.terms.get(slot) as Z3BV | undefined;
        if (t) v = bv(t);
      } else {
        const x = space.extraAt(slot);
        const t = this.terms.get(slot);
        if (x?.kind === 'opaque' && t) v = this.ctx.isTrue(m.eval(t as Z3Bool, true)) ? 1n : 0n;
        else if (x?.kind === 'choice' && t) v = bv(t as Z3BV);
      }
      if (v !== undefined && inSet(slot, v)) base[slot] = v;
    }
    for (let slot = SLOT_COUNT; slot < space.size; slot++) {
      const x = space.extraAt(slot);
      if (x?.kind === 'relation') base[slot] = base[x.a] === base[x.b] ? 1n : 0n;
    }
    return honourRelations(space, box, base);
  }
}

function clip(set: IntervalSet, max: bigint): IntervalSet {
  return set.filter(([lo]) => lo <= max).map(([lo, hi]) => [lo, hi > max ? max : hi] as const);
}

