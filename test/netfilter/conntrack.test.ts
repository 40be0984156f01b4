import { describe, expect, it } from 'vitest';
import { CT_STATUS } from '../../src/ir/fields.js';
import { conntrackLine } from '../../src/netfilter/format.js';
import {
  ACCEPT,
  DROP,
  addr,
  at,
  chain,
  ctHelper,
  ctstate,
  dport,
  host,
  icmp,
  iif,
  masquerade,
  notrack,
  oif,
  policy,
  proto,
  rule,
  simulate,
  table,
  tcp,
  udp,
} from './support/build.js';

/** Conntrack behaviour with hand-derived expectations (nf_conntrack_core.c and the trackers). */
const gw = host({
  interfaces: [
    { name: 'lan', device: 'eth0', addrs: ['10.0.0.1/24'] },
    { name: 'wan', device: 'eth1', addrs: ['198.51.100.1/24'] },
  ],
  routes: [{ dest: 'default', via: '198.51.100.254', device: 'eth1' }],
});

/**
 * Everything passes, and conntrack is on: the kernel only tracks when some rule needs it (see
 * needs-conntrack.ts), so the open policy has one `ct state` rule matching every state.
 */
const open = () =>
  policy(gw, [table('filter', [chain('INPUT', []), chain('FORWARD', [rule([ctstate('NEW', 'ESTABLISHED', 'RELATED', 'INVALID', 'UNTRACKED')], ACCEPT())]), chain('OUTPUT', [])])]);

describe('conntrack is on only when a rule needs it', () => {
  it('a ruleset without conntrack matches or targets tracks nothing (checked on the kernel)', () => {
    const sim = simulate(policy(gw, [table('filter', [chain('INPUT', []), chain('FORWARD', [rule([proto('tcp')], ACCEPT())]), chain('OUTPUT', [])])]));
    const o = sim.process(at(0, 'eth0', tcp({ src: '10.0.0.5', dst: '192.0.2.80' })));
    expect(o.verdict).toBe('forwarded');
    expect(o.trace.some((s) => s.event === 'conntrack' && s.action.startsWith('not active'))).toBe(true);
    expect(sim.count()).toBe(0);
  });

  it('an empty nat table does not turn it on either; a NAT rule does', () => {
    const empty = table('nat', [chain('PREROUTING', []), chain('INPUT', []), chain('OUTPUT', []), chain('POSTROUTING', [])]);
    const off = simulate(policy(gw, [empty]));
    off.process(at(0, 'eth0', tcp({ src: '10.0.0.5', dst: '192.0.2.80' })));
    expect(off.count()).toBe(0);
    const withNat = table('nat', [chain('PREROUTING', []), chain('INPUT', []), chain('OUTPUT', []), chain('POSTROUTING', [rule([oif('eth1')], masquerade())])]);
    const on = simulate(policy(gw, [withNat]));
    on.process(at(0, 'eth0', tcp({ src: '10.0.0.5', dst: '192.0.2.80' })));
    expect(on.count()).toBe(1);
  });
});

describe('UDP', () => {
  it('is UNREPLIED with udp_timeout, then a stream (ASSURED, udp_timeout_stream) once traffic went both ways after 2 s', () => {
    const sim = simulate(open());
    sim.process(at(0, 'eth0', udp({ src: '10.0.0.5', sport: 5000, dst: '192.0.2.53', dport: 53 })));
    let [e] = sim.entries();
    expect(e.timeout).toBe(30);
    expect(e.status & CT_STATUS.SEEN_REPLY).toBe(0);
    const reply = sim.process(at(0.5, 'eth1', udp({ src: '192.0.2.53', sport: 53, dst: '10.0.0.5', dport: 5000 })));
    expect(reply.ctState).toBe('ESTABLISHED');
    [e] = sim.entries();
    // The reply itself still refreshes with udp_timeout (SEEN_REPLY is set after the tracker ran).
    expect(e.status & CT_STATUS.SEEN_REPLY).toBeTruthy();
    expect(e.status & CT_STATUS.ASSURED).toBe(0);
    expect(e.timeout).toBe(30);
    // Before the 2 s mark: still not a stream.
    sim.process(at(1.5, 'eth0', udp({ src: '10.0.0.5', sport: 5000, dst: '192.0.2.53', dport: 53 })));
    [e] = sim.entries();
    expect(e.status & CT_STATUS.ASSURED).toBe(0);
    sim.process(at(2.5, 'eth0', udp({ src: '10.0.0.5', sport: 5000, dst: '192.0.2.53', dport: 53 })));
    [e] = sim.entries();
    expect(e.status & CT_STATUS.ASSURED).toBeTruthy();
    expect(e.timeout).toBe(120);
  });

  it('expires on the virtual clock', () => {
    const sim = simulate(open());
    sim.process(at(0, 'eth0', udp({ src: '10.0.0.5', sport: 5000, dst: '192.0.2.53', dport: 53 })));
    sim.advanceTo(29.5);
    expect(sim.entries()[0].timeout).toBe(0);
    expect(sim.count()).toBe(1);
    // The kernel treats an entry as expired once its timer is not in the future.
    sim.advanceTo(30);
    expect(sim.count()).toBe(0);
    const again = sim.process(at(31, 'eth0', udp({ src: '10.0.0.5', sport: 5000, dst: '192.0.2.53', dport: 53 })));
    expect(again.ctState).toBe('NEW');
  });
});

describe('ICMP', () => {
  it('echo request creates an entry, the reply is ESTABLISHED, a lone reply is INVALID', () => {
    const sim = simulate(open());
    expect(sim.process(at(0, 'eth0', icmp({ src: '10.0.0.5', dst: '192.0.2.1', icmp: { type: 8, id: 7 } }))).ctState).toBe('NEW');
    const e = sim.entries()[0];
    expect(conntrackLine(e)).toBe('icmp     1 30 src=10.0.0.5 dst=192.0.2.1 type=8 code=0 id=7 [UNREPLIED] src=192.0.2.1 dst=10.0.0.5 type=0 code=0 id=7 mark=0 use=1');
    expect(sim.process(at(0.1, 'eth1', icmp({ src: '192.0.2.1', dst: '10.0.0.5', icmp: { type: 0, id: 7 } }))).ctState).toBe('ESTABLISHED');
    expect(sim.process(at(0.2, 'eth1', icmp({ src: '192.0.2.1', dst: '10.0.0.5', icmp: { type: 0, id: 8 } }))).ctState).toBe('INVALID');
  });

  it('an error quoting a tracked connection is RELATED, and reverse-NATed inside and outside', () => {
    const nat = table('nat', [chain('PREROUTING', []), chain('INPUT', []), chain('OUTPUT', []), chain('POSTROUTING', [rule([oif('eth1')], masquerade())])]);
    const sim = simulate(policy(gw, [nat]));
    const syn = sim.process(at(0, 'eth0', tcp({ src: '10.0.0.5', sport: 33000, dst: '203.0.113.80', dport: 80 })));
    const sent = syn.egress!.packet;
    // A router on the way answers the translated packet with "port unreachable".
    const err = icmp({ src: '192.0.2.254', dst: '198.51.100.1', icmp: { type: 3, code: 3, inner: sent } });
    const o = sim.process(at(0.1, 'eth1', err));
    expect(o.ctState).toBe('RELATED');
    expect(o.ctDir).toBe('reply');
    expect(o.verdict).toBe('forwarded');
    expect(o.egress?.device).toBe('eth0');
    // Outer destination back to the inside host; the quoted packet shows its original source.
    expect(o.egress!.packet.dst).toBe(addr('10.0.0.5'));
    expect(o.egress!.packet.icmp!.inner).toMatchObject({ src: addr('10.0.0.5'), sport: 33000, dst: addr('203.0.113.80'), dport: 80 });
  });

  it('an error for no known connection, or not addressed to its endpoint, is INVALID', () => {
    const sim = simulate(open());
    const stray = tcp({ src: '10.0.0.5', sport: 1, dst: '203.0.113.80', dport: 2 });
    expect(sim.process(at(0, 'eth1', icmp({ src: '192.0.2.254', dst: '10.0.0.5', icmp: { type: 3, code: 1, inner: stray } }))).ctState).toBe('INVALID');
    sim.process(at(0, 'eth0', stray));
    // Quotes a packet of the connection, but is sent to a third host (nf_conntrack_inet_error).
    expect(sim.process(at(0, 'eth1', icmp({ src: '192.0.2.254', dst: '10.0.0.99', icmp: { type: 3, code: 1, inner: stray } }))).ctState).toBe('INVALID');
    expect(sim.process(at(0, 'eth1', icmp({ src: '192.0.2.254', dst: '10.0.0.5', icmp: { type: 3, code: 1, inner: stray } }))).ctState).toBe('RELATED');
  });
});

describe('raw table', () => {
  it('NOTRACK leaves the packet UNTRACKED and creates no entry', () => {
    const raw = table('raw', [chain('PREROUTING', [rule([proto('udp'), dport(53)], notrack())]), chain('OUTPUT', [])]);
    const sim = simulate(policy(gw, [raw]));
    const o = sim.process(at(0, 'eth0', udp({ src: '10.0.0.5', dst: '192.0.2.53', dport: 53 })));
    expect(o.ctState).toBe('UNTRACKED');
    expect(o.verdict).toBe('forwarded');
    expect(sim.count()).toBe(0);
  });

  it('CT --helper attaches the helper to the new connection', () => {
    const raw = table('raw', [chain('PREROUTING', [rule([proto('tcp'), dport(21)], ctHelper('ftp'))]), chain('OUTPUT', [])]);
    const sim = simulate(policy(gw, [raw]));
    sim.process(at(0, 'eth0', tcp({ src: '10.0.0.5', dst: '192.0.2.21', dport: 21 })));
    expect(sim.entries()[0].helper).toBe('ftp');
    expect(conntrackLine(sim.entries()[0])).toContain(' helper=ftp use=1');
  });
});

describe('table limit (nf_conntrack_max)', () => {
  it('early drop evicts an unassured entry; with only assured entries the new packet is dropped', () => {
    // A single bucket makes early_drop's bucket scan see every entry.
    const sim = simulate(open(), { maxEntries: 2, sysctls: { nf_conntrack_buckets: '1' } });
    for (const sport of [1, 2]) sim.process(at(0, 'eth0', udp({ src: '10.0.0.5', sport, dst: '192.0.2.53', dport: 53 })));
    expect(sim.count()).toBe(2);
    const third = sim.process(at(0, 'eth0', udp({ src: '10.0.0.5', sport: 3, dst: '192.0.2.53', dport: 53 })));
    expect(third.verdict).toBe('forwarded');
    // early_drop_list deletes every unassured entry of the bucket it stops at: both go.
    expect(sim.entries().map((e) => e.original.sport)).toEqual([3]);
  });

  it('drops with "table full" when nothing can be evicted, and creates nothing', () => {
    const sim = simulate(open(), { maxEntries: 1, sysctls: { nf_conntrack_buckets: '1' } });
    // Make the first entry ASSURED: a UDP stream (both ways, then again after 2 s).
    sim.process(at(0, 'eth0', udp({ src: '10.0.0.5', sport: 1, dst: '192.0.2.53', dport: 53 })));
    sim.process(at(0.1, 'eth1', udp({ src: '192.0.2.53', sport: 53, dst: '10.0.0.5', dport: 1 })));
    sim.process(at(3, 'eth0', udp({ src: '10.0.0.5', sport: 1, dst: '192.0.2.53', dport: 53 })));
    expect(sim.entries()[0].status & CT_STATUS.ASSURED).toBeTruthy();
    const o = sim.process(at(3, 'eth0', udp({ src: '10.0.0.5', sport: 2, dst: '192.0.2.53', dport: 53 })));
    expect(o.verdict).toBe('dropped');
    expect(o.dropReason).toBe('table-full');
    expect(sim.count()).toBe(1);
  });
});

describe('state for the rules', () => {
  it('a TCP segment that does not fit the connection is INVALID and `ct state invalid drop` drops it', () => {
    const filter = table('filter', [
      chain('INPUT', []),
      chain('FORWARD', [rule([ctstate('INVALID')], DROP()), rule([iif('eth0')], ACCEPT()), rule([ctstate('ESTABLISHED')], ACCEPT())], { policy: 'DROP' }),
      chain('OUTPUT', []),
    ]);
    const sim = simulate(policy(gw, [filter]));
    sim.process(at(0, 'eth0', tcp({ src: '10.0.0.5', sport: 1000, dst: '192.0.2.80', dport: 80, flags: 'S', seq: 100 })));
    // A SYN/ACK acknowledging the wrong sequence number is INVALID for the TCP tracker.
    const bad = sim.process(at(0.1, 'eth1', tcp({ src: '192.0.2.80', sport: 80, dst: '10.0.0.5', dport: 1000, flags: 'SA', seq: 900, ack: 5555 })));
    expect(bad.ctState).toBe('INVALID');
    expect(bad.verdict).toBe('dropped');
    expect(bad.invalidReason).toBeTruthy();
    const good = sim.process(at(0.2, 'eth1', tcp({ src: '192.0.2.80', sport: 80, dst: '10.0.0.5', dport: 1000, flags: 'SA', seq: 900, ack: 101 })));
    expect(good.ctState).toBe('ESTABLISHED');
    expect(good.verdict).toBe('forwarded');
  });

  it('fills in omitted seq/ack from what each side sent', () => {
    const sim = simulate(open());
    const syn = sim.process(at(0, 'eth0', tcp({ src: '10.0.0.5', sport: 1000, dst: '192.0.2.80', dport: 80, flags: 'S' }), { seq: true, ack: true }));
    const isn = syn.input.packet.tcp!.seq;
    const synack = sim.process(at(0.1, 'eth1', tcp({ src: '192.0.2.80', sport: 80, dst: '10.0.0.5', dport: 1000, flags: 'SA' }), { seq: true, ack: true }));
    expect(synack.input.packet.tcp!.ack).toBe((isn + 1) >>> 0);
    expect(synack.ctState).toBe('ESTABLISHED');
    const ack = sim.process(at(0.2, 'eth0', tcp({ src: '10.0.0.5', sport: 1000, dst: '192.0.2.80', dport: 80, flags: 'A' }), { seq: true, ack: true }));
    expect(ack.input.packet.tcp!.seq).toBe((isn + 1) >>> 0);
    expect(ack.input.packet.tcp!.ack).toBe((synack.input.packet.tcp!.seq + 1) >>> 0);
    expect(sim.entries()[0].tcpState).toBe('ESTABLISHED');
  });
});

describe('IPv6', () => {
  const gw6 = host({
    interfaces: [
      { name: 'lan', device: 'eth0', addrs: ['fd00:18::1/64'] },
      { name: 'wan', device: 'eth1', addrs: ['2001:db8:20::1/64'] },
    ],
    routes: [{ dest: '::/0', via: '2001:db8:20::fe', device: 'eth1' }],
  });
  const tracked = (extra: ReturnType<typeof table>[] = []) =>
    policy(gw6, [], [table('filter', [chain('INPUT', []), chain('FORWARD', [rule([ctstate('NEW', 'ESTABLISHED', 'RELATED', 'INVALID', 'UNTRACKED')], ACCEPT())]), chain('OUTPUT', [])]), ...extra]);

  it('neighbour discovery is never tracked (UNTRACKED), echo is', () => {
    const sim = simulate(tracked());
    const ns = sim.process(at(0, 'eth0', icmp({ src: 'fd00:18::5', dst: 'ff02::1:ff00:1', icmp: { type: 135 } })));
    expect(ns.ctState).toBe('UNTRACKED');
    const echo = sim.process(at(0, 'eth0', icmp({ src: 'fd00:18::5', dst: '2001:db8:99::1', icmp: { type: 128, id: 3 } })));
    expect(echo.ctState).toBe('NEW');
    expect(echo.egress?.device).toBe('eth1');
    expect(echo.egress!.packet.ttl).toBe(63);
    expect(sim.count()).toBe(1);
  });

  it('MASQUERADE picks the outgoing interface address, replies come back (128-bit tuples)', () => {
    const nat = table('nat', [chain('PREROUTING', []), chain('INPUT', []), chain('OUTPUT', []), chain('POSTROUTING', [rule([oif('eth1')], masquerade())])]);
    const sim = simulate(tracked([nat]));
    const out = sim.process(at(0, 'eth0', udp({ src: 'fd00:18::5', sport: 5353, dst: '2001:db8:99::1', dport: 53 })));
    expect(out.egress!.packet.src).toBe(addr('2001:db8:20::1'));
    const back = sim.process(at(0.1, 'eth1', udp({ src: '2001:db8:99::1', sport: 53, dst: '2001:db8:20::1', dport: 5353 })));
    expect(back.ctState).toBe('ESTABLISHED');
    expect(back.egress!.packet.dst).toBe(addr('fd00:18::5'));
  });

  it('hop limit 1 on a forwarded packet: ICMPv6 time exceeded (type 3) from the lan address', () => {
    const sim = simulate(tracked());
    const o = sim.process(at(0, 'eth0', udp({ src: 'fd00:18::5', dst: '2001:db8:99::1', ttl: 1 })));
    expect(o.verdict).toBe('dropped');
    expect(o.responses[0].packet).toMatchObject({ src: addr('fd00:18::1'), dst: addr('fd00:18::5'), icmp: { type: 3, code: 0 } });
  });
});

describe('one nf_conntrack_max for both families', () => {
  it('an IPv6 connection can evict an unassured IPv4 entry when the table is full', () => {
    const h = host({ interfaces: [{ name: 'lan', device: 'eth0', addrs: ['10.0.0.1/24', 'fd00::1/64'] }, { name: 'wan', device: 'eth1', addrs: ['198.51.100.1/24', '2001:db8::1/64'] }], routes: [{ dest: 'default', via: '198.51.100.254', device: 'eth1' }, { dest: '::/0', via: '2001:db8::fe', device: 'eth1' }] });
    const f = () => table('filter', [chain('INPUT', []), chain('FORWARD', [rule([ctstate('NEW', 'ESTABLISHED')], ACCEPT())]), chain('OUTPUT', [])]);
    const sim = simulate(policy(h, [f()], [f()]), { maxEntries: 1, sysctls: { nf_conntrack_buckets: '1' } });
    sim.process(at(0, 'eth0', udp({ src: '10.0.0.5', dst: '192.0.2.53', dport: 53 })));
    const v6 = sim.process(at(0, 'eth0', udp({ src: 'fd00::5', dst: '2001:db8:99::53', dport: 53 })));
    expect(v6.verdict).toBe('forwarded');
    expect(sim.entries().map((e) => e.family)).toEqual(['ipv6']);
  });
});

describe('gc worker after "table full"', () => {
  it('evicts unassured entries while the table stays at 95 % of nf_conntrack_max or more', () => {
    // 200 entries spread over 100000 buckets: the allocation path's early_drop looks at 8
    // buckets next to the new tuple's and finds nothing, so the packet is dropped ("table
    // full") and the gc worker is told to early-drop; on its next run it removes unassured
    // entries until the count is below 95 % of 200 = 190 (gc_worker: nf_conntrack_max / 100 * 95).
    const sim = simulate(open(), { maxEntries: 200, sysctls: { nf_conntrack_buckets: '100000' } });
    for (let i = 0; i < 200; i++) sim.process(at(0, 'eth0', udp({ src: '10.0.0.5', sport: 1000 + i, dst: '192.0.2.53', dport: 53 })));
    expect(sim.count()).toBe(200);
    const full = sim.process(at(0, 'eth0', udp({ src: '10.0.0.6', sport: 5000, dst: '192.0.2.53', dport: 53 })));
    expect(full.dropReason).toBe('table-full');
    sim.advanceTo(0.5);
    expect(sim.count()).toBe(189);
    const after = sim.process(at(0.5, 'eth0', udp({ src: '10.0.0.6', sport: 5000, dst: '192.0.2.53', dport: 53 })));
    expect(after.verdict).toBe('forwarded');
  });
});
