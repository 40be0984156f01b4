import { CT_STATE, PORT_PROTOS, PROTO } from '../../ir/fields.js';
import { type IntervalSet, complement, contains, intersect, isSubset, normalize, subtract } from '../../util/intervals.js';
import type { Family } from '../../util/ip.js';
import {
  FIELDS,
  FIELD_SLOT,
  SLOT_COUNT,
  TRACKED_STATES,
  absentValue,
  fieldMax,
  icmpProto,
  presenceOf,
  slotTop,
} from '../model/fields.js';

/**
 * Boxes: products of one value set per slot (every numeric field, then iif and oif as
 * interface-class indices). `undefined` in a slot means "anything", including "the packet has
 * no such field" (the ABSENT value one above the field's maximum). A set of packets is a union
 * of boxes.
 *
 * Set algebra on boxes is exact over tuples of slot values. Not every tuple is a packet, though:
 * ports exist only for port protocols, ct* fields only with a connection. So a box can be
 * non-empty as a product yet hold no real packet; `isEmpty` and `pickPoint` take those couplings
 * into account, and everything else stays plain interval arithmetic.
 */
export type Slot = IntervalSet | undefined;
export type Box = readonly Slot[];

const L4_FIELDS = {
  ports: [FIELD_SLOT.sport, FIELD_SLOT.dport],
  tcp: [FIELD_SLOT.tcpflags],
  icmp: [FIELD_SLOT.icmptype, FIELD_SLOT.icmpcode],
};
const CT_SLOTS = FIELDS.map((f, i) => (presenceOf(f) === 'ct' ? i : -1)).filter((i) => i >= 0);
/** Tuple ports: present for tracked connections of port protocols, so "either" when tracked. */
const CTPORT_SLOTS = FIELDS.map((f, i) => (presenceOf(f) === 'ctports' ? i : -1)).filter((i) => i >= 0);
const TRACKED: IntervalSet = normalize(TRACKED_STATES.map((s) => [BigInt(s), BigInt(s)] as const));
const NEW_STATE: IntervalSet = [[BigInt(CT_STATE.NEW), BigInt(CT_STATE.NEW)]];
const HELPER_SLOT = FIELD_SLOT.cthelper;

export class BoxDomain {
  private readonly tops: readonly bigint[];
  private readonly portProtos: IntervalSet;
  private readonly absent: readonly bigint[];
  private readonly tcpSet: IntervalSet;
  private readonly icmpSet: IntervalSet;
  private readonly udpLike: IntervalSet;
  private readonly noL4: IntervalSet;
  private static readonly COUPLED = [...L4_FIELDS.ports, ...L4_FIELDS.tcp, ...L4_FIELDS.icmp, ...CT_SLOTS, ...CTPORT_SLOTS, FIELD_SLOT.cthelper];

  constructor(
    readonly family: Family,
    readonly ifaceCount: number,
  ) {
    this.tops = Array.from({ length: SLOT_COUNT }, (_, i) => slotTop(i, family, ifaceCount));
    this.absent = FIELDS.map((f) => absentValue(f, family));
    this.portProtos = normalize(PORT_PROTOS.map((p) => [BigInt(p), BigInt(p)] as const));
    this.tcpSet = [[BigInt(PROTO.tcp), BigInt(PROTO.tcp)]];
    this.icmpSet = [[BigInt(icmpProto(family)), BigInt(icmpProto(family))]];
    this.udpLike = subtract(this.portProtos, this.tcpSet, 255n);
    this.noL4 = subtract([[0n, 255n]], normalize([...this.portProtos, ...this.icmpSet]), 255n);
  }

  /** No slot whose presence depends on other fields is constrained: nothing to reconcile. */
  private uncoupled(b: Box): boolean {
    for (const s of BoxDomain.COUPLED) if (b[s] !== undefined) return false;
    return true;
  }

  top(slot: number): bigint {
    return this.tops[slot];
  }

  full(): Box {
    return new Array<Slot>(SLOT_COUNT).fill(undefined);
  }

  /** The values a slot may take in a box (its own set, or the whole domain). */
  values(b: Box, slot: number): IntervalSet {
    return b[slot] ?? [[0n, this.tops[slot]]];
  }

  with(b: Box, slot: number, set: IntervalSet): Box {
    const out = b.slice();
    out[slot] = set;
    return out;
  }

  /** Intersection; undefined when some slot becomes empty. */
  intersect(a: Box, b: Box): Box | undefined {
    const out: Slot[] = new Array<Slot>(SLOT_COUNT);
    for (let i = 0; i < SLOT_COUNT; i++) {
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

  /** Do the two products share a tuple (ignoring field couplings)? Cheap pre-test. */
  overlaps(a: Box, b: Box): boolean {
    for (let i = 0; i < SLOT_COUNT; i++) {
      const x = a[i];
      const y = b[i];
      if (x !== undefined && y !== undefined && !setsOverlap(x, y)) return false;
    }
    return true;
  }

  /** a − b as disjoint boxes (those that are empty as products are left out). */
  subtract(a: Box, b: Box): Box[] {
    if (!this.overlaps(a, b)) return [a];
    const out: Box[] = [];
    let rest: Slot[] = a.slice();
    for (let i = 0; i < SLOT_COUNT; i++) {
      const y = b[i];
      if (y === undefined) continue;
      const x = this.values(rest, i);
      const outside = subtract(x, y, this.tops[i]);
      if (outside.length) {
        const piece = rest.slice();
        piece[i] = outside;
        out.push(piece);
      }
      rest[i] = intersect(x, y);
    }
    return out;
  }

  /** a ⊆ b as products. */
  contains(b: Box, a: Box): boolean {
    for (let i = 0; i < SLOT_COUNT; i++) {
      const y = b[i];
      if (y === undefined) continue;
      if (!isSubset(this.values(a, i), y)) return false;
    }
    return true;
  }

  complementSlot(slot: number, set: IntervalSet): IntervalSet {
    return complement(set, this.tops[slot]);
  }

  /** Smallest box holding both. */
  hull(a: Box, b: Box): Box {
    const out: Slot[] = new Array<Slot>(SLOT_COUNT);
    for (let i = 0; i < SLOT_COUNT; i++) {
      const x = a[i];
      const y = b[i];
      out[i] = x === undefined || y === undefined ? undefined : normalize([...x, ...y]);
    }
    return out;
  }

  /** Whether a slot can take a real value (the field present) / the ABSENT value. */
  private canBePresent(b: Box, slot: number): boolean {
    const s = b[slot];
    return s === undefined || s[0][0] <= fieldMax(FIELDS[slot], this.family);
  }

  private canBeAbsent(b: Box, slot: number): boolean {
    const s = b[slot];
    return s === undefined || contains(s, this.absent[slot]);
  }

  /** Protocol classes of a box that hold a real packet, as (proto set, fragment value). */
  private l4Classes(b: Box): { protos: IntervalSet; fragment: bigint; present: 'ports+tcp' | 'ports' | 'icmp' | 'none' }[] {
    const protos = this.values(b, FIELD_SLOT.proto);
    const frags = this.values(b, FIELD_SLOT.fragment);
    const out: { protos: IntervalSet; fragment: bigint; present: 'ports+tcp' | 'ports' | 'icmp' | 'none' }[] = [];
    if (contains(frags, 0n)) {
      out.push({ protos: intersect(protos, this.tcpSet), fragment: 0n, present: 'ports+tcp' });
      out.push({ protos: intersect(protos, this.udpLike), fragment: 0n, present: 'ports' });
      out.push({ protos: intersect(protos, this.icmpSet), fragment: 0n, present: 'icmp' });
      out.push({ protos: intersect(protos, this.noL4), fragment: 0n, present: 'none' });
    }
    if (contains(frags, 1n)) out.push({ protos, fragment: 1n, present: 'none' });
    return out.filter((c) => c.protos.length > 0 && this.l4Fits(b, c.present));
  }

  private l4Fits(b: Box, present: 'ports+tcp' | 'ports' | 'icmp' | 'none'): boolean {
    const want = (slots: number[], on: boolean) => slots.every((s) => (on ? this.canBePresent(b, s) : this.canBeAbsent(b, s)));
    return (
      want(L4_FIELDS.ports, present === 'ports+tcp' || present === 'ports') &&
      want(L4_FIELDS.tcp, present === 'ports+tcp') &&
      want(L4_FIELDS.icmp, present === 'icmp')
    );
  }

  /**
   * Conntrack classes of a box that hold a real packet: a new connection (ct fields, no master),
   * an established or related one (ct fields, maybe a master), or none (INVALID, UNTRACKED).
   */
  private ctClasses(b: Box): { states: IntervalSet; tracked: boolean; helper: 'absent' | 'any' }[] {
    const states = this.values(b, FIELD_SLOT.ctstate);
    const fresh = intersect(states, NEW_STATE);
    const older = intersect(states, subtract(TRACKED, NEW_STATE, 255n));
    const untracked = subtract(states, TRACKED, 255n);
    const ctOn = CT_SLOTS.every((s) => this.canBePresent(b, s));
    const ctOff = CT_SLOTS.every((s) => this.canBeAbsent(b, s)) && CTPORT_SLOTS.every((s) => this.canBeAbsent(b, s));
    const helperOff = this.canBeAbsent(b, HELPER_SLOT);
    const out: { states: IntervalSet; tracked: boolean; helper: 'absent' | 'any' }[] = [];
    if (fresh.length && ctOn && helperOff) out.push({ states: fresh, tracked: true, helper: 'absent' });
    if (older.length && ctOn) out.push({ states: older, tracked: true, helper: 'any' });
    if (untracked.length && ctOff && helperOff) out.push({ states: untracked, tracked: false, helper: 'absent' });
    return out;
  }

  /** Does the box hold at least one real packet? */
  isEmpty(b: Box): boolean {
    for (let i = 0; i < SLOT_COUNT; i++) if (b[i] !== undefined && b[i]!.length === 0) return true;
    if (this.uncoupled(b)) return false;
    return this.l4Classes(b).length === 0 || this.ctClasses(b).length === 0;
  }

  /**
   * The box restricted to one real-packet class (fields that must be absent set to ABSENT,
   * present ones without it), or undefined if it holds no packet. `prefer` picks among classes.
   */
  normalizeForPoint(b: Box, prefer?: { proto?: bigint; ctstate?: bigint }): Box | undefined {
    const l4 = this.l4Classes(b);
    const ct = this.ctClasses(b);
    if (!l4.length || !ct.length) return undefined;
    const pickL4 = (prefer?.proto !== undefined && l4.find((c) => contains(c.protos, prefer.proto!))) || l4[0];
    const pickCt = (prefer?.ctstate !== undefined && ct.find((c) => contains(c.states, prefer.ctstate!))) || ct[0];
    const out = b.slice();
    out[FIELD_SLOT.proto] = pickL4.protos;
    out[FIELD_SLOT.fragment] = [[pickL4.fragment, pickL4.fragment]];
    const setPresence = (slots: number[], on: boolean) => {
      for (const s of slots) {
        const abs = this.absent[s];
        if (!on) {
          out[s] = [[abs, abs]];
          continue;
        }
        const cur = out[s];
        if (cur === undefined) out[s] = [[0n, abs - 1n]];
        else if (cur[cur.length - 1][1] >= abs) {
          // Drop ABSENT (the last value of the domain) from the set.
          const last = cur[cur.length - 1];
          out[s] = last[0] === abs ? cur.slice(0, -1) : [...cur.slice(0, -1), [last[0], abs - 1n] as const];
        }
      }
    };
    setPresence(L4_FIELDS.ports, pickL4.present === 'ports+tcp' || pickL4.present === 'ports');
    setPresence(L4_FIELDS.tcp, pickL4.present === 'ports+tcp');
    setPresence(L4_FIELDS.icmp, pickL4.present === 'icmp');
    out[FIELD_SLOT.ctstate] = pickCt.states;
    setPresence(CT_SLOTS, pickCt.tracked);
    if (!pickCt.tracked) setPresence(CTPORT_SLOTS, false);
    if (pickCt.helper === 'absent') setPresence([HELPER_SLOT], false);
    return out;
  }
}

function setsOverlap(a: IntervalSet, b: IntervalSet): boolean {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i][1] < b[j][0]) i++;
    else if (b[j][1] < a[i][0]) j++;
    else return true;
  }
  return false;
}

/**
 * A value from a set, preferring a "natural" one: `prefer` if allowed, else a value just inside
 * the first interval (avoiding network addresses like 10.0.0.0 when 10.0.0.1 is there too).
 */
export function pickValue(set: IntervalSet, prefer?: bigint): bigint {
  if (prefer !== undefined && contains(set, prefer)) return prefer;
  const [lo, hi] = set[0];
  return lo < hi ? lo + 1n : lo;
}
