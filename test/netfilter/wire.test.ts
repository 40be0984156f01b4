import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PROTO, TCP_FLAG } from '../../src/ir/fields.js';
import { type Packet, ipLength } from '../../src/netfilter/packet.js';
import {
  decodeEthernet,
  decodeIp,
  encodeFrame,
  encodeIp,
  formatMac,
  fromHex,
  internetChecksum,
  normalizePacket,
  parseMac,
  toHex,
} from '../../src/netfilter/wire.js';
import { parseAddress } from '../../src/util/ip.js';

const SEED = Number(process.env.NFPROOF_SEED ?? 42);
const a = (s: string): bigint => parseAddress(s)!.value;
const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/**
 * Reference bytes: each hex string below was produced by scapy 2.5.0 (Debian's python3-scapy)
 * for the same header values, an implementation independent of ours. Checksums included.
 */
describe('encodeIp matches an independent encoder byte for byte', () => {
  it('IPv4 TCP SYN with MSS, SACK-permitted and window scale options', () => {
    const syn: Packet = {
      family: 'ipv4',
      src: a('192.168.18.2'),
      dst: a('202.10.10.1'),
      proto: PROTO.tcp,
      ttl: 64,
      ipId: 1,
      sport: 120,
      dport: 30,
      tcp: { flags: TCP_FLAG.SYN, seq: 1000, ack: 0, window: 64240, mss: 1460, sackPerm: true, wscale: 7 },
      payload: new Uint8Array(0),
    };
    expect(toHex(encodeIp(syn))).toBe(
      '45000034000100004006d40dc0a81202ca0a0a010078001e000003e8000000008002faf0c8ec0000020405b40101040201030307',
    );
  });

  it('IPv6 UDP with data', () => {
    const p: Packet = {
      family: 'ipv6',
      src: a('fd00:18::2'),
      dst: a('fd00:20::9'),
      proto: PROTO.udp,
      ttl: 63,
      sport: 5000,
      dport: 53,
      payload: text('hello'),
    };
    expect(toHex(encodeIp(p))).toBe(
      '60000000000d113ffd000018000000000000000000000002fd00002000000000000000000000000913880035000dae0068656c6c6f',
    );
  });

  it('ICMP port unreachable quoting a UDP datagram', () => {
    const inner: Packet = {
      family: 'ipv4',
      src: a('192.168.18.2'),
      dst: a('202.10.10.1'),
      proto: PROTO.udp,
      ttl: 63,
      ipId: 7,
      sport: 4000,
      dport: 53,
      payload: text('abc'),
    };
    const err: Packet = {
      family: 'ipv4',
      src: a('202.10.10.1'),
      dst: a('192.168.18.2'),
      proto: PROTO.icmp,
      ttl: 64,
      ipId: 9,
      icmp: { type: 3, code: 3, inner },
      payload: new Uint8Array(0),
    };
    expect(toHex(encodeIp(err))).toBe(
      '4500003b000900004001d403ca0a0a01c0a812020303a3cf000000004500001f000700003f11d511c0a81202ca0a0a010fa00035000b84ea616263',
    );
    const back = decodeIp(encodeIp(err));
    expect(back.ok && back.packet.icmp?.inner).toEqual({ ...inner, tos: 0 });
  });

  it('ICMPv6 echo request', () => {
    const p: Packet = {
      family: 'ipv6',
      src: a('fd00:18::2'),
      dst: a('fd00:20::9'),
      proto: PROTO.icmpv6,
      ttl: 64,
      icmp: { type: 128, code: 0, id: 7, seq: 1 },
      payload: text('ping'),
    };
    expect(toHex(encodeIp(p))).toBe(
      '60000000000c3a40fd000018000000000000000000000002fd0000200000000000000000000000098000a69b0007000170696e67',
    );
  });

  it('IPv4 TCP PSH/ACK carrying an FTP PORT command, sequence numbers near 2^32', () => {
    const p: Packet = {
      family: 'ipv4',
      src: a('10.0.0.1'),
      dst: a('10.0.0.2'),
      proto: PROTO.tcp,
      ttl: 64,
      ipId: 3,
      sport: 40000,
      dport: 21,
      tcp: { flags: TCP_FLAG.PSH | TCP_FLAG.ACK, seq: 0xfffffff0, ack: 0x12345678, window: 502 },
      payload: text('PORT 10,0,0,1,4,1\r\n'),
    };
    const bytes = encodeIp(p);
    expect(toHex(bytes)).toBe(
      '4500003b00030000400666b80a0000010a0000029c400015fffffff012345678501801f6a10f0000504f52542031302c302c302c312c342c310d0a',
    );
    // The byte counter the simulator uses is the real length on the wire.
    expect(ipLength(p)).toBe(bytes.length);
  });
});

describe('decodeIp', () => {
  it('verifies checksums and reports a corrupted one', () => {
    const p: Packet = { family: 'ipv4', src: 1n, dst: 2n, proto: PROTO.udp, ttl: 9, sport: 1, dport: 2, payload: text('x') };
    const bytes = encodeIp(p);
    const good = decodeIp(bytes);
    expect(good.ok && good.checksumOk).toBe(true);
    bytes[bytes.length - 1] ^= 0x55;
    const bad = decodeIp(bytes);
    expect(bad.ok && bad.checksumOk).toBe(false);
  });

  it('rejects truncated datagrams with a reason', () => {
    const bytes = encodeIp({ family: 'ipv6', src: 1n, dst: 2n, proto: PROTO.tcp, ttl: 1, sport: 1, dport: 2, tcp: { flags: 2, seq: 0, ack: 0, window: 0 }, payload: new Uint8Array(0) });
    const r = decodeIp(bytes.subarray(0, 50));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.error).toMatch(/payload length 20/);
    expect(decodeIp(new Uint8Array([0x50])).ok).toBe(false);
  });

  it('reads a quote truncated to 8 transport bytes (the RFC 792 minimum)', () => {
    const inner: Packet = {
      family: 'ipv4', src: a('10.1.1.1'), dst: a('10.2.2.2'), proto: PROTO.tcp, ttl: 5, ipId: 0, sport: 1234, dport: 80,
      tcp: { flags: TCP_FLAG.SYN, seq: 77, ack: 0, window: 1000 }, payload: new Uint8Array(0),
    };
    const quote = encodeIp(inner).subarray(0, 28);
    const icmp = new Uint8Array(8 + quote.length);
    icmp[0] = 11; // time exceeded
    icmp.set(quote, 8);
    const c = internetChecksum(icmp);
    icmp[2] = c >> 8;
    icmp[3] = c & 0xff;
    // A datagram of protocol 1 without an `icmp` field carries our hand-made message verbatim.
    const dgram = encodeIp({ family: 'ipv4', src: a('10.9.9.9'), dst: a('10.1.1.1'), proto: PROTO.icmp, ttl: 64, payload: icmp });
    const r = decodeIp(dgram);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.checksumOk).toBe(true);
    const q = r.packet.icmp?.inner;
    expect(q).toMatchObject({ src: a('10.1.1.1'), dst: a('10.2.2.2'), sport: 1234, dport: 80 });
    expect(q?.tcp?.seq).toBe(77);
  });

  it('steps over IPv6 extension headers and flags non-first fragments', () => {
    const frag = encodeIp({ family: 'ipv6', src: 1n, dst: 2n, proto: PROTO.udp, ttl: 3, fragment: true, payload: text('tail') });
    const r = decodeIp(frag);
    expect(r.ok && r.packet).toMatchObject({ proto: PROTO.udp, fragment: true, payload: text('tail') });
    expect(r.ok && r.packet.sport).toBeUndefined();
  });
});

describe('Ethernet', () => {
  it('frames and unframes, MACs print as they parse', () => {
    const mac = parseMac('02:00:5e:10:00:01');
    expect(formatMac(mac)).toBe('02:00:5e:10:00:01');
    const p: Packet = { family: 'ipv6', src: 1n, dst: 2n, proto: 59, ttl: 1, payload: fromHex('00ff') };
    const f = decodeEthernet(encodeFrame(p, mac, mac));
    expect(f?.ethertype).toBe(0x86dd);
    const r = decodeIp(f!.payload);
    expect(r.ok && r.packet).toEqual(normalizePacket(p));
  });
});

// ------------------------------------------------------------------------------------------------
// Round trip property over random packets of every modelled shape.

const family = fc.constantFrom('ipv4' as const, 'ipv6' as const);
const bytes = (max: number) => fc.uint8Array({ maxLength: max });

function addr(f: 'ipv4' | 'ipv6'): fc.Arbitrary<bigint> {
  return fc.bigInt(0n, f === 'ipv4' ? (1n << 32n) - 1n : (1n << 128n) - 1n);
}

function ipBase(f: 'ipv4' | 'ipv6') {
  return fc.record({
    family: fc.constant(f),
    src: addr(f),
    dst: addr(f),
    ttl: fc.integer({ min: 0, max: 255 }),
    tos: fc.option(fc.integer({ min: 0, max: 255 }), { nil: undefined }),
    ipId: f === 'ipv4' ? fc.option(fc.integer({ min: 0, max: 65535 }), { nil: undefined }) : fc.constant(undefined),
  });
}

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const port = fc.integer({ min: 0, max: 65535 });

function simplePacket(f: 'ipv4' | 'ipv6'): fc.Arbitrary<Packet> {
  const tcp = fc
    .record({
      base: ipBase(f),
      sport: port,
      dport: port,
      flags: fc.integer({ min: 0, max: 255 }),
      seq: u32,
      ack: u32,
      window: port,
      mss: fc.option(port, { nil: undefined }),
      wscale: fc.option(fc.integer({ min: 0, max: 14 }), { nil: undefined }),
      sackPerm: fc.boolean(),
      payload: bytes(64),
    })
    .map(({ base, sport, dport, payload, ...t }): Packet => ({
      ...base,
      proto: PROTO.tcp,
      sport,
      dport,
      tcp: { flags: t.flags, seq: t.seq, ack: t.ack, window: t.window, ...(t.mss !== undefined ? { mss: t.mss } : {}), ...(t.wscale !== undefined ? { wscale: t.wscale } : {}), ...(t.sackPerm ? { sackPerm: true } : {}) },
      payload,
    }));
  const udp = fc
    .record({ base: ipBase(f), proto: fc.constantFrom<number>(PROTO.udp, PROTO.udplite), sport: port, dport: port, payload: bytes(64) })
    .map(({ base, ...rest }): Packet => ({ ...base, ...rest }));
  const icmpProto = f === 'ipv4' ? PROTO.icmp : PROTO.icmpv6;
  const echo = fc
    .record({ base: ipBase(f), type: fc.constantFrom(...(f === 'ipv4' ? [0, 8] : [128, 129])), id: port, seq: port, payload: bytes(32) })
    .map(({ base, type, id, seq, payload }): Packet => ({ ...base, proto: icmpProto, icmp: { type, code: 0, id, seq }, payload }));
  const other = fc
    .record({ base: ipBase(f), proto: fc.constantFrom(47, 50, 132 + 100), payload: bytes(32) })
    .map(({ base, proto, payload }): Packet => ({ ...base, proto, payload }));
  return fc.oneof(tcp, udp, echo, other);
}

function anyPacket(f: 'ipv4' | 'ipv6'): fc.Arbitrary<Packet> {
  const icmpProto = f === 'ipv4' ? PROTO.icmp : PROTO.icmpv6;
  const error = fc
    .record({
      base: ipBase(f),
      type: fc.constantFrom(...(f === 'ipv4' ? [3, 11, 12] : [1, 2, 3])),
      code: fc.integer({ min: 0, max: 15 }),
      mtu: fc.integer({ min: 0, max: 65535 }),
      inner: simplePacket(f),
    })
    .map(({ base, type, code, mtu, inner }): Packet => ({ ...base, proto: icmpProto, icmp: { type, code, mtu, inner }, payload: new Uint8Array(0) }));
  return fc.oneof({ weight: 4, arbitrary: simplePacket(f) }, { weight: 1, arbitrary: error });
}

describe('wire round trip (property)', () => {
  it('decodeIp(encodeIp(p)) is the normalized packet, with valid checksums and the modelled length', () => {
    fc.assert(
      fc.property(
        family.chain((f) => anyPacket(f)),
        (p) => {
          const wire = encodeIp(p);
          expect(wire.length).toBe(ipLength(p));
          const r = decodeIp(wire);
          expect(r.ok).toBe(true);
          if (!r.ok) return;
          expect(r.checksumOk).toBe(true);
          expect(r.packet).toEqual(normalizePacket(p));
          // Encoding the decoded packet again gives the same bytes.
          expect(toHex(encodeIp(r.packet))).toBe(toHex(wire));
        },
      ),
      { seed: SEED, numRuns: 1000 },
    );
  });
});
