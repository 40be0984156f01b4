import { describe, expect, it } from 'vitest';
import type { PacketInput } from '../../src/analyze/concrete/input.js';
import { parseAddress } from '../../src/util/ip.js';
import { allEngines, same } from './support/engines.js';
import { nfp } from './support/nfp.js';

/**
 * A non-first fragment gets no conntrack entry whatever its protocol: the kernel's
 * ipv4_get_l4proto / ipv6_get_l4proto (net/netfilter/nf_conntrack_core.c) give up on any
 * fragment offset before the protocol is looked at, and nf_conntrack_in then leaves the
 * packet without a connection, which `ct state invalid` matches. The simulator used to make
 * only fragments of port and ICMP protocols INVALID (their tuple lacked ports) and tracked a
 * GRE or next-header-0 fragment as NEW; the analyzer's engines said INVALID (found by the
 * kernel witness survey, seed 500: `ct state invalid` in mangle PREROUTING matched in the
 * model only). Expected values are by hand from that kernel code: INVALID, so dropped.
 *
 * Runtime: ~3 s (Z3 start-up).
 */
const text = `
host gw {
  interface wan dev eth1 address 192.168.20.1/24, 2001:db8::1/64
}
table filter {
  chain input {
    ct state invalid drop
  }
}`;

const fragment = (family: 'ipv4' | 'ipv6', src: string, dst: string, proto: bigint): PacketInput => ({
  family,
  ingress: { kind: 'iface', device: 'eth1' },
  fields: { saddr: parseAddress(src)!.value, daddr: parseAddress(dst)!.value, proto, length: 100n, ttl: 64n, tos: 0n, fragment: 1n, macsrc: 0x020000000001n },
  ctState: 'NEW',
});

describe('non-first fragments are INVALID to conntrack for every protocol, in every engine', () => {
  const policy = nfp(text);
  it('IPv6 fragments of next header 0 and of GRE', async () => {
    expect(await allEngines(policy, fragment('ipv6', '2001:db8::7', '2001:db8::1', 0n))).toEqual(same({ verdict: 'dropped' }));
    expect(await allEngines(policy, fragment('ipv6', '2001:db8::7', '2001:db8::1', 47n))).toEqual(same({ verdict: 'dropped' }));
  });
  it('an IPv4 GRE fragment', async () => {
    expect(await allEngines(policy, fragment('ipv4', '192.168.20.7', '192.168.20.1', 47n))).toEqual(same({ verdict: 'dropped' }));
  });
  it('the control: a whole GRE packet is NEW and delivered', async () => {
    const whole = { ...fragment('ipv6', '2001:db8::7', '2001:db8::1', 47n) };
    const p: PacketInput = { ...whole, fields: { ...whole.fields, fragment: 0n } };
    expect(await allEngines(policy, p)).toEqual(same({ verdict: 'local' }));
  });
});
