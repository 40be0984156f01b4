import { CHOICE } from '../concrete/interp.js';
import { type RoutingView, V6_GROUPS_SCOPE_0_1 } from '../model/routing.js';
import { type IntervalSet, normalize, subtract, union } from '../../util/intervals.js';
import { familyMax, prefixMask, prefixToInterval } from '../../util/ip.js';
import { FIELD_SLOT, IIF_SLOT } from '../model/fields.js';
import { Inexact, type Space, type Term, narrow, termsByValue } from './space.js';
import { equalParts } from './equal.js';
import { bitsPreimage } from './region.js';
import { type BitsVal, type Piece, type Val, constVal, getVal, slotVal, withTerms } from './sym.js';

/**
 * The host's routing decisions over pieces of header space, as RoutingView (model/routing.ts)
 * takes them for one packet: martians first, then local delivery, then the route. Each
 * condition splits a piece; every part leaves with one decision. Without a host model the
 * decision is an environment choice (the shared `route`/`oif` slots), as in the analyzer.
 */
export type InputDecision =
  | { readonly kind: 'local'; readonly piece: Piece }
  | { readonly kind: 'forward'; readonly piece: Piece; readonly oif: Val }
  | { readonly kind: 'martian' | 'unreachable'; readonly piece: Piece };

const V4 = {
  loopback: [[0x7f000000n, 0x7fffffffn]] as IntervalSet,
  zeroNet: [[0n, 0x00ffffffn]] as IntervalSet,
  multicast: [[0xe0000000n, 0xefffffffn]] as IntervalSet,
  limitedBroadcast: [[0xffffffffn, 0xffffffffn]] as IntervalSet,
};
const V6_MULTICAST: IntervalSet = [[0xffn << 120n, familyMax('ipv6')]];
/** Multicast addresses of one scope (ffXs::/16 for every flag nibble X). */
const V6_SCOPE = (scope: number): IntervalSet =>
  normalize(Array.from({ length: 16 }, (_, flags) => {
    const lo = ((0xffn << 8n) | (BigInt(flags) << 4n) | BigInt(scope)) << 112n;
    return [lo, lo | ((1n << 112n) - 1n)] as const;
  }));
const V6_LOOPBACK: IntervalSet = [[1n, 1n]];
/** fe80::/10. */
const V6_LINK_LOCAL: IntervalSet = [[0xfe80n << 112n, (0xfe80n << 112n) | ((1n << 118n) - 1n)]];

export class BoxRouting {
  constructor(
    private readonly space: Space,
    private readonly routing: RoutingView,
  ) {}

  /** Splits pieces by `v ∈ set` (every box of a piece: a part with, a part without). */
  private cut(pieces: readonly Piece[], v: Val, set: IntervalSet): { yes: Piece[]; no: Piece[] } {
    const yes: Piece[] = [];
    const no: Piece[] = [];
    for (const p of pieces) {
      if (v.k === 'const') {
        (set.some(([lo, hi]) => v.v >= lo && v.v <= hi) ? yes : no).push(p);
        continue;
      }
      const s =
        v.k === 'bits'
          ? undefined
          : normalize((v.off === 0n ? set : set.map(([lo, hi]) => [lo - v.off, hi - v.off] as const).filter(([, hi]) => hi >= 0n)).map(([lo, hi]) => [lo < 0n ? 0n : lo, hi] as const));
      const y: Term[] = [];
      const n: Term[] = [];
      for (const t of p.terms) {
        const x = this.space.split(t.box, v.slot, s ?? bitsPreimage(this.space, t.box, v as BitsVal, set));
        for (const b of x.yes) {
          const nt = narrow(this.space, t, b);
          if (nt) y.push(nt);
        }
        for (const b of x.no) {
          const nt = narrow(this.space, t, b);
          if (nt) n.push(nt);
        }
      }
      if (y.length) yes.push(withTerms(p, y));
      if (n.length) no.push(withTerms(p, n));
    }
    return { yes, no };
  }

  /** Multicast groups each device has joined, as Host.joinedGroup answers (by class index). */
  private groupsOf(device: string): IntervalSet {
    const r = this.routing;
    const fam = r.family;
    const candidates: bigint[] = fam === 'ipv4' ? [0xe0000001n] : [
      0xff010000000000000000000000000001n,
      0xff020000000000000000000000000001n,
      0xff010000000000000000000000000002n,
      0xff020000000000000000000000000002n,
      0xff050000000000000000000000000002n,
    ];
    if (fam === 'ipv6') {
      const solicited = 0xff0200000000000000000001ff000000n;
      for (const a of r.addresses) {
        candidates.push(solicited | (a.addr & 0xffffffn));
        candidates.push(solicited | (a.addr & prefixMask('ipv6', a.prefixLen) & 0xffffffn));
      }
    }
    return normalize(candidates.filter((g) => r.sim.joinedGroup(fam, device, g)).map((g) => [g, g] as const));
  }

  /**
   * ip_route_input for pieces at the end of PREROUTING, in the order of the simulator's
   * Host.routeInput (the analyzer's concrete model asks that Host itself): martian sources,
   * broadcasts, multicast to joined groups, zero and loopback addresses, own addresses, routes.
   * Without a host model an otherwise routable packet's fate is the environment's choice.
   */
  input(pieces: readonly Piece[]): InputDecision[] {
    const out: InputDecision[] = [];
    const r = this.routing;
    const fam = r.family;
    const martian = (ps: Piece[]) => ps.forEach((piece) => out.push({ kind: 'martian', piece }));
    const local = (ps: Piece[]) => ps.forEach((piece) => out.push({ kind: 'local', piece }));
    const src = (p: Piece) => getVal(p.sym, 'saddr');
    const dst = (p: Piece) => getVal(p.sym, 'daddr');
    const step = (ps: Piece[], which: 'src' | 'dst', set: IntervalSet, onlyNotLo = false) => {
      const yes: Piece[] = [];
      const no: Piece[] = [];
      for (const p of ps) {
        if (onlyNotLo && this.isLo(p)) {
          no.push(p);
          continue;
        }
        const s = this.cut([p], which === 'src' ? src(p) : dst(p), set);
        yes.push(...s.yes);
        no.push(...s.no);
      }
      return { yes, no };
    };
    const zero: IntervalSet = [[0n, 0n]];
    let rest: Piece[] = [...pieces];
    let s: { yes: Piece[]; no: Piece[] };
    if (fam === 'ipv4') {
      s = step(rest, 'src', union(V4.multicast, V4.limitedBroadcast));
      martian(s.yes);
      s = step(s.no, 'dst', V4.limitedBroadcast);
      local(s.yes);
      // 0.0.0.0 to 0.0.0.0 is a local broadcast.
      const z = step(s.no, 'src', zero);
      const zz = step(z.yes, 'dst', zero);
      local(zz.yes);
      rest = [...zz.no, ...z.no];
      s = step(rest, 'dst', V4.multicast);
      this.multicast(s.yes, out);
      s = step(s.no, 'src', zero);
      martian(s.yes);
      s = step(s.no, 'dst', zero);
      martian(s.yes);
      s = step(s.no, 'dst', V4.loopback, true);
      martian(s.yes);
      s = step(s.no, 'src', V4.loopback, true);
      martian(s.yes);
      const bcast = subtract(r.broadcast, V4.limitedBroadcast, familyMax('ipv4'));
      s = step(s.no, 'dst', bcast);
      local(s.yes);
      s = step(s.no, 'src', subtract(r.local, V4.loopback, familyMax('ipv4')), true);
      martian(s.yes);
      s = step(s.no, 'dst', union(V4.loopback, r.local));
      local(s.yes);
      rest = s.no;
    } else {
      s = step(rest, 'src', V6_MULTICAST);
      martian(s.yes);
      s = step(s.no, 'src', V6_LOOPBACK, true);
      martian(s.yes);
      s = step(s.no, 'dst', V6_MULTICAST);
      this.multicast(s.yes, out);
      rest = s.no;
      if (r.hasHost) {
        // ::1 and link-local destinations from a device are looked up bound to that device
        // (Host.routeInput: rt6_need_strict); without a host model their fate is open like any.
        s = step(rest, 'dst', union(V6_LOOPBACK, V6_LINK_LOCAL), true);
        for (const p of s.yes) this.strictInput(p, out);
        rest = s.no;
      }
      // Own and joined subnet-router anycast addresses (RoutingView.localDestinations).
      s = step(rest, 'dst', union(V6_LOOPBACK, r.localDestinations));
      local(s.yes);
      rest = s.no;
    }
    const routed: Piece[] = [];
    for (const route of r.routes) {
      if (rest.length === 0) break;
      const x = step(rest, 'dst', route.region);
      const oif = constVal(this.space.ifaces.classOf(route.device));
      x.yes.forEach((piece) => out.push({ kind: 'forward', piece, oif }));
      routed.push(...x.yes);
      rest = x.no;
    }
    if (r.hasHost) {
      rest.forEach((piece) => out.push({ kind: 'unreachable', piece }));
      return out;
    }
    // No host model: here or onward is the environment's pick (a shared choice), never out of
    // lo; a destination DNAT changed has a pick of its own (CHOICE.routeNat).
    const pickOf = (key: string) => this.space.extra({ kind: 'choice', key, doc: 'routing: 0 this host, 1 forwarded', domain: [[0n, 1n]] });
    const devices = subtract(this.space.ifaces.nonEmpty(), this.space.ifaces.indicesOf(['lo']), this.space.top(IIF_SLOT));
    const oif = this.space.extra({ kind: 'choice', key: CHOICE.oif, doc: 'output interface', domain: devices.length ? devices : this.space.ifaces.nonEmpty() });
    // REDIRECT took an address of the incoming device: that one is this host's, whatever the pick.
    const arrived = slotVal(FIELD_SLOT.daddr);
    const byDst = this.splitEqual(rest.filter((p) => !p.sym.redirected), (p) => getVal(p.sym, 'daddr'), () => arrived);
    const c0 = this.cut(byDst.eq, slotVal(pickOf(CHOICE.route)), [[0n, 0n]]);
    const c1 = byDst.ne.length ? this.cut(byDst.ne, slotVal(pickOf(CHOICE.routeNat)), [[0n, 0n]]) : { yes: [], no: [] };
    const c = { yes: [...c0.yes, ...c1.yes], no: [...c0.no, ...c1.no] };
    let here = [...rest.filter((p) => p.sym.redirected), ...c.yes];
    if (fam === 'ipv4') {
      // Delivered here means the destination is ours; a source equal to it is then ours too.
      const same = this.splitEqual(
        here.filter((p) => !this.isLo(p)),
        (p) => getVal(p.sym, 'saddr'),
        (p) => getVal(p.sym, 'daddr'),
      );
      martian(same.eq);
      here = [...here.filter((p) => this.isLo(p)), ...same.ne];
    }
    local(here);
    for (const p of c.no) {
      const q = this.restrict(p, oif, devices.length ? devices : this.space.ifaces.nonEmpty());
      if (q) out.push({ kind: 'forward', piece: q, oif: slotVal(oif) });
    }
    return out;
  }

  /**
   * An IPv6 packet to ::1 or a link-local address from a device: local if it is that device's
   * own address, forwarded back out of it if one of its routes holds the destination, else
   * unreachable.
   */
  private strictInput(p: Piece, out: InputDecision[]): void {
    for (const [dev, q] of this.byInputDevice(p)) {
      const name = this.space.ifaces.nameOf(Number(dev));
      // Its own addresses and the anycast addresses it joined (RoutingView.strictOn).
      const own = normalize(this.routing.strictOn(name).own.map((a) => [a, a] as const));
      const mine = this.cut([q], getVal(q.sym, 'daddr'), own);
      mine.yes.forEach((piece) => out.push({ kind: 'local', piece }));
      const routed = this.cut(mine.no, getVal(q.sym, 'daddr'), this.deviceRoutes(name));
      routed.yes.forEach((piece) => out.push({ kind: 'forward', piece, oif: constVal(Number(dev)) }));
      routed.no.forEach((piece) => out.push({ kind: 'unreachable', piece }));
    }
  }

  /** The piece split by its input device: one piece per device class it may arrive on. */
  private byInputDevice(p: Piece): [bigint, Piece][] {
    const iif = p.sym.iif;
    if (iif.k === 'const') return [[iif.v, p]];
    return [...termsByValue(this.space, p.terms, iif.slot)].map(([dev, terms]) => [dev, withTerms(p, terms)]);
  }

  /** Destinations some route of the host model sends out of `device` (connected or declared). */
  private deviceRoutes(device: string): IntervalSet {
    const host = this.routing.sim.model;
    const fam = this.routing.family;
    const prefixes: IntervalSet[] = [];
    for (const i of host?.interfaces ?? []) {
      if (i.device !== device) continue;
      for (const a of i.addresses) if (a.family === fam) prefixes.push([prefixToInterval({ family: fam, addr: a.addr & prefixMask(fam, a.prefixLen), len: a.prefixLen })]);
    }
    for (const route of host?.routes ?? []) if (route.family === fam && route.device === device) prefixes.push([prefixToInterval(route.dest)]);
    return prefixes.reduce<IntervalSet>((acc, x) => union(acc, x), []);
  }

  /** Arriving on lo (by class, or looped back). */
  private isLo(p: Piece): boolean {
    return p.cls.lo || (p.sym.iif.k === 'const' && p.sym.iif.v === BigInt(this.space.ifaces.classOf('lo')));
  }

  /** A multicast destination: delivered if the input device joined the group (always without a host model). */
  private multicast(ps: readonly Piece[], out: InputDecision[]): void {
    const r = this.routing;
    for (const p of ps) {
      if (!r.hasHost) {
        out.push({ kind: 'local', piece: p });
        continue;
      }
      for (const [dev, q] of this.byInputDevice(p)) {
        const s = this.cut([q], getVal(q.sym, 'daddr'), this.groupsOf(this.space.ifaces.nameOf(Number(dev))));
        s.yes.forEach((piece) => out.push({ kind: 'local', piece }));
        s.no.forEach((piece) => out.push({ kind: 'martian', piece }));
      }
    }
  }

  /** IPv6 packets ip6_rcv_core drops before PREROUTING (Host.ipv6HeaderDrop); the rest go on. */
  /**
   * ip6_finish_output2 for local pieces leaving by a device other than lo: a group of scope 0
   * or 1 is discarded there, after POSTROUTING (Host.ipv6OutputScopeDrop).
   */
  outputScope(pieces: readonly Piece[]): { ok: Piece[]; dropped: Piece[] } {
    if (this.routing.family !== 'ipv6') return { ok: [...pieces], dropped: [] };
    const s = this.split(pieces, constVal(0), V6_GROUPS_SCOPE_0_1, (p) => getVal(p.sym, 'daddr'));
    return { ok: s.no, dropped: s.yes };
  }

  headerCheck(pieces: readonly Piece[]): { ok: Piece[]; dropped: Piece[] } {
    if (this.routing.family !== 'ipv6') return { ok: [...pieces], dropped: [] };
    const dropped: Piece[] = [];
    const ok: Piece[] = [];
    for (const p of pieces) {
      const saddr = getVal(p.sym, 'saddr');
      const daddr = getVal(p.sym, 'daddr');
      let rest: Piece[] = [p];
      const drop = (v: Val, set: IntervalSet) => {
        const x = this.cut(rest, v, set);
        dropped.push(...x.yes);
        rest = x.no;
      };
      if (!this.isLo(p)) {
        // Loopback addresses and interface-local multicast from the wire.
        drop(saddr, V6_LOOPBACK);
        drop(daddr, V6_LOOPBACK);
        drop(daddr, V6_SCOPE(1));
      }
      drop(daddr, V6_SCOPE(0));
      drop(saddr, V6_MULTICAST);
      ok.push(...rest);
    }
    return { ok, dropped };
  }

  /** ip_route_output for a locally generated piece: the device, or unreachable. */
  output(pieces: readonly Piece[]): { routed: { piece: Piece; oif: Val }[]; unreachable: Piece[] } {
    const r = this.routing;
    if (!r.hasHost) {
      // Loopback destinations always leave by lo; anything else by the device the environment picks.
      const devices = subtract(this.space.ifaces.nonEmpty(), this.space.ifaces.indicesOf(['lo']), this.space.top(IIF_SLOT));
      const domain = devices.length ? devices : this.space.ifaces.nonEmpty();
      const oif = this.space.extra({ kind: 'choice', key: CHOICE.oif, doc: 'output interface', domain });
      const routed: { piece: Piece; oif: Val }[] = [];
      for (const p of pieces) {
        const s = this.cut([p], getVal(p.sym, 'daddr'), r.outputLocal);
        for (const q of s.yes) routed.push({ piece: q, oif: constVal(this.space.ifaces.classOf('lo')) });
        for (const q of s.no) {
          const r2 = this.restrict(q, oif, domain);
          if (r2) routed.push({ piece: r2, oif: slotVal(oif) });
        }
      }
      return { routed, unreachable: [] };
    }
    const routed: { piece: Piece; oif: Val }[] = [];
    const unreachable: Piece[] = [];
    let rest: Piece[] = [];
    for (const p of pieces) {
      const s = this.cut([p], getVal(p.sym, 'daddr'), r.outputLocal);
      s.yes.forEach((piece) => routed.push({ piece, oif: constVal(this.space.ifaces.classOf('lo')) }));
      rest.push(...s.no);
    }
    if (r.family === 'ipv6') {
      // A group destination takes the ff00::/8 route of the first interface, and no route when
      // that interface has no IPv6 address (Host.routeOutput: source selection fails there).
      const first = r.sim.model?.interfaces[0];
      const usable = first !== undefined && first.addresses.some((a) => a.family === 'ipv6');
      const next: Piece[] = [];
      for (const p of rest) {
        const s = this.cut([p], getVal(p.sym, 'daddr'), V6_MULTICAST);
        if (usable) s.yes.forEach((piece) => routed.push({ piece, oif: constVal(this.space.ifaces.classOf(first.device)) }));
        else unreachable.push(...s.yes);
        next.push(...s.no);
      }
      rest = next;
    }
    if (r.family === 'ipv4' && r.broadcast.length) {
      // A broadcast destination leaves by the first address whose subnet holds it.
      const points = r.broadcast.flatMap(([lo, hi]) => Array.from({ length: Number(hi - lo + 1n) }, (_, i) => lo + BigInt(i)));
      for (const b of points) {
        const a = r.addresses.find((l) => l.prefixLen < 31 && ((l.addr ^ b) & prefixMask('ipv4', l.prefixLen)) === 0n);
        if (!a) continue;
        const next: Piece[] = [];
        for (const p of rest) {
          const s = this.cut([p], getVal(p.sym, 'daddr'), [[b, b]]);
          s.yes.forEach((piece) => routed.push({ piece, oif: constVal(this.space.ifaces.classOf(a.device)) }));
          next.push(...s.no);
        }
        rest = next;
      }
    }
    for (const route of r.routes) {
      if (rest.length === 0) break;
      const next: Piece[] = [];
      for (const p of rest) {
        const s = this.cut([p], getVal(p.sym, 'daddr'), route.region);
        s.yes.forEach((piece) => routed.push({ piece, oif: constVal(this.space.ifaces.classOf(route.device)) }));
        next.push(...s.no);
      }
      rest = next;
    }
    return { routed, unreachable: [...unreachable, ...rest] };
  }

  /**
   * Routing again after nat OUTPUT, for local pieces whose device so far is their `oif`, as the
   * simulator's Host.rerouteOutput (and concrete/interp.ts) do it: a destination still `dst0`
   * keeps that device; a changed one that is an IPv6 group stays on it (no route from lo), an
   * IPv6 link-local one takes that device's own routes, an IPv4 group or limited broadcast
   * leaves by the device owning the source (127.0.0.1: lo; a source not ours: no route) unless
   * the source is zero, broadcast or a group; the rest is routed afresh.
   */
  reroute(pieces: readonly Piece[], dst0: Val): { routed: { piece: Piece; oif: Val }[]; unreachable: Piece[] } {
    const r = this.routing;
    if (!r.hasHost) return this.output(pieces);
    const routed: { piece: Piece; oif: Val }[] = [];
    const unreachable: Piece[] = [];
    const s = this.splitEqual(pieces, (p) => getVal(p.sym, 'daddr'), () => dst0);
    for (const piece of s.eq) routed.push({ piece, oif: piece.sym.oif });
    const dst = (p: Piece) => getVal(p.sym, 'daddr');
    let afresh: Piece[] = [];
    if (r.family === 'ipv6') {
      const group = this.split(s.ne, constVal(0), V6_MULTICAST, dst);
      const lo = BigInt(this.space.ifaces.classOf('lo'));
      for (const p of group.yes) {
        const onLo = this.split([p], constVal(0), [[lo, lo]], (q) => q.sym.oif);
        unreachable.push(...onLo.yes);
        for (const q of onLo.no) routed.push({ piece: q, oif: q.sym.oif });
      }
      const ll = this.split(group.no, constVal(0), V6_LINK_LOCAL, dst);
      for (const p of ll.yes) {
        if (p.sym.oif.k !== 'const') throw new Inexact('a link-local destination rerouted from a device not known here', p.sym.oif.k === 'slot' ? p.sym.oif.slot : undefined);
        const own = this.split([p], constVal(0), this.deviceRoutes(this.space.ifaces.nameOf(Number(p.sym.oif.v))), dst);
        for (const q of own.yes) routed.push({ piece: q, oif: q.sym.oif });
        unreachable.push(...own.no);
      }
      afresh = ll.no;
    } else {
      const special = this.split(s.ne, constVal(0), union(V4.multicast, V4.limitedBroadcast), dst);
      const src = (p: Piece) => getVal(p.sym, 'saddr');
      const plain = this.split(special.yes, constVal(0), normalize([[0n, 0n], ...V4.limitedBroadcast, ...V4.multicast, ...r.broadcast]), src);
      let rest = plain.no;
      const owners: [bigint, string][] = [[0x7f000001n, 'lo'], ...r.addresses.map((a) => [a.addr, a.device] as [bigint, string])];
      for (const [a, device] of owners) {
        const o = this.split(rest, constVal(0), [[a, a]], src);
        for (const q of o.yes) routed.push({ piece: q, oif: constVal(this.space.ifaces.classOf(device)) });
        rest = o.no;
      }
      unreachable.push(...rest);
      afresh = [...special.no, ...plain.yes];
    }
    const again = this.output(afresh);
    return { routed: [...routed, ...again.routed], unreachable: [...unreachable, ...again.unreachable] };
  }

  /**
   * Splits pieces by whether two values are equal. A constant against a slot is a box
   * condition; two slots are related through a relation slot of the space (see ExtraSlot).
   */
  splitEqual(pieces: readonly Piece[], av: (p: Piece) => Val, bv: (p: Piece) => Val): { eq: Piece[]; ne: Piece[] } {
    const eq: Piece[] = [];
    const ne: Piece[] = [];
    for (const p of pieces) {
      const e: Term[] = [];
      const n: Term[] = [];
      for (const t of p.terms) {
        const s = equalParts(this.space, t.box, av(p), bv(p));
        for (const b of s.eq) {
          const nt = narrow(this.space, t, b);
          if (nt) e.push(nt);
        }
        for (const b of s.ne) {
          const nt = narrow(this.space, t, b);
          if (nt) n.push(nt);
        }
      }
      if (e.length) eq.push(withTerms(p, e));
      if (n.length) ne.push(withTerms(p, n));
    }
    return { eq, ne };
  }

  /** The piece with one slot restricted to a set (undefined when nothing is left). */
  restrict(p: Piece, slot: number, set: IntervalSet): Piece | undefined {
    const terms: Term[] = [];
    for (const t of p.terms) {
      const r = this.space.restrict(t.box, slot, set);
      const nt = r && narrow(this.space, t, r);
      if (nt) terms.push(nt);
    }
    return terms.length ? withTerms(p, terms) : undefined;
  }

  /** Splits pieces by a value set (each piece's own value when `of` is given). */
  split(pieces: readonly Piece[], v: Val, set: IntervalSet, of?: (p: Piece) => Val): { yes: Piece[]; no: Piece[] } {
    if (!of) return this.cut(pieces, v, set);
    const yes: Piece[] = [];
    const no: Piece[] = [];
    for (const p of pieces) {
      const s = this.cut([p], of(p), set);
      yes.push(...s.yes);
      no.push(...s.no);
    }
    return { yes, no };
  }
}
