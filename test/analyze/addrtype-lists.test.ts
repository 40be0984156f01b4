import { describe, expect, it } from 'vitest';
import { allEngines, ifaceUdp, same } from './support/engines.js';
import { nfp } from './support/nfp.js';

/**
 * IPv6 address-type lists in all four engines: match_type6 requires every class type asked for
 * (unicast, multicast, unspec) and any one route type (local, anycast, unreachable), so
 * `unicast,multicast` matches nothing and `!= unicast,local,anycast,multicast` everything
 * (kernel: test/kernel/routing.test.ts, ipv6TypeLists); a subnet-router anycast address is
 * ANYCAST. The diff walk knew IPv6 types as one route type per address, without ANYCAST, and
 * let such packets through (found by the diff's trust property, seed 32); it now reads the
 * simulator's whole field value per address range, as the Z3 encoding does.
 *
 * Runtime: ~2 s.
 */
const host = `
host gw {
  interface lan dev eth0 address fd00:18::1/64
  interface wan dev eth1 address 2001:db8::1/64
  interface mgmt dev veth address fd00:ee::1/64
  route default via fd00:ee::fe dev mgmt
}`;

describe('IPv6 addrtype lists, in every engine', () => {
  // From the lan, a source of the wan's prefix, to the wan prefix's subnet-router anycast address.
  const toUs = ifaceUdp('ipv6', 'eth0', '2001:db8::7', '2001:db8::', 53);
  it('unicast,multicast matches no address', async () => {
    const policy = nfp(`${host}\ntable ip6 filter {\n  chain input {\n    daddr type unicast,multicast drop\n  }\n}`);
    expect(await allEngines(policy, toUs)).toEqual(same({ verdict: 'local' }));
  });
  it('a subnet-router anycast destination is ANYCAST', async () => {
    // Kernel: routing.test.ts subnetRouterAnycast. The walk had no ANYCAST type at all.
    const policy = nfp(`${host}\ntable ip6 filter {\n  chain input {\n    daddr type anycast drop\n  }\n}`);
    expect(await allEngines(policy, toUs)).toEqual(same({ verdict: 'dropped' }));
  });
  it('!= unicast,local,anycast,multicast matches every address', async () => {
    const policy = nfp(`${host}\ntable ip6 filter {\n  chain input {\n    saddr type != unicast,local,anycast,multicast drop\n  }\n}`);
    expect(await allEngines(policy, toUs)).toEqual(same({ verdict: 'dropped' }));
  });
});
