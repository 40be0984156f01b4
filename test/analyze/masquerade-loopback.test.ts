import { describe, expect, it } from 'vitest';
import { allEngines, localUdp, same } from './support/engines.js';
import { nfp } from './support/nfp.js';

/**
 * The source MASQUERADE gives a packet the host sends to itself (out of lo), in all four
 * engines. IPv4: inet_select_addr skips lo's host-scoped 127.0.0.1 and takes the first
 * interface address (kernel: test/kernel/masquerade-source.test.ts, outOfLo). IPv6:
 * ipv6_dev_get_saddr prefers the destination itself when it is one of the host's addresses
 * (rule 1, "same address"), and ::1 is on every host, so this holds without a host model too;
 * a subnet-router anycast address is none of the host's addresses, and the longest matching
 * prefix picks the source (kernel: the IPv6 scenario beside outOfLo). Found by the diff's trust property (seed 5): the
 * diff walk gave every IPv6 packet over lo ::1 and, without a host model, the made-up address.
 *
 * Runtime: ~3 s.
 */
const host = `
host gw {
  interface lan dev eth0 address 192.168.18.1/24 address fd00:18::1/64
  interface wan dev eth1 address 192.168.20.1/24 address fd00:20::1/64
  route default via 192.168.20.254 dev wan
  route default via fd00:20::fe dev wan
}`;

const rules = `
table ip nat {
  chain postrouting {
    masquerade
  }
}
table ip6 nat {
  chain postrouting {
    masquerade
  }
}`;

describe('MASQUERADE of a packet to this host (out of lo), in every engine', () => {
  it('IPv6 takes the destination itself (an anycast one excepted), with or without a host model', async () => {
    const sentTo = (source: string) => same({ verdict: 'sent', egress: 'lo', source });
    const withHost = nfp(`${host}\n${rules}`);
    expect(await allEngines(withHost, localUdp('ipv6', 'fd00:20::1', 'fd00:18::1', 7000), { source: true })).toEqual(sentTo('fd00:18::1'));
    expect(await allEngines(withHost, localUdp('ipv6', 'fd00:18::1', '::1', 7000), { source: true })).toEqual(sentTo('::1'));
    // The lan prefix's subnet-router anycast address (a forwarding host joins it) is no source:
    // the longest matching prefix picks the lan address (kernel: the same scenario).
    expect(await allEngines(withHost, localUdp('ipv6', 'fd00:20::1', 'fd00:18::', 7000), { source: true })).toEqual(sentTo('fd00:18::1'));
    const hostless = nfp(rules);
    expect(await allEngines(hostless, localUdp('ipv6', 'ff00::1', '::1', 7000), { source: true })).toEqual(sentTo('::1'));
  });

  it('IPv4 takes the first interface address, not 127.0.0.1, even one declared on lo', async () => {
    const withHost = nfp(`${host}\n${rules}`);
    const expected = same({ verdict: 'sent', egress: 'lo', source: '192.168.18.1' });
    expect(await allEngines(withHost, localUdp('ipv4', '192.168.20.1', '192.168.20.1', 7000), { source: true })).toEqual(expected);
    const declaredLo = nfp(`${host.replace('host gw {', 'host gw {\n  interface loop dev lo address 127.0.0.1/8')}\n${rules}`);
    expect(await allEngines(declaredLo, localUdp('ipv4', '192.168.20.1', '192.168.20.1', 7000), { source: true })).toEqual(expected);
  });
});
