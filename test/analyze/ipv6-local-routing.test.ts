import { describe, expect, it } from 'vitest';
import { allEngines as run, localUdp, same } from './support/engines.js';
import type { Policy } from '../../src/ir/policy.js';
import { at, check, lineOf, nfp } from './support/nfp.js';

/**
 * Two IPv6 behaviours of locally generated packets that the simulator learned from the kernel
 * (test/kernel/routing.test.ts: localGroupFirst, localGroupNoAddress, loopbackGroupSource), held
 * by all four engines at once — the simulator, the concrete interpreter, the Z3 encoding and the
 * diff walk — on small made-up hosts:
 * - a packet to a group (ff00::/8) from a socket bound to no device leaves by the first
 *   interface (its ff00::/8 route was installed first), whatever the routing table says, and is
 *   refused (no route) when that interface has no IPv6 address;
 * - a packet looping back through lo passes ip6_rcv_core's header checks, so one whose source
 *   POSTROUTING turned into a group address dies before PREROUTING on its way back in.
 * The expected values follow from those kernel runs by hand (each case says which).
 *
 * Runtime: ~3 s.
 */
const allEngines = (policy: Policy, src: string, dst: string, dport: number) => run(policy, localUdp('ipv6', src, dst, dport));

const host = (lan: string) => `
host gw {
  interface lan dev eth0 address ${lan}
  interface wan dev eth1 address 192.168.20.1/24, fd00:20::1/64
  route default via fd00:20::fe dev wan
}`;

describe('IPv6 local packets: groups and looping back, in every engine', () => {
  it('a packet to a group leaves by the first interface, not by the default route', async () => {
    // Kernel: localGroupFirst (both ff0e::5 and ffff::ffe2 left by eth0, the lan).
    const text = `${host('192.168.18.1/24, fd00:18::1/64')}
table ip6 filter {
  chain output {
    udp oif lan counter   # L1
    udp oif wan counter   # L2
    udp oif lan daddr ff00::/8 counter   # L3
    udp oif wan daddr ff00::/8 counter   # L4
  }
}`;
    const policy = nfp(text);
    for (const group of ['ff0e::5', 'ffff::ffe2']) {
      expect(await allEngines(policy, 'fd00:20::1', group, 53)).toEqual(same({ verdict: 'sent', egress: 'eth0' }));
    }
    // A unicast destination still takes the default route (the control).
    expect(await allEngines(policy, 'fd00:20::1', '2001:db8::5', 53)).toEqual(same({ verdict: 'sent', egress: 'eth1' }));
    // The pre-pass and the proofs agree: groups are seen going out of lan, never wan.
    const r = await check(text);
    expect(at(r, lineOf(text, '# L3'))).toEqual([]);
    expect(at(r, lineOf(text, '# L4')).map((f) => f.kind)).toEqual(['unreachable']);
    expect(r.internalErrors).toEqual([]);
  });

  it('a packet to a group is refused when the first interface has no IPv6 address', async () => {
    // Kernel: localGroupNoAddress (nothing left: the socket got EADDRNOTAVAIL).
    const text = `${host('192.168.18.1/24')}
table ip6 filter {
  chain output {
    udp daddr ff00::/8 counter   # L1
  }
}`;
    const policy = nfp(text);
    expect(await allEngines(policy, 'fd00:20::1', 'ff0e::5', 53)).toEqual(same({ verdict: 'dropped' }));
    // No group packet ever reaches OUTPUT, so the proof engine calls the rule unreachable.
    const r = await check(text);
    expect(at(r, lineOf(text, '# L1')).map((f) => f.kind)).toEqual(['unreachable']);
    expect(r.internalErrors).toEqual([]);
  });

  it('a looped-back packet SNATed to a group source dies before PREROUTING', async () => {
    // Kernel: loopbackGroupSource (nothing delivered, filter INPUT counted 0).
    const text = `${host('192.168.18.1/24, fd00:18::1/64')}
table ip6 nat {
  chain postrouting {
    udp dport 7003 snat to ff0e::77
  }
}
table ip6 filter {
  chain input {
    iif lo ct state new ct status confirmed udp dport 7003 counter   # L1
    iif lo ct state new ct status confirmed udp dport 7004 counter   # L2
  }
}`;
    const policy = nfp(text);
    expect(await allEngines(policy, 'fd00:18::1', 'fd00:20::1', 7003)).toEqual(same({ verdict: 'dropped' }));
    // Not SNATed: loops back and is delivered (the control).
    expect(await allEngines(policy, 'fd00:18::1', 'fd00:20::1', 7004)).toEqual(same({ verdict: 'sent', egress: 'lo' }));
    // Only a looped-back first packet is in INPUT by lo with its connection already confirmed
    // (a packet arriving on lo from outside the model is not): L1 sees none of them.
    const r = await check(text);
    expect(at(r, lineOf(text, '# L1')).map((f) => f.kind)).toEqual(['unreachable']);
    expect(at(r, lineOf(text, '# L2'))).toEqual([]);
    expect(r.internalErrors).toEqual([]);
  });
});
