import { type IntervalSet, union } from '../../util/intervals.js';
import type { DiffContext } from './context.js';
import { type Box, type Holes, type Term, addHoles, ingressClasses, narrow, term } from './space.js';
import { type Piece, initialSym } from './sym.js';

/**
 * Where walks start: the arriving packets, one piece per packet class, cut down to a region
 * (the part of header space where the two sides can differ).
 */

/** Devices a packet may arrive on: the hosts' devices (and lo), or any name without a host model. */
export function ingressDevices(ctx: DiffContext): IntervalSet {
  const ifaces = ctx.space.ifaces;
  const of = (m: DiffContext['a']['model']) => (m.routing.hasHost ? ifaces.indicesOf(m.routing.devices) : ifaces.nonEmpty());
  return union(of(ctx.a.model), of(ctx.b.model));
}

export function startPieces(ctx: DiffContext, region?: readonly Box[]): Piece[] {
  const out: Piece[] = [];
  for (const { cls, box } of ingressClasses(ctx.space, ingressDevices(ctx), ctx.connections)) {
    const boxes = region ? ctx.space.meet([box], region) : [box];
    // Overlapping region boxes made disjoint lazily: each is a term minus the boxes before it
    // (cutting them into disjoint boxes fragments a region of many overlapping boxes).
    const terms: Term[] = [];
    let holes: Holes | undefined;
    for (const b of boxes) {
      const t = holes ? narrow(ctx.space, term(b, holes), b) : term(b);
      if (t) terms.push(t);
      holes = addHoles(holes, [b]);
    }
    if (terms.length) out.push({ terms, sym: initialSym(cls), cls });
  }
  return out;
}
