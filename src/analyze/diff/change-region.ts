import type { NumericField } from '../../ir/fields.js';
import type { TableName } from '../../ir/netfilter.js';
import { contains } from '../../util/intervals.js';
import { Prepass } from '../box/prepass.js';
import { type FamilyModel, lookupChain } from '../model/build.js';
import { FIELD_SLOT, IIF_SLOT, OIF_SLOT, absentValue } from '../model/fields.js';
import type { DiffContext } from './context.js';
import { mergeBoxes } from './merge.js';
import type { Box, Slot } from './space.js';

/**
 * Where the two sides can differ at all, as boxes over the arriving packet. A packet that
 * fires none of the changed rules on either side (and reaches no changed chain policy) walks
 * both rulesets step by step alike (see align.ts), so every difference lies among the packets
 * that fire a changed rule. The analyzer's box pre-pass gives, per rule, a box cover of the
 * packets that reach it and match it, over the packet where the rule stands; this module
 * widens each box to the arriving packet (slots that may change on the way become "any").
 *
 * Returns `undefined` for "everywhere" (the host models differ, so routing itself changed).
 */
const ALWAYS_WIDEN: readonly NumericField[] = [
  'mark',
  'ctmark',
  'ctstatus',
  'ctdir',
  'ctproto',
  'ctorigsrc',
  'ctorigdst',
  'ctreplsrc',
  'ctrepldst',
  'ctorigsrcport',
  'ctorigdstport',
  'ctreplsrcport',
  'ctrepldstport',
  'cthelper',
  'ttl',
  'tos',
  'dscp',
  'pkttype',
];

/** Past this many boxes the region is merged, then covered by one box per interface set. */
const REGION_CAP = 1500;

function hasDstNat(model: FamilyModel): boolean {
  return model.rules.some((r) => {
    if (r.effect.type !== 'nat' || r.table !== 'nat') return false;
    const c = lookupChain(model, r.table, r.chain);
    return !!c && [...c.hooks].some((h) => h === 'PREROUTING' || h === 'OUTPUT');
  });
}

function widen(model: FamilyModel, table: TableName, boxes: readonly Box[]): Box[] {
  const fam = model.family;
  const drop = new Set<number>([OIF_SLOT, ...ALWAYS_WIDEN.map((f) => FIELD_SLOT[f])]);
  if (table === 'raw' || model.features.notrack) drop.add(FIELD_SLOT.ctstate);
  if (table !== 'raw' && hasDstNat(model)) for (const f of ['daddr', 'dport'] as const) drop.add(FIELD_SLOT[f]);
  if (model.routing.hasHost) for (const f of ['srctype', 'dsttype'] as const) drop.add(FIELD_SLOT[f]);
  const lo = BigInt(model.ifaces.classOf('lo'));
  const out: Box[] = [];
  for (const b of boxes) {
    const w: Slot[] = b.map((s, i) => {
      if (s === undefined || drop.has(i)) return undefined;
      // A field that may be absent where the rule stands (mac on POSTROUTING…) says nothing of the arriving packet.
      const f = Object.keys(FIELD_SLOT)[i] as NumericField | undefined;
      if (f && i < IIF_SLOT && contains(s, absentValue(f, fam))) return undefined;
      return s;
    });
    out.push(w);
    // A locally generated packet that loops back by lo is seen in PREROUTING/INPUT as coming in
    // on lo, after its NAT: it arrived with no input device and other addresses.
    const iif = b[IIF_SLOT];
    if (iif === undefined || contains(iif, lo)) {
      const local: Slot[] = w.slice();
      local[IIF_SLOT] = [[0n, 0n]];
      for (const f of ['saddr', 'daddr', 'sport', 'dport', 'macsrc', 'uid', 'gid'] as const) local[FIELD_SLOT[f]] = undefined;
      out.push(local);
    }
  }
  return out;
}

export interface ChangeRegion {
  /** Boxes over the arriving packet; undefined means everywhere. */
  readonly boxes?: readonly Box[];
  readonly why: string;
}

export function changeRegion(ctx: DiffContext): ChangeRegion {
  const al = ctx.alignment;
  if (al.hostChanged) return { why: 'the host models differ: routing itself changed' };
  if (al.changedA.length === 0 && al.changedB.length === 0 && al.policyChanged.length === 0) return { boxes: [], why: 'no rule or policy changed' };
  const boxes: Box[] = [];
  const sides = [
    { model: ctx.a.model, changed: al.changedA },
    { model: ctx.b.model, changed: al.changedB },
  ];
  for (const { model, changed } of sides) {
    if (changed.length === 0 && al.policyChanged.length === 0) continue;
    const prepass = new Prepass(model);
    for (const r of changed) boxes.push(...widen(model, r.table, prepass.matchAt(r)));
    for (const { table, name } of al.policyChanged) {
      const c = lookupChain(model, table as TableName, name);
      if (c) boxes.push(...widen(model, c.table, prepass.entry(c)));
    }
  }
  let region = boxes;
  if (region.length > REGION_CAP) region = mergeBoxes(ctx.space, region);
  if (region.length > REGION_CAP) {
    // Still too many: one hull per input-interface set keeps the local/device split.
    const byIif = new Map<string, Box[]>();
    for (const b of region) {
      const k = JSON.stringify(b[IIF_SLOT]?.map(([x, y]) => `${x}-${y}`) ?? '*');
      byIif.set(k, [...(byIif.get(k) ?? []), b]);
    }
    region = [...byIif.values()].map((g) => ctx.space.hull(g));
  }
  const changedRules = al.changedA.length + al.changedB.length;
  return { boxes: region, why: `${changedRules} changed rule(s)${al.policyChanged.length ? `, ${al.policyChanged.length} changed chain policy(ies)` : ''}` };
}
