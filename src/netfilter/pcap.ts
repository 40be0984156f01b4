import type { Packet } from './packet.js';
import { type DecodeResult, ETHERTYPE_IPV4, ETHERTYPE_IPV6, decodeEthernet, decodeIp, encodeFrame, encodeIp } from './wire.js';

/**
 * Capture files: classic pcap (both byte orders, micro- and nanosecond timestamps) and pcapng
 * (section header, interface description with if_name/if_tsresol, enhanced and simple packet
 * blocks), with the link types tcpdump and Wireshark produce for IP traffic: Ethernet, raw IP,
 * Linux cooked (SLL and SLL2) and BSD loopback. `nfproof simulate --pcap IN` reads them;
 * `--pcap-out OUT` writes pcapng, where each packet is tagged with the interface it left by.
 */

export const LINKTYPE = {
  NULL: 0,
  ETHERNET: 1,
  RAW: 101,
  LINUX_SLL: 113,
  IPV4: 228,
  IPV6: 229,
  LINUX_SLL2: 276,
} as const;

export interface CaptureRecord {
  /** 1-based position in the file, for messages. */
  readonly index: number;
  /** Timestamp in seconds (as recorded: usually since the epoch). */
  readonly t: number;
  /** Interface name, when the file records one (pcapng if_name). */
  readonly iface?: string;
  readonly linkType: number;
  /** The IP datagram inside the frame; absent when the frame carries something else. */
  readonly ip?: Uint8Array;
  /** The decoded datagram (absent with `ip`). */
  readonly decoded?: DecodeResult;
  /** Why this record has no IP datagram (ARP, unknown link type…). */
  readonly skipped?: string;
  /** Captured length was shorter than the packet on the wire. */
  readonly truncated?: boolean;
}

export type ReadCaptureResult = { readonly ok: true; readonly format: 'pcap' | 'pcapng'; readonly records: readonly CaptureRecord[] } | { readonly ok: false; readonly error: string };

const PCAP_MAGIC_US = 0xa1b2c3d4;
const PCAP_MAGIC_NS = 0xa1b23c4d;
const PCAPNG_SHB = 0x0a0d0d0a;
const PCAPNG_BYTE_ORDER = 0x1a2b3c4d;

/** Reads a pcap or pcapng file. Malformed structure is an error; odd frames become skipped records. */
export function readCapture(bytes: Uint8Array): ReadCaptureResult {
  if (bytes.length < 4) return { ok: false, error: 'file too short to be a capture' };
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(0, false) === PCAPNG_SHB) return readPcapng(bytes, dv);
  const le = dv.getUint32(0, true);
  const be = dv.getUint32(0, false);
  for (const [magic, little] of [
    [le, true],
    [be, false],
  ] as const) {
    if (magic === PCAP_MAGIC_US || magic === PCAP_MAGIC_NS) return readPcap(bytes, dv, little, magic === PCAP_MAGIC_NS ? 1e-9 : 1e-6);
  }
  return { ok: false, error: 'not a pcap or pcapng file (unknown magic number)' };
}

function readPcap(bytes: Uint8Array, dv: DataView, le: boolean, tick: number): ReadCaptureResult {
  if (bytes.length < 24) return { ok: false, error: 'pcap header truncated' };
  const linkType = dv.getUint32(20, le) & 0x0fffffff;
  const records: CaptureRecord[] = [];
  let at = 24;
  while (at < bytes.length) {
    if (at + 16 > bytes.length) return { ok: false, error: `record ${records.length + 1}: header truncated at byte ${at}` };
    const sec = dv.getUint32(at, le);
    const frac = dv.getUint32(at + 4, le);
    const capLen = dv.getUint32(at + 8, le);
    const origLen = dv.getUint32(at + 12, le);
    at += 16;
    if (at + capLen > bytes.length) return { ok: false, error: `record ${records.length + 1}: ${capLen} bytes announced, file ends first` };
    records.push(frameRecord(records.length + 1, sec + frac * tick, linkType, bytes.subarray(at, at + capLen), capLen < origLen));
    at += capLen;
  }
  return { ok: true, format: 'pcap', records };
}

interface NgInterface {
  readonly linkType: number;
  readonly name?: string;
  /** Seconds per timestamp unit. */
  readonly tick: number;
}

function readPcapng(bytes: Uint8Array, dv: DataView): ReadCaptureResult {
  const records: CaptureRecord[] = [];
  let le = true;
  let ifaces: NgInterface[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (at + 12 > bytes.length) return { ok: false, error: `block at byte ${at} truncated` };
    const type = dv.getUint32(at, le);
    if (type === PCAPNG_SHB) {
      // The byte-order magic decides how this section (this block's length included) is read.
      const magicLe = dv.getUint32(at + 8, true);
      if (magicLe === PCAPNG_BYTE_ORDER) le = true;
      else if (dv.getUint32(at + 8, false) === PCAPNG_BYTE_ORDER) le = false;
      else return { ok: false, error: `section header at byte ${at} has a bad byte-order magic` };
      ifaces = [];
    }
    const len = dv.getUint32(at + 4, le);
    if (len < 12 || len % 4 !== 0 || at + len > bytes.length) return { ok: false, error: `block at byte ${at} has a bad length ${len}` };
    const body = at + 8;
    const bodyEnd = at + len - 4;
    if (type === 1) {
      const linkType = dv.getUint16(body, le);
      const opts = readOptions(bytes, dv, body + 8, bodyEnd, le);
      const tsres = opts.get(9)?.[0];
      // if_tsresol: high bit set = negative power of two, else negative power of ten.
      const tick = tsres === undefined ? 1e-6 : tsres & 0x80 ? 2 ** -(tsres & 0x7f) : 10 ** -tsres;
      const nameBytes = opts.get(2);
      ifaces.push({ linkType, tick, ...(nameBytes ? { name: new TextDecoder().decode(nameBytes).replace(/\0+$/, '') } : {}) });
    } else if (type === 6) {
      const ifId = dv.getUint32(body, le);
      const iface = ifaces[ifId];
      if (!iface) return { ok: false, error: `packet block at byte ${at} names interface ${ifId}, which is not described` };
      const ts = dv.getUint32(body + 4, le) * 2 ** 32 + dv.getUint32(body + 8, le);
      const capLen = dv.getUint32(body + 12, le);
      const origLen = dv.getUint32(body + 16, le);
      if (body + 20 + capLen > bodyEnd) return { ok: false, error: `packet block at byte ${at} overruns its block` };
      const data = bytes.subarray(body + 20, body + 20 + capLen);
      records.push(frameRecord(records.length + 1, ts * iface.tick, iface.linkType, data, capLen < origLen, iface.name));
    } else if (type === 3) {
      const iface = ifaces[0];
      if (!iface) return { ok: false, error: `simple packet block at byte ${at} before any interface` };
      const origLen = dv.getUint32(body, le);
      const data = bytes.subarray(body + 4, Math.min(bodyEnd, body + 4 + origLen));
      records.push(frameRecord(records.length + 1, 0, iface.linkType, data, data.length < origLen, iface.name));
    }
    // Other blocks (name resolution, statistics, custom) carry nothing we use.
    at += len;
  }
  return { ok: true, format: 'pcapng', records };
}

function readOptions(bytes: Uint8Array, dv: DataView, from: number, to: number, le: boolean): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  let at = from;
  while (at + 4 <= to) {
    const code = dv.getUint16(at, le);
    const len = dv.getUint16(at + 2, le);
    if (code === 0) break;
    out.set(code, bytes.subarray(at + 4, Math.min(to, at + 4 + len)));
    at += 4 + ((len + 3) & ~3);
  }
  return out;
}

/** The IP datagram inside one captured frame, by link type. */
function frameRecord(index: number, t: number, linkType: number, frame: Uint8Array, truncated: boolean, iface?: string): CaptureRecord {
  const base = { index, t, linkType, ...(iface !== undefined ? { iface } : {}), ...(truncated ? { truncated } : {}) };
  const ip = (payload: Uint8Array | undefined, why: string): CaptureRecord =>
    payload ? { ...base, ip: payload, decoded: decodeIp(payload) } : { ...base, skipped: why };
  const byEthertype = (type: number, payload: Uint8Array): CaptureRecord =>
    type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6 ? ip(payload, '') : { ...base, skipped: `ethertype 0x${type.toString(16).padStart(4, '0')} is not IP` };
  switch (linkType) {
    case LINKTYPE.ETHERNET: {
      const eth = decodeEthernet(frame);
      return eth ? byEthertype(eth.ethertype, eth.payload) : { ...base, skipped: 'Ethernet frame shorter than its header' };
    }
    case LINKTYPE.RAW:
    case 12:
    case 14:
    case LINKTYPE.IPV4:
    case LINKTYPE.IPV6:
      return ip(frame, '');
    case LINKTYPE.LINUX_SLL:
      return frame.length < 16 ? { ...base, skipped: 'cooked header truncated' } : byEthertype((frame[14] << 8) | frame[15], frame.subarray(16));
    case LINKTYPE.LINUX_SLL2:
      return frame.length < 20 ? { ...base, skipped: 'cooked header truncated' } : byEthertype((frame[0] << 8) | frame[1], frame.subarray(20));
    case LINKTYPE.NULL: {
      if (frame.length < 4) return { ...base, skipped: 'loopback header truncated' };
      // The address family is in the capturing host's byte order; accept either.
      const fam = frame[0] || frame[3];
      return fam === 2 || [10, 24, 28, 30].includes(fam) ? ip(frame.subarray(4), '') : { ...base, skipped: `loopback family ${fam} is not IP` };
    }
    default:
      return { ...base, skipped: `link type ${linkType} is not supported` };
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface CaptureOut {
  /** Seconds (fractions kept to the microsecond). */
  readonly t: number;
  readonly packet: Packet;
  /** Interface the packet was seen on (pcapng only). */
  readonly iface?: string;
}

function splitTime(t: number): [number, number] {
  const us = Math.round(Math.max(0, t) * 1e6);
  return [Math.floor(us / 1e6), us % 1e6];
}

/** Classic pcap, little-endian, microseconds, raw IP link type (IPv4 and IPv6 in one file). */
export function writePcap(records: readonly CaptureOut[]): Uint8Array {
  const datagrams = records.map((r) => encodeIp(r.packet));
  const out = new Uint8Array(24 + datagrams.reduce((n, d) => n + 16 + d.length, 0));
  const dv = new DataView(out.buffer);
  dv.setUint32(0, PCAP_MAGIC_US, true);
  dv.setUint16(4, 2, true);
  dv.setUint16(6, 4, true);
  dv.setUint32(16, 65535, true);
  dv.setUint32(20, LINKTYPE.RAW, true);
  let at = 24;
  records.forEach((r, i) => {
    const [sec, us] = splitTime(r.t);
    const d = datagrams[i];
    dv.setUint32(at, sec, true);
    dv.setUint32(at + 4, us, true);
    dv.setUint32(at + 8, d.length, true);
    dv.setUint32(at + 12, d.length, true);
    out.set(d, at + 16);
    at += 16 + d.length;
  });
  return out;
}

/** A growing little-endian byte buffer for pcapng blocks. */
class BlockWriter {
  private chunks: Uint8Array[] = [];

  block(type: number, body: Uint8Array): void {
    const padded = (body.length + 3) & ~3;
    const len = 12 + padded;
    const b = new Uint8Array(len);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, type, true);
    dv.setUint32(4, len, true);
    b.set(body, 8);
    dv.setUint32(len - 4, len, true);
    this.chunks.push(b);
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

const NO_MAC = new Uint8Array(6);

function option(code: number, value: Uint8Array): Uint8Array {
  const b = new Uint8Array(4 + ((value.length + 3) & ~3));
  const dv = new DataView(b.buffer);
  dv.setUint16(0, code, true);
  dv.setUint16(2, value.length, true);
  b.set(value, 4);
  return b;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * pcapng with one interface description per distinct `iface` (named with if_name, microsecond
 * timestamps) and an enhanced packet block per record, in order. Frames are Ethernet with zero
 * MAC addresses rather than raw IP: libpcap 1.10 (tcpdump) refuses a pcapng whose second
 * interface is raw IP, because it compares the mapped and unmapped link type numbers.
 */
export function writePcapng(records: readonly CaptureOut[]): Uint8Array {
  const w = new BlockWriter();
  const shb = new Uint8Array(16);
  const sdv = new DataView(shb.buffer);
  sdv.setUint32(0, PCAPNG_BYTE_ORDER, true);
  sdv.setUint16(4, 1, true);
  sdv.setUint16(6, 0, true);
  sdv.setBigInt64(8, -1n, true); // section length unknown
  w.block(PCAPNG_SHB, concat([shb, option(4, new TextEncoder().encode('nfproof')), new Uint8Array(4)]));
  const ids = new Map<string, number>();
  for (const r of records) {
    const name = r.iface ?? 'unknown';
    if (ids.has(name)) continue;
    ids.set(name, ids.size);
    const idb = new Uint8Array(8);
    const idv = new DataView(idb.buffer);
    idv.setUint16(0, LINKTYPE.ETHERNET, true);
    idv.setUint32(4, 0, true); // no snap length limit
    w.block(1, concat([idb, option(2, new TextEncoder().encode(name)), option(9, Uint8Array.of(6)), new Uint8Array(4)]));
  }
  for (const r of records) {
    const d = encodeFrame(r.packet, NO_MAC, NO_MAC);
    const head = new Uint8Array(20);
    const hdv = new DataView(head.buffer);
    const us = Math.round(Math.max(0, r.t) * 1e6);
    hdv.setUint32(0, ids.get(r.iface ?? 'unknown') as number, true);
    hdv.setUint32(4, Math.floor(us / 2 ** 32), true);
    hdv.setUint32(8, us % 2 ** 32, true);
    hdv.setUint32(12, d.length, true);
    hdv.setUint32(16, d.length, true);
    w.block(6, concat([head, d]));
  }
  return w.bytes();
}
