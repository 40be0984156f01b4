import { CT_STATE, PORT_PROTOS, PROTO } from '../../ir/fields.js';
import { type IntervalSet, complement, contains, intersect, isSubset, normalize, subtract } from '../../util/intervals.js';
import type { Family } from '../../util/ip.js';
import { FIELDS, FIELD_SLOT, IIF_SLOT, SLOT_COUNT, absentValue, fieldMax, icmpProto, presenceOf, slotTop } from '../model/fields.js';
import type { IfaceDomain } from '../model/ifaces.js';
import type { ConnectionDomain } from './connections.js';

/**
 * The header space the diff works in: one slot per packet field as it arrives (the analyzer's
 * box layout: every numeric field, then iif and oif), followed by slots for everything the
 * outcome may depend on that is not a header — the environment's choices (routing without a
 * host model, the address a NAT range picks) and the answers of unmodelled matches. Both sides
 * of a diff share one space, so "the same packet" means the same point on both sides.
 *
 * A cube is a Box: one interval set per slot, `undefined` for "any value". A region is a list
 * of disjoint boxes. Extra slots are added while walking (the first time a rule needs one);
 * boxes made earlier are shorter, and a missing slot reads as `undefined`.
 */
export type Slot = IntervalSet | undefined;
export type Box = readonly Slot[];

export type ExtraSlot =
  /** A value the environment picks (see concrete/interp.ts CHOICE), within `domain`. */
  | { readonly kind: 'choice'; readonly key: string; readonly doc: string; readonly domain: IntervalSet }
  /** The answer of an unmodelled test: 1 it matches, 0 it does not. */
  | { readonly kind: 'opaque'; readonly key: string; readonly reason: string }
  /**
   * Whether two slots hold the same value (1) or not (0): a condition no box can state
   * (the kernel drops a packet from one of our addresses, and without a host model that is
   * "source equals destination"). Points honour it; a cube with it prints it.
   */
  | { readonly kind: 'relation'; readonly key: string; readonly a: number; readonly b: number };

/** Thrown when a constraint or rewrite has no exact box form here; the caller hands the region to Z3. */
export class Inexact extends Error {
  constructor(
    readonly reason: string,
    /** The slot whose value, once known, makes it exact (a focused walk pins it). */
    readonly slot?: number,
  ) {
    super(reason);
    this.name = 'Inexact';
  }
}

/** Thrown when a walk splits into more pieces than its budget allows. */
export class OverBudget extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'OverBudget';
  }
}

export class Space {
  readonly extras: ExtraSlot[] = [];
  private readonly byKey = new Map<string, number>();
  private readonly baseTops: readonly bigint[];

  constructor(
    readonly family: Family,
    readonly ifaces: IfaceDomain,
  ) {
    this.baseTops = Array.from({ length: SLOT_COUNT }, (_, i) => slotTop(i, family, ifaces.size));
  }

  get size(): number {
    return SLOT_COUNT + this.extras.length;
  }

  top(slot: number): bigint {
    if (slot < SLOT_COUNT) return this.baseTops[slot];
    const x = this.extras[slot - SLOT_COUNT];
    return x.kind === 'choice' ? x.domain[x.domain.length - 1][1] : 1n;
  }

  /** The slot of an extra dimension, created on first use. */
  extra(x: ExtraSlot): number {
    const key = `${x.kind}:${x.key}`;
    const known = this.byKey.get(key);
    if (known !== undefined) return known;
    const slot = SLOT_COUNT + this.extras.length;
    this.extras.push(x);
    this.byKey.set(key, slot);
    return slot;
  }

  extraAt(slot: number): ExtraSlot | undefined {
    return slot >= SLOT_COUNT ? this.extras[slot - SLOT_COUNT] : undefined;
  }

  slotOfExtra(kind: ExtraSlot['kind'], key: string): number | undefined {
    return this.byKey.get(`${kind}:${key}`);
  }

  full(): Box {
    return [];
  }

  values(b: Box, slot: number): IntervalSet {
    return b[slot] ?? [[0n, this.top(slot)]];
  }

  with(b: Box, slot: number, set: IntervalSet): Box {
    const out = b.slice();
    while (out.length < slot) out.push(undefined);
    out[slot] = set;
    return out;
  }

  /** b with one slot intersected with `set`; undefined when that empties it. */
  restrict(b: Box, slot: number, set: IntervalSet): Box | undefined {
    const cur = b[slot];
    const next = cur === undefined ? clip(set, this.top(slot)) : intersect(cur, set);
    if (next.length === 0) return undefined;
    if (cur !== undefined && next.length === cur.length && next.every((iv, i) => iv[0] === cur[i][0] && iv[1] === cur[i][1])) return b;
    return this.with(b, slot, next);
  }

  /** b split by one slot: the part with values in `set` and the part without. */
  split(b: Box, slot: number, set: IntervalSet): { yes: Box[]; no: Box[] } {
    const cur = this.values(b, slot);
    const inside = intersect(cur, set);
    if (inside.length === 0) return { yes: [], no: [b] };
    const outside = subtract(cur, set, this.top(slot));
    if (outside.length === 0) return { yes: [b], no: [] };
    return { yes: [this.with(b, slot, inside)], no: [this.with(b, slot, outside)] };
  }

  intersect(a: Box, b: Box): Box | undefined {
    const n = Math.max(a.length, b.length);
    const out: Slot[] = new Array<Slot>(n);
    for (let i = 0; i < n; i++) {
      const x = a[i];
      const y = b[i];
      if (x === undefined) out[i] = y;
      else if (y === undefined) out[i] = x;
      else {
        const s = intersect(x, y);
        if (s.length === 0) return undefined;
        out[i] = s;
      }
    }
    return out;
  }

  overlaps(a: Box, b: Box): boolean {
    const n = Math.min(a.length, b.length);
    for (let i = 0; i < n; i++) {
      const x = a[i];
      const y = b[i];
      if (x !== undefined && y !== undefined && !setsOverlap(x, y)) return false;
    }
    return true;
  }

  /** a − b as disjoint boxes. */
  subtract(a: Box, b: Box): Box[] {
    if (a === b || !this.overlaps(a, b)) return a === b ? [] : [a];
    const out: Box[] = [];
    const n = Math.max(a.length, b.length);
    const rest: Slot[] = a.slice();
    while (rest.length < n) rest.push(undefined);
    for (let i = 0; i < b.length; i++) {
      const y = b[i];
      if (y === undefined) continue;
      const x = rest[i];
      if (x !== undefined && isSubset(x, y)) continue; // nothing of a lies outside b here
      const xs = x ?? [[0n, this.top(i)] as const];
      const outside = subtract(xs, y, this.top(i));
      if (outside.length) {
        const piece = rest.slice();
        piece[i] = outside;
        out.push(piece);
      }
      rest[i] = intersect(xs, y);
    }
    return out;
  }

  /** a ⊆ b. */
  contains(b: Box, a: Box): boolean {
    for (let i = 0; i < b.length; i++) {
      const y = b[i];
      if (y === undefined) continue;
      if (!isSubset(this.values(a, i), y)) return false;
    }
    return true;
  }

  /** Region minus region (both lists of disjoint boxes). */
  minus(region: readonly Box[], cut: readonly Box[]): Box[] {
    let rest: Box[] = [...region];
    for (const c of cut) {
      if (rest.length === 0) break;
      rest = rest.flatMap((r) => this.subtract(r, c));
    }
    return rest;
  }

  /** Region ∩ region. */
  meet(a: readonly Box[], b: readonly Box[]): Box[] {
    const out: Box[] = [];
    for (const x of a) {
      for (const y of b) {
        const z = this.intersect(x, y);
        if (z) out.push(z);
      }
    }
    return out;
  }

  /** A list of possibly overlapping boxes as disjoint boxes covering the same points. */
  disjoint(boxes: readonly Box[]): Box[] {
    const out: Box[] = [];
    for (const b of boxes) {
      let pieces: Box[] = [b];
      for (const o of out) {
        if (pieces.length === 0) break;
        pieces = pieces.flatMap((p) => this.subtract(p, o));
      }
      out.push(...pieces);
    }
    return out;
  }

  /** Smallest box holding every box of the list. */
  hull(boxes: readonly Box[]): Box {
    if (boxes.length === 0) return [];
    const n = Math.max(...boxes.map((b) => b.length));
    const out: Slot[] = new Array<Slot>(n);
    for (let i = 0; i < n; i++) {
      let acc: IntervalSet | undefined = [];
      for (const b of boxes) {
        const s = b[i];
        if (s === undefined) {
          acc = undefined;
          break;
        }
        acc = normalize([...acc, ...s]);
      }
      out[i] = acc;
    }
    return out;
  }

  complementSet(slot: number, set: IntervalSet): IntervalSet {
    return complement(set, this.top(slot));
  }
}

function clip(set: IntervalSet, top: bigint): IntervalSet {
  const last = set[set.length - 1];
  if (!last || last[1] <= top) return set;
  return intersect(set, [[0n, top]]);
}

/** One concrete point of the space: a value per slot. */
export type Point = readonly bigint[];

/**
 * A point over the whole space: slots made after the point was taken (a relation of two
 * fields a comparison needed, a choice first met on a walk) get their value — the relation's
 * truth at the point, a choice's first value, as the interpreter's defaults.
 */
export function extendPoint(space: Space, p: Point): Point {
  if (p.length >= space.size) return p;
  const out = [...p];
  for (let slot = p.length; slot < space.size; slot++) {
    const x = space.extraAt(slot);
    out[slot] = x?.kind === 'relation' ? (out[x.a] === out[x.b] ? 1n : 0n) : x?.kind === 'choice' ? x.domain[0][0] : 0n;
  }
  return out;
}

/** Terms grouped by each value a slot takes in them (for slots of few values: devices, small fields). */
export function termsByValue(space: Space, terms: readonly Term[], slot: number): Map<bigint, Term[]> {
  const out = new Map<bigint, Term[]>();
  for (const t of terms) {
    for (const [lo, hi] of space.values(t.box, slot)) {
      for (let x = lo; x <= hi; x++) {
        const nt = narrow(space, t, space.with(t.box, slot, [[x, x]]));
        if (nt) out.set(x, [...(out.get(x) ?? []), nt]);
      }
    }
  }
  return out;
}

export function boxHas(space: Space, box: Box, p: Point): boolean {
  void space;
  for (let i = 0; i < box.length; i++) {
    const s = box[i];
    if (s !== undefined && !contains(s, p[i] ?? 0n)) return false;
  }
  return true;
}

export function setsOverlap(a: IntervalSet, b: IntervalSet): boolean {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i][1] < b[j][0]) i++;
    else if (b[j][1] < a[i][0]) j++;
    else return true;
  }
  return false;
}

// ---- the packets that can arrive -----------------------------------------------------

/** Protocol classes: which layer-4 fields a packet has. */
export type L4Class = 'tcp' | 'ports' | 'icmp' | 'other' | 'fragment';
/** Conntrack classes, once conntrack has looked the packet up: a new connection, or not. */
export type CtClass = 'new' | 'old';

/**
 * What is uniform over a piece of header space: where it comes from, and — once a test or a
 * rewrite needed to tell — its protocol class and whether it starts a connection. Unknown
 * classes are split lazily, where it matters (see walk.ts), so rules that never look at the
 * protocol do not multiply the work by protocol.
 */
export interface PacketClass {
  readonly local: boolean;
  /** Arrives on the loopback device (no Ethernet header, own martian rules). */
  readonly lo: boolean;
  readonly l4?: L4Class;
  readonly ct?: CtClass;
}

const single = (v: bigint | number): IntervalSet => [[BigInt(v), BigInt(v)]];

export function l4Has(l4: L4Class, what: 'ports' | 'tcp' | 'icmp'): boolean {
  if (what === 'ports') return l4 === 'tcp' || l4 === 'ports';
  return l4 === what;
}

/** Protocol numbers (with fragment 0) of packets that have a field of this presence kind. */
export function protosWith(family: Family, what: 'ports' | 'tcp' | 'icmp'): IntervalSet {
  if (what === 'tcp') return single(PROTO.tcp);
  if (what === 'icmp') return single(icmpProto(family));
  return normalize(PORT_PROTOS.map((p) => [BigInt(p), BigInt(p)] as const));
}

/**
 * The arriving packets as one box per ingress: from a device (not lo), from lo, from a local
 * socket. Fields that exist only on some packets (ports, ct tuple, helper) span their real
 * values: where a packet lacks the field, its value is ignored (tests check presence). Fields
 * an ingress never has (a MAC on lo or from a socket, a socket owner from a device) are pinned
 * to ABSENT; `mark` arrives 0; `dscp` and `pkttype` are derived (their slots stay pinned).
 */
export function ingressClasses(space: Space, ingressDevices: IntervalSet, connections?: ConnectionDomain): { cls: PacketClass; box: Box }[] {
  const fam = space.family;
  const ifaces = space.ifaces;
  const lo = ifaces.indicesOf(['lo']);
  const absentOf = (f: (typeof FIELDS)[number]) => single(absentValue(f, fam));
  const realOf = (f: (typeof FIELDS)[number]) => [[0n, fieldMax(f, fam)]] as IntervalSet;
  const out: { cls: PacketClass; box: Box }[] = [];
  const ingresses: { local: boolean; lo: boolean; iif: IntervalSet }[] = [
    { local: false, lo: false, iif: subtract(ingressDevices, lo, space.top(IIF_SLOT)) },
    { local: false, lo: true, iif: intersect(ingressDevices, lo) },
    { local: true, lo: false, iif: single(0) },
  ];
  for (const ing of ingresses) {
    if (ing.iif.length === 0) continue;
    let b: Box = space.full();
    const set = (f: (typeof FIELDS)[number], s: IntervalSet) => (b = space.with(b, FIELD_SLOT[f], s));
    b = space.with(b, IIF_SLOT, ing.iif);
    set('mark', single(0));
    set('dscp', single(0));
    set('pkttype', single(0));
    set('length', [[fam === 'ipv4' ? 20n : 40n, 0xffffn]]);
    for (const f of FIELDS) {
      const p = presenceOf(f);
      if (p === 'ports' || p === 'tcp' || p === 'icmp' || p === 'ct' || p === 'ctports') set(f, realOf(f));
      else if (p === 'mac') set(f, ing.local || ing.lo ? absentOf(f) : realOf(f));
      else if (p === 'socket') set(f, ing.local ? realOf(f) : absentOf(f));
    }
    set('ctstate', normalize([CT_STATE.NEW, CT_STATE.ESTABLISHED, CT_STATE.RELATED, CT_STATE.INVALID].map((v) => [BigInt(v), BigInt(v)] as const)));
    // Existing connections are ones the rulesets can make (connections.ts).
    if (connections) {
      if (connections.ctmark) set('ctmark', connections.ctmark);
      set('ctstatus', connections.ctstatus);
      set('cthelper', connections.cthelper);
    }
    out.push({ cls: { local: ing.local, lo: ing.lo }, box: b });
  }
  return out;
}

/** Slots a cube pins because of where it comes from (absent fields, arrival mark…): not worth printing. */
export function classPinned(space: Space, cls: PacketClass, slot: number, set: IntervalSet): boolean {
  if (slot >= SLOT_COUNT) return false;
  if (slot === IIF_SLOT) return cls.local;
  const f = FIELDS[slot];
  if (!f) return true; // oif
  if (f === 'mark' || f === 'dscp' || f === 'pkttype') return true;
  if (f === 'length') return set.length === 1 && set[0][0] === (space.family === 'ipv4' ? 20n : 40n) && set[0][1] === 0xffffn;
  const abs = absentValue(f, space.family);
  return set.length === 1 && set[0][0] === abs && set[0][1] === abs;
}

/**
 * A cube with the slots its class pins (absent fields, arrival mark, derived fields) and
 * "every real value" of class-dependent fields set free, so that cubes of different
 * protocols or states can merge (`proto { tcp, udp } dport 53`). A freed slot still means
 * the same packets: a field the packet does not have reads as ABSENT whatever the slot says.
 */
export function freeClassSlots(space: Space, box: Box): Box {
  const fam = space.family;
  const out = box.slice();
  for (let i = 0; i < FIELDS.length && i < out.length; i++) {
    const s = out[i];
    if (!s) continue;
    const f = FIELDS[i];
    if (f === 'mark' || f === 'dscp' || f === 'pkttype') {
      out[i] = undefined;
      continue;
    }
    if (f === 'length' && s.length === 1 && s[0][0] === (fam === 'ipv4' ? 20n : 40n) && s[0][1] === 0xffffn) {
      out[i] = undefined;
      continue;
    }
    if (presenceOf(f) === 'always') continue;
    const abs = absentValue(f, fam);
    const onlyAbsent = s.length === 1 && s[0][0] === abs && s[0][1] === abs;
    const allReal = s.length === 1 && s[0][0] === 0n && s[0][1] >= fieldMax(f, fam);
    if (onlyAbsent || allReal) out[i] = undefined;
  }
  return out;
}

// ---- terms: a box minus holes (lazy subtraction) ------------------------------------------

/** Boxes taken out of a term, newest first (a list shared between terms). */
export interface Holes {
  readonly box: Box;
  readonly next?: Holes;
}

/**
 * A box minus the union of some holes, kept unsubtracted: a rule's "did not match" part is the
 * same box with one more hole instead of several boxes, so pieces do not fragment rule after
 * rule. Terms are subtracted out (materialize) only where a result is reported.
 */
export interface Term {
  readonly box: Box;
  readonly holes?: Holes;
  /** Which leaf of the other side's walk the packets come from (see family.ts), kept by every split. */
  readonly tag?: number;
}

export function term(box: Box, holes?: Holes, tag?: number): Term {
  const t: { box: Box; holes?: Holes; tag?: number } = { box };
  if (holes) t.holes = holes;
  if (tag !== undefined) t.tag = tag;
  return t;
}

export function addHoles(holes: Holes | undefined, boxes: readonly Box[]): Holes | undefined {
  let h = holes;
  for (const b of boxes) h = { box: b, next: h };
  return h;
}

export function termHas(space: Space, t: Term, p: Point): boolean {
  if (!boxHas(space, t.box, p)) return false;
  for (let h = t.holes; h; h = h.next) if (boxHas(space, h.box, p)) return false;
  return true;
}

/** Quick emptiness: the box lies inside one hole (a union of holes is not checked). */
export function surelyEmpty(space: Space, t: Term): boolean {
  for (let h = t.holes; h; h = h.next) if (space.contains(h.box, t.box)) return true;
  return false;
}

/**
 * Holes a narrowing looks at: the newest ones (the rules just before, which most often hold or
 * miss the new box). Older holes stay on the list unexamined: a hole that misses the box is
 * harmless, and looking at every hole of a long chain at every split made walks quadratic.
 */
const NARROW_LOOK = 24;

/**
 * The term narrowed to a sub-box: the newest holes that no longer meet it are dropped (keeps hole
 * lists short as pieces narrow). Undefined when one of them holds the whole box (then it is surely empty).
 */
export function narrow(space: Space, t: Term, box: Box): Term | undefined {
  if (box === t.box) return t;
  let kept: Box[] | undefined;
  let changed = false;
  let h = t.holes;
  for (let n = 0; h && n < NARROW_LOOK; h = h.next, n++) {
    if (!space.overlaps(h.box, box)) {
      changed = true;
      continue;
    }
    if (space.contains(h.box, box)) return undefined;
    (kept ??= []).push(h.box);
  }
  if (!changed) return term(box, t.holes, t.tag);
  let out = h;
  for (let i = (kept?.length ?? 0) - 1; i >= 0; i--) out = { box: kept![i], next: out };
  return term(box, out, t.tag);
}

/**
 * The term with every hole that misses its box dropped (narrow looks at the newest holes only,
 * so older ones pile up and keep equal terms from merging). Undefined when one hole holds the
 * whole box (an empty term, which would otherwise be walked on).
 */
export function tidy(space: Space, t: Term): Term | undefined {
  if (!t.holes) return t;
  // A term handed back through several chains is tidied once.
  const known = TIDY.get(t);
  if (known !== undefined) return known ?? undefined;
  const out = tidyNow(space, t);
  TIDY.set(t, out ?? null);
  if (out) TIDY.set(out, out);
  return out;
}

const TIDY = new WeakMap<Term, Term | null>();

function tidyNow(space: Space, t: Term): Term | undefined {
  // The list after the last hole that misses is kept as it is (shared with the terms it came
  // from, so their lists' hashes in sym.ts compact are reused); the holes before it are copied.
  const nodes: Holes[] = [];
  let lastMiss = -1;
  for (let h: Holes | undefined = t.holes; h; h = h.next) {
    if (!space.overlaps(h.box, t.box)) lastMiss = nodes.length;
    // Found empty on the way (a hole holds the whole box): no points, nothing to walk.
    else if (space.contains(h.box, t.box)) return undefined;
    nodes.push(h);
  }
  if (lastMiss < 0) return t;
  let out: Holes | undefined = nodes[lastMiss].next;
  for (let i = lastMiss - 1; i >= 0; i--) {
    const h = nodes[i];
    if (space.overlaps(h.box, t.box)) out = { box: h.box, next: out };
  }
  return term(t.box, out, t.tag);
}

/** The term's points as disjoint boxes (hole-overlapping parts subtracted). */
export function materialize(space: Space, t: Term): Box[] {
  let rest: Box[] = [t.box];
  for (let h = t.holes; h && rest.length; h = h.next) {
    const hb = h.box;
    const next: Box[] = [];
    for (const r of rest) {
      if (!space.overlaps(r, hb)) next.push(r);
      else for (const x of space.subtract(r, hb)) next.push(x);
    }
    rest = next;
  }
  return rest;
}

export function holesList(t: Term): Box[] {
  const out: Box[] = [];
  for (let h = t.holes; h; h = h.next) out.push(h.box);
  return out;
}
