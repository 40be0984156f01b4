import { describe, expect, it } from 'vitest';
import { formatAddress, parseAddress } from '../../src/util/ip.js';

/**
 * IPv6 with an embedded dotted quad. iptables-save prints addresses in ::/96 that way
 * (`::0.8.0.0`, as inet_ntop does), so the importer must read them as what they are, not as
 * IPv4-mapped addresses. Found by the kernel harness's save → import round trip.
 */
describe('parseAddress with an embedded IPv4 part', () => {
  it('keeps ::a.b.c.d in ::/96 and ::ffff:a.b.c.d mapped', () => {
    expect(parseAddress('::0.8.0.0')?.value).toBe(0x80000n);
    expect(parseAddress('::1.2.3.4')?.value).toBe(0x01020304n);
    expect(parseAddress('::ffff:1.2.3.4')?.value).toBe(0xffff01020304n);
    expect(parseAddress('64:ff9b::192.0.2.33')?.value).toBe(0x0064ff9b0000000000000000c0000221n);
    expect(formatAddress('ipv6', parseAddress('::0.8.0.0')!.value)).toBe('::8:0');
  });

  it('still refuses a bad quad', () => {
    expect(parseAddress('::1.2.3.400')).toBeUndefined();
    expect(parseAddress('::1.2.3')).toBeUndefined();
  });
});
