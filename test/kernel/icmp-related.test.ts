import { describe, expect, it } from 'vitest';
import { CT_STATUS, PROTO } from '../../src/ir/fields.js';
import type { Packet } from '../../src/netfilter/packet.js';
import { harnessAvailable } from './harness/env.js';
import { GATEWAY, type KernelRun, type Scenario, addr, at, icmpError, ping, restore, checkScenario, tcp, udp } from './harness/index.js';

/**
 * ICMP errors and conntrack, after the kernel selftest conntrack_icmp_related.sh: an error that
 * quotes a tracked connection is RELATED, is reverse-NATed (outer destination and the quoted
 * packet's source), and reaches the inside host; an error quoting nothing tracked is INVALID.
 * Also echo through masquerade, an echo id clash, and ICMP inside ICMP. ~5 s.
 */
const env = harnessAvailable();
const A = (s: string): bigint => addr(s).value;

/** FORWARD: RELATED ICMP errors counted in rule 1, INVALID dropped in rule 2, new/established accepted, the rest dropped by policy. */
const forward4 = {
  policies: { FORWARD: 'DROP' as const },
  rules: [
    '-A FORWARD -p icmp -m conntrack --ctstate RELATED -j ACCEPT',
    '-A FORWARD -m conntrack --ctstate INVALID -j DROP',
    '-A FORWARD -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT',
  ],
};
const forward6 = {
  policies: { FORWARD: 'DROP' as const },
  rules: [
    '-A FORWARD -p ipv6-icmp -m conntrack --ctstate RELATED -j ACCEPT',
    '-A FORWARD -m conntrack --ctstate INVALID -j DROP',
    '-A FORWARD -m conntrack --ctstate NEW,ESTABLISHED -j ACCEPT',
  ],
};
const MASQ = '-A POSTROUTING -o eth1 -j MASQUERADE';

function forwardCounters(run: KernelRun, family: 'ipv4' | 'ipv6'): number[] {
  const c = run.final.chains.find((x) => x.family === family && x.table === 'filter' && x.chain === 'FORWARD')!;
  return [...c.rules.map((r) => r.packets), c.policy!.packets];
}

const emittedOnly = (run: KernelRun, i: number) => {
  const s = run.steps[i];
  expect(s.delivered).toEqual([]);
  expect(s.emitted).toHaveLength(1);
  return s.emitted[0];
};

const fragNeeded: Scenario = {
  name: 'fragmentation needed for a masqueraded TCP connection is RELATED and reverse-NATed, inner header included',
  host: GATEWAY,
  rules: { ipv4: restore({ nat: [MASQ], filter: forward4 }) },
  inputs: [
    at(0, 'eth0', tcp('192.168.18.2:5000', '198.51.100.7:80', 'S', { seq: 1, payload: 'x'.repeat(1400) })),
    (ctx) => at(0, 'eth1', icmpError('198.51.100.254', '192.168.20.1', 3, 4, ctx.out(0) as Packet, { mtu: 1280 })),
  ],
  expectKernel(run) {
    expect(emittedOnly(run, 0).packet).toMatchObject({ src: A('192.168.20.1'), sport: 5000 });
    const err = emittedOnly(run, 1);
    expect(err.device).toBe('eth0');
    expect(err.packet).toMatchObject({ src: A('198.51.100.254'), dst: A('192.168.18.2'), ttl: 63, icmp: { type: 3, code: 4, mtu: 1280 } });
    expect(err.packet.icmp?.inner).toMatchObject({ src: A('192.168.18.2'), sport: 5000, dst: A('198.51.100.7'), dport: 80 });
    expect(err.checksumOk).toBe(true);
    // RELATED: rule 1 saw the error; rule 3 the SYN; nothing fell to the policy.
    expect(forwardCounters(run, 'ipv4')).toEqual([1, 0, 1, 0]);
    // An error does not create an entry of its own.
    expect(run.final.entries).toHaveLength(1);
  },
};

const tooBig6: Scenario = {
  name: 'IPv6 packet too big for a masqueraded flow is RELATED and reverse-NATed',
  host: GATEWAY,
  rules: { ipv6: restore({ nat: [MASQ], filter: forward6 }) },
  inputs: [
    at(0, 'eth0', udp('[fd00:18::2]:5000', '[2001:db8::7]:53', 'y'.repeat(1300))),
    (ctx) => at(0, 'eth1', icmpError('2001:db8::fe', 'fd00:20::1', 2, 0, ctx.out(0) as Packet, { mtu: 1280 })),
  ],
  expectKernel(run) {
    expect(emittedOnly(run, 0).packet.src).toBe(A('fd00:20::1'));
    const err = emittedOnly(run, 1);
    expect(err.packet).toMatchObject({ dst: A('fd00:18::2'), icmp: { type: 2, mtu: 1280, inner: { src: A('fd00:18::2'), sport: 5000 } } });
    expect(forwardCounters(run, 'ipv6')).toEqual([1, 0, 1, 0]);
  },
};

const unrelated: Scenario = {
  name: 'an ICMP error quoting no tracked connection is INVALID',
  host: GATEWAY,
  rules: { ipv4: restore({ nat: [MASQ], filter: forward4 }) },
  inputs: [at(0, 'eth1', icmpError('198.51.100.254', '192.168.18.2', 3, 1, udp('192.168.18.2:7777', '198.51.100.7:53', 'q', { ttl: 63 })))],
  expectKernel(run) {
    expect(run.steps[0].emitted).toEqual([]);
    expect(forwardCounters(run, 'ipv4')).toEqual([0, 1, 0, 0]);
    expect(run.final.entries).toEqual([]);
  },
};

const portUnreachable: Scenario = {
  name: 'port unreachable for a masqueraded UDP flow reaches the inside host',
  host: GATEWAY,
  rules: { ipv4: restore({ nat: [MASQ], filter: forward4 }) },
  inputs: [
    at(0, 'eth0', udp('192.168.18.2:6000', '198.51.100.7:9', 'discard')),
    (ctx) => at(0, 'eth1', icmpError('198.51.100.7', '192.168.20.1', 3, 3, ctx.out(0) as Packet)),
  ],
  expectKernel(run) {
    const err = emittedOnly(run, 1);
    expect(err.packet).toMatchObject({ src: A('198.51.100.7'), dst: A('192.168.18.2'), icmp: { type: 3, code: 3, inner: { src: A('192.168.18.2'), sport: 6000, proto: PROTO.udp } } });
    expect(forwardCounters(run, 'ipv4')).toEqual([1, 0, 1, 0]);
    // An error is not a reply: the flow stays unreplied.
    expect(run.final.entries[0].status & CT_STATUS.SEEN_REPLY).toBe(0);
  },
};

const timeExceeded: Scenario = {
  name: 'time exceeded quoting a masqueraded echo request (ICMP in ICMP) is RELATED, the quoted id turned back',
  host: GATEWAY,
  rules: { ipv4: restore({ nat: [MASQ], filter: forward4 }) },
  inputs: [
    at(0, 'eth0', ping('192.168.18.2', '198.51.100.7', 31)),
    (ctx) => at(0, 'eth1', icmpError('203.0.113.1', '192.168.20.1', 11, 0, { ...(ctx.out(0) as Packet), ttl: 1 })),
  ],
  expectKernel(run) {
    const err = emittedOnly(run, 1);
    expect(err.packet).toMatchObject({ dst: A('192.168.18.2'), icmp: { type: 11, inner: { src: A('192.168.18.2'), icmp: { type: 8, id: 31 } } } });
    expect(forwardCounters(run, 'ipv4')).toEqual([1, 0, 1, 0]);
  },
};

/**
 * Two inside hosts ping the same server with the same echo id: after masquerade both would be
 * 192.168.20.1 id 7, so the second gets another id; its reply is mapped back to host 2's id 7.
 */
const idClash: Scenario = {
  name: 'echo id clash behind masquerade: the second id is changed and mapped back',
  host: GATEWAY,
  rules: { ipv4: restore({ nat: [MASQ] }) },
  inputs: [
    at(0, 'eth0', ping('192.168.18.2', '198.51.100.7', 7)),
    at(0, 'eth0', ping('192.168.18.3', '198.51.100.7', 7)),
    (ctx) => at(0, 'eth1', ping('198.51.100.7', '192.168.20.1', ctx.out(1)?.icmp?.id ?? -1, 1, { reply: true })),
  ],
  expectKernel(run) {
    expect(emittedOnly(run, 0).packet.icmp?.id).toBe(7);
    const second = emittedOnly(run, 1).packet;
    expect(second.src).toBe(A('192.168.20.1'));
    expect(second.icmp?.id).not.toBe(7);
    expect(emittedOnly(run, 2).packet).toMatchObject({ dst: A('192.168.18.3'), icmp: { type: 0, id: 7 } });
    expect(run.final.entries).toHaveLength(2);
  },
};

const SCENARIOS = [fragNeeded, tooBig6, unrelated, portUnreachable, timeExceeded, idClash];

describe.skipIf(!env.run)('ICMP errors and conntrack on the kernel (conntrack_icmp_related.sh ideas)', () => {
  for (const s of SCENARIOS) {
    it(s.name, async () => {
      await checkScenario(s);
    });
  }
});
