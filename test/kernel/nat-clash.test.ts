import { describe, expect, it } from 'vitest';
import { CT_STATUS } from '../../src/ir/fields.js';
import type { Packet } from '../../src/netfilter/packet.js';
import { harnessAvailable } from './harness/env.js';
import { GATEWAY, type KernelRun, type Scenario, addr, answer, at, restore, checkScenario, swap, tcp, udp } from './harness/index.js';

/**
 * Source port re-allocation when NAT would produce a tuple that is already in use, after the
 * kernel selftests nf_nat_edemux.sh and conntrack_reverse_clash. The kernel moves the source
 * port (SNAT side, at random in the port's class); it never moves a destination port it was not
 * asked to. The harness compares the moved port modulo the random choice. ~2 s.
 */
const env = harnessAvailable();
const A = (s: string): bigint => addr(s).value;

const one = (run: KernelRun, i: number): Packet => {
  const s = run.steps[i];
  const all = [...s.emitted.map((e) => e.packet), ...s.delivered.map((d) => d.packet)];
  expect(all, `packet ${i + 1}`).toHaveLength(1);
  return all[0];
};

/**
 * A client talks to the backend 192.168.20.5:5201 directly from port 10000, then to the
 * virtual address 10.96.0.1:443, which DNAT sends to the same backend: the second connection
 * would have the first one's reply tuple, so its source port must move.
 */
const dnatEdemux: Scenario = {
  name: 'DNAT to a backend the client already talks to from the same port: the source port moves',
  host: GATEWAY,
  rules: { ipv4: restore({ nat: ['-A PREROUTING -d 10.96.0.1/32 -p tcp -m tcp --dport 443 -j DNAT --to-destination 192.168.20.5:5201'] }) },
  inputs: [
    at(0, 'eth0', tcp('192.168.18.2:10000', '192.168.20.5:5201', 'S', { seq: 10 })),
    at(0, 'eth1', tcp('192.168.20.5:5201', '192.168.18.2:10000', 'SA', { seq: 70, ack: 11 })),
    at(0, 'eth0', tcp('192.168.18.2:10000', '192.168.20.5:5201', 'A', { seq: 11, ack: 71 })),
    at(0, 'eth0', tcp('192.168.18.2:10000', '10.96.0.1:443', 'S', { seq: 20 })),
    (ctx) => at(0, 'eth1', answer(ctx.out(3) as Packet, 'SA', { seq: 80, ack: 21 })),
  ],
  expectKernel(run) {
    expect(one(run, 0).sport).toBe(10000);
    const moved = one(run, 3);
    expect(moved).toMatchObject({ dst: A('192.168.20.5'), dport: 5201 });
    expect(moved.sport).not.toBe(10000);
    expect(moved.sport).toBeGreaterThanOrEqual(1024);
    // The backend's answer to the moved port reaches the client as coming from the virtual address.
    expect(one(run, 4)).toMatchObject({ src: A('10.96.0.1'), sport: 443, dst: A('192.168.18.2'), dport: 10000 });
    const second = run.final.entries.find((e) => e.original.dport === 443)!;
    expect(second.status & (CT_STATUS.SRC_NAT | CT_STATUS.DST_NAT)).toBe(CT_STATUS.SRC_NAT | CT_STATUS.DST_NAT);
  },
};

/**
 * Two connections from one client port to the router's ports 5202 and 5203, both redirected to
 * local port 5201: the second would have the first one's reply tuple, so the nat INPUT hook (a
 * null SNAT binding) moves its source port before it is delivered.
 */
const redirectEdemux: Scenario = {
  name: 'two REDIRECTs to one local port from the same client port: the second is delivered with another source port',
  host: GATEWAY,
  rules: {
    ipv4: restore({
      nat: ['-A PREROUTING -p tcp -m tcp --dport 5202 -j REDIRECT --to-ports 5201', '-A PREROUTING -p tcp -m tcp --dport 5203 -j REDIRECT --to-ports 5201'],
    }),
  },
  inputs: [
    at(0, 'eth0', tcp('192.168.18.2:10000', '192.168.18.1:5202', 'S', { seq: 1 })),
    at(0, 'eth0', tcp('192.168.18.2:10000', '192.168.18.1:5203', 'S', { seq: 2 })),
  ],
  expectKernel(run) {
    expect(run.steps[0].delivered.map((d) => [d.packet.dport, d.packet.sport])).toEqual([[5201, 10000]]);
    const second = run.steps[1].delivered.map((d) => d.packet);
    expect(second).toHaveLength(1);
    expect(second[0].dport).toBe(5201);
    expect(second[0].sport).not.toBe(10000);
    expect(run.final.entries).toHaveLength(2);
  },
};

/**
 * With a NAT table present every connection gets a null binding. A datagram going the other way
 * between the same two ports is the reply of the first, not a new connection: the ports must stay.
 */
const reverse: Scenario = {
  name: 'reverse direction under a null binding is the reply: ports unchanged, one entry',
  host: GATEWAY,
  rules: { ipv4: restore({ nat: ['-A POSTROUTING -o nomatch -j MASQUERADE'] }) },
  inputs: [
    at(0, 'eth0', udp('192.168.18.2:56789', '198.51.100.7:56790', 'ping')),
    at(0, 'eth1', udp('198.51.100.7:56790', '192.168.18.2:56789', 'pong')),
    (ctx) => at(0, 'eth0', swap(swap(ctx.out(0) as Packet))),
  ],
  expectKernel(run) {
    expect(one(run, 0)).toMatchObject({ sport: 56789, dport: 56790 });
    expect(one(run, 1)).toMatchObject({ sport: 56790, dport: 56789 });
    expect(run.final.entries).toHaveLength(1);
    const e = run.final.entries[0];
    expect(e.status & (CT_STATUS.SEEN_REPLY | CT_STATUS.SRC_NAT | CT_STATUS.DST_NAT)).toBe(CT_STATUS.SEEN_REPLY);
  },
};

describe.skipIf(!env.run)('NAT port clashes on the kernel (nf_nat_edemux.sh, conntrack_reverse_clash ideas)', () => {
  for (const s of [dnatEdemux, redirectEdemux, reverse]) {
    it(s.name, async () => {
      await checkScenario(s);
    });
  }
});
