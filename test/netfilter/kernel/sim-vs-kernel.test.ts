import { describe, expect, it } from 'vitest';
import type { Packet } from '../../../src/netfilter/packet.js';
import { harnessAvailable } from '../../kernel/harness/env.js';
import { GATEWAY, type KernelRun, type Scenario, addr, at, checkScenario, hostModel, restore, tcp, udp } from '../../kernel/harness/index.js';

/**
 * Simulator behaviours checked on the real kernel through the differential harness
 * (test/kernel/harness): each scenario states by hand what the kernel must do, and the
 * simulator must agree with the kernel on every packet, entry, count and counter. ~10 s.
 */
const env = harnessAvailable();
const A = (s: string): bigint => addr(s).value;

/**
 * Locally generated packets get an explicit IP id: the harness sends them through a raw socket,
 * and the kernel picks an id of its own (ip_select_ident) for a header whose id is 0.
 */
const withId = (p: Packet): Packet => ({ ...p, ipId: 4242 });

const ACCEPT_STATE = '-A FORWARD -m state --state INVALID,NEW,RELATED,ESTABLISHED,UNTRACKED -j ACCEPT';

const scenarios: Scenario[] = [
  {
    // nf_ct_netns_get() is only called by extensions that need conntrack: without one, the
    // kernel never tracks (see src/netfilter/rules/needs-conntrack.ts).
    name: 'a ruleset without conntrack matches tracks nothing',
    host: GATEWAY,
    rules: { ipv4: restore({ nat: [], filter: ['-A FORWARD -p tcp -j ACCEPT'] }) },
    inputs: [at(0, 'eth0', tcp('192.168.18.2:1000', '198.51.100.9:80', 'S', { seq: 1 }))],
    expectKernel(run: KernelRun) {
      expect(run.steps[0].emitted.map((e) => e.device)).toEqual(['eth1']);
      expect(run.final.entries).toEqual([]);
      expect(run.final.count).toBe(0);
    },
  },
  {
    // find_best_ips_proto: the address inside an SNAT range comes from jhash2 over the source
    // and destination addresses, so the choice is the kernel's exact one (deterministic).
    name: 'SNAT to an address range picks the address the kernel picks',
    host: GATEWAY,
    rules: { ipv4: restore({ nat: ['-A POSTROUTING -o eth1 -j SNAT --to-source 192.168.20.10-192.168.20.40'] }) },
    inputs: [
      at(0, 'eth0', tcp('192.168.18.2:1000', '198.51.100.9:80', 'S', { seq: 1 })),
      at(0, 'eth0', tcp('192.168.18.3:1000', '198.51.100.9:80', 'S', { seq: 1 })),
      at(0, 'eth0', tcp('192.168.18.4:1000', '203.0.113.77:443', 'S', { seq: 1 })),
      at(0, 'eth0', tcp('192.168.18.200:5555', '8.8.8.8:53', 'S', { seq: 1 })),
    ],
    expectKernel(run: KernelRun) {
      for (const s of run.steps) {
        const src = s.emitted[0].packet.src;
        expect(src >= A('192.168.20.10') && src <= A('192.168.20.40')).toBe(true);
      }
    },
  },
  {
    name: 'SNAT --persistent to a range: the same client keeps its address for every destination',
    host: GATEWAY,
    rules: { ipv4: restore({ nat: ['-A POSTROUTING -o eth1 -j SNAT --to-source 192.168.20.10-192.168.20.40 --persistent'] }) },
    inputs: [
      at(0, 'eth0', udp('192.168.18.2:1000', '198.51.100.9:53')),
      at(0, 'eth0', udp('192.168.18.2:1001', '203.0.113.77:53')),
      at(0, 'eth0', udp('192.168.18.2:1002', '8.8.4.4:53')),
    ],
    expectKernel(run: KernelRun) {
      const srcs = new Set(run.steps.map((s) => s.emitted[0].packet.src));
      expect(srcs.size).toBe(1);
    },
  },
  {
    // nf_send_reset: SYN → RST+ACK with seq 0 and ack = seq + 1, sent back toward the client.
    name: 'REJECT with tcp-reset answers a forwarded SYN; no entry is left',
    host: GATEWAY,
    rules: { ipv4: restore({ filter: ['-A FORWARD -p tcp -m tcp --dport 23 -j REJECT --reject-with tcp-reset', ACCEPT_STATE] }) },
    inputs: [at(0, 'eth0', tcp('192.168.18.2:1000', '198.51.100.9:23', 'S', { seq: 4000 }))],
    expectKernel(run: KernelRun) {
      const [rst] = run.steps[0].emitted;
      expect(run.steps[0].emitted).toHaveLength(1);
      expect(rst.device).toBe('eth0');
      expect(rst.packet).toMatchObject({ src: A('198.51.100.9'), sport: 23, dst: A('192.168.18.2'), dport: 1000 });
      expect(rst.packet.tcp).toMatchObject({ flags: 0x14, seq: 0, ack: 4001 });
      expect(run.final.entries).toEqual([]);
    },
  },
  {
    // The ICMP error REJECT sends carries the offending packet's connection (icmp_glue_bits
    // calls nf_ct_attach), unconfirmed as it is: RELATED in OUTPUT, not INVALID, so an OUTPUT
    // `state INVALID` drop does not eat it. (nfproof first got this wrong: without the attach,
    // the quoted connection is not in the table yet and the lookup finds nothing.)
    name: 'REJECT with port-unreachable for a new flow: the answer is RELATED in OUTPUT',
    host: GATEWAY,
    rules: {
      ipv4: restore({
        filter: {
          rules: [
            '-A FORWARD -p udp -m udp --dport 161 -j REJECT --reject-with icmp-port-unreachable',
            ACCEPT_STATE,
            '-A OUTPUT -m state --state INVALID -j DROP',
            '-A OUTPUT -m state --state RELATED -j ACCEPT',
          ],
        },
      }),
    },
    inputs: [at(0, 'eth0', udp('192.168.18.2:5000', '198.51.100.9:161'))],
    expectKernel(run: KernelRun) {
      expect(run.steps[0].emitted.map((e) => [e.device, e.packet.icmp?.type, e.packet.icmp?.code])).toEqual([['eth0', 3, 3]]);
      const out = run.final.chains.find((c) => c.table === 'filter' && c.chain === 'OUTPUT')!;
      expect(out.rules.map((r) => r.packets)).toEqual([0, 1]);
      expect(run.final.entries).toEqual([]);
    },
  },
  {
    // ip_forward: a packet that would leave with TTL 0 is answered with "time exceeded" from
    // the address of the interface toward the sender, before the FORWARD hook.
    name: 'TTL 1 on a forwarded packet: ICMP time exceeded from the gateway',
    host: GATEWAY,
    rules: { ipv4: restore({ filter: [ACCEPT_STATE] }) },
    inputs: [at(0, 'eth0', udp('192.168.18.2:5000', '198.51.100.9:33434', '', { ttl: 1 }))],
    expectKernel(run: KernelRun) {
      const [icmp] = run.steps[0].emitted;
      expect(run.steps[0].emitted).toHaveLength(1);
      expect(icmp.device).toBe('eth0');
      expect(icmp.packet).toMatchObject({ src: A('192.168.18.1'), dst: A('192.168.18.2'), icmp: { type: 11, code: 0 } });
      const fwd = run.final.chains.find((c) => c.table === 'filter' && c.chain === 'FORWARD')!;
      expect(fwd.rules[0].packets).toBe(0);
    },
  },
  {
    // Locally generated: OUTPUT (raw, conntrack, mangle, nat DNAT, filter) then POSTROUTING
    // (nat SNAT); MASQUERADE takes the address of the outgoing interface.
    name: 'a locally generated SYN is masqueraded on the way out',
    host: GATEWAY,
    rules: { ipv4: restore({ nat: ['-A POSTROUTING -o eth1 -p tcp -j MASQUERADE --to-ports 20000-20010'] }) },
    inputs: [at(0, 'local', withId(tcp('192.168.18.1:3333', '198.51.100.9:80', 'S', { seq: 7 })))],
    expectKernel(run: KernelRun) {
      const [out] = run.steps[0].emitted;
      expect(out.device).toBe('eth1');
      expect(out.packet.src).toBe(A('192.168.20.1'));
      expect(out.packet.sport).toBeGreaterThanOrEqual(20000);
      expect(out.packet.sport).toBeLessThanOrEqual(20010);
      expect(run.final.entries).toHaveLength(1);
    },
  },
  {
    // DNAT in OUTPUT reroutes (ip_route_me_harder): the packet leaves by the interface of the
    // new destination.
    name: 'DNAT in OUTPUT sends the packet where the new destination routes',
    host: GATEWAY,
    rules: { ipv4: restore({ nat: ['-A OUTPUT -d 198.51.100.9/32 -p udp -j DNAT --to-destination 192.168.18.50:5353'] }) },
    inputs: [at(0, 'local', udp('192.168.20.1:4000', '198.51.100.9:53', '', { ipId: 4242 }))],
    expectKernel(run: KernelRun) {
      const [out] = run.steps[0].emitted;
      expect(out.device).toBe('eth0');
      expect(out.packet).toMatchObject({ dst: A('192.168.18.50'), dport: 5353, src: A('192.168.20.1'), sport: 4000 });
    },
  },
  {
    // REDIRECT in OUTPUT goes to 127.0.0.1 (nf_nat_redirect_ipv4) and is delivered over lo.
    name: 'REDIRECT in OUTPUT delivers to 127.0.0.1 over loopback',
    host: GATEWAY,
    rules: { ipv4: restore({ nat: ['-A OUTPUT -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 3128'] }) },
    inputs: [at(0, 'local', withId(tcp('192.168.18.1:40000', '93.184.216.34:80', 'S', { seq: 1 })))],
    expectKernel(run: KernelRun) {
      expect(run.steps[0].emitted).toEqual([]);
      expect(run.steps[0].delivered).toHaveLength(1);
      expect(run.steps[0].delivered[0].packet).toMatchObject({ dst: A('127.0.0.1'), dport: 3128 });
    },
  },
  {
    // An answer from a TCP connection that only saw a SYN: the reply RST kills the entry at
    // once (nf_conntrack_tcp_packet: no reply seen yet, so the RST-to-SYN entry is deleted).
    name: 'a RST answering a forwarded SYN removes the entry',
    host: GATEWAY,
    rules: { ipv4: restore({ filter: [ACCEPT_STATE] }) },
    inputs: [
      at(0, 'eth0', tcp('192.168.18.2:1000', '198.51.100.9:81', 'S', { seq: 100 })),
      at(0, 'eth1', tcp('198.51.100.9:81', '192.168.18.2:1000', 'RA', { seq: 0, ack: 101 })),
    ],
    expectKernel(run: KernelRun) {
      expect(run.steps[1].emitted.map((e) => e.device)).toEqual(['eth0']);
      expect(run.final.entries).toEqual([]);
    },
  },
  {
    // REJECT of a DNATed connection's first packet: the ICMP error carries the connection
    // (RELATED, reply direction) and nf_nat_icmp_reply_translation turns both the quoted packet
    // and the error's source back to the public address the client used.
    name: 'REJECT after DNAT: the ICMP error comes from the public address, quoting it',
    host: GATEWAY,
    rules: {
      ipv4: restore({
        nat: ['-A PREROUTING -i eth1 -p tcp -m tcp --dport 80 -j DNAT --to-destination 192.168.18.10:8080'],
        filter: ['-A FORWARD -p tcp -m tcp --dport 8080 -j REJECT --reject-with icmp-port-unreachable'],
      }),
    },
    inputs: [at(0, 'eth1', tcp('198.51.100.9:40000', '192.168.20.1:80', 'S', { seq: 1 }))],
    expectKernel(run: KernelRun) {
      const [err] = run.steps[0].emitted;
      expect(run.steps[0].emitted).toHaveLength(1);
      expect(err.device).toBe('eth1');
      expect(err.packet).toMatchObject({ src: A('192.168.20.1'), dst: A('198.51.100.9'), icmp: { type: 3, code: 3 } });
      expect(err.packet.icmp!.inner).toMatchObject({ src: A('198.51.100.9'), sport: 40000, dst: A('192.168.20.1'), dport: 80 });
      expect(run.final.entries).toEqual([]);
    },
  },
  {
    // The reset REJECT sends carries the rejected (unconfirmed) connection, RELATED in the
    // reply direction: its SRC binding is not made yet, so the reset itself goes through the
    // nat POSTROUTING chain (and counts there), then is rewritten to the public address.
    name: 'REJECT with tcp-reset after DNAT: the reset walks nat POSTROUTING and leaves from the public address',
    host: GATEWAY,
    rules: {
      ipv4: restore({
        nat: ['-A PREROUTING -i eth1 -p tcp -m tcp --dport 80 -j DNAT --to-destination 192.168.18.10:8080', '-A POSTROUTING -o eth1 -j MASQUERADE'],
        filter: ['-A FORWARD -p tcp -m tcp --dport 8080 -j REJECT --reject-with tcp-reset'],
      }),
    },
    inputs: [at(0, 'eth1', tcp('198.51.100.9:40000', '192.168.20.1:80', 'S', { seq: 9 }))],
    expectKernel(run: KernelRun) {
      const [rst] = run.steps[0].emitted;
      expect(rst.device).toBe('eth1');
      expect(rst.packet).toMatchObject({ src: A('192.168.20.1'), sport: 80, dst: A('198.51.100.9'), dport: 40000 });
      const post = run.final.chains.find((c) => c.table === 'nat' && c.chain === 'POSTROUTING')!;
      expect(post.rules[0].packets).toBe(1);
    },
  },
  {
    // ip_forward: routed back out of the interface it came in by, from a sender on that link:
    // an ICMP host redirect (type 5 code 1) to the better gateway, and the packet is still
    // forwarded. The next redirect to the same sender waits 20 ms << 1 (ip_rt_send_redirect).
    name: 'forwarded back out of the incoming interface: ICMP redirect to the better gateway',
    host: hostModel({
      interfaces: { lan: ['eth0', '192.168.18.1/24'], wan: ['eth1', '192.168.20.1/24'] },
      routes: ['10.99.0.0/16 via 192.168.18.254 dev lan', 'default via 192.168.20.254 dev wan'],
    }),
    // The harness switches redirects off in the firewall; this scenario turns them back on.
    sysctls: { 'net.ipv4.conf.all.send_redirects': '1' },
    rules: { ipv4: restore({ filter: [ACCEPT_STATE] }) },
    inputs: [
      at(0, 'eth0', udp('192.168.18.2:5000', '10.99.0.5:53')),
      at(0, 'eth0', udp('192.168.18.2:5001', '10.99.0.5:53')),
    ],
    expectKernel(run: KernelRun) {
      const first = run.steps[0].emitted;
      expect(first.map((e) => [e.device, e.packet.proto])).toEqual(expect.arrayContaining([['eth0', 17], ['eth0', 1]]));
      const rd = first.find((e) => e.packet.proto === 1)!;
      expect(rd.packet).toMatchObject({ src: A('192.168.18.1'), dst: A('192.168.18.2'), icmp: { type: 5, code: 1 } });
      expect(run.steps[1].emitted.map((e) => e.packet.proto)).toEqual([17]);
    },
  },
];

describe.skipIf(!env.run)('simulator vs kernel: conntrack activation, NAT address choice, answers the host sends', () => {
  for (const s of scenarios) {
    it(s.name, async () => {
      await checkScenario(s);
    });
  }
});
