import { describe, expect, it } from 'vitest';
import { CT_STATUS } from '../../src/ir/fields.js';
import {
  ACCEPT,
  addr,
  at,
  chain,
  daddr,
  dnat,
  dport,
  host,
  icmp,
  iif,
  masquerade,
  netmap,
  oif,
  policy,
  proto,
  redirect,
  rule,
  saddr,
  simulate,
  snat,
  table,
  tcp,
  udp,
} from './support/build.js';

/**
 * NAT behaviour, each expectation derived by hand from net/netfilter/nf_nat_core.c
 * (get_unique_tuple, nf_nat_l4proto_unique_tuple), nf_nat_masquerade.c, nf_nat_redirect.c and
 * xt_NETMAP.c, as cited per test.
 */
const gw = host({
  interfaces: [
    { name: 'lan', device: 'eth0', addrs: ['10.0.0.1/24'] },
    { name: 'wan', device: 'eth1', addrs: ['198.51.100.1/24', '198.51.100.2/24'] },
    { name: 'dmz', device: 'eth2', addrs: ['172.16.0.1/24'] },
  ],
  routes: [{ dest: 'default', via: '198.51.100.254', device: 'eth1' }],
});

const natTable = (pre: ReturnType<typeof rule>[], post: ReturnType<typeof rule>[], out: ReturnType<typeof rule>[] = []) =>
  table('nat', [chain('PREROUTING', pre), chain('INPUT', []), chain('OUTPUT', out), chain('POSTROUTING', post)]);

describe('DNAT', () => {
  it('forwards to the inside server and translates the reply source back (port forwarding)', () => {
    const sim = simulate(policy(gw, [natTable([rule([iif('eth1'), proto('tcp'), dport(80)], dnat('172.16.0.10:8080'))], [])]));
    const syn = sim.process(at(0, 'eth1', tcp({ src: '203.0.113.7', sport: 40000, dst: '198.51.100.1', dport: 80 })));
    expect(syn.verdict).toBe('forwarded');
    expect(syn.egress?.device).toBe('eth2');
    expect(syn.egress!.packet).toMatchObject({ dst: addr('172.16.0.10'), dport: 8080, src: addr('203.0.113.7'), sport: 40000 });
    const [e] = sim.entries();
    // The reply tuple comes from the server as the server sees it.
    expect(e.reply).toMatchObject({ src: addr('172.16.0.10'), sport: 8080, dst: addr('203.0.113.7'), dport: 40000 });
    expect(e.status & CT_STATUS.DST_NAT).toBeTruthy();
    const synack = sim.process(at(0.1, 'eth2', tcp({ src: '172.16.0.10', sport: 8080, dst: '203.0.113.7', dport: 40000, flags: 'SA', seq: 7000, ack: 1001 })));
    expect(synack.verdict).toBe('forwarded');
    expect(synack.egress?.device).toBe('eth1');
    expect(synack.egress!.packet).toMatchObject({ src: addr('198.51.100.1'), sport: 80 });
  });

  it('a DNAT to an address of this host delivers locally (routing after PREROUTING)', () => {
    const sim = simulate(policy(gw, [natTable([rule([iif('eth0'), proto('tcp'), dport(8080)], dnat('10.0.0.1:22'))], [])]));
    const o = sim.process(at(0, 'eth0', tcp({ src: '10.0.0.5', dst: '192.0.2.1', dport: 8080 })));
    expect(o.verdict).toBe('local');
    expect(o.delivered).toMatchObject({ dst: addr('10.0.0.1'), dport: 22 });
  });
});

describe('MASQUERADE', () => {
  it('takes the outgoing interface address in the subnet of the next hop (inet_select_addr)', () => {
    const sim = simulate(policy(gw, [natTable([], [rule([oif('eth1')], masquerade())])]));
    const o = sim.process(at(0, 'eth0', tcp({ src: '10.0.0.5', sport: 5555, dst: '203.0.113.9', dport: 443 })));
    // Next hop 198.51.100.254 is in 198.51.100.0/24: the first address of that subnet on eth1.
    expect(o.egress!.packet).toMatchObject({ src: addr('198.51.100.1'), sport: 5555 });
  });

  it('out of lo never takes a 127/8 address, even one the host model declares on lo', () => {
    // inet_select_addr(lo, …, RT_SCOPE_UNIVERSE) skips host-scoped 127.0.0.1 and takes the
    // first universe address of the host (kernel: test/kernel/masquerade-source.test.ts outOfLo,
    // where lo has 127.0.0.1 as always).
    const withLo = host({
      interfaces: [
        { name: 'loop', device: 'lo', addrs: ['127.0.0.1/8'] },
        { name: 'lan', device: 'eth0', addrs: ['10.0.0.1/24'] },
      ],
      routes: [],
    });
    const sim = simulate(policy(withLo, [natTable([], [rule([], masquerade())])]));
    const o = sim.process({ t: 0, ingress: { kind: 'local' }, packet: udp({ src: '10.0.0.1', sport: 5000, dst: '10.0.0.1', dport: 53 }), uid: 0, gid: 0 });
    expect(o.delivered).toMatchObject({ src: addr('10.0.0.1') });
  });
});

describe('MASQUERADE and a changed route', () => {
  it('a masqueraded connection whose packets leave by another interface is killed (nf_nat_oif_changed)', () => {
    const sim = simulate(policy(gw, [natTable([], [rule([oif('eth1')], masquerade())])]));
    sim.process(at(0, 'eth0', udp({ src: '10.0.0.5', sport: 5000, dst: '203.0.113.9', dport: 53 })));
    expect(sim.count()).toBe(1);
    // The route to 203.0.113.9 now goes out of eth2 (forced here, as a routing change would).
    const later = sim.process({ ...at(1, 'eth0', udp({ src: '10.0.0.5', sport: 5000, dst: '203.0.113.9', dport: 53 })), route: { kind: 'forward', device: 'eth2' } });
    expect(later.verdict).toBe('dropped');
    expect(sim.count()).toBe(0);
  });
});

describe('REDIRECT', () => {
  it('PREROUTING: to the primary address of the incoming interface (nf_nat_redirect_ipv4)', () => {
    const sim = simulate(policy(gw, [natTable([rule([iif('eth0'), proto('tcp'), dport(80)], redirect('3128'))], [])]));
    const o = sim.process(at(0, 'eth0', tcp({ src: '10.0.0.5', dst: '93.184.216.34', dport: 80 })));
    expect(o.verdict).toBe('local');
    expect(o.delivered).toMatchObject({ dst: addr('10.0.0.1'), dport: 3128 });
  });

  it('OUTPUT: locally generated packets go to 127.0.0.1', () => {
    const sim = simulate(policy(gw, [natTable([], [], [rule([proto('tcp'), dport(80)], redirect('3128'))])]));
    const o = sim.process(at(0, 'local', tcp({ src: '198.51.100.1', dst: '93.184.216.34', dport: 80 })));
    expect(o.verdict).toBe('sent');
    expect(o.egress?.device).toBe('lo');
    expect(o.delivered).toMatchObject({ dst: addr('127.0.0.1'), dport: 3128 });
  });
});

describe('NETMAP', () => {
  it('maps the prefix and keeps the host bits (xt_NETMAP: new = (old & ~mask) | (to & mask))', () => {
    const sim = simulate(policy(gw, [natTable([rule([daddr('198.51.100.0/24'), iif('eth1')], netmap('172.16.0.0/24'))], [])]));
    const o = sim.process(at(0, 'eth1', udp({ src: '203.0.113.1', dst: '198.51.100.77', dport: 53 })));
    expect(o.egress!.packet.dst).toBe(addr('172.16.0.77'));
  });
});

describe('source port choice (get_unique_tuple)', () => {
  const snatPolicy = (to: string, flags = {}) => policy(gw, [natTable([], [rule([oif('eth1'), saddr('10.0.0.0/24')], snat(to, flags))])]);

  it('keeps the source port while the resulting tuple is unique', () => {
    const sim = simulate(snatPolicy('198.51.100.1'));
    const a = sim.process(at(0, 'eth0', tcp({ src: '10.0.0.5', sport: 40000, dst: '203.0.113.9', dport: 443 })));
    const b = sim.process(at(0, 'eth0', tcp({ src: '10.0.0.6', sport: 40000, dst: '203.0.113.10', dport: 443 })));
    expect(a.egress!.packet.sport).toBe(40000);
    // Different destination: (198.51.100.1:40000 → 203.0.113.10:443) is still unique.
    expect(b.egress!.packet.sport).toBe(40000);
    expect(sim.entries().every((e) => !e.randomized)).toBe(true);
  });

  it('re-allocates on a clash within the port class (1024-65535), marked as random', () => {
    const sim = simulate(snatPolicy('198.51.100.1'));
    sim.process(at(0, 'eth0', tcp({ src: '10.0.0.5', sport: 40000, dst: '203.0.113.9', dport: 443 })));
    const b = sim.process(at(0, 'eth0', tcp({ src: '10.0.0.6', sport: 40000, dst: '203.0.113.9', dport: 443 })));
    const p = b.egress!.packet.sport!;
    expect(p).not.toBe(40000);
    expect(p).toBeGreaterThanOrEqual(1024);
    const e = sim.entries()[1];
    expect(e.reply.dport).toBe(p);
    expect(e.randomized).toEqual(['dport']);
  });

  it('privileged ports stay privileged: below 512 → 1-511, 512-1023 → 600-1023', () => {
    const sim = simulate(snatPolicy('198.51.100.1'));
    for (const [src, sport] of [
      ['10.0.0.5', 100],
      ['10.0.0.6', 100],
      ['10.0.0.5', 700],
      ['10.0.0.6', 700],
    ] as const) {
      sim.process(at(0, 'eth0', tcp({ src, sport, dst: '203.0.113.9', dport: 443 })));
    }
    const [, low, , mid] = sim.entries();
    expect(low.reply.dport).toBeGreaterThanOrEqual(1);
    expect(low.reply.dport).toBeLessThanOrEqual(511);
    expect(mid.reply.dport).toBeGreaterThanOrEqual(600);
    expect(mid.reply.dport).toBeLessThanOrEqual(1023);
  });

  it('a single-port range keeps the port even if it clashes; the second connection dies at confirm', () => {
    // get_unique_tuple: PROTO_SPECIFIED with min == max returns the in-range tuple unchecked;
    // __nf_conntrack_confirm then finds the reply tuple taken and drops (TCP allows no clash).
    const sim = simulate(snatPolicy('198.51.100.1:450'));
    const a = sim.process(at(0, 'eth0', tcp({ src: '10.0.0.5', sport: 40000, dst: '203.0.113.9', dport: 443 })));
    const b = sim.process(at(0, 'eth0', tcp({ src: '10.0.0.6', sport: 40001, dst: '203.0.113.9', dport: 443 })));
    expect(a.egress!.packet.sport).toBe(450);
    expect(b.verdict).toBe('dropped');
    expect(b.dropReason).toBe('clash');
    expect(sim.entries()).toHaveLength(1);
  });

  it('a port range picks a free port inside it', () => {
    const sim = simulate(snatPolicy('198.51.100.1:2000-2001'));
    const ports = [0, 1, 2].map((i) => sim.process(at(0, 'eth0', tcp({ src: '10.0.0.5', sport: 30000 + i, dst: '203.0.113.9', dport: 443 }))));
    expect(new Set(ports.slice(0, 2).map((o) => o.egress!.packet.sport))).toEqual(new Set([2000, 2001]));
    // All ports of the range are taken: the third connection clashes and is dropped.
    expect(ports[2].verdict).toBe('dropped');
  });

  it('the same inside source keeps its mapping for another destination (find_appropriate_src)', () => {
    const sim = simulate(snatPolicy('198.51.100.1-198.51.100.2'));
    const a = sim.process(at(0, 'eth0', udp({ src: '10.0.0.5', sport: 5000, dst: '203.0.113.9', dport: 53 })));
    const b = sim.process(at(0, 'eth0', udp({ src: '10.0.0.5', sport: 5000, dst: '192.0.2.55', dport: 53 })));
    expect(b.egress!.packet.src).toBe(a.egress!.packet.src);
    expect(b.egress!.packet.sport).toBe(a.egress!.packet.sport);
  });

  it('--random draws the port even without a clash', () => {
    const sim = simulate(snatPolicy('198.51.100.1', { random: true }));
    sim.process(at(0, 'eth0', tcp({ src: '10.0.0.5', sport: 40000, dst: '203.0.113.9', dport: 443 })));
    const [e] = sim.entries();
    expect(e.randomized).toEqual(['dport']);
    expect(e.reply.dport).toBeGreaterThanOrEqual(1024);
  });
});

describe('null bindings', () => {
  it('an unmatched nat chain still re-allocates a clashing source port (port shadowing)', () => {
    // Connection 1: 10.0.0.5:40000 → 203.0.113.9:22, SNATed to 198.51.100.2 on the way out.
    // Its ORIGINAL tuple is 10.0.0.5:40000 → 203.0.113.9:22.
    const sim = simulate(policy(gw, [natTable([], [rule([oif('eth1'), saddr('10.0.0.0/24')], snat('198.51.100.2'))])]));
    sim.process(at(0, 'eth0', tcp({ src: '10.0.0.5', sport: 40000, dst: '203.0.113.9', dport: 22 })));
    // The outside host then sends straight to the inside host: 203.0.113.9:22 → 10.0.0.5:40000.
    // That is neither of connection 1's tuples (its reply goes to 198.51.100.2), so it is new;
    // but its reply tuple would be connection 1's ORIGINAL. The PREROUTING null binding cannot
    // move a destination port; the POSTROUTING one (SRC, no rule matched) finds the tuple taken
    // (nf_nat_used_tuple) and moves the source port within its class: 22 < 512 → 1-511.
    const o = sim.process(at(1, 'eth1', tcp({ src: '203.0.113.9', sport: 22, dst: '10.0.0.5', dport: 40000 })));
    expect(o.verdict).toBe('forwarded');
    expect(o.egress?.device).toBe('eth0');
    expect(o.egress!.packet.sport).not.toBe(22);
    expect(o.egress!.packet.sport).toBeGreaterThanOrEqual(1);
    expect(o.egress!.packet.sport).toBeLessThanOrEqual(511);
    const entries = sim.entries();
    expect(entries).toHaveLength(2);
    expect(entries[1].status & CT_STATUS.SRC_NAT).toBeTruthy();
    expect(entries[1].randomized).toEqual(['dport']);
  });
});

describe('ICMP echo through NAT', () => {
  it('SNAT keeps the echo id when unique and de-NATs the reply', () => {
    const sim = simulate(policy(gw, [natTable([], [rule([oif('eth1')], masquerade())])]));
    const req = sim.process(at(0, 'eth0', icmp({ src: '10.0.0.5', dst: '203.0.113.9', icmp: { type: 8, id: 4321, seq: 1 } })));
    expect(req.egress!.packet).toMatchObject({ src: addr('198.51.100.1'), icmp: { type: 8, id: 4321 } });
    const rep = sim.process(at(0.1, 'eth1', icmp({ src: '203.0.113.9', dst: '198.51.100.1', icmp: { type: 0, id: 4321, seq: 1 } })));
    expect(rep.ctState).toBe('ESTABLISHED');
    expect(rep.egress!.packet).toMatchObject({ dst: addr('10.0.0.5'), icmp: { type: 0, id: 4321 } });
    void ACCEPT;
  });
});
