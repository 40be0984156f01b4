import type { NatAction } from '../../ir/effect.js';
import { Tuple, addrToWords } from '../conntrack/tuple.js';
import type { Expectation } from '../expect.js';
import type { Frame } from '../frame.js';
import { ACCEPT, DROP } from '../rules/exec.js';
import type { FamilyState } from '../state.js';
import { type NatRange2, RANGE, hookManip, newRange, resetRange, setupInfo } from './core.js';

/**
 * The NAT targets (xt_nat.c SNAT/DNAT, nf_nat_masquerade.c, nf_nat_redirect.c, xt_NETMAP.c) and
 * nf_nat_follow_master: each turns its parameters and the packet into a range for setupInfo.
 */

/** A NatAction (from a target's effect) as a range, given the address the kind of NAT implies. */
function actionRange(S: FamilyState, a: NatAction, addr: bigint | undefined): NatRange2 {
  const r = resetRange(S.r2);
  if (addr !== undefined) {
    r.flags |= RANGE.MAP_IPS;
    addrToWords(S.family, addr, r.minAddr);
    addrToWords(S.family, addr, r.maxAddr);
  } else if (a.addr) {
    r.flags |= RANGE.MAP_IPS;
    addrToWords(S.family, a.addr[0], r.minAddr);
    addrToWords(S.family, a.addr[1], r.maxAddr);
  }
  if (a.ports) {
    r.flags |= RANGE.PROTO_SPECIFIED;
    r.minProto = Number(a.ports[0]);
    r.maxProto = Number(a.ports[1]);
  }
  if (a.random) r.flags |= RANGE.PROTO_RANDOM;
  if (a.fullyRandom) r.flags |= RANGE.PROTO_RANDOM_FULLY;
  if (a.persistent) r.flags |= RANGE.PERSISTENT;
  return r;
}

/**
 * A NAT target fired in the nat table for the connection's first packet. Returns the verdict
 * (MASQUERADE without an address on the way out and REDIRECT on an interface without address
 * drop the packet, as in the kernel).
 */
export function natTarget(S: FamilyState, f: Frame, a: NatAction): number {
  const i = f.ct;
  if (i < 0) return ACCEPT;
  const hook = f.hook;
  const family = S.family;
  switch (a.type) {
    case 'snat':
      setupInfo(S, i, actionRange(S, a, undefined), 'src', f.now);
      return ACCEPT;
    case 'dnat':
      setupInfo(S, i, actionRange(S, a, undefined), 'dst', f.now);
      return ACCEPT;
    case 'masquerade': {
      const orig = S.table.getTuple(i, 0, S.t3);
      let zero = true;
      for (let k = 0; k < S.words; k++) if (orig.src[k] !== 0) zero = false;
      // An IPv4 packet sent from 0.0.0.0 (a DHCP client) is not masqueraded; IPv6 has no such
      // exception (nf_nat_masquerade_ipv4 tests the address, nf_nat_masquerade_ipv6 does not).
      if (zero && family === 'ipv4') return ACCEPT;
      const nh = f.nexthop ?? f.pkt.dst;
      const src = S.host.selectSource(family, f.oif, nh, f.pkt.dst);
      if (src === undefined) {
        f.dropReason = 'masquerade: no address on the outgoing interface';
        return DROP;
      }
      (S.table.ext[i] ??= {}).masqDevice = f.oif;
      setupInfo(S, i, actionRange(S, a, src), 'src', f.now);
      return ACCEPT;
    }
    case 'redirect': {
      let dst: bigint | undefined;
      if (hook === 'OUTPUT') dst = family === 'ipv4' ? 0x7f000001n : 1n;
      else dst = S.host.primaryAddress(family, f.iif, family === 'ipv6' ? f.pkt.dst : undefined);
      if (dst === undefined) {
        f.dropReason = 'redirect: no address on the incoming interface';
        return DROP;
      }
      setupInfo(S, i, actionRange(S, a, dst), 'dst', f.now);
      return ACCEPT;
    }
    case 'netmap': {
      if (!a.addr) return ACCEPT;
      const m = hookManip(hook);
      const [lo, hi] = a.addr;
      const bits = family === 'ipv4' ? 32n : 128n;
      const all = (1n << bits) - 1n;
      const netmask = ~(lo ^ hi) & all;
      const old = m === 'dst' ? f.pkt.dst : f.pkt.src;
      const mapped = (old & ~netmask & all) | (lo & netmask);
      const r = actionRange(S, { ...a, addr: undefined }, mapped);
      setupInfo(S, i, r, m, f.now);
      return ACCEPT;
    }
    default: {
      const never: never = a.type;
      throw new Error(`unknown NAT type ${String(never)}`);
    }
  }
}

/**
 * nf_nat_follow_master: an expected data connection gets its NAT from the master: the source
 * is mapped to where the master sends to, the destination to the address and port the helper
 * saw before it rewrote the command.
 */
export function natFollowMaster(S: FamilyState, i: number, exp: Expectation, now: number): void {
  const table = S.table;
  const m = exp.master;
  const dir = exp.natDir ?? 0;
  const masterT = table.getTuple(m, (1 - dir) as 0 | 1, new Tuple());
  const r = newRange();
  r.flags = RANGE.MAP_IPS;
  r.minAddr.set(masterT.dst);
  r.maxAddr.set(masterT.dst);
  setupInfo(S, i, r, 'src', now);
  const r2 = newRange();
  r2.flags = RANGE.MAP_IPS | RANGE.PROTO_SPECIFIED;
  r2.minProto = r2.maxProto = exp.savedPort ?? 0;
  r2.minAddr.set(masterT.src);
  r2.maxAddr.set(masterT.src);
  setupInfo(S, i, r2, 'dst', now);
}

