import { describe, expect, it } from 'vitest';
import { diffPolicies } from '../../src/analyze/diff/index.js';
import { at, check, lineOf, nfp } from './support/nfp.js';

/**
 * A packet of an existing connection is found by its own tuple, protocol included
 * (nf_conntrack_find_get on the packet's tuple), so `ct proto` of an ESTABLISHED packet is
 * the packet's own protocol; only an ICMP error's connection is another packet's (the one it
 * quotes), which is why a RELATED ICMP error may see `ct proto tcp`. The analyzer used to
 * leave ct proto free for old connections: the diff's trust property (seed 8) reported
 * "TCP packets whose connection is not TCP", which no host can send. Likewise an ESTABLISHED
 * packet's connection is always CONFIRMED with SEEN_REPLY (kernel: conntrack-match.test.ts,
 * establishedStatus; the diff reported unconfirmed ones, seed 32). Each expectation below
 * follows from that lookup by hand.
 *
 * Runtime: ~2 s.
 */
describe('the connection of a packet of an existing connection', () => {
  it('is the packet\u2019s own protocol when established; an ICMP error may relate to another', async () => {
    const text = `
table ip filter {
  chain input policy drop {
    tcp ct state established ct proto udp drop     # L1
    icmp ct state related ct proto tcp accept      # L2
    tcp ct state established ct proto tcp accept   # L3
  }
}`;
    const r = await check(text);
    expect(at(r, lineOf(text, '# L1')).map((f) => f.kind)).toEqual(['unreachable']);
    expect(at(r, lineOf(text, '# L2'))).toEqual([]);
    expect(at(r, lineOf(text, '# L3'))).toEqual([]);
    expect(r.internalErrors).toEqual([]);
  });

  it('an established packet\u2019s connection is confirmed and has seen a reply', async () => {
    // Kernel: conntrack-match.test.ts establishedStatus.
    const text = `
table ip filter {
  chain forward policy drop {
    ct state established ct status != confirmed drop     # L1
    ct state established ct status != seen-reply drop    # L2
    ct state established ct status seen-reply accept     # L3
  }
}`;
    const r = await check(text);
    expect(at(r, lineOf(text, '# L1')).map((f) => f.kind)).toEqual(['unreachable']);
    expect(at(r, lineOf(text, '# L2')).map((f) => f.kind)).toEqual(['unreachable']);
    expect(at(r, lineOf(text, '# L3'))).toEqual([]);
  });

  it('a change that only concerns impossible connections changes nothing', async () => {
    const side = (rules: string) => ({ path: 'x.nfp', policy: nfp(`table ip filter {\n  chain input {\n${rules}\n  }\n}`) });
    // Old drops established TCP packets whose connection is UDP (none), new has no such rule.
    const report = await diffPolicies(side('    tcp ct state established ct proto udp drop\n    counter'), side('    counter'), { timeoutMs: 10_000 });
    expect(report.status).toBe('equivalent');
  });
});
