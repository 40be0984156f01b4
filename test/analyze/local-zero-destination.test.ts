import { describe, expect, it } from 'vitest';
import { allEngines, localUdp, same } from './support/engines.js';
import { at, check, lineOf, nfp } from './support/nfp.js';
import { GATEWAY_HOST } from './support/hosts.js';

/**
 * A locally generated IPv4 packet to 0.0.0.0, held by all four engines at once (simulator,
 * concrete interpreter, Z3 encoding, diff walk): ip_route_output takes no destination as this
 * host, so the packet leaves by lo whatever the table says, comes back in by lo with its header
 * unchanged (daddr 0.0.0.0 in every hook) and is delivered here — checked on the kernel with
 * counters, conntrack and the delivered packet (test/kernel/local-output.test.ts,
 * zeroDestination). The expected values follow from that run by hand.
 *
 * Runtime: ~3 s.
 */

describe('a local IPv4 packet to 0.0.0.0, in every engine', () => {
  it('leaves by lo and is delivered here, its destination still 0.0.0.0', async () => {
    const text = `${GATEWAY_HOST}
table ip filter {
  chain output {
    udp dport 7001 oif lo daddr 0.0.0.0 drop   # L1
    udp dport 7002 oif wan drop   # L2
  }
  chain input {
    udp dport 7003 iif lo daddr 0.0.0.0 drop   # L3
  }
}`;
    const policy = nfp(text);
    // Kernel (zeroDestination): OUTPUT -o lo -d 0.0.0.0 and INPUT -i lo -d 0.0.0.0 count it,
    // OUTPUT -o eth1 (the default route's device) does not; it is delivered.
    expect(await allEngines(policy, localUdp('ipv4', '192.168.20.1', '0.0.0.0', 7000))).toEqual(same({ verdict: 'sent', egress: 'lo' }));
    expect(await allEngines(policy, localUdp('ipv4', '192.168.20.1', '0.0.0.0', 7001))).toEqual(same({ verdict: 'dropped' }));
    expect(await allEngines(policy, localUdp('ipv4', '192.168.20.1', '0.0.0.0', 7002))).toEqual(same({ verdict: 'sent', egress: 'lo' }));
    expect(await allEngines(policy, localUdp('ipv4', '192.168.18.1', '0.0.0.0', 7003))).toEqual(same({ verdict: 'dropped' }));
    // The proofs agree: both rules about 0.0.0.0 over lo can be hit.
    const r = await check(text);
    expect(at(r, lineOf(text, '# L1'))).toEqual([]);
    expect(at(r, lineOf(text, '# L3'))).toEqual([]);
    expect(r.internalErrors).toEqual([]);
  });
});
