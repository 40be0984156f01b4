import { opaqueParts } from '../../ir/constraint.js';
import { CT_STATE, CT_STATUS, type CtStateName, type NumericField } from '../../ir/fields.js';
import { type IntervalSet, contains, intersect } from '../../util/intervals.js';
import { DEFAULT_FIELDS } from '../box/candidates.js';
import { CHOICE, DEFAULT_ICMP_ID, UNKNOWN_ADDR } from '../concrete/interp.js';
import type { PacketInput } from '../concrete/input.js';
import type { FamilyModel, ModelRule } from '../model/build.js';
import { FIELDS, FIELD_SLOT, IIF_SLOT, SLOT_COUNT, absentValue, presenceOf } from '../model/fields.js';
import type { Box, Point, Space } from './space.js';
import { type Val, evalVal } from './sym.js';
import { natDescriptor, natHookOf } from './walk.js';

/**
 * Concrete points of the diff's space, and what each side makes of them: a point is one
 * arriving packet together with the environment's choices and the answers of unmodelled tests;
 * `inputFor` turns it into the analyzer's PacketInput for one side (its own rule ids and keys),
 * so the concrete interpreter and the simulator can run it.
 */
export type { Point } from './space.js';
export { boxHas } from './space.js';

/** How one side names the shared extra slots. */
export interface SideNames {
  readonly model: FamilyModel;
  /** This side's opaque key → the space's key. */
  opaqueKey(key: string): string;
  /** The space key of a rule's unmodelled target. */
  targetKey(rule: ModelRule): string;
}

const STATE_BY_VALUE: Readonly<Record<number, CtStateName>> = Object.fromEntries(Object.entries(CT_STATE).map(([k, v]) => [v, k as CtStateName]));

/** A value of a set, preferring `prefer`, else one just inside the first interval. */
function pick(set: IntervalSet, prefer?: bigint): bigint {
  if (prefer !== undefined && contains(set, prefer)) return prefer;
  const [lo, hi] = set[0];
  return lo < hi ? lo + 1n : lo;
}

/**
 * Addresses a witness should avoid when it can: broadcasts, multicast, network and special
 * addresses, and the address MASQUERADE and REDIRECT take without a host model (a made-up host
 * for the replay owns it, so a packet to it would be delivered there).
 */
export function oddAddress(family: Space['family'], v: bigint): boolean {
  return (
    v === UNKNOWN_ADDR[family] ||
    (family === 'ipv4' ? v >> 28n === 0xen || (v & 0xffn) === 0xffn || (v & 0xffn) === 0n || v >> 24n === 0n || v >> 24n === 0x7fn : v >> 120n === 0xffn || v <= 1n)
  );
}

function plain(family: Space['family'], set: IntervalSet, prefer: bigint | undefined): bigint {
  if (prefer !== undefined && contains(set, prefer)) return prefer;
  const odd = (v: bigint) => oddAddress(family, v);
  for (const [lo, hi] of set) {
    for (let v = lo, n = 0; v <= hi && n < 512; v++, n++) if (!odd(v)) return v;
  }
  return pick(set, prefer);
}

/** A natural-looking point of a box (TCP SYN to port 80, documentation addresses…). */
export function pointIn(space: Space, box: Box, prefer: Partial<Record<NumericField, bigint>> = {}): Point {
  const fam = space.family;
  const defaults: Partial<Record<NumericField, bigint>> = { ...DEFAULT_FIELDS[fam], ctstate: BigInt(CT_STATE.NEW), ...prefer };
  const out: bigint[] = [];
  for (let slot = 0; slot < space.size; slot++) {
    const set = space.values(box, slot);
    const f = FIELDS[slot];
    if (f === 'saddr' || f === 'daddr') out.push(plain(space.family, set, defaults[f]));
    else if (slot < FIELDS.length) out.push(pick(set, defaults[FIELDS[slot]]));
    else if (slot === IIF_SLOT) {
      // A real device rather than lo when there is a choice.
      const lo = BigInt(space.ifaces.classOf('lo'));
      const other = set.flatMap(([a, b]) => (a === lo && b === lo ? [] : [[a === lo ? a + 1n : a, b] as const]));
      out.push(pick(other.length ? other : set));
    } else {
      const x = space.extraAt(slot);
      if (x?.kind === 'opaque' || x?.kind === 'relation') out.push(pick(set, x.kind === 'opaque' ? 1n : 0n));
      else if (x?.kind === 'choice') {
        const inDomain = set.flatMap(([a, b]) => x.domain.flatMap(([c, d]) => (a > d || c > b ? [] : [[a > c ? a : c, b < d ? b : d] as const])));
        out.push(pick(inDomain.length ? inDomain : set, x.key === CHOICE.route || x.key === CHOICE.routeNat ? 1n : x.key === CHOICE.icmpId ? DEFAULT_ICMP_ID : x.key === CHOICE.answer ? 0n : undefined));
      } else out.push(pick(set, 0n));
    }
  }
  return honourRelations(space, box, out) ?? out;
}

/**
 * A natural point of the box for a packet: a new connection when the box has one, else a
 * packet of an established connection as the rules would have made it — an ACK, in the
 * direction `dir` (0 original) when the box allows, its connection's tuple its own header,
 * seen both ways, no mark — so that the replay can set the connection up (replay.ts).
 */
export function naturalPoint(space: Space, box: Box, dir = 0n): Point {
  const pt = pointIn(space, box, { ctstate: BigInt(CT_STATE.NEW) });
  if (pt[FIELD_SLOT.ctstate] === BigInt(CT_STATE.NEW)) return pt;
  const conn = { ctstate: BigInt(CT_STATE.ESTABLISHED), tcpflags: 0x10n, ctdir: dir, ctmark: 0n, ctstatus: BigInt(CT_STATUS.CONFIRMED | CT_STATUS.SEEN_REPLY | CT_STATUS.ASSURED) };
  const base = pointIn(space, box, conn);
  const at = (f: NumericField) => base[FIELD_SLOT[f]];
  const header = { saddr: at('saddr'), daddr: at('daddr'), sport: at('sport'), dport: at('dport'), proto: at('proto') };
  const orig = at('ctdir') === 0n;
  const tuple = {
    ctproto: header.proto,
    ctorigsrc: orig ? header.saddr : header.daddr,
    ctorigdst: orig ? header.daddr : header.saddr,
    ctreplsrc: orig ? header.daddr : header.saddr,
    ctrepldst: orig ? header.saddr : header.daddr,
    ctorigsrcport: orig ? header.sport : header.dport,
    ctorigdstport: orig ? header.dport : header.sport,
    ctreplsrcport: orig ? header.dport : header.sport,
    ctrepldstport: orig ? header.sport : header.dport,
  };
  return pointIn(space, box, { ...conn, ...header, ctdir: at('ctdir'), ...tuple });
}

/**
 * Adjusts a point so that its relation slots hold (`a = b` when 1, `a ≠ b` when 0), or
 * undefined when the box allows no such point (then the box is empty).
 */
export function honourRelations(space: Space, box: Box, p0: Point): Point | undefined {
  const p = [...p0];
  for (let slot = SLOT_COUNT; slot < space.size; slot++) {
    const x = space.extraAt(slot);
    if (x?.kind !== 'relation') continue;
    const sa = space.values(box, x.a);
    const sb = space.values(box, x.b);
    if (p[slot] === 1n) {
      if (p[x.a] === p[x.b]) continue;
      const both = intersect(sa, sb);
      if (both.length === 0) return undefined;
      const v = contains(both, p[x.a]) ? p[x.a] : contains(both, p[x.b]) ? p[x.b] : both[0][0];
      p[x.a] = v;
      p[x.b] = v;
    } else if (p[x.a] === p[x.b]) {
      // Move one of them to another value of its set.
      const other = (set: IntervalSet, not: bigint) => set.flatMap(([lo, hi]) => (lo === not && hi === not ? [] : [lo === not ? lo + 1n : lo]))[0];
      const vb = other(sb, p[x.a]);
      if (vb !== undefined) p[x.b] = vb;
      else {
        const va = other(sa, p[x.b]);
        if (va === undefined) return undefined;
        p[x.a] = va;
      }
    }
  }
  return p;
}

export function valAt(v: Val, p: Point): bigint {
  return v.k === 'const' ? v.v : evalVal(v, p[v.slot] ?? 0n);
}

/** What a side reads from extra slots, rule by rule, computed once per side. */
interface SideIndex {
  /** The side's opaque keys grouped by the space key they read. */
  readonly opaque: readonly { readonly keys: readonly string[]; readonly spaceKey: string }[];
  readonly choices: readonly { readonly choice: string; readonly kind: 'choice'; readonly spaceKey: string }[];
}

const INDEX = new WeakMap<SideNames, SideIndex>();

function indexOf(side: SideNames): SideIndex {
  let ix = INDEX.get(side);
  if (ix) return ix;
  const opaque = new Map<string, string[]>();
  const choices: { choice: string; kind: 'choice'; spaceKey: string }[] = [];
  for (const r of side.model.rules) {
    for (const o of opaqueParts(r.constraint)) {
      const sk = side.opaqueKey(o.key);
      const list = opaque.get(sk) ?? [];
      if (!list.includes(o.key)) list.push(o.key);
      opaque.set(sk, list);
    }
    const e = r.effect;
    if (e.type === 'opaque') choices.push({ choice: CHOICE.target(r.id), kind: 'choice', spaceKey: `target:${side.targetKey(r)}` });
    if (e.type === 'nat') {
      const hook = natHookOf(side.model, r);
      if (!hook) continue;
      const desc = natDescriptor(e.nat, hook);
      // Only SNAT/DNAT over a range read an address choice (MASQUERADE/REDIRECT without a host keep the default).
      if (e.nat.type === 'snat' || e.nat.type === 'dnat') choices.push({ choice: CHOICE.natAddr(r.id), kind: 'choice', spaceKey: `nat.addr ${desc}` });
      choices.push({ choice: CHOICE.natPort(r.id), kind: 'choice', spaceKey: `nat.port ${desc}` });
    }
  }
  ix = { opaque: [...opaque].map(([spaceKey, keys]) => ({ keys, spaceKey })), choices };
  INDEX.set(side, ix);
  return ix;
}

/** The PacketInput one side reads from a point. */
export function inputFor(space: Space, side: SideNames, p: Point): PacketInput {
  const fam = space.family;
  const fields: Partial<Record<NumericField, bigint>> = {};
  FIELDS.forEach((f, i) => {
    if (f === 'dscp' || f === 'ctstate') return;
    const v = p[i];
    if (v !== absentValue(f, fam) || f === 'cthelper') fields[f] = v;
  });
  const iif = space.ifaces.nameOf(Number(p[IIF_SLOT]));
  const state = STATE_BY_VALUE[Number(p[FIELD_SLOT.ctstate])] ?? 'NEW';
  const at = (kind: 'opaque' | 'choice', key: string): bigint | undefined => {
    const slot = space.slotOfExtra(kind, key);
    return slot === undefined ? undefined : p[slot];
  };
  const opaque: Record<string, boolean> = {};
  const choices: Record<string, bigint> = {};
  for (const key of [CHOICE.route, CHOICE.routeNat, CHOICE.oif, CHOICE.icmpId, CHOICE.answer]) {
    const v = at('choice', key);
    if (v !== undefined) choices[key] = v;
  }
  // Never the interface's own link-local address (see z3pair.ts): the host model's addresses only.
  if (fam === 'ipv6') choices[CHOICE.ownLinkLocal] = 1n;
  const ix = indexOf(side);
  // An unmodelled test reads false unless the input says true (concrete/interp.ts).
  for (const o of ix.opaque) if (at('opaque', o.spaceKey) === 1n) for (const k of o.keys) opaque[k] = true;
  for (const c of ix.choices) {
    const v = at('choice', c.spaceKey);
    if (v !== undefined) choices[c.choice] = v;
  }
  return {
    family: fam,
    ingress: iif === '' ? { kind: 'local' } : { kind: 'iface', device: iif },
    fields,
    ctState: state === 'UNTRACKED' ? 'NEW' : state,
    ...(Object.keys(opaque).length ? { opaque } : {}),
    ...(Object.keys(choices).length ? { choices } : {}),
  };
}

/** The interpreter's default egress without a host model: the first real device. */
function defaultOif(space: Space): bigint {
  const i = space.ifaces.names.findIndex((n) => n !== '' && n !== 'lo');
  return BigInt(i > 0 ? i : 1);
}

/** The point of a PacketInput (for tests: a random packet, located among the pieces). */
export function pointOf(space: Space, side: SideNames, input: PacketInput): Point {
  const fam = space.family;
  const out: bigint[] = [];
  const lo = input.ingress.kind === 'iface' && input.ingress.device === 'lo';
  // As the ingress boxes have them: fields a packet may lack hold a real value (ignored where
  // absent); only fields its ingress never has (MAC, socket owner) read as ABSENT.
  FIELDS.forEach((f, i) => {
    const kind = presenceOf(f);
    if (f === 'ctstate') out[i] = BigInt(CT_STATE[input.ctState]);
    else if (f === 'dscp' || f === 'mark' || f === 'pkttype') out[i] = 0n;
    else if (f === 'tos') out[i] = input.fields.tos ?? (input.fields.dscp ?? 0n) << 2n;
    else if (kind === 'mac' && (input.ingress.kind === 'local' || lo)) out[i] = absentValue(f, fam);
    else if (kind === 'socket' && input.ingress.kind !== 'local') out[i] = absentValue(f, fam);
    else out[i] = input.fields[f] ?? (f === 'cthelper' ? absentValue(f, fam) : 0n);
  });
  out[IIF_SLOT] = input.ingress.kind === 'local' ? 0n : BigInt(space.ifaces.classOf(input.ingress.device));
  out[SLOT_COUNT - 1] = 0n;
  for (let slot = SLOT_COUNT; slot < space.size; slot++) {
    const x = space.extraAt(slot)!;
    if (x.kind === 'opaque') {
      const own = side.model.rules.flatMap((r) => opaqueParts(r.constraint)).find((o) => side.opaqueKey(o.key) === x.key);
      out[slot] = own && input.opaque?.[own.key] ? 1n : 0n;
    } else if (x.kind === 'relation') out[slot] = out[x.a] === out[x.b] ? 1n : 0n;
    else if (x.key === CHOICE.route || x.key === CHOICE.routeNat || x.key === CHOICE.oif) out[slot] = input.choices?.[x.key] ?? (x.key === CHOICE.oif ? defaultOif(space) : 0n);
    else if (x.key === CHOICE.icmpId) out[slot] = input.choices?.[x.key] ?? DEFAULT_ICMP_ID;
    else if (x.key === CHOICE.answer) out[slot] = input.choices?.[x.key] ?? 0n;
    else {
      // NAT and target choices: the first rule of this side that reads the slot.
      let v: bigint | undefined;
      for (const r of side.model.rules) {
        const e = r.effect;
        if (e.type === 'opaque' && x.key === `target:${side.targetKey(r)}`) v ??= input.choices?.[CHOICE.target(r.id)] ?? (e.terminates === 'yes' ? 1n : undefined);
        if (e.type === 'nat') {
          const hook = natHookOf(side.model, r);
          if (!hook) continue;
          const desc = natDescriptor(e.nat, hook);
          if (x.key === `nat.addr ${desc}`) v ??= input.choices?.[CHOICE.natAddr(r.id)];
          if (x.key === `nat.port ${desc}`) v ??= input.choices?.[CHOICE.natPort(r.id)];
        }
      }
      out[slot] = v ?? x.domain[0][0];
    }
  }
  return out;
}
