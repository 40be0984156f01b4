import { describe, expect, it } from 'vitest';
import { CT_STATUS } from '../../src/ir/fields.js';
import type { Packet } from '../../src/netfilter/packet.js';
import { harnessAvailable } from './harness/env.js';
import { GATEWAY, type KernelRun, type Scenario, addr, at, ping, restore, checkScenario, swap, tcp, udp } from './harness/index.js';

/**
 * NAT on the kernel, mirroring the ideas of the kernel's own selftest nft_nat.sh (DNAT, port-only
 * DNAT, masquerade with and without fully-random, redirect, port shadowing and its three
 * mitigations, UDP DNAT clash) on the gateway of the source document, with iptables rules.
 * Each scenario states by hand what the kernel must do (expectKernel); when the simulator is
 * there, it must also agree with the kernel on every packet, entry and counter. ~6 s.
 */
const env = harnessAvailable();
const A = (s: string): bigint => addr(s).value;

const only = (run: KernelRun, i: number) => {
  const s = run.steps[i];
  expect(s.emitted.length + s.delivered.length, `packet ${i + 1}: ${JSON.stringify(s.emitted.map((e) => e.device))}`).toBe(1);
  return s.emitted[0] ?? { device: 'local', packet: s.delivered[0].packet };
};

const dnat: Scenario = {
  name: 'DNAT port forward: wan client reaches a LAN server, replies come back from the public address',
  host: GATEWAY,
  rules: { ipv4: restore({ nat: ['-A PREROUTING -d 192.168.20.1/32 -i eth1 -p tcp -m tcp --dport 80 -j DNAT --to-destination 192.168.18.10:8080'] }) },
  inputs: [
    at(0, 'eth1', tcp('198.51.100.9:40000', '192.168.20.1:80', 'S', { seq: 100 })),
    at(0, 'eth0', tcp('192.168.18.10:8080', '198.51.100.9:40000', 'SA', { seq: 900, ack: 101 })),
    at(0, 'eth1', tcp('198.51.100.9:40000', '192.168.20.1:80', 'A', { seq: 101, ack: 901 })),
  ],
  expectKernel(run) {
    expect(only(run, 0)).toMatchObject({ device: 'eth0', packet: { src: A('198.51.100.9'), dst: A('192.168.18.10'), dport: 8080, ttl: 63 } });
    expect(only(run, 1)).toMatchObject({ device: 'eth1', packet: { src: A('192.168.20.1'), sport: 80, dst: A('198.51.100.9') } });
    expect(only(run, 2).device).toBe('eth0');
    const [e] = run.final.entries;
    expect(run.final.entries).toHaveLength(1);
    expect(e.reply).toMatchObject({ src: A('192.168.18.10'), sport: 8080, dst: A('198.51.100.9'), dport: 40000 });
    expect(e.tcpState).toBe('ESTABLISHED');
    expect(e.status & (CT_STATUS.ASSURED | CT_STATUS.DST_NAT)).toBe(CT_STATUS.ASSURED | CT_STATUS.DST_NAT);
    // The nat table sees the connection's first packet only.
    const pre = run.final.chains.find((c) => c.table === 'nat' && c.chain === 'PREROUTING')!;
    expect(pre.rules[0].packets).toBe(1);
  },
};

const dnat6: Scenario = {
  name: 'DNAT port forward over IPv6',
  host: GATEWAY,
  rules: { ipv6: restore({ nat: ['-A PREROUTING -d fd00:20::1/128 -i eth1 -p tcp -m tcp --dport 80 -j DNAT --to-destination [fd00:18::10]:8080'] }) },
  inputs: [
    at(0, 'eth1', tcp('[2001:db8::9]:40000', '[fd00:20::1]:80', 'S', { seq: 100 })),
    at(0, 'eth0', tcp('[fd00:18::10]:8080', '[2001:db8::9]:40000', 'SA', { seq: 900, ack: 101 })),
  ],
  expectKernel(run) {
    expect(only(run, 0)).toMatchObject({ device: 'eth0', packet: { dst: A('fd00:18::10'), dport: 8080, ttl: 63 } });
    expect(only(run, 1)).toMatchObject({ device: 'eth1', packet: { src: A('fd00:20::1'), sport: 80 } });
    expect(run.final.entries.map((e) => [e.family, e.tcpState])).toEqual([['ipv6', 'SYN_RECV']]);
  },
};

const portOnly: Scenario = {
  name: 'port-only DNAT keeps the address and changes the port',
  host: GATEWAY,
  rules: { ipv4: restore({ nat: ['-A PREROUTING -d 192.168.18.10/32 -p udp -m udp --dport 53 -j DNAT --to-destination :5353'] }) },
  inputs: [at(0, 'eth1', udp('198.51.100.9:4000', '192.168.18.10:53', 'q')), at(0, 'eth0', udp('192.168.18.10:5353', '198.51.100.9:4000', 'a'))],
  expectKernel(run) {
    expect(only(run, 0)).toMatchObject({ device: 'eth0', packet: { dst: A('192.168.18.10'), dport: 5353 } });
    expect(only(run, 1)).toMatchObject({ device: 'eth1', packet: { src: A('192.168.18.10'), sport: 53 } });
    expect(run.final.entries[0].status & CT_STATUS.SEEN_REPLY).toBeTruthy();
  },
};

const request = ping('192.168.18.2', '198.51.100.7', 4660);
const masquerade: Scenario = {
  name: 'MASQUERADE an echo request to the outgoing address, the reply comes back',
  host: GATEWAY,
  rules: {
    ipv4: restore({ nat: ['-A POSTROUTING -o eth1 -j MASQUERADE'] }),
    ipv6: restore({ nat: ['-A POSTROUTING -o eth1 -j MASQUERADE'] }),
  },
  inputs: [
    at(0, 'eth0', request),
    at(0, 'eth1', ping('198.51.100.7', '192.168.20.1', 4660, 1, { reply: true })),
    at(0, 'eth0', ping('fd00:18::2', '2001:db8::7', 99)),
    at(0, 'eth1', ping('2001:db8::7', 'fd00:20::1', 99, 1, { reply: true })),
  ],
  expectKernel(run) {
    // The id is kept: no other connection uses it.
    expect(only(run, 0)).toMatchObject({ device: 'eth1', packet: { src: A('192.168.20.1'), icmp: { type: 8, id: 4660 } } });
    expect(only(run, 1)).toMatchObject({ device: 'eth0', packet: { dst: A('192.168.18.2'), icmp: { type: 0, id: 4660 } } });
    expect(only(run, 2)).toMatchObject({ device: 'eth1', packet: { src: A('fd00:20::1'), icmp: { type: 128, id: 99 } } });
    expect(only(run, 3)).toMatchObject({ device: 'eth0', packet: { dst: A('fd00:18::2'), icmp: { type: 129 } } });
    expect(run.final.entries).toHaveLength(2);
    for (const e of run.final.entries) expect(e.status & (CT_STATUS.SRC_NAT | CT_STATUS.SEEN_REPLY)).toBe(CT_STATUS.SRC_NAT | CT_STATUS.SEEN_REPLY);
  },
};

const fullyRandom: Scenario = {
  name: 'MASQUERADE --random-fully picks the source port at random (compared modulo the choice)',
  host: GATEWAY,
  rules: { ipv4: restore({ nat: ['-A POSTROUTING -o eth1 -p udp -j MASQUERADE --random-fully'] }) },
  inputs: [
    at(0, 'eth0', udp('192.168.18.2:5000', '198.51.100.7:53', 'q')),
    (ctx) => at(0, 'eth1', udp('198.51.100.7:53', `192.168.20.1:${ctx.out(0)?.sport}`, 'a')),
  ],
  expectKernel(run) {
    const out = only(run, 0);
    expect(out.device).toBe('eth1');
    expect(out.packet.sport).toBeGreaterThanOrEqual(1024);
    expect(run.final.entries[0].reply.dport).toBe(out.packet.sport);
    expect(only(run, 1)).toMatchObject({ device: 'eth0', packet: { dst: A('192.168.18.2'), dport: 5000 } });
  },
};

const redirect: Scenario = {
  name: 'REDIRECT to a local port takes the address of the incoming interface (IPv4 and IPv6)',
  host: GATEWAY,
  rules: {
    ipv4: restore({ nat: ['-A PREROUTING -i eth0 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 3128'] }),
    ipv6: restore({ nat: ['-A PREROUTING -i eth0 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 3128'] }),
  },
  inputs: [at(0, 'eth0', tcp('192.168.18.2:40000', '198.51.100.7:80', 'S', { seq: 1 })), at(0, 'eth0', tcp('[fd00:18::2]:40000', '[2001:db8::7]:80', 'S', { seq: 1 }))],
  expectKernel(run) {
    expect(run.steps[0].emitted).toEqual([]);
    expect(run.steps[0].delivered.map((d) => [d.packet.dst, d.packet.dport])).toEqual([[A('192.168.18.1'), 3128]]);
    expect(run.steps[1].delivered.map((d) => [d.packet.dst, d.packet.dport])).toEqual([[A('fd00:18::1'), 3128]]);
  },
};

/**
 * Port shadowing: a LAN host sends from port 1405 to an outside host's port 41404; masquerade
 * keeps 1405. When the outside host later sends from 41404 to the router's own port 1405, the
 * packet matches that connection's reply tuple and goes to the LAN host, not to the router.
 */
const fake = udp('192.168.18.2:1405', '198.51.100.7:41404', 'fake-entry');
const probe = udp('198.51.100.7:41404', '192.168.20.1:1405', 'data');
const shadowInputs = [at(0, 'eth0', fake), at(0, 'eth1', probe)];
const MASQ = '-A POSTROUTING -o eth1 -j MASQUERADE';

const deliveredToRouter = (run: KernelRun) => {
  expect(run.steps[1].emitted).toEqual([]);
  expect(run.steps[1].delivered.map((d) => [d.packet.dst, d.packet.dport])).toEqual([[A('192.168.20.1'), 1405]]);
};

const shadow: Scenario[] = [
  {
    name: 'port shadowing: by default the reply tuple wins and the packet goes to the LAN host',
    host: GATEWAY,
    rules: { ipv4: restore({ nat: [MASQ] }) },
    inputs: shadowInputs,
    expectKernel(run) {
      expect(only(run, 0).packet).toMatchObject({ src: A('192.168.20.1'), sport: 1405 });
      expect(only(run, 1)).toMatchObject({ device: 'eth0', packet: { dst: A('192.168.18.2'), dport: 1405 } });
    },
  },
  {
    name: 'port shadowing, mitigated by filtering forwarded packets from the service port',
    host: GATEWAY,
    rules: { ipv4: restore({ nat: [MASQ], filter: ['-A FORWARD -i eth0 -p udp -m udp --sport 1405 -j DROP'] }) },
    inputs: shadowInputs,
    expectKernel(run) {
      expect(run.steps[0].emitted).toEqual([]);
      deliveredToRouter(run);
    },
  },
  {
    name: 'port shadowing, mitigated by NOTRACK for the service port',
    host: GATEWAY,
    rules: { ipv4: restore({ raw: ['-A PREROUTING -i eth1 -p udp -m udp --dport 1405 -j NOTRACK', '-A OUTPUT -o eth1 -p udp -m udp --sport 1405 -j NOTRACK'], nat: [MASQ] }) },
    inputs: shadowInputs,
    expectKernel: deliveredToRouter,
  },
  {
    name: 'port shadowing, mitigated by remapping low source ports at random',
    host: GATEWAY,
    rules: { ipv4: restore({ nat: ['-A POSTROUTING -o eth1 -p udp -m udp --sport 1:1405 -j MASQUERADE --to-ports 1406-65535 --random', MASQ] }) },
    inputs: shadowInputs,
    expectKernel(run) {
      expect(only(run, 0).packet.sport).toBeGreaterThanOrEqual(1406);
      deliveredToRouter(run);
    },
  },
];

/**
 * UDP DNAT clash: 198.51.100.9:4321 talks to the public 192.168.20.1:1234, which is DNATed to
 * 192.168.18.10:1234; then it talks to 192.168.18.10:1234 directly. The second connection's
 * reply tuple would equal the first's, so the source port of the second must change (at
 * POSTROUTING, where the NAT null binding may move the source port; a DNAT binding cannot
 * change the destination port it was not asked to). Both answers reach the client.
 */
const dnatClash: Scenario = {
  name: 'UDP DNAT clash: the second flow gets a new source port and both answers come back',
  host: GATEWAY,
  rules: { ipv4: restore({ nat: ['-A PREROUTING -d 192.168.20.1/32 -p udp -m udp --dport 1234 -j DNAT --to-destination 192.168.18.10:1234'] }) },
  inputs: [
    at(0, 'eth1', udp('198.51.100.9:4321', '192.168.20.1:1234', 'PING 1')),
    at(0, 'eth0', udp('192.168.18.10:1234', '198.51.100.9:4321', 'PONG 1')),
    at(0, 'eth1', udp('198.51.100.9:4321', '192.168.18.10:1234', 'PING 2')),
    (ctx) => at(0, 'eth0', swap(ctx.out(2) as Packet)),
  ],
  expectKernel(run) {
    expect(only(run, 0)).toMatchObject({ device: 'eth0', packet: { dst: A('192.168.18.10'), sport: 4321 } });
    expect(only(run, 1)).toMatchObject({ device: 'eth1', packet: { src: A('192.168.20.1'), sport: 1234 } });
    const second = only(run, 2);
    expect(second.device).toBe('eth0');
    expect(second.packet.sport).not.toBe(4321);
    expect(second.packet.sport).toBeGreaterThanOrEqual(1024);
    // The answer to the moved port is turned back into the client's own port.
    expect(only(run, 3)).toMatchObject({ device: 'eth1', packet: { src: A('192.168.18.10'), sport: 1234, dst: A('198.51.100.9'), dport: 4321 } });
    expect(run.final.entries).toHaveLength(2);
  },
};

const SCENARIOS: Scenario[] = [dnat, dnat6, portOnly, masquerade, fullyRandom, redirect, ...shadow, dnatClash];

describe.skipIf(!env.run)('NAT on the kernel (nft_nat.sh ideas)', () => {
  for (const s of SCENARIOS) {
    it(s.name, async () => {
      await checkScenario(s);
    });
  }
});
