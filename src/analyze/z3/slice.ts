import type { NumericField } from '../../ir/fields.js';
import { type IntervalSet, intersect, union } from '../../util/intervals.js';
import { familyMax } from '../../util/ip.js';
import type { Box } from '../box/box.js';
import type { Prepass } from '../box/prepass.js';
import type { FamilyModel, ModelRule } from '../model/build.js';
import { FIELDS, FIELD_SLOT, IIF_SLOT, OIF_SLOT, fieldMax } from '../model/fields.js';
import type { Z3Bool } from './context.js';
import type { Encoder } from './encode.js';

/**
 * Slicing: a question about packets of a region only needs the rules that can match some packet
 * of it. The region is given as boxes over the packet where a rule stands; as the packet may
 * have been rewritten before (marks, NAT, TTL, conntrack state, routing), the slots that can
 * change on the way are dropped, which leaves a region over the packet as it arrives. A rule
 * whose match cannot meet that region is encoded as never matching — exact for every packet of
 * the region, so the query must also restrict the packet to it (regionConstraint).
 */
const MUTABLE: readonly NumericField[] = [
  'mark',
  'ctmark',
  'ctstate',
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
  'srctype',
  'dsttype',
];

/**
 * `hooks`: where the packet is when the region applies (`atIngress`: the region is over the
 * packet as it arrives, as a flow is). Destination NAT (nat PREROUTING and
 * OUTPUT) rewrites daddr/dport before everything after it; source NAT only matters to a packet
 * that comes back in over lo (INPUT, PREROUTING) after being sent.
 */
export function ingressRegion(model: FamilyModel, region: readonly Box[], hooks?: ReadonlySet<string>, atIngress = false): Box[] {
  const drop = new Set<number>([...MUTABLE.map((f) => FIELD_SLOT[f]), OIF_SLOT]);
  // NAT rewrites addresses and ports. Later rules see the values NAT writes: those slots are
  // widened by every value it can write. And unless the region is already over the arriving
  // packet (`atIngress`), a packet in it after NAT may have arrived with any value NAT maps into
  // it: where a NAT target meets the region, the slot is left free.
  const widen = new Map<number, IntervalSet | undefined>();
  const add = (slot: number, set: IntervalSet | undefined) => {
    if (widen.has(slot) && widen.get(slot) === undefined) return;
    widen.set(slot, set === undefined ? undefined : union(widen.get(slot) ?? [], set));
  };
  const all = hooks === undefined;
  const afterDnat = all || [...hooks].some((h) => h !== 'PREROUTING' || model.stages.PREROUTING.some((s) => s.table === 'nat'));
  const loopback = all || hooks.has('INPUT') || hooks.has('PREROUTING') || hooks.has('POSTROUTING');
  const max = familyMax(model.family);
  for (const r of model.rules) {
    if (r.effect.type !== 'nat') continue;
    const nat = r.effect.nat;
    const dst = nat.type === 'dnat' || nat.type === 'redirect' || (nat.type === 'netmap' && r.chain !== 'POSTROUTING' && r.chain !== 'INPUT');
    if (dst ? !afterDnat : !loopback) continue;
    const addrSlot = FIELD_SLOT[dst ? 'daddr' : 'saddr'];
    const portSlot = FIELD_SLOT[dst ? 'dport' : 'sport'];
    if (nat.type === 'redirect' || nat.type === 'masquerade') {
      add(addrSlot, model.routing.hasHost ? union(union(model.routing.local, model.routing.loopback), model.routing.addresses.map((a) => [a.addr, a.addr] as const)) : undefined);
    } else if (nat.addr) add(addrSlot, nat.type === 'netmap' ? [[0n, max]] : [nat.addr]);
    if (nat.ports) add(portSlot, [nat.ports]);
    else if (nat.random || nat.fullyRandom) add(portSlot, undefined);
  }
  // Keep only what regionConstraint can state as a Z3 constraint on the arriving packet, so
  // that slicing and the constraint agree on the region.
  for (const f of ['dscp', 'pkttype', 'srctype', 'dsttype'] as const) drop.add(FIELD_SLOT[f]);
  return region.map((b) =>
    b.map((s, i) => {
      if (drop.has(i) || s === undefined) return undefined;
      if (i < FIELDS.length && s[s.length - 1][1] > fieldMax(FIELDS[i], model.family)) return undefined;
      if (widen.has(i)) {
        const w = widen.get(i);
        if (w === undefined || (!atIngress && intersect(s, w).length > 0)) return undefined;
        return union(s, w);
      }
      return s;
    }),
  );
}

export function relevanceFilter(prepass: Prepass, region: readonly Box[]): (r: ModelRule) => boolean {
  const dom = prepass.dom;
  return (r) => prepass.boxes[r.id].over.some((m) => region.some((b) => dom.overlaps(m, b)));
}

/** The packet at ingress lies in the region (slots holding "absent" are left free). */
export function regionConstraint(enc: Encoder, model: FamilyModel, region: readonly Box[]): Z3Bool {
  const parts: Z3Bool[] = [];
  for (const b of region) {
    const conj: Z3Bool[] = [];
    b.forEach((set, slot) => {
      if (set === undefined) return;
      if (slot === IIF_SLOT) {
        if (enc.vars.iif) conj.push(enc.ifaceIn(enc.vars.iif, set));
        return;
      }
      if (slot === OIF_SLOT) return;
      const f = FIELDS[slot];
      if (f === 'dscp') return; // derived from tos; constrained through it by the rules themselves
      const max = fieldMax(f, model.family);
      if (set[set.length - 1][1] > max) return; // may be absent: leave it free
      conj.push(enc.inSet(enc.fieldVar(f), set, enc.bits(f)));
    });
    parts.push(enc.and(conj));
  }
  return enc.or(parts);
}
