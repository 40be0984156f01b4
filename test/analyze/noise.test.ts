import { describe, expect, it } from 'vitest';
import { foldRepeated } from '../../src/cli/verbs/check.js';
import { diag } from '../../src/util/diagnostics.js';
import { NO_SPAN } from '../../src/util/span.js';
import { at, check, lineOf } from './support/nfp.js';

/**
 * What `check` leaves out or says once: order-dependent overlaps only on request, one finding
 * for a rule of a table of both families, repeated lines called repeats, the same input
 * warning counted instead of repeated. Every expected value follows from the rules by hand.
 *
 * Runtime: ~1 s.
 */
describe('check stays quiet where it should', () => {
  const blocklist = `
table ip filter {
  chain input policy drop {
    ct state established,related accept
    saddr 198.51.100.9 reject               # L1
    tcp dport 80 ct state new accept        # L2
    tcp dport 443 ct state new accept
    tcp reject with tcp-reset               # L4
  }
}`;

  it('a block list before the service accepts and a closing reject are not findings by default', async () => {
    const r = await check(blocklist);
    expect(r.findings).toEqual([]);
  });

  it('with --anomalies the overlaps are notes (info), and the closing reject is still left alone', async () => {
    const r = await check(blocklist, { anomalies: true });
    // L2 overlaps L1 (198.51.100.9 to port 80): the earlier reject wins there.
    const l2 = at(r, lineOf(blocklist, '# L2'));
    expect(l2.map((f) => [f.kind, f.severity])).toEqual([['correlation', 'info']]);
    // L4 rejects a superset of what L2 accepts first: the standard closing rule, no finding.
    expect(at(r, lineOf(blocklist, '# L4'))).toEqual([]);
    expect(r.findings.every((f) => f.severity === 'info')).toBe(true);
  });

  it('a rule of a table of both families is one finding when both families agree', async () => {
    const text = `
table filter {
  chain input policy drop {
    tcp dport 22 accept
    tcp dport 22 drop     # L2
  }
}`;
    const r = await check(text);
    const f = at(r, lineOf(text, '# L2'));
    expect(f.map((x) => x.kind)).toEqual(['shadowed']);
    expect(f[0].message).toMatch(/\(in IPv4 and IPv6\)$/);
    expect(f[0].families).toEqual(['ipv4', 'ipv6']);
  });

  it('a finding in one family only says which', async () => {
    // Only the IPv6 copy of L2 is shadowed: the ip6-only accept above it takes its packets.
    const text = `
table filter {
  chain input policy drop {
    ip6 tcp dport 22 accept
    tcp dport 22 drop     # L2
    accept
  }
}`;
    const r = await check(text);
    const f = at(r, lineOf(text, '# L2'));
    expect(f.map((x) => x.kind)).toEqual(['shadowed']);
    expect(f[0].message).toMatch(/\(in IPv6 only\)$/);
    expect(f[0].witness?.input.family).toBe('ipv6');
  });

  it('a repeated NAT line is redundant (a warning), a NAT rule that loses to another mapping is an error', async () => {
    const text = `
table ip nat {
  chain postrouting {
    saddr 10.0.0.0/8 oif eth1 masquerade          # L1
    saddr 10.0.0.0/8 oif eth1 masquerade          # L2
    saddr 10.1.0.0/16 oif eth1 snat to 192.0.2.7  # L3
  }
}`;
    const r = await check(text);
    const l2 = at(r, lineOf(text, '# L2'));
    expect(l2.map((f) => [f.kind, f.severity])).toEqual([['redundant', 'warning']]);
    expect(l2[0].message).toContain('repeats');
    expect(l2[0].message).toContain(`(line ${lineOf(text, '# L1')}) exactly`);
    // 10.1/16 is inside 10/8: L1 masquerades those first, so the SNAT to .7 never happens.
    expect(at(r, lineOf(text, '# L3')).map((f) => [f.kind, f.severity])).toEqual([['nat-never-fires', 'error']]);
  });

  it('an unreachable rule in a user chain says where the chain is entered from', async () => {
    const text = `
table ip filter {
  chain forward policy drop {
    daddr 10.1.0.0/16 jump lan     # L1
  }
  chain lan {
    daddr 10.2.0.5 accept          # L2
  }
}`;
    const r = await check(text);
    const [f] = at(r, lineOf(text, '# L2'));
    expect(f.kind).toBe('unreachable');
    expect(f.message).toContain(`(it is entered only from line ${lineOf(text, '# L1')})`);
  });

  it('the same input warning is shown three times, then counted', () => {
    const ds = Array.from({ length: 5 }, () => diag('warning', 'W-import-old-negation', NO_SPAN, 'old negation'));
    const { shown, folded } = foldRepeated([...ds, diag('error', 'E-x', NO_SPAN, 'an error')], 3);
    expect(shown.map((d) => d.code)).toEqual(['W-import-old-negation', 'W-import-old-negation', 'W-import-old-negation', 'E-x']);
    expect([...folded]).toEqual([['W-import-old-negation', 2]]);
  });

  it('a rule for packets the kernel drops as martians anyway is redundant, not an error', async () => {
    // ip_route_input drops, before INPUT, packets from a device other than lo to 127/8 and
    // packets with a multicast source; the lo packets are accepted by the first rule.
    const text = `
table ip filter {
  chain input policy drop {
    iif lo accept                          # L1
    daddr 127.0.0.0/8 iif != lo reject     # L2
    saddr 224.0.0.0/4 drop                 # L3
    tcp dport 22 accept
  }
}`;
    const r = await check(text);
    const l2 = at(r, lineOf(text, '# L2'));
    expect(l2.map((f) => [f.kind, f.severity])).toEqual([['redundant', 'warning']]);
    expect(l2[0].message).toContain('a loopback destination on the wire is a martian');
    const l3 = at(r, lineOf(text, '# L3'));
    expect(l3.map((f) => [f.kind, f.severity])).toEqual([['redundant', 'warning']]);
    expect(l3[0].message).toContain(`takes its packets from lo`);
    expect(l3[0].message).toContain('a multicast source is a martian');
  });

  it('one earlier rule that covers a dead rule is the one blamed', async () => {
    // L3 can only be reached past L2, which drops everything: redundant because of L2 alone,
    // although L1 takes some of its packets (with another action) even earlier.
    const text = `
table ip6 filter {
  chain input policy drop {
    udp dport 546 accept       # L1
    drop                       # L2
    iif eth0 drop              # L3
  }
}`;
    const r = await check(text);
    const [f] = at(r, lineOf(text, '# L3'));
    expect(f.kind).toBe('redundant');
    expect(f.related.map((x) => x.rule.span.start.line)).toEqual([lineOf(text, '# L2')]);
  });

  it('a rule shadowed through a jump says what the chain it jumps to does', async () => {
    // Every udp packet from 192.0.2.14 goes to udp_out, which drops what it does not accept:
    // the broadcast accept after the jump never fires.
    const text = `
table ip filter {
  chain output policy drop {
    saddr 192.0.2.14 udp jump udp_out                       # L1
    saddr 192.0.2.14 daddr 192.0.2.255 udp accept           # L2
  }
  chain udp_out {
    daddr 198.51.100.53 udp dport 53 accept
    drop                                                    # L3
  }
}`;
    const r = await check(text);
    const [f] = at(r, lineOf(text, '# L2'));
    expect(f.kind).toBe('shadowed');
    expect(f.message).toContain(`which sends them to chain udp_out, where \`drop\` (line ${lineOf(text, '# L3')}) drops them; this rule accepts`);
    expect(f.related[0].note).toBe('sends these packets to chain udp_out first');
  });

  it('an accept for ICMP errors after the conntrack state rules says why it never fires', async () => {
    const text = `
table ip filter {
  chain input policy drop {
    ct state established,related accept
    ct state invalid drop
    icmp type destination-unreachable accept     # L3
  }
}`;
    const r = await check(text);
    const [f] = at(r, lineOf(text, '# L3'));
    expect(f.kind).toBe('shadowed');
    expect(f.message).toContain('conntrack makes every ICMP error RELATED to a connection, or INVALID');
  });
});
