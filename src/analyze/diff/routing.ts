import { CHOICE } from '../concrete/interp.js';
import type { RoutingView } from '../model/routing.js';
import { type IntervalSet, normalize, union } from '../../util/intervals.js';
import { familyMax, prefixMask } from '../../util/ip.js';
import type { Box, Space } from './space.js';
import { equalParts } from './equal.js';
import { type Piece, type Val, constVal, getVal, slotVal, withBoxes } from './sym.js';

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
const V6_LOOPBACK: IntervalSet = [[1n, 1n]];

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
      const shifted = v.off === 0n ? set : set.map(([lo, hi]) => [lo - v.off, hi - v.off] as const).filter(([, hi]) => hi >= 0n);
      const s = normalize(shifted.map(([lo, hi]) => [lo < 0n ? 0n : lo, hi] as const));
      const y: Box[] = [];
      const n: Box[] = [];
      for (const b of p.boxes) {
        const x = this.space.split(b, v.slot, s);
        y.push(...x.yes);
        n.push(...x.no);
      }
      if (y.length) yes.push(withBoxes(p, y));
      if (n.length) no.push(withBoxes(p, n));
    }
    return { yes, no };
  }

  /** ip_route_input for pieces at the end of PREROUTING. */
  input(pieces: readonly Piece[]): InputDecision[] {
    const out: InputDecision[] = [];
    const r = this.routing;
    const martian = (ps: Piece[]) => ps.forEach((piece) => out.push({ kind: 'martian', piece }));
    let rest: Piece[] = [...pieces];
    const src = (p: Piece) => getVal(p.sym, 'saddr');
    const dst = (p: Piece) => getVal(p.sym, 'daddr');
    // Conditions read the piece's own values; pieces of one call may differ (NAT), so split one at a time.
    const step = (ps: Piece[], which: 'src' | 'dst', set: IntervalSet, onlyNotLo = false) => {
      const yes: Piece[] = [];
      const no: Piece[] = [];
      for (const p of ps) {
        if (onlyNotLo && p.cls.lo) {
          no.push(p);
          continue;
        }
        const s = this.cut([p], which === 'src' ? src(p) : dst(p), set);
        yes.push(...s.yes);
        no.push(...s.no);
      }
      return { yes, no };
    };
    let sane: Piece[];
    if (r.family === 'ipv4') {
      let s = step(rest, 'src', union(V4.multicast, V4.limitedBroadcast));
      martian(s.yes);
      s = step(s.no, 'src', V4.loopback, true);
      martian(s.yes);
      s = step(s.no, 'dst', V4.zeroNet);
      martian(s.yes);
      s = step(s.no, 'dst', V4.loopback, true);
      martian(s.yes);
      // Broadcast and multicast destinations skip the remaining source checks.
      const cast = step(s.no, 'dst', union(union(V4.limitedBroadcast, r.broadcast), V4.multicast));
      s = step(cast.no, 'src', V4.zeroNet);
      martian(s.yes);
      sane = [...cast.yes, ...s.no];
    } else {
      let s = step(rest, 'src', V6_MULTICAST);
      martian(s.yes);
      s = step(s.no, 'src', V6_LOOPBACK, true);
      martian(s.yes);
      s = step(s.no, 'dst', V6_LOOPBACK, true);
      martian(s.yes);
      sane = s.no;
    }
    // Broadcast and multicast destinations are delivered here, host model or not.
    const castHere = step(sane, 'dst', union(r.broadcast, r.multicast));
    castHere.yes.forEach((piece) => out.push({ kind: 'local', piece }));
    sane = castHere.no;
    if (!r.hasHost) {
      const route = this.space.extra({ kind: 'choice', key: CHOICE.route, doc: 'routing: 0 this host, 1 forwarded', domain: [[0n, 1n]] });
      const oif = this.space.extra({ kind: 'choice', key: CHOICE.oif, doc: 'output interface', domain: this.space.ifaces.nonEmpty() });
      const s = this.cut(sane, slotVal(route), [[0n, 0n]]);
      // Delivered here means the destination is ours; a source equal to it is then ours too.
      let here = s.yes;
      if (r.family === 'ipv4') {
        const same = this.splitEqual(
          here.filter((p) => !p.cls.lo),
          (p) => getVal(p.sym, 'saddr'),
          (p) => getVal(p.sym, 'daddr'),
        );
        martian(same.eq);
        here = [...here.filter((p) => p.cls.lo), ...same.ne];
      }
      for (const piece of here) out.push({ kind: 'local', piece });
      for (const p of s.no) {
        const q = this.restrict(p, oif, this.space.ifaces.nonEmpty());
        if (q) out.push({ kind: 'forward', piece: q, oif: slotVal(oif) });
      }
      return out;
    }
    rest = sane;
    if (r.family === 'ipv4') {
      const cast = step(rest, 'dst', union(r.broadcast, r.multicast));
      cast.yes.forEach((piece) => out.push({ kind: 'local', piece }));
      let s = step(cast.no, 'src', V4.zeroNet);
      martian(s.yes);
      s = step(s.no, 'src', r.local, true);
      martian(s.yes);
      rest = s.no;
    } else {
      const mc = step(rest, 'dst', r.multicast);
      mc.yes.forEach((piece) => out.push({ kind: 'local', piece }));
      rest = mc.no;
    }
    const loc = step(rest, 'dst', r.local);
    loc.yes.forEach((piece) => out.push({ kind: 'local', piece }));
    rest = loc.no;
    for (const route of r.routes) {
      if (rest.length === 0) break;
      const s = step(rest, 'dst', route.region);
      const oif = constVal(this.space.ifaces.classOf(route.device));
      s.yes.forEach((piece) => out.push({ kind: 'forward', piece, oif }));
      rest = s.no;
    }
    rest.forEach((piece) => out.push({ kind: 'unreachable', piece }));
    return out;
  }

  /** ip_route_output for a locally generated piece: the device, or unreachable. */
  output(pieces: readonly Piece[]): { routed: { piece: Piece; oif: Val }[]; unreachable: Piece[] } {
    const r = this.routing;
    if (!r.hasHost) {
      // Loopback destinations always leave by lo; anything else by the device the environment picks.
      const oif = this.space.extra({ kind: 'choice', key: CHOICE.oif, doc: 'output interface', domain: this.space.ifaces.nonEmpty() });
      const routed: { piece: Piece; oif: Val }[] = [];
      for (const p of pieces) {
        const s = this.cut([p], getVal(p.sym, 'daddr'), r.loopback);
        for (const q of s.yes) routed.push({ piece: q, oif: constVal(this.space.ifaces.classOf('lo')) });
        for (const q of s.no) {
          const r2 = this.restrict(q, oif, this.space.ifaces.nonEmpty());
          if (r2) routed.push({ piece: r2, oif: slotVal(oif) });
        }
      }
      return { routed, unreachable: [] };
    }
    const routed: { piece: Piece; oif: Val }[] = [];
    let rest: Piece[] = [];
    for (const p of pieces) {
      const s = this.cut([p], getVal(p.sym, 'daddr'), r.local);
      s.yes.forEach((piece) => routed.push({ piece, oif: constVal(this.space.ifaces.classOf('lo')) }));
      rest.push(...s.no);
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
    return { routed, unreachable: rest };
  }

  /**
   * Splits pieces by whether two values are equal. A constant against a slot is a box
   * condition; two slots are related through a relation slot of the space (see ExtraSlot).
   */
  splitEqual(pieces: readonly Piece[], av: (p: Piece) => Val, bv: (p: Piece) => Val): { eq: Piece[]; ne: Piece[] } {
    const eq: Piece[] = [];
    const ne: Piece[] = [];
    for (const p of pieces) {
      const e: Box[] = [];
      const n: Box[] = [];
      for (const b of p.boxes) {
        const s = equalParts(this.space, b, av(p), bv(p));
        e.push(...s.eq);
        n.push(...s.ne);
      }
      if (e.length) eq.push(withBoxes(p, e));
      if (n.length) ne.push(withBoxes(p, n));
    }
    return { eq, ne };
  }

  /** The piece with one slot restricted to a set (undefined when nothing is left). */
  restrict(p: Piece, slot: number, set: IntervalSet): Piece | undefined {
    const boxes = p.boxes.flatMap((b) => {
      const r = this.space.restrict(b, slot, set);
      return r ? [r] : [];
    });
    return boxes.length ? withBoxes(p, boxes) : undefined;
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
