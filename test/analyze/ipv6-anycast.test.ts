import { describe, expect, it } from 'vitest';
import { allEngines, ifaceUdp, localUdp, same } from './support/engines.js';
import { at, check, lineOf, nfp } from './support/nfp.js';

/**
 * Two IPv6 behaviours the simulator learned from the kernel (test/kernel/routing.test.ts), held
 * by all four engines at once — the simulator, the concrete interpreter, the Z3 encoding and the
 * diff walk — on a small made-up host, with the proof engine's findings to match:
 * - a forwarding host owns the subnet-router anycast address of each prefix of its addresses
 *   shorter than /127 (the prefix with all host bits zero): a packet to it is delivered here,
 *   from any interface, and a local packet to it goes over lo (subnetRouterAnycast,
 *   anycast127, anycast126);
 * - a local packet to a group of scope 0 or 1 that leaves by a device other than lo passes
 *   OUTPUT and POSTROUTING and is then discarded (localGroupScope).
 * The expected values follow from those kernel runs by hand (each case says which).
 *
 * Runtime: ~5 s.
 */
const host = `
host gw {
  interface lan dev eth0 address 192.168.18.1/24, fd00:18::1/64
  interface wan dev eth1 address 192.168.20.1/24, fd00:20::1/64
  interface p2p dev eth2 address 2001:db8:ff::1/127, 2001:db8:fe::1/126
  route default via fd00:20::fe dev wan
}`;

describe('IPv6 subnet-router anycast and group scope, in every engine', () => {
  it('a subnet-router anycast address is delivered here, from any interface, and local packets to it go over lo', async () => {
    const text = `${host}
table ip6 filter {
  chain input {
    udp daddr fd00:20:: counter   # L1
  }
  chain forward {
    udp daddr fd00:20:: counter   # L2
    udp daddr fd00:18:: counter   # L3
    udp daddr 2001:db8:ff:: counter   # L4
  }
}`;
    const policy = nfp(text);
    // Kernel: subnetRouterAnycast packets 1 and 2 (wan's and lan's anycast address, both
    // arriving on wan, delivered) and 6 (the control, fd00:18::2, forwarded out of eth0).
    expect(await allEngines(policy, ifaceUdp('ipv6', 'eth1', '2001:db8:77::5', 'fd00:20::', 53))).toEqual(same({ verdict: 'local' }));
    expect(await allEngines(policy, ifaceUdp('ipv6', 'eth1', '2001:db8:77::5', 'fd00:18::', 53))).toEqual(same({ verdict: 'local' }));
    expect(await allEngines(policy, ifaceUdp('ipv6', 'eth1', '2001:db8:77::5', 'fd00:18::2', 53))).toEqual(same({ verdict: 'forwarded', egress: 'eth0' }));
    // Kernel: anycast127 (a /127's first address is forwarded) and anycast126 (delivered).
    expect(await allEngines(policy, ifaceUdp('ipv6', 'eth0', 'fd00:18::5', '2001:db8:ff::', 53))).toEqual(same({ verdict: 'forwarded', egress: 'eth2' }));
    expect(await allEngines(policy, ifaceUdp('ipv6', 'eth0', 'fd00:18::5', '2001:db8:fe::', 53))).toEqual(same({ verdict: 'local' }));
    // Kernel: subnetRouterAnycast packet 5 (looped back through lo and delivered).
    expect(await allEngines(policy, localUdp('ipv6', 'fd00:18::1', 'fd00:20::', 53))).toEqual(same({ verdict: 'sent', egress: 'lo' }));
    // The proofs agree: no anycast packet is forwarded, but the /127's first address is.
    const r = await check(text);
    expect(at(r, lineOf(text, '# L1'))).toEqual([]);
    expect(at(r, lineOf(text, '# L2')).map((f) => f.kind)).toEqual(['unreachable']);
    expect(at(r, lineOf(text, '# L3')).map((f) => f.kind)).toEqual(['unreachable']);
    expect(at(r, lineOf(text, '# L4'))).toEqual([]);
    expect(r.internalErrors).toEqual([]);
  });

  it('addrtype sees a subnet-router anycast address as ANYCAST, not LOCAL', async () => {
    // Kernel: subnetRouterAnycast (INPUT's LOCAL rule counted none, the ANYCAST rule all five).
    const text = `${host}
table ip6 filter {
  chain input {
    udp daddr fd00:20:: daddr type local counter   # L1
    udp daddr fd00:20:: daddr type anycast counter   # L2
  }
}`;
    const r = await check(text);
    expect(at(r, lineOf(text, '# L1')).map((f) => f.kind)).toEqual(['unreachable']);
    expect(at(r, lineOf(text, '# L2'))).toEqual([]);
    expect(r.internalErrors).toEqual([]);
  });

  it('a local packet to a group of scope 0 or 1 is discarded after POSTROUTING; link scope leaves', async () => {
    // Kernel: localGroupScope (ff01::1234 and ffe0:ff:0:1:: counted in OUTPUT and POSTROUTING,
    // nothing left; ff02::1234 left by eth0, the first interface).
    const text = `${host}
table ip6 mangle {
  chain postrouting {
    udp daddr ff01::/16 counter   # L1
  }
}`;
    const policy = nfp(text);
    expect(await allEngines(policy, localUdp('ipv6', 'fd00:18::1', 'ff01::1234', 53))).toEqual(same({ verdict: 'dropped' }));
    expect(await allEngines(policy, localUdp('ipv6', 'fd00:18::1', 'ffe0:ff:0:1::', 53))).toEqual(same({ verdict: 'dropped' }));
    expect(await allEngines(policy, localUdp('ipv6', 'fd00:18::1', 'ff02::1234', 53))).toEqual(same({ verdict: 'sent', egress: 'eth0' }));
    // POSTROUTING still sees it: the rule is reachable.
    const r = await check(text);
    expect(at(r, lineOf(text, '# L1'))).toEqual([]);
    expect(r.internalErrors).toEqual([]);
  });
});
