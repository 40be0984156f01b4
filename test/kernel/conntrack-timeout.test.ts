import { describe, expect, it } from 'vitest';
import { CT_STATUS } from '../../src/ir/fields.js';
import { harnessAvailable } from './harness/env.js';
import { GATEWAY, type Scenario, addr, at, restore, checkScenario, tcp, udp } from './harness/index.js';

/**
 * Entries that never see a reply, after the kernel selftest conntrack_tcp_unreplied.sh: while
 * an unreplied TCP entry lives, retransmitted SYNs belong to it and the nat table is not asked
 * again; once it has timed out (timeouts shortened with per-namespace sysctls), the same SYN
 * is a new connection and NAT applies. The replay waits in real time: ~6 s.
 */
const env = harnessAvailable();
const A = (s: string): bigint => addr(s).value;

/**
 * The first SYN carries URG, which the REDIRECT rule does not match; later plain SYNs would
 * match it, but only a new connection consults the nat table.
 */
const unreplied: Scenario = {
  name: 'an unreplied TCP entry keeps its (null) NAT binding until it times out, then NAT applies',
  host: GATEWAY,
  sysctls: { nf_conntrack_tcp_timeout_syn_sent: '1' },
  rules: { ipv4: restore({ nat: ['-A PREROUTING -d 10.99.99.99/32 -p tcp -m tcp --dport 80 --tcp-flags URG NONE -j REDIRECT --to-ports 8080'] }) },
  inputs: [
    at(0, 'eth0', tcp('192.168.18.2:33000', '10.99.99.99:80', 'SU', { seq: 500 })),
    at(0.3, 'eth0', tcp('192.168.18.2:33000', '10.99.99.99:80', 'S', { seq: 500 })),
    at(2.5, 'eth0', tcp('192.168.18.2:33000', '10.99.99.99:80', 'S', { seq: 500 })),
  ],
  expectKernel(run) {
    expect(run.steps[0].emitted.map((e) => e.device)).toEqual(['eth1']);
    // The retransmission belongs to the first entry: forwarded, not redirected.
    expect(run.steps[1].emitted.map((e) => [e.device, e.packet.dport])).toEqual([['eth1', 80]]);
    // After syn_sent (1 s) the entry is gone: the SYN is new and redirected to the router.
    expect(run.steps[2].emitted).toEqual([]);
    expect(run.steps[2].delivered.map((d) => [d.packet.dst, d.packet.dport])).toEqual([[A('192.168.18.1'), 8080]]);
    expect(run.final.entries).toHaveLength(1);
    expect(run.final.entries[0]).toMatchObject({ tcpState: 'SYN_SENT', reply: { src: A('192.168.18.1'), sport: 8080 } });
    expect(run.final.entries[0].status & CT_STATUS.DST_NAT).toBeTruthy();
  },
};

/**
 * UDP: an unreplied entry lives udp_timeout. A reply alone does not earn the longer
 * udp_timeout_stream: the kernel (nf_conntrack_proto_udp.c) grants it, and ASSURED, only to
 * traffic seen after the entry is two seconds old.
 */
const udpExpiry: Scenario = {
  name: 'UDP: unreplied entries expire after udp_timeout; udp_timeout_stream and ASSURED only for traffic after 2 s',
  host: GATEWAY,
  sysctls: { nf_conntrack_udp_timeout: '3', nf_conntrack_udp_timeout_stream: '6' },
  rules: { ipv4: restore({ filter: ['-A FORWARD -m conntrack --ctstate NEW'] }) },
  inputs: [
    at(0, 'eth0', udp('192.168.18.2:5000', '198.51.100.7:53', 'q0')),
    at(0, 'eth0', udp('192.168.18.2:5001', '198.51.100.7:53', 'q1')),
    at(0, 'eth1', udp('198.51.100.7:53', '192.168.18.2:5001', 'a1')),
    at(2.5, 'eth0', udp('192.168.18.2:5001', '198.51.100.7:53', 'q1 again')),
    at(3.5, 'eth0', udp('192.168.18.2:5002', '198.51.100.7:53', 'q2')),
  ],
  expectKernel(run) {
    const byPort = new Map(run.final.entries.map((e) => [e.original.sport, e]));
    // 5000 (unreplied, 3 s) is gone; 5001 was refreshed at 2.5 s with the stream timeout.
    expect([...byPort.keys()].sort()).toEqual([5001, 5002]);
    const stream = byPort.get(5001)!;
    expect(stream.status & CT_STATUS.ASSURED).toBeTruthy();
    expect(stream.timeout).toBeGreaterThanOrEqual(4);
    expect(byPort.get(5002)!.status & CT_STATUS.SEEN_REPLY).toBe(0);
    expect(run.final.count).toBe(2);
  },
};

describe.skipIf(!env.run)('conntrack timeouts on the kernel (conntrack_tcp_unreplied.sh ideas)', () => {
  for (const s of [unreplied, udpExpiry]) {
    it(s.name, async () => {
      await checkScenario(s);
    });
  }
});
