import { describe, expect, it } from 'vitest';
import { opaqueParts } from '../../src/ir/constraint.js';
import { CT_HELPER, CT_STATE, CT_STATUS, PROTO, TCP_FLAG } from '../../src/ir/fields.js';
import { ADDRTYPE, ipv6AddrClassBits } from '../../src/kinds/match/addrtype.js';
import { parseAddress } from '../../src/util/ip.js';
import { Evaluator, matchesPacket as m, ruleConstraints } from './support/packet.js';

/**
 * What each match means, checked on hand-picked packets. The expected answers come from the
 * kernel's match functions (net/netfilter/xt_*.c), as cited per group — not from nfproof.
 */
const TCP = PROTO.tcp;
const UDP = PROTO.udp;
const { FIN, SYN, RST, PSH, ACK } = TCP_FLAG;

describe('addresses and interfaces', () => {
  it('prefixes, sets with exclusions and ranges', () => {
    expect(m('saddr 10.0.0.0/8', { saddr: '10.1.2.3' })).toBe(true);
    expect(m('saddr 10.0.0.0/8', { saddr: '11.0.0.1' })).toBe(false);
    expect(m('saddr { 10.0.0.0/8, !10.9.0.0/16 }', { saddr: '10.9.1.1' })).toBe(false);
    expect(m('saddr { 10.0.0.0/8, !10.9.0.0/16 }', { saddr: '10.8.1.1' })).toBe(true);
    expect(m('daddr != { 1.1.1.1, 2.2.2.0/24 }', { daddr: '2.2.2.5' })).toBe(false);
    expect(m('daddr != { 1.1.1.1, 2.2.2.0/24 }', { daddr: '3.3.3.3' })).toBe(true);
    expect(m('saddr 10.0.0.5-10.0.0.9', { saddr: '10.0.0.9' })).toBe(true);
    expect(m('saddr 10.0.0.5-10.0.0.9', { saddr: '10.0.0.10' })).toBe(false);
  });
  it('interfaces: + is a prefix; a missing interface compares as "" (so != matches it)', () => {
    expect(m('iif eth+', { iif: 'eth0' })).toBe(true);
    expect(m('iif eth+', { iif: 'wlan0' })).toBe(false);
    expect(m('iif != eth0', { iif: '' })).toBe(true);
  });
});

describe('ports (xt_tcpudp.c, xt_multiport.c)', () => {
  it('a port test needs ports: a later fragment never matches, negated or not', () => {
    expect(m('tcp dport 22', { proto: TCP, dport: 22, sport: 4000 })).toBe(true);
    expect(m('tcp dport 22', { proto: TCP, dport: 23, sport: 4000 })).toBe(false);
    expect(m('tcp dport != 22', { proto: TCP, dport: 23, sport: 4000 })).toBe(true);
    expect(m('tcp dport != 22', { proto: TCP })).toBe(false);
  });
  it('multiport --ports: either side; negated, neither side is in the set', () => {
    expect(m('udp port { 53, 67-68 }', { proto: UDP, sport: 53, dport: 40000 })).toBe(true);
    expect(m('udp port { 53, 67-68 }', { proto: UDP, sport: 40000, dport: 68 })).toBe(true);
    expect(m('udp port != { 53, 67-68 }', { proto: UDP, sport: 53, dport: 40000 })).toBe(false);
    expect(m('udp port != { 53, 67-68 }', { proto: UDP, sport: 1000, dport: 2000 })).toBe(true);
  });
  it('a reversed range matches no port, as the kernel compares lo <= p <= hi', () => {
    // iptables accepts --dport 60000:29 (found in the corpus); no port satisfies it.
    expect(m('tcp dport 60000-29', { proto: TCP, dport: 60000 })).toBe(false);
    expect(m('tcp dport 60000-29', { proto: TCP, dport: 29 })).toBe(false);
  });
});

describe('tcp flags (xt_tcpudp.c: (flags & mask) == comp)', () => {
  it('only the flags in the mask are looked at', () => {
    expect(m('tcp flags syn / fin,syn,rst,ack', { proto: TCP, tcpflags: SYN })).toBe(true);
    expect(m('tcp flags syn / fin,syn,rst,ack', { proto: TCP, tcpflags: SYN | PSH })).toBe(true);
    expect(m('tcp flags syn / fin,syn,rst,ack', { proto: TCP, tcpflags: SYN | ACK })).toBe(false);
    expect(m('tcp flags none / all', { proto: TCP, tcpflags: 0 })).toBe(true);
    expect(m('tcp flags none / all', { proto: TCP, tcpflags: FIN })).toBe(false);
  });
  it('negated: any other flag combination, but still only TCP headers', () => {
    expect(m('tcp flags != syn / syn,rst', { proto: TCP, tcpflags: SYN | RST })).toBe(true);
    expect(m('tcp flags != syn / syn,rst', { proto: TCP, tcpflags: SYN })).toBe(false);
    expect(m('tcp flags != syn / syn,rst', { proto: TCP })).toBe(false);
  });
});

describe('icmp (xt_icmp / ip6t_icmp6: type 0xff is any; code within the range)', () => {
  it('types, codes and names', () => {
    expect(m('icmp type echo-request', { proto: PROTO.icmp, icmptype: 8, icmpcode: 0 })).toBe(true);
    expect(m('icmp type echo-request', { proto: PROTO.icmp, icmptype: 8, icmpcode: 5 })).toBe(true);
    expect(m('icmp type echo-request', { proto: PROTO.icmp, icmptype: 0, icmpcode: 0 })).toBe(false);
    expect(m('icmp type port-unreachable', { proto: PROTO.icmp, icmptype: 3, icmpcode: 3 })).toBe(true);
    expect(m('icmp type port-unreachable', { proto: PROTO.icmp, icmptype: 3, icmpcode: 1 })).toBe(false);
    expect(m('icmpv6 type neighbour-solicitation', { family: 'ipv6', proto: PROTO.icmpv6, icmptype: 135, icmpcode: 0 })).toBe(true);
  });
  it('negation needs an ICMP header; `!= any` matches nothing', () => {
    expect(m('icmp type != echo-request', { proto: PROTO.icmp, icmptype: 0, icmpcode: 0 })).toBe(true);
    expect(m('icmp type != echo-request', { proto: PROTO.icmp })).toBe(false);
    expect(m('icmp type != any', { proto: PROTO.icmp, icmptype: 8, icmpcode: 0 })).toBe(false);
  });
});

describe('conntrack (xt_conntrack.c, xt_state.c)', () => {
  const { NEW, ESTABLISHED, INVALID, UNTRACKED } = CT_STATE;
  it('states are single bits; negation is the other states', () => {
    expect(m('ct state new', { ctstate: NEW })).toBe(true);
    expect(m('ct state related,established', { ctstate: NEW })).toBe(false);
    expect(m('ct state != established', { ctstate: INVALID })).toBe(true);
    expect(m('state untracked', { ctstate: UNTRACKED })).toBe(true);
  });
  it('SNAT/DNAT virtual states come from the status bits, and need an entry', () => {
    expect(m('ct state dnat', { ctstate: ESTABLISHED, ctstatus: CT_STATUS.DST_NAT | CT_STATUS.CONFIRMED })).toBe(true);
    expect(m('ct state dnat', { ctstate: ESTABLISHED, ctstatus: CT_STATUS.SRC_NAT })).toBe(false);
    expect(m('ct state dnat', { ctstate: UNTRACKED })).toBe(false);
    expect(m('ct state != dnat', { ctstate: UNTRACKED })).toBe(true);
    expect(m('ct state new,snat', { ctstate: ESTABLISHED, ctstatus: CT_STATUS.SRC_NAT })).toBe(true);
  });
  it('one match with `with`: without an entry the kernel skips the other tests', () => {
    // conntrack_mt: `if (ct == NULL) return info->match_flags & XT_CONNTRACK_STATE;`
    expect(m('ct state invalid with proto tcp', { ctstate: INVALID })).toBe(true);
    expect(m('ct state invalid ct proto tcp', { ctstate: INVALID })).toBe(false);
    expect(m('ct state new with proto tcp', { ctstate: NEW, ctproto: UDP })).toBe(false);
    expect(m('ct state new with proto tcp with original dport 22', { ctstate: NEW, ctproto: TCP, ctorigdstport: 22 })).toBe(true);
  });
  it('status: any listed bit; negated: none of them; never without an entry', () => {
    expect(m('ct status assured', { ctstatus: CT_STATUS.ASSURED | CT_STATUS.CONFIRMED })).toBe(true);
    expect(m('ct status assured', { ctstatus: CT_STATUS.SEEN_REPLY })).toBe(false);
    expect(m('ct status != assured', { ctstatus: CT_STATUS.SEEN_REPLY })).toBe(true);
    expect(m('ct status != assured', {})).toBe(false);
    expect(m('ct status none', { ctstatus: 0 })).toBe(false);
  });
  it('direction and tuples; addresses compare under the mask', () => {
    expect(m('ct direction reply', { ctdir: 1 })).toBe(true);
    expect(m('ct direction reply', { ctdir: 0 })).toBe(false);
    expect(m('ct direction original', {})).toBe(false);
    expect(m('ct original dport 21', { ctorigdstport: 21 })).toBe(true);
    expect(m('ct reply saddr 10.0.0.1/8', { ctreplsrc: '10.5.5.5' })).toBe(true);
    expect(m('ct original saddr != 10.0.0.0/8', { ctorigsrc: '11.0.0.1' })).toBe(true);
    expect(m('ct original saddr != 10.0.0.0/8', {})).toBe(false);
  });
  it('expire is opaque: the remaining timeout is not in the model', () => {
    const [c] = ruleConstraints('ct expire 0-60');
    expect(opaqueParts(c).map((o) => o.reason)).toEqual(["the connection's remaining timeout (--ctexpire) is not modelled"]);
  });
});

describe('marks (xt_mark.c, xt_connmark.c: (mark & mask) == value)', () => {
  it('masked compare; a value outside the mask never matches', () => {
    expect(m('mark 0x1/0xff', { mark: 0x101 })).toBe(true);
    expect(m('mark 0x1/0xff', { mark: 0x102 })).toBe(false);
    expect(m('mark 0x100/0xff', { mark: 0x100 })).toBe(false);
    expect(m('mark != 0x1', { mark: 2 })).toBe(true);
  });
  it('the connection mark needs an entry, negated or not', () => {
    expect(m('ct mark 0x5/0xff', { ctmark: 0xa05 })).toBe(true);
    expect(m('ct mark != 0x1', {})).toBe(false);
  });
});

describe('link layer, address types, owner', () => {
  it('ether saddr: packets without a MAC (loopback, local) never match, negated or not', () => {
    expect(m('ether saddr 00:11:22:33:44:55', { macsrc: 0x001122334455n })).toBe(true);
    expect(m('ether saddr != 00:11:22:33:44:55', { macsrc: 0x001122334456n })).toBe(true);
    expect(m('ether saddr != 00:11:22:33:44:55', {})).toBe(false);
  });
  it('addrtype: one of the listed route types (field = 1 << RTN_*)', () => {
    expect(m('daddr type local', { dsttype: ADDRTYPE.LOCAL })).toBe(true);
    expect(m('daddr type local', { dsttype: ADDRTYPE.UNICAST })).toBe(false);
    expect(m('daddr type local,broadcast', { dsttype: ADDRTYPE.BROADCAST })).toBe(true);
    expect(m('saddr type != local', { srctype: ADDRTYPE.UNICAST })).toBe(true);
    expect(m('saddr type != local', { srctype: ADDRTYPE.LOCAL })).toBe(false);
  });
  it('addrtype on IPv6: listed classes must all hold, route types any (match_type6)', () => {
    const v6 = (dsttype: number) => ({ family: 'ipv6' as const, dsttype });
    const { MULTICAST, UNICAST, LOCAL, ANYCAST } = ADDRTYPE;
    expect(m('daddr type local', v6(UNICAST | LOCAL))).toBe(true);
    expect(m('daddr type local', v6(UNICAST))).toBe(false);
    // multicast,local: a multicast address AND a local route — unlike IPv4's "either".
    expect(m('daddr type multicast,local', v6(MULTICAST))).toBe(false);
    expect(m('daddr type multicast,local', v6(MULTICAST | LOCAL))).toBe(true);
    expect(m('daddr type local,anycast', v6(UNICAST | ANYCAST))).toBe(true);
    expect(m('daddr type != local', v6(UNICAST))).toBe(true);
  });
  it('IPv6 address classes as __ipv6_addr_type() gives them', () => {
    const cls = (a: string) => ipv6AddrClassBits(parseAddress(a)!.value);
    expect(cls('ff02::1')).toBe(ADDRTYPE.MULTICAST);
    expect(cls('::')).toBe(ADDRTYPE.UNSPEC);
    expect(cls('::ffff:10.0.0.1')).toBe(0);
    expect(cls('fe80::1')).toBe(ADDRTYPE.UNICAST);
    expect(cls('::1')).toBe(ADDRTYPE.UNICAST);
    expect(cls('2001:db8::1')).toBe(ADDRTYPE.UNICAST);
  });
  it('owner: without a socket only negated tests match (xt_owner.c: (match ^ invert) == 0)', () => {
    expect(m('owner uid 1000', { uid: 1000, gid: 100 })).toBe(true);
    expect(m('owner uid 1000', {})).toBe(false);
    expect(m('owner uid != 0', {})).toBe(true);
    expect(m('owner uid != 0', { uid: 0, gid: 0 })).toBe(false);
    expect(m('owner uid != 0', { uid: 5, gid: 0 })).toBe(true);
    expect(m('owner gid 100-200', { uid: 5, gid: 150 })).toBe(true);
    expect(m('owner socket exists', {})).toBe(false);
    expect(m('owner socket != exists', {})).toBe(true);
  });
  it('pkttype', () => {
    expect(m('pkttype broadcast', { pkttype: 1 })).toBe(true);
    expect(m('pkttype != broadcast', { pkttype: 0 })).toBe(true);
  });
});

describe('header fields', () => {
  it('length, ttl, dscp, tos, fragments', () => {
    expect(m('length 0-64', { length: 64 })).toBe(true);
    expect(m('length != 0-64', { length: 65 })).toBe(true);
    expect(m('ttl < 5', { ttl: 4 })).toBe(true);
    expect(m('ttl < 5', { ttl: 5 })).toBe(false);
    expect(m('ttl > 200', { ttl: 201 })).toBe(true);
    expect(m('ttl != 64', { ttl: 63 })).toBe(true);
    // DSCP EF is 46: TOS byte 0xb8 (46 << 2).
    expect(m('dscp ef', { dscp: 46, tos: 0xb8 })).toBe(true);
    // tos 0x10/0x3f looks at the ECN bits too, not at the top two DSCP bits.
    expect(m('tos 0x10/0x3f', { tos: 0x10 })).toBe(true);
    expect(m('tos 0x10/0x3f', { tos: 0x11 })).toBe(false);
    expect(m('tos 0x10/0x3f', { tos: 0x50 })).toBe(true);
    expect(m('fragment', { fragment: 1 })).toBe(true);
    expect(m('fragment no', { fragment: 1 })).toBe(false);
  });
  it('ct helper: the master helper, compared by prefix; negated also matches unexpected connections', () => {
    expect(m('ct helper "ftp"', { cthelper: CT_HELPER.ftp })).toBe(true);
    expect(m('ct helper "ftp"', { cthelper: CT_HELPER.sip })).toBe(false);
    expect(m('ct helper "ftp-21"', { cthelper: CT_HELPER.ftp })).toBe(true);
    expect(m('ct helper != "ftp"', {})).toBe(true);
    expect(m('ct helper ""', { cthelper: CT_HELPER.tftp })).toBe(true);
  });
});

describe('opaque tests', () => {
  it('deterministic tests share a key; stateful ones are per match', () => {
    const key = (dsl: string) => ruleConstraints(dsl).flatMap((c) => opaqueParts(c).map((o) => o.key));
    const [s1, s2] = key('ipset blocklist src ipset blocklist src');
    expect(s1).toBe(s2);
    const [l1, l2] = key('limit rate 1/second limit rate 1/second');
    expect(l1).not.toBe(l2);
    const [r1, r2] = key('recent check name x recent check name x');
    expect(r1).not.toBe(r2);
    expect(key('xt match statistic "--mode random --probability 0.5"')[0]).toMatch(/statistic/);
  });
  it('every opaque constraint says why', () => {
    for (const dsl of ['limit rate 1/second', 'hashlimit name a upto 1/second', 'recent set', 'connlimit above 2', 'ipset s src', 'ipsec in', 'rpfilter', 'physdev is-bridged', 'tcp option mss', 'daddr type local on iif']) {
      const parts = ruleConstraints(dsl).flatMap((c) => opaqueParts(c));
      expect(parts.length, dsl).toBeGreaterThan(0);
      for (const p of parts) expect(p.reason.length, dsl).toBeGreaterThan(10);
    }
  });
});

describe('stateful matches in the simulator (evaluate)', () => {
  it('limit: a bucket of `burst` tokens refilled at the rate (xt_limit.c)', () => {
    const e = new Evaluator('limit rate 1/second burst 2');
    expect([e.run(0, {}), e.run(0, {}), e.run(0, {})]).toEqual([true, true, false]);
    expect(e.run(0.5, {})).toBe(false);
    expect(e.run(1.0, {})).toBe(true);
    expect(e.run(10, {})).toBe(true);
    expect(e.run(10, {})).toBe(true);
    expect(e.run(10, {})).toBe(false);
  });
  it('recent: set, then update with seconds and hitcount (xt_recent.c recent_mt)', () => {
    const set = new Evaluator('recent set name ssh');
    const check = new Evaluator('recent update name ssh seconds 60 hitcount 3');
    // Lists are shared by name: use one evaluator's state for both rules.
    const shared = new Evaluator('recent set name ssh recent update name ssh seconds 60 hitcount 3');
    expect(set.run(0, { saddr: '10.0.0.1', ttl: 64 })).toBe(true);
    expect(check.run(0, { saddr: '10.0.0.1', ttl: 64 })).toBe(false);
    // set adds a stamp, update sees 1, 2, then 3 stamps within 60 s.
    expect(shared.run(0, { saddr: '10.0.0.1', ttl: 64 })).toBe(false);
    expect(shared.run(1, { saddr: '10.0.0.1', ttl: 64 })).toBe(false);
    expect(shared.run(2, { saddr: '10.0.0.1', ttl: 64 })).toBe(true);
    expect(shared.run(2, { saddr: '10.0.0.2', ttl: 64 })).toBe(false);
  });
  it('hashlimit: one bucket per group; above matches once the group is over its rate', () => {
    const e = new Evaluator('hashlimit name h above 1/second burst 2 mode srcip');
    const a = { saddr: '10.0.0.1' };
    const b = { saddr: '10.0.0.2' };
    expect([e.run(0, a), e.run(0, a), e.run(0, a), e.run(0, b)]).toEqual([false, false, true, false]);
    expect(e.run(1, a)).toBe(false);
  });
  it('recent check on an unknown address is false; negated, true', () => {
    expect(new Evaluator('recent check name x').run(0, { saddr: '1.2.3.4', ttl: 64 })).toBe(false);
    expect(new Evaluator('recent != check name x').run(0, { saddr: '1.2.3.4', ttl: 64 })).toBe(true);
  });
});
