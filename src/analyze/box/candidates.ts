import { CT_STATE, type CtStateName, type NumericField, PROTO } from '../../ir/fields.js';
import type { Hook } from '../../ir/netfilter.js';
import { type IntervalSet, contains } from '../../util/intervals.js';
import type { Family } from '../../util/ip.js';
import { CHOICE } from '../concrete/interp.js';
import type { PacketInput } from '../concrete/input.js';
import type { FamilyModel } from '../model/build.js';
import { FIELDS, IIF_SLOT, OIF_SLOT, absentValue } from '../model/fields.js';
import type { Box, BoxDomain } from './box.js';

/**
 * Turning a box into concrete packets to try. Values are picked to read naturally in a
 * witness (TCP SYN to port 80, TTL 64, documentation addresses) whenever the box allows it.
 */
const PREFERRED: Partial<Record<NumericField, bigint>> = {
  proto: BigInt(PROTO.tcp),
  sport: 40000n,
  dport: 80n,
  tcpflags: 0x02n,
  icmptype: 8n,
  icmpcode: 0n,
  length: 60n,
  ttl: 64n,
  tos: 0n,
  dscp: 0n,
  fragment: 0n,
  pkttype: 0n,
  mark: 0n,
  ctmark: 0n,
  ctstatus: 0n,
  ctdir: 0n,
  macsrc: 0x02000000000an,
  uid: 1000n,
  gid: 1000n,
};

const ADDR_PREFERRED: Readonly<Record<Family, { saddr: bigint; daddr: bigint }>> = {
  ipv4: { saddr: 0xcb007107n /* 203.0.113.7 */, daddr: 0xc6336407n /* 198.51.100.7 */ },
  ipv6: { saddr: 0x20010db8000000000000000000000007n, daddr: 0x20010db8000100000000000000000007n },
};

/** Values for fields a witness leaves open: what a packet would naturally carry. */
export const DEFAULT_FIELDS: Readonly<Record<Family, Partial<Record<NumericField, bigint>>>> = {
  ipv4: { ...PREFERRED, ...ADDR_PREFERRED.ipv4 },
  ipv6: { ...PREFERRED, ...ADDR_PREFERRED.ipv6, ttl: 64n, icmptype: 128n },
};

const STATE_BY_VALUE: Readonly<Record<number, CtStateName>> = Object.fromEntries(
  Object.entries(CT_STATE).map(([k, v]) => [v, k as CtStateName]),
);

function pick(set: IntervalSet, prefer: bigint | undefined, variant: number, rand: () => number): bigint {
  if (variant < 2 && prefer !== undefined && contains(set, prefer)) return prefer;
  if (variant === 2) {
    // Some spread: a pseudo-random point of a random interval.
    const [lo, hi] = set[Math.floor(rand() * set.length)];
    const span = hi - lo;
    return span === 0n ? lo : lo + (BigInt(Math.floor(rand() * 2 ** 30)) % (span + 1n));
  }
  const [lo, hi] = set[0];
  return lo < hi ? lo + 1n : lo;
}

/**
 * Up to `count` packets from a box, for the concrete interpreter to confirm. `hook` tells what
 * the box describes (the routing choice when there is no host model).
 */
export function candidates(model: FamilyModel, dom: BoxDomain, box: Box, hook: Hook, count = 3, seed = 1): PacketInput[] {
  return [...lazyCandidates(model, dom, box, hook, count, seed)];
}

/** The same, one at a time: callers that stop at the first good packet build no more. */
export function* lazyCandidates(model: FamilyModel, dom: BoxDomain, box: Box, hook: Hook, count = 3, seed = 1): Generator<PacketInput> {
  let s = seed >>> 0 || 1;
  const rand = () => {
    // xorshift32: deterministic, good enough for spreading picks.
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
  for (let variant = 0; variant < count; variant++) {
    const prefer = variant === 1 ? { proto: BigInt(PROTO.tcp), ctstate: BigInt(CT_STATE.ESTABLISHED) } : { proto: BigInt(PROTO.tcp), ctstate: BigInt(CT_STATE.NEW) };
    const b = dom.normalizeForPoint(box, prefer);
    if (!b) return;
    const fam = model.family;
    // Without a host model the replay makes one up from the witnesses; addresses that differ by
    // route and interface keep those made-up hosts compatible, so one simulator replays them all.
    const spread = (f: 'saddr' | 'daddr'): bigint => {
      const base = ADDR_PREFERRED[fam][f];
      if (model.routing.hasHost) return base;
      const iif = b[IIF_SLOT]?.[0]?.[0] ?? 0n;
      const oif = b[OIF_SLOT]?.[0]?.[0] ?? 0n;
      const forwarded = hook === 'FORWARD' || hook === 'POSTROUTING';
      return f === 'saddr' ? base + iif * 2n : base + (forwarded ? 64n + oif * 2n : 0n);
    };
    const value = (slot: number): bigint => {
      const f = FIELDS[slot];
      const pref = f === 'saddr' || f === 'daddr' ? spread(f) : f === 'ctstate' ? prefer.ctstate : DEFAULT_FIELDS[fam][f];
      const s = b[slot];
      if (s === undefined && variant < 2) return pref ?? 1n;
      return pick(s ?? dom.values(b, slot), pref, variant, rand);
    };
    const fields: Partial<Record<NumericField, bigint>> = {};
    FIELDS.forEach((f, i) => {
      const v = value(i);
      if (v !== absentValue(f, fam) || f === 'cthelper') fields[f] = v;
    });
    // The box may be a chain's after marks were set; the packet itself arrives unmarked.
    fields.mark = 0n;
    const ifaceIndex = (slot: number): number => {
      const set = dom.values(b, slot);
      const lo = model.ifaces.classOf('lo');
      // A device no rule names slips past interface-specific rules (and is never lo).
      const unnamed = model.ifaces.unnamed();
      if (variant < 2 && unnamed !== undefined && contains(set, BigInt(unnamed))) return unnamed;
      const devices: number[] = [];
      for (const [a, z] of set) for (let i = a; i <= z && devices.length < 64; i++) if (Number(i) !== lo) devices.push(Number(i));
      if (devices.length === 0) return Number(set[0][0]);
      return variant < 2 ? devices[0] : devices[Math.floor(rand() * devices.length)];
    };
    const iif = model.ifaces.nameOf(ifaceIndex(IIF_SLOT));
    const oifIndex = ifaceIndex(OIF_SLOT);
    const state = STATE_BY_VALUE[Number(fields.ctstate ?? BigInt(CT_STATE.NEW))] ?? 'NEW';
    const ctState: PacketInput['ctState'] = state === 'UNTRACKED' ? 'NEW' : state;
    const forwarded = hook === 'FORWARD' || (hook === 'POSTROUTING' && iif !== '');
    yield {
      family: fam,
      ingress: iif === '' ? { kind: 'local' } : { kind: 'iface', device: iif },
      fields,
      ctState,
      choices: { [CHOICE.route]: forwarded ? 1n : 0n, [CHOICE.routeNat]: forwarded ? 1n : 0n, [CHOICE.oif]: BigInt(oifIndex === 0 ? 1 : oifIndex) },
    };
  }
}
