import { describe, expect, it } from 'vitest';
import { allEngines, ifaceUdp, localUdp, same } from './support/engines.js';
import { at, check, lineOf, nfp } from './support/nfp.js';

/**
 * `pkttype` of a locally generated packet, held by all four engines at once (simulator,
 * concrete interpreter, Z3 encoding, diff walk): the socket's packet is unicast (PACKET_HOST)
 * in OUTPUT and POSTROUTING whatever its destination, group addresses included — checked on
 * the kernel with counters (test/kernel/local-output.test.ts, localPkttype: UDP to 239.1.2.3
 * and ff0e::1234 counted by `--pkt-type unicast`, never `multicast`). A packet to a group
 * arriving from the wire still reads multicast (xt_pkttype returns the skb's own type).
 * The expected verdicts follow from those counters by hand.
 *
 * Runtime: ~3 s.
 */
const host = `
host gw {
  interface lan dev eth0 address 192.168.18.1/24, fd00:18::1/64
  interface wan dev eth1 address 192.168.20.1/24, fd00:20::1/64
  route default via 192.168.20.254 dev wan
  route default via fd00:20::fe dev wan
}`;

describe('pkttype of local packets, in every engine', () => {
  it('a local packet to a group address is unicast in OUTPUT and POSTROUTING', async () => {
    const text = `${host}
table inet filter {
  chain output {
    udp dport 7000 pkttype multicast drop   # L1
    udp dport 7001 pkttype unicast drop   # L2
  }
}
table inet mangle {
  chain postrouting {
    pkttype multicast drop   # L3
  }
}
table inet raw {
  chain prerouting {
    udp dport 7002 pkttype multicast drop   # L4
  }
}`;
    const policy = nfp(text);
    // Kernel (localPkttype): the IPv4 group leaves by the default route's device (eth1), the
    // IPv6 group by the first interface (eth0); neither is multicast to L1 or L3.
    expect(await allEngines(policy, localUdp('ipv4', '192.168.20.1', '239.1.2.3', 7000))).toEqual(same({ verdict: 'sent', egress: 'eth1' }));
    expect(await allEngines(policy, localUdp('ipv6', 'fd00:18::1', 'ff0e::1234', 7000))).toEqual(same({ verdict: 'sent', egress: 'eth0' }));
    // ... but unicast to L2.
    expect(await allEngines(policy, localUdp('ipv4', '192.168.20.1', '239.1.2.3', 7001))).toEqual(same({ verdict: 'dropped' }));
    expect(await allEngines(policy, localUdp('ipv6', 'fd00:18::1', 'ff0e::1234', 7001))).toEqual(same({ verdict: 'dropped' }));
    // From the wire a group packet is multicast (the control): L4 drops it.
    expect(await allEngines(policy, ifaceUdp('ipv4', 'eth1', '198.51.100.7', '239.1.2.3', 7002))).toEqual(same({ verdict: 'dropped' }));
    // The proofs agree: nothing multicast reaches OUTPUT or POSTROUTING (a group packet from
    // the wire is delivered here, never forwarded), while PREROUTING sees it.
    const r = await check(text);
    expect(at(r, lineOf(text, '# L1')).map((f) => f.kind)).toEqual(['unreachable']);
    expect(at(r, lineOf(text, '# L2'))).toEqual([]);
    expect(at(r, lineOf(text, '# L3')).map((f) => f.kind)).toEqual(['unreachable']);
    expect(at(r, lineOf(text, '# L4'))).toEqual([]);
    expect(r.internalErrors).toEqual([]);
  });
});
