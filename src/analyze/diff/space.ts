import { CT_STATE, PORT_PROTOS, PROTO } from '../../ir/fields.js';
import { type IntervalSet, complement, contains, intersect, isSubset, normalize, subtract } from '../../util/intervals.js';
import type { Family } from '../../util/ip.js';
import { FIELDS, FIELD_SLOT, IIF_SLOT, SLOT_COUNT, absentValue, fieldMax, icmpProto, presenceOf, slotTop } from '../model/fields.js';
import type { IfaceDomain } from '../model/ifaces.js';

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
    if (!this.overlaps(a, b)) return [a];
    const out: Box[] = [];
    let rest: Box = a;
    for (let i = 0; i < b.length; i++) {
      const y = b[i];
      if (y === undefined) continue;
      const x = this.values(rest, i);
      const outside = subtract(x, y, this.top(i));
      if (outside.length) out.push(this.with(rest, i, outside));
      const inside = intersect(x, y);
      if (inside.length === 0) return [...out];
      rest = this.with(rest, i, inside);
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
/** Conntrack classes of an arriving packet (the state conntrack will give it). */
export type CtClass = 'new' | 'tracked' | 'invalid';

/** What is uniform over a piece of header space: where it comes from and which fields exist. */
export interface PacketClass {
  readonly local: boolean;
  /** Arrives on the loopback device (no Ethernet header, own martian rules). */
  readonly lo: boolean;
  readonly l4: L4Class;
  readonly ct: CtClass;
}

const L4_CLASSES: readonly L4Class[] = ['tcp', 'ports', 'icmp', 'other', 'fragment'];
const CT_CLASSES: readonly CtClass[] = ['new', 'tracked', 'invalid'];
const single = (v: bigint | number): IntervalSet => [[BigInt(v), BigInt(v)]];

export function l4Has(l4: L4Class, what: 'ports' | 'tcp' | 'icmp'): boolean {
  if (what === 'ports') return l4 === 'tcp' || l4 === 'ports';
  return l4 === what;
}

/**
 * The arriving packets as one box per class. Fields a class does not have are pinned to the
 * field's ABSENT value, so cubes never spell out values that do not exist; `mark` arrives 0
 * and `dscp` is read from `tos` (its own slot stays pinned).
 */
export function ingressClasses(space: Space, ingressDevices: IntervalSet): { cls: PacketClass; box: Box }[] {
  const fam = space.family;
  const ifaces = space.ifaces;
  const lo = ifaces.indicesOf(['lo']);
  const absentOf = (f: (typeof FIELDS)[number]) => single(absentValue(f, fam));
  const realOf = (f: (typeof FIELDS)[number]) => [[0n, fieldMax(f, fam)]] as IntervalSet;
  const icmp = BigInt(icmpProto(fam));
  const portProtos = normalize(PORT_PROTOS.map((p) => [BigInt(p), BigInt(p)] as const));
  const out: { cls: PacketClass; box: Box }[] = [];
  const ingresses: { local: boolean; lo: boolean; iif: IntervalSet }[] = [
    { local: false, lo: false, iif: subtract(ingressDevices, lo, space.top(IIF_SLOT)) },
    { local: false, lo: true, iif: intersect(ingressDevices, lo) },
    { local: true, lo: false, iif: single(0) },
  ];
  for (const ing of ingresses) {
    if (ing.iif.length === 0) continue;
    for (const l4 of L4_CLASSES) {
      for (const ct of CT_CLASSES) {
        let b: Box = space.full();
        const set = (f: (typeof FIELDS)[number], s: IntervalSet) => (b = space.with(b, FIELD_SLOT[f], s));
        b = space.with(b, IIF_SLOT, ing.iif);
        set('mark', single(0));
        set('dscp', single(0));
        set('length', [[fam === 'ipv4' ? 20n : 40n, 0xffffn]]);
        switch (l4) {
          case 'tcp':
            set('proto', single(PROTO.tcp));
            break;
          case 'ports':
            set('proto', subtract(portProtos, single(PROTO.tcp), 255n));
            break;
          case 'icmp':
            set('proto', single(icmp));
            break;
          case 'other':
            set('proto', subtract([[0n, 255n]], normalize([...portProtos, [icmp, icmp]]), 255n));
            break;
          case 'fragment':
            break;
        }
        set('fragment', single(l4 === 'fragment' ? 1 : 0));
        for (const f of FIELDS) {
          const p = presenceOf(f);
          if (p === 'ports') set(f, l4Has(l4, 'ports') ? realOf(f) : absentOf(f));
          else if (p === 'tcp') set(f, l4 === 'tcp' ? realOf(f) : absentOf(f));
          else if (p === 'icmp') set(f, l4 === 'icmp' ? realOf(f) : absentOf(f));
          else if (p === 'ct') set(f, ct === 'tracked' ? realOf(f) : absentOf(f));
          else if (p === 'helper') {
            if (ct !== 'tracked') set(f, absentOf(f));
          } else if (p === 'mac') set(f, ing.local || ing.lo ? absentOf(f) : realOf(f));
          else if (p === 'socket') set(f, ing.local ? realOf(f) : absentOf(f));
        }
        set(
          'ctstate',
          ct === 'new' ? single(CT_STATE.NEW) : ct === 'invalid' ? single(CT_STATE.INVALID) : normalize([single(CT_STATE.ESTABLISHED)[0], single(CT_STATE.RELATED)[0]]),
        );
        out.push({ cls: { local: ing.local, lo: ing.lo, l4, ct }, box: b });
      }
    }
  }
  return out;
}

/** Slots a cube pins because of its class (absent fields, arrival mark…): not worth printing. */
export function classPinned(space: Space, cls: PacketClass, slot: number, set: IntervalSet): boolean {
  if (slot >= SLOT_COUNT) return false;
  if (slot === IIF_SLOT) return cls.local;
  const f = FIELDS[slot];
  if (!f) return true; // oif
  if (f === 'mark' || f === 'dscp' || f === 'fragment') return true;
  if (f === 'length') return set.length === 1 && set[0][0] === (space.family === 'ipv4' ? 20n : 40n) && set[0][1] === 0xffffn;
  const abs = absentValue(f, space.family);
  return set.length === 1 && set[0][0] === abs && set[0][1] === abs;
}
