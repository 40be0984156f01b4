import { describe, expect, it } from 'vitest';
import type { Packet } from '../../../src/netfilter/packet.js';
import { genericTracker, greTracker } from '../../../src/netfilter/proto/generic.js';
import { icmpKind, icmpReplyType, icmpTracker, icmpv6Tracker } from '../../../src/netfilter/proto/icmp.js';
import { parseTrackerSysctls, trackerFor, trackerSysctlName } from '../../../src/netfilter/proto/registry.js';
import { DEFAULT_TRACKER_SYSCTLS, type TrackContext } from '../../../src/netfilter/proto/tracker.js';
import { udpliteTracker, udpTracker } from '../../../src/netfilter/proto/udp.js';

/**
 * UDP, ICMP, GRE and generic trackers, and the registry. Expectations from
 * nf_conntrack_proto_udp.c, _icmp.c, _icmpv6.c, _gre.c and generic_packet(); the UDP and ICMP
 * cases marked "kernel:" were also observed on Linux 6.18 (test/kernel/tcp-lab-udp-icmp.test.ts).
 */

const sys = DEFAULT_TRACKER_SYSCTLS;
const ctx = (over: Partial<TrackContext> = {}): TrackContext => ({ sys, seenReply: false, assured: false, ...over });
const udpPkt: Packet = { family: 'ipv4', src: 1n, dst: 2n, proto: 17, ttl: 64, sport: 5000, dport: 53, payload: new Uint8Array(0) };
const icmpPkt = (type: number, family: 'ipv4' | 'ipv6' = 'ipv4'): Packet => ({
  family,
  src: 1n,
  dst: 2n,
  proto: family === 'ipv4' ? 1 : 58,
  ttl: 64,
  icmp: { type, code: 0, id: 7 },
  payload: new Uint8Array(0),
});

describe('UDP', () => {
  it('new flow: 30 s; replies keep 30 s until the flow is more than 2 s old, then 120 s and ASSURED', () => {
    // nf_conntrack_udp_packet: stream_ts = creation + 2 s; time_after(jiffies, stream_ts). kernel: same.
    const c = udpTracker.create(udpPkt, sys, 100);
    expect(c).toEqual({ state: 102, timeout: 30 });
    if (!('state' in c)) return;
    expect(udpTracker.update(c.state, udpPkt, 1, ctx({ now: 100.5 }))).toEqual({ verdict: 'accept', timeout: 30 }); // first reply: SEEN_REPLY not set yet
    expect(udpTracker.update(c.state, udpPkt, 0, ctx({ seenReply: true, now: 101 }))).toEqual({ verdict: 'accept', timeout: 30 });
    expect(udpTracker.update(c.state, udpPkt, 0, ctx({ seenReply: true, now: 102 }))).toEqual({ verdict: 'accept', timeout: 30 }); // not *after* yet
    expect(udpTracker.update(c.state, udpPkt, 0, ctx({ seenReply: true, now: 102.01 }))).toEqual({ verdict: 'accept', timeout: 120, assured: true });
    expect(udpTracker.update(c.state, udpPkt, 0, ctx({ seenReply: true, assured: true, now: 200 }))).toEqual({ verdict: 'accept', timeout: 120 });
  });

  it('a NAT-clash loser is never ASSURED', () => {
    expect(udpTracker.update(0, udpPkt, 0, ctx({ seenReply: true, now: 10, natClash: true }))).toEqual({ verdict: 'accept', timeout: 120 });
  });

  it('without a clock the stream rule counts the 2 s as passed', () => {
    const c = udpTracker.create(udpPkt, sys);
    if (!('state' in c)) throw new Error('no flow');
    expect(udpTracker.update(c.state, udpPkt, 0, ctx({ seenReply: true }))).toMatchObject({ timeout: 120, assured: true });
  });

  it('UDP-Lite: a reply makes it a stream at once (nf_conntrack_udplite_packet)', () => {
    const c = udpliteTracker.create({ ...udpPkt, proto: 136 }, sys, 0);
    if (!('state' in c)) throw new Error('no flow');
    expect(udpliteTracker.update(c.state, udpPkt, 0, ctx({ seenReply: true, now: 0.1 }))).toMatchObject({ timeout: 120, assured: true });
  });

  it('timeouts come from the sysctls', () => {
    const s2 = parseTrackerSysctls({ 'net.netfilter.nf_conntrack_udp_timeout': '7', nf_conntrack_udp_timeout_stream: '70' }).sys;
    expect(udpTracker.create(udpPkt, s2, 0)).toMatchObject({ timeout: 7 });
    expect(udpTracker.update(0, udpPkt, 0, { sys: s2, seenReply: true, assured: false, now: 5 })).toMatchObject({ timeout: 70 });
  });
});

describe('ICMP and ICMPv6', () => {
  it('requests create an entry, replies and other types do not', () => {
    // valid_new[]: echo, timestamp, info and address-mask requests (v4); echo and node-info query (v6). kernel: same.
    for (const t of [8, 13, 15, 17]) expect(icmpTracker.create(icmpPkt(t), sys)).toEqual({ state: null, timeout: 30 });
    for (const t of [0, 14, 9, 10]) expect(icmpTracker.create(icmpPkt(t), sys)).toMatchObject({ invalid: expect.any(String) });
    for (const t of [128, 139]) expect(icmpv6Tracker.create(icmpPkt(t, 'ipv6'), sys)).toEqual({ state: null, timeout: 30 });
    expect(icmpv6Tracker.create(icmpPkt(129, 'ipv6'), sys)).toMatchObject({ invalid: expect.any(String) });
  });

  it('ICMP in the wrong family is INVALID (the trackers check pf)', () => {
    expect(icmpTracker.create({ ...icmpPkt(8), family: 'ipv6' }, sys)).toMatchObject({ invalid: expect.any(String) });
  });

  it('every packet refreshes the timer; ICMP never becomes ASSURED', () => {
    expect(icmpTracker.update(null, icmpPkt(0), 1, ctx({ seenReply: true }))).toEqual({ verdict: 'accept', timeout: 30 });
    const s2 = parseTrackerSysctls({ nf_conntrack_icmpv6_timeout: '9' }).sys;
    expect(icmpv6Tracker.update(null, icmpPkt(129, 'ipv6'), 1, { sys: s2, seenReply: true, assured: false })).toEqual({ verdict: 'accept', timeout: 9 });
  });

  it('reply types (invmap) and how each type is handled before lookup', () => {
    expect([icmpReplyType('ipv4', 8), icmpReplyType('ipv4', 13), icmpReplyType('ipv4', 3)]).toEqual([0, 14, undefined]);
    expect([icmpReplyType('ipv6', 128), icmpReplyType('ipv6', 140)]).toEqual([129, 139]);
    // icmp_is_err(); > NR_ICMP_TYPES; ICMPv6 ND/MLD are UNTRACKED (noct_valid_new); v6 < 128 are errors.
    expect([3, 4, 5, 11, 12].map((t) => icmpKind('ipv4', t))).toEqual(['error', 'error', 'error', 'error', 'error']);
    expect([8, 0, 9, 19, 42].map((t) => icmpKind('ipv4', t))).toEqual(['query', 'query', 'invalid', 'invalid', 'invalid']);
    expect([1, 2, 3, 4, 137].map((t) => icmpKind('ipv6', t))).toEqual(['error', 'error', 'error', 'error', 'error']);
    expect([133, 134, 135, 136, 143].map((t) => icmpKind('ipv6', t))).toEqual(['untracked', 'untracked', 'untracked', 'untracked', 'untracked']);
    expect([128, 129, 200].map((t) => icmpKind('ipv6', t))).toEqual(['query', 'query', 'invalid']);
  });
});

describe('GRE and generic', () => {
  it('generic: 600 s on every packet, never ASSURED', () => {
    const p: Packet = { family: 'ipv4', src: 1n, dst: 2n, proto: 50, ttl: 64, payload: new Uint8Array(0) };
    expect(genericTracker.create(p, sys)).toEqual({ state: null, timeout: 600 });
    expect(genericTracker.update(null, p, 1, ctx({ seenReply: true }))).toEqual({ verdict: 'accept', timeout: 600 });
  });

  it('GRE: 30 s until both directions were seen, then 180 s and ASSURED', () => {
    const p: Packet = { family: 'ipv4', src: 1n, dst: 2n, proto: 47, ttl: 64, payload: new Uint8Array(0) };
    expect(greTracker.create(p, sys)).toEqual({ state: null, timeout: 30 });
    expect(greTracker.update(null, p, 1, ctx())).toEqual({ verdict: 'accept', timeout: 30 });
    expect(greTracker.update(null, p, 0, ctx({ seenReply: true }))).toEqual({ verdict: 'accept', timeout: 180, assured: true });
  });
});

describe('registry', () => {
  it('finds the tracker by protocol number, generic otherwise', () => {
    expect([6, 17, 136, 1, 58, 47, 132, 50].map((p) => trackerFor(p).name)).toEqual(['tcp', 'udp', 'udplite', 'icmp', 'icmpv6', 'gre', 'unknown', 'unknown']);
  });

  it('parses sysctls in all three spellings, keeps the defaults, reports the rest', () => {
    expect(trackerSysctlName('net.netfilter.nf_conntrack_tcp_loose')).toBe('tcp_loose');
    const r = parseTrackerSysctls({
      'net.netfilter.nf_conntrack_tcp_loose': '0',
      nf_conntrack_tcp_be_liberal: '1',
      tcp_max_retrans: '5',
      'net.netfilter.nf_conntrack_tcp_timeout_established': '3600',
      'net.netfilter.nf_conntrack_max': '1000',
      nf_conntrack_tcp_max_retrans: '300',
      nf_conntrack_udp_timeout: 'soon',
    });
    expect(r.sys).toMatchObject({ tcpLoose: false, tcpBeLiberal: true, tcpMaxRetrans: 5 });
    expect(r.sys.timeouts.tcp_timeout_established).toBe(3600);
    expect(r.sys.timeouts.tcp_timeout_syn_sent).toBe(120);
    expect(r.unknown).toEqual(['net.netfilter.nf_conntrack_max']);
    expect(r.errors).toEqual(['nf_conntrack_tcp_max_retrans: must be 0..255', 'nf_conntrack_udp_timeout: expected a non-negative integer, got "soon"']);
  });
});
