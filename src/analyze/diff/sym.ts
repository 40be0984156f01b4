import { CT_STATE, type NumericField, PORT_PROTOS } from '../../ir/fields.js';
import type { Hook, TableName } from '../../ir/netfilter.js';
import { FIELDS, FIELD_SLOT, IIF_SLOT, presenceOf } from '../model/fields.js';
import { mergeBoxes } from './merge.js';
import { type Box, type Holes, type PacketClass, type Space, type Term, l4Has, term, tidy } from './space.js';

/**
 * A packet in the middle of its walk, symbolically: each field is either a slot of the arriving
 * packet's space (plus a constant offset, for TTL after forwarding) or a constant (after NAT to
 * one address, a mark target, conntrack filling in a new connection's tuple). Everything that
 * happens to a packet in netfilter maps slots to slots or constants, so the set of packets that
 * satisfy a test stays a box over the arriving packet.
 */
export type Val =
  | { readonly k: 'slot'; readonly slot: number; readonly off: bigint }
  | { readonly k: 'const'; readonly v: bigint }
  /**
   * Some bits of a slot, the others set: (slot & keep) ^ xor — a mark or TOS byte after a
   * masked write (MARK --set-xmark, CONNMARK with masks, DSCP) whose old value was not known.
   */
  | { readonly k: 'bits'; readonly slot: number; readonly keep: bigint; readonly xor: bigint };

export type SlotVal = Extract<Val, { k: 'slot' }>;
export type BitsVal = Extract<Val, { k: 'bits' }>;

export function slotVal(slot: number, off = 0n): SlotVal {
  return { k: 'slot', slot, off };
}

export function constVal(v: bigint | number): Val {
  return { k: 'const', v: BigInt(v) };
}

/** v as bits of one slot (a constant has no kept bits); undefined for a shifted slot. */
function asBits(v: Val, width: bigint): { slot: number; keep: bigint; xor: bigint } | undefined {
  if (v.k === 'const') return { slot: -1, keep: 0n, xor: v.v & width };
  if (v.k === 'slot') return v.off === 0n ? { slot: v.slot, keep: width, xor: 0n } : undefined;
  return v;
}

function fromBits(slot: number, keep: bigint, xor: bigint, width: bigint): Val {
  if (keep === 0n) return constVal(xor);
  if (keep === width && xor === 0n) return slotVal(slot);
  return { k: 'bits', slot, keep, xor };
}

/**
 * (a & ~mask) ^ b within `width` (all ones of the field) — MARK/CONNMARK/DSCP writes and
 * CONNMARK save/restore. Exact when a and b are constants or bits of one slot (bitwise,
 * (x & k1) ^ (x & k2) is x & (k1 ^ k2)); undefined otherwise (two slots, a shifted slot).
 */
export function mergeBits(a: Val, mask: bigint, b: Val, width: bigint): Val | undefined {
  const A = asBits(a, width);
  const B = asBits(b, width);
  if (!A || !B) return undefined;
  const ka = A.keep & ~mask & width;
  const xa = A.xor & ~mask & width;
  if (ka === 0n) return fromBits(B.slot, B.keep, (B.xor ^ xa) & width, width);
  if (B.keep === 0n) return fromBits(A.slot, ka, (xa ^ B.xor) & width, width);
  if (A.slot !== B.slot) return undefined;
  return fromBits(A.slot, (ka ^ B.keep) & width, (xa ^ B.xor) & width, width);
}

/** v := (v & ~mask) ^ xor. */
export function xorMasked(v: Val, mask: bigint, xor: bigint, width: bigint): Val | undefined {
  return mergeBits(v, mask, constVal(xor & width), width);
}

/** v & mask. */
export function maskedVal(v: Val, mask: bigint, width: bigint): Val | undefined {
  return mergeBits(v, ~mask & width, constVal(0), width);
}

export function sameVal(a: Val, b: Val): boolean {
  switch (a.k) {
    case 'const':
      return b.k === 'const' && a.v === b.v;
    case 'slot':
      return b.k === 'slot' && a.slot === b.slot && a.off === b.off;
    case 'bits':
      return b.k === 'bits' && a.slot === b.slot && a.keep === b.keep && a.xor === b.xor;
  }
}

/** The value of `v` for a slot value `x`. */
export function evalVal(v: Val, x: bigint): bigint {
  return v.k === 'const' ? v.v : v.k === 'slot' ? x + v.off : (x & v.keep) ^ v.xor;
}

export interface Sym {
  /** Current value of every numeric field, by FIELDS index. */
  readonly vals: readonly Val[];
  /** Input interface (class index): the arriving device, lo for a looped-back packet. */
  readonly iif: Val;
  /** Output interface (class index); '' until routing picks one. */
  readonly oif: Val;
  readonly hook: Hook;
  /** Conntrack has looked the packet up (after raw). */
  readonly ctDone: boolean;
  readonly notrack: boolean;
  /**
   * A CT target in raw attached its template (before conntrack): the rest of raw reads the
   * template (interp.ts TEMPLATE_VIEW), and later CT or NOTRACK targets do nothing.
   */
  readonly templated?: boolean;
  /** ct status after NAT when it cannot be told as a value (only a test on it needs it). */
  readonly ctstatusUnknown: boolean;
  /** NAT of each manip type is set up once per connection (a looped-back packet skips it). */
  readonly natDoneDst: boolean;
  readonly natDoneSrc: boolean;
  /** REDIRECT took an address of the incoming device: the packet is for this host (interp.ts). */
  readonly redirected?: boolean;
}

/** What the walk did that decides or explains the outcome, newest first (a shared list). */
export type Step =
  | { readonly t: 'rule'; readonly hook: Hook; readonly ruleId: number; readonly action: string }
  | { readonly t: 'policy'; readonly hook: Hook; readonly table: TableName; readonly chain: string; readonly policy: 'ACCEPT' | 'DROP' }
  /** A rule holding an unmodelled match or target was evaluated (its state may change). */
  | { readonly t: 'opaque'; readonly hook: Hook; readonly ruleId: number; readonly keys: readonly string[] };

export interface Trail {
  readonly step: Step;
  readonly prev?: Trail;
}

export function pushStep(t: Trail | undefined, step: Step): Trail {
  return t ? { step, prev: t } : { step };
}

export function trailSteps(t: Trail | undefined): Step[] {
  const out: Step[] = [];
  for (let x = t; x; x = x.prev) out.push(x.step);
  return out.reverse();
}

/**
 * Packets that are at the same place in the same symbolic state: a list of disjoint terms
 * (boxes minus holes; many share a state when a chain returns them from many rules) with one
 * state, one packet class and one trail.
 */
export interface Piece {
  readonly terms: readonly Term[];
  readonly sym: Sym;
  readonly cls: PacketClass;
  readonly trail?: Trail;
  /**
   * The walks of the two sides may have parted for these packets (a changed rule fired, the
   * other side's extra rule may have, a changed policy applied). Until then both sides walk
   * them step by step alike (see walk.ts, pruning).
   */
  readonly touched?: boolean;
}

export function withTerms(p: Piece, terms: readonly Term[]): Piece {
  return terms === p.terms ? p : { ...p, terms };
}

export function withStep(p: Piece, step: Step): Piece {
  return { ...p, trail: pushStep(p.trail, step) };
}

const SYM_KEYS = new WeakMap<Sym, string>();
const TRAIL_KEYS = new WeakMap<Trail, string>();

export function valKey(v: Val): string {
  if (v.k === 'const') return `c${v.v}`;
  if (v.k === 'bits') return `b${v.slot}&${v.keep.toString(16)}^${v.xor.toString(16)}`;
  return v.off === 0n ? `s${v.slot}` : `s${v.slot}${v.off > 0n ? '+' : ''}${v.off}`;
}

/** Equal keys: the same state (so their packets go on alike). */
export function symKey(s: Sym): string {
  let k = SYM_KEYS.get(s);
  if (k === undefined) {
    k = `${s.vals.map(valKey).join(',')}|${valKey(s.iif)}|${valKey(s.oif)}|${s.hook}|${+s.ctDone}${+s.notrack}${+s.ctstatusUnknown}${+s.natDoneDst}${+s.natDoneSrc}${+(s.redirected ?? false)}${+(s.templated ?? false)}`;
    SYM_KEYS.set(s, k);
  }
  return k;
}

export function trailKey(t: Trail | undefined): string {
  if (!t) return '';
  let k = TRAIL_KEYS.get(t);
  if (k === undefined) {
    const s = t.step;
    const here = s.t === 'rule' ? `r${s.ruleId}${s.action}${s.hook}` : s.t === 'policy' ? `p${s.table}/${s.chain}${s.policy}${s.hook}` : `o${s.ruleId}`;
    k = `${trailKey(t.prev)};${here}`;
    TRAIL_KEYS.set(t, k);
  }
  return k;
}

/** Pieces in the same state with the same trail and class become one piece (their boxes joined). */
export function coalesce(pieces: readonly Piece[], space?: Space, deep = false): Piece[] {
  if (pieces.length < 2) return [...pieces];
  const by = new Map<string, Piece>();
  const terms = new Map<string, Term[]>();
  for (const p of pieces) {
    const c = p.cls;
    const key = `${symKey(p.sym)}#${trailKey(p.trail)}#${+c.local}${+c.lo}${c.l4}${c.ct}#${+!!p.touched}`;
    const known = terms.get(key);
    if (known) for (const t of p.terms) known.push(t);
    else {
      by.set(key, p);
      terms.set(key, [...p.terms]);
    }
  }
  if (by.size === pieces.length && !deep) return [...pieces];
  return [...by].map(([k, p]) => withTerms(p, compact(space, terms.get(k)!, deep)));
}

/**
 * Terms merged where their boxes differ in one slot and they have the same holes (the same
 * hole boxes; with `deep`, after dropping those that miss): (b1 − H) ∪ (b2 − H) is (b1 ∪ b2) − H, so many
 * hosts' boxes become one term.
 */
export function compact(space: Space | undefined, ts: readonly Term[], deep = false): Term[] {
  if (ts.length < 8 || !space) return [...ts];
  const groups = new Map<string, { tag: number | undefined; holes: Holes | undefined; boxes: Box[] }[]>();
  for (const t0 of ts) {
    // Holes that miss the box (narrow keeps old ones unexamined) keep it from merging: `deep`
    // looks at every hole (worth it where a chain hands back many terms, not after every rule).
    const t = deep ? tidy(space, t0) : t0;
    if (!t) continue;
    const key = `${t.tag}:${holesHash(t.holes)}`;
    const same = groups.get(key);
    const g = same?.find((x) => sameHoles(x.holes, t.holes));
    if (g) g.boxes.push(t.box);
    else if (same) same.push({ tag: t.tag, holes: t.holes, boxes: [t.box] });
    else groups.set(key, [{ tag: t.tag, holes: t.holes, boxes: [t.box] }]);
  }
  const out: Term[] = [];
  for (const list of groups.values()) {
    for (const g of list) {
      if (g.boxes.length === 1) out.push(term(g.boxes[0], g.holes, g.tag));
      else for (const box of mergeBoxes(space, g.boxes)) out.push(term(box, g.holes, g.tag));
    }
  }
  return out;
}

/** A number per list of hole boxes (equal lists built apart hash alike; sameHoles tells collisions apart). */
const HOLES_HASH = new WeakMap<Holes, number>();

function holesHash(h: Holes | undefined): number {
  if (!h) return 0;
  const known = HOLES_HASH.get(h);
  if (known !== undefined) return known;
  // Iterative (lists can be long): hash the part not yet known, newest last.
  const path: Holes[] = [];
  let x: Holes | undefined = h;
  let base = 0;
  for (; x; x = x.next) {
    const k = HOLES_HASH.get(x);
    if (k !== undefined) {
      base = k;
      break;
    }
    path.push(x);
  }
  for (let i = path.length - 1; i >= 0; i--) {
    base = (Math.imul(base, 0x9e3779b1) + boxId(path[i].box) + 1) | 0;
    HOLES_HASH.set(path[i], base);
  }
  return base;
}

function sameHoles(a: Holes | undefined, b: Holes | undefined): boolean {
  for (; a && b; a = a.next, b = b.next) {
    if (a === b) return true;
    if (a.box !== b.box) return false;
  }
  return a === b;
}

const BOX_IDS = new WeakMap<Box, number>();
let nextBoxId = 0;

function boxId(b: Box): number {
  let id = BOX_IDS.get(b);
  if (id === undefined) BOX_IDS.set(b, (id = nextBoxId++));
  return id;
}

export function getVal(sym: Sym, f: NumericField): Val {
  return sym.vals[FIELD_SLOT[f]];
}

export function setVals(sym: Sym, changes: Partial<Record<NumericField, Val>>): Sym {
  const vals = sym.vals.slice();
  for (const [f, v] of Object.entries(changes) as [NumericField, Val][]) vals[FIELD_SLOT[f]] = v;
  return { ...sym, vals };
}

/** The packet as it arrives: every field its own slot, mark 0, conntrack not yet consulted. */
export function initialSym(cls: PacketClass): Sym {
  const vals: Val[] = FIELDS.map((f, i) => {
    if (f === 'mark') return constVal(0);
    if (f === 'ctstate') return constVal(CT_STATE.INVALID); // raw runs before conntrack
    return slotVal(i);
  });
  return {
    vals,
    iif: cls.local ? constVal(0) : slotVal(IIF_SLOT),
    oif: constVal(0),
    hook: cls.local ? 'OUTPUT' : 'PREROUTING',
    ctDone: false,
    notrack: false,
    ctstatusUnknown: false,
    natDoneDst: false,
    natDoneSrc: false,
  };
}

/**
 * Is the packet tracked at this point (a connection whose fields exist)? undefined: it depends
 * on the packet (old connections, established or invalid) — split by the ctstate slot.
 */
export function tracked(p: Piece): boolean | undefined {
  if (p.sym.templated && !p.sym.ctDone) return true;
  if (!p.sym.ctDone || p.sym.notrack) return false;
  const st = p.sym.vals[FIELD_SLOT.ctstate];
  if (st.k === 'const') return st.v === BigInt(CT_STATE.NEW) || st.v === BigInt(CT_STATE.ESTABLISHED) || st.v === BigInt(CT_STATE.RELATED);
  return p.cls.ct === 'new' ? true : undefined;
}

/**
 * Whether a field exists on the packets of a piece where they are (the rule of
 * model/fields.ts isPresent). undefined: it depends on the packet's protocol or state, which
 * the piece leaves open (see region.ts presenceRegion). For `cthelper` "present" is "may
 * exist": the slot's ABSENT value stands for no master.
 */
export function present(p: Piece, f: NumericField): boolean | undefined {
  const { cls, sym } = p;
  switch (presenceOf(f)) {
    case 'always':
      return true;
    case 'ports':
      return cls.l4 === undefined ? undefined : l4Has(cls.l4, 'ports');
    case 'tcp':
      return cls.l4 === undefined ? undefined : l4Has(cls.l4, 'tcp');
    case 'icmp':
      return cls.l4 === undefined ? undefined : l4Has(cls.l4, 'icmp');
    case 'ct':
      return tracked(p);
    case 'ctports': {
      // Tuple ports exist on connections of port protocols.
      const t = tracked(p);
      if (t === false) return false;
      const proto = sym.vals[FIELD_SLOT.ctproto];
      if (proto.k === 'const') return t === true && PORT_PROTOS.includes(Number(proto.v)) ? true : t === true ? false : undefined;
      if (t === true && proto.k === 'slot' && proto.slot === FIELD_SLOT.proto && proto.off === 0n && cls.l4 !== undefined) return l4Has(cls.l4, 'ports');
      return undefined;
    }
    case 'helper':
      return !sym.ctDone || sym.notrack || cls.ct === 'new' || tracked(p) === false ? false : undefined;
    case 'mac':
      // Only where the packet came in from a device with an Ethernet header (not lo, not a looped-back one).
      return (sym.hook === 'PREROUTING' || sym.hook === 'INPUT' || sym.hook === 'FORWARD') && !cls.local && !cls.lo && sym.iif.k === 'slot';
    case 'socket':
      return cls.local && (sym.hook === 'OUTPUT' || sym.hook === 'POSTROUTING');
  }
}
