import { describe, expect, it } from 'vitest';
import { parseRule } from './support/dsl.js';

/**
 * `type any` exists only for IPv4: xt_icmp treats type 0xff as a wildcard, ip6t_icmp6 compares
 * the type exactly, and ip6tables-restore (legacy and nft, 1.8.9) refuses
 * `--icmpv6-type any` with "Unknown ICMPv6 type `any'" — checked by hand in a namespace.
 * So the DSL refuses it for ICMPv6 and says how to match every ICMPv6 packet instead.
 */
describe('icmp type any', () => {
  it('is accepted for ICMP', () => {
    const r = parseRule('icmp type any accept', { family: 'ipv4' });
    expect(r.diagnostics).toEqual([]);
  });

  it('is refused for ICMPv6 with a hint', () => {
    const r = parseRule('icmpv6 type any accept', { family: 'ipv6' });
    expect(r.diagnostics.map((d) => d.code)).toEqual(['E-icmp-type']);
    expect(r.diagnostics[0].hint).toContain('leave `type` out');
  });
});

/**
 * TCP option 0 (end of option list) is refused by iptables-restore ("Bad TCP option \"0\"",
 * legacy and nft, checked by hand in a namespace), so the DSL refuses it too.
 */
describe('tcp option 0', () => {
  it('is refused', () => {
    const r = parseRule('tcp option 0 accept', { family: 'ipv4' });
    expect(r.diagnostics.map((d) => d.code)).toEqual(['E-tcp-option']);
  });
});
