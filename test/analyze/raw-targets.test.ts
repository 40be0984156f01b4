import { describe, expect, it } from 'vitest';
import { allEngines, ifaceUdp, same } from './support/engines.js';
import { nfp } from './support/nfp.js';
import { GATEWAY_HOST } from './support/hosts.js';

/**
 * What later raw rules see after a CT or NOTRACK target, in all four engines: NOTRACK gives the
 * packet the untracked connection at once (UNTRACKED), a CT template reads as a new, confirmed
 * connection, and whichever comes first wins (kernel: test/kernel/conntrack-match.test.ts,
 * notrackInRaw and templateStatus). The diff walk read INVALID after NOTRACK and nothing of the
 * template until conntrack ran; this file pins the four engines together.
 *
 * Runtime: ~2 s.
 */
const policy = nfp(`${GATEWAY_HOST}
table ip raw {
  chain prerouting {
    udp dport 7001 notrack
    udp dport 7001 ct state untracked drop
    udp dport 7002 ct zone set 5
    udp dport 7002 notrack
    udp dport 7002 ct state untracked drop
    udp dport 7003 ct zone set 5
    udp dport 7003 ct state new ct status confirmed drop
  }
}`);

describe('raw rules after a CT or NOTRACK target, in every engine', () => {
  const from = (dport: number) => ifaceUdp('ipv4', 'eth0', '192.168.18.5', '198.51.100.7', dport);
  it('NOTRACK: the next raw rule reads UNTRACKED', async () => {
    expect(await allEngines(policy, from(7001))).toEqual(same({ verdict: 'dropped' }));
  });
  it('a CT template first: NOTRACK does nothing, the packet is not untracked', async () => {
    expect(await allEngines(policy, from(7002))).toEqual(same({ verdict: 'forwarded', egress: 'eth1' }));
  });
  it('a CT template reads as a new, confirmed connection', async () => {
    expect(await allEngines(policy, from(7003))).toEqual(same({ verdict: 'dropped' }));
  });
});
