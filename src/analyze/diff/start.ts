import { type IntervalSet, union } from '../../util/intervals.js';
import type { DiffContext } from './context.js';
import { type Box, ingressClasses, term } from './space.js';
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
    const boxes = ctx.space.disjoint(region ? ctx.space.meet([box], region) : [box]);
    if (boxes.length) out.push({ terms: boxes.map((b) => term(b)), sym: initialSym(cls), cls });
  }
  return out;
}
