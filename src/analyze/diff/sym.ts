import { CT_STATE, type NumericField } from '../../ir/fields.js';
import type { Hook, TableName } from '../../ir/netfilter.js';
import { FIELDS, FIELD_SLOT, IIF_SLOT, presenceOf } from '../model/fields.js';
import { type Box, type PacketClass, l4Has } from './space.js';

/**
 * A packet in the middle of its walk, symbolically: each field is either a slot of the arriving
 * packet's space (plus a constant offset, for TTL after forwarding) or a constant (after NAT to
 * one address, a mark target, conntrack filling in a new connection's tuple). Everything that
 * happens to a packet in netfilter maps slots to slots or constants, so the set of packets that
 * satisfy a test stays a box over the arriving packet.
 */
export type Val = { readonly k: 'slot'; readonly slot: number; readonly off: bigint } | { readonly k: 'const'; readonly v: bigint };

export function slotVal(slot: number, off = 0n): Val {
  return { k: 'slot', slot, off };
}

export function constVal(v: bigint | number): Val {
  return { k: 'const', v: BigInt(v) };
}

export function sameVal(a: Val, b: Val): boolean {
  return a.k === 'const' ? b.k === 'const' && a.v === b.v : b.k === 'slot' && a.slot === b.slot && a.off === b.off;
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
  /** ct status after NAT when it cannot be told as a value (only a test on it needs it). */
  readonly ctstatusUnknown: boolean;
  /** NAT of each manip type is set up once per connection (a looped-back packet skips it). */
  readonly natDoneDst: boolean;
  readonly natDoneSrc: boolean;
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

export interface Piece {
  readonly box: Box;
  readonly sym: Sym;
  readonly cls: PacketClass;
  readonly trail?: Trail;
}

export function withBox(p: Piece, box: Box): Piece {
  return box === p.box ? p : { ...p, box };
}

export function withStep(p: Piece, step: Step): Piece {
  return { ...p, trail: pushStep(p.trail, step) };
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

/** Is the packet tracked at this point (a connection whose fields exist)? */
export function tracked(p: Piece): boolean {
  return p.sym.ctDone && !p.sym.notrack && p.cls.ct !== 'invalid';
}

/**
 * Whether a field exists on the packets of a piece where they are (the rule of
 * model/fields.ts isPresent, which is uniform over a piece by construction of its class).
 * For `cthelper` this is "may exist": the slot's ABSENT value stands for no master.
 */
export function present(p: Piece, f: NumericField): boolean {
  const { cls, sym } = p;
  switch (presenceOf(f)) {
    case 'always':
      return true;
    case 'ports':
      return l4Has(cls.l4, 'ports');
    case 'tcp':
      return l4Has(cls.l4, 'tcp');
    case 'icmp':
      return l4Has(cls.l4, 'icmp');
    case 'ct':
      return tracked(p);
    case 'helper':
      return tracked(p) && cls.ct === 'tracked';
    case 'mac':
      // Only where the packet came in from a device with an Ethernet header (not lo, not a looped-back one).
      return (sym.hook === 'PREROUTING' || sym.hook === 'INPUT' || sym.hook === 'FORWARD') && !cls.local && !cls.lo && sym.iif.k === 'slot';
    case 'socket':
      return cls.local && (sym.hook === 'OUTPUT' || sym.hook === 'POSTROUTING');
  }
}
