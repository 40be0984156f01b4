import { PROTO, TCP_FLAG } from '../ir/fields.js';
import { type Family, formatAddress, parseAddress } from '../util/ip.js';
import type { SimInput } from './api.js';
import type { Packet } from './packet.js';

/**
 * The packet file of `nfproof simulate --packets FILE`: JSON Lines, one packet per line.
 *
 *   {"t": 0, "iface": "eth0", "src": "192.168.18.2", "dst": "202.10.10.1", "proto": "tcp",
 *    "sport": 120, "dport": 30, "flags": "S", "seq": 1000, "payload": "text"}
 *
 * - `t` seconds (non-decreasing), `iface` the arrival interface (device or logical name) or
 *   `local` for a packet this host sends;
 * - `proto`: tcp, udp, udplite, sctp, dccp, icmp, icmpv6, gre, esp, ah, or a number;
 * - TCP: `flags` (letters S A F R P U E C, e.g. "SA", "PA", "" for none), `seq`, `ack`,
 *   `window` (64240), `mss`, `wscale`, `sackok`; omitted seq/ack follow the connection;
 * - ICMP: `type`, `code`, echo `id`/`seq`, `mtu`, and `inner` (the quoted packet of an error,
 *   same fields without `t`/`iface`);
 * - any: `ttl` (64), `tos`, `ipid`, `fragment`, `mac` (source MAC), `payload` (text) or
 *   `payload_hex`; `uid`/`gid` for local packets; a local packet may leave out `src`;
 *   `route`: "local" or an outgoing device, overriding the host model's routing (needed for
 *   policies without one, e.g. an imported iptables-save dump).
 * Blank lines and lines starting with `#` are skipped.
 */

export class PacketFileError extends Error {
  constructor(
    readonly line: number,
    readonly column: number,
    message: string,
  ) {
    super(message);
    this.name = 'PacketFileError';
  }
}

const PROTO_NAMES: Readonly<Record<string, number>> = {
  tcp: PROTO.tcp,
  udp: PROTO.udp,
  udplite: PROTO.udplite,
  sctp: PROTO.sctp,
  dccp: PROTO.dccp,
  icmp: PROTO.icmp,
  icmpv6: PROTO.icmpv6,
  'ipv6-icmp': PROTO.icmpv6,
  gre: PROTO.gre,
  esp: PROTO.esp,
  ah: PROTO.ah,
};

const ICMP_TYPES: Readonly<Record<string, readonly [v4: number | undefined, v6: number | undefined]>> = {
  'echo-request': [8, 128],
  'echo-reply': [0, 129],
  'destination-unreachable': [3, 1],
  'dest-unreachable': [3, 1],
  'time-exceeded': [11, 3],
  'parameter-problem': [12, 4],
  'source-quench': [4, undefined],
  redirect: [5, 137],
  'packet-too-big': [undefined, 2],
  'timestamp-request': [13, undefined],
  'timestamp-reply': [14, undefined],
};

const FLAG_LETTERS: Readonly<Record<string, number>> = {
  F: TCP_FLAG.FIN,
  S: TCP_FLAG.SYN,
  R: TCP_FLAG.RST,
  P: TCP_FLAG.PSH,
  A: TCP_FLAG.ACK,
  U: TCP_FLAG.URG,
  E: TCP_FLAG.ECE,
  C: TCP_FLAG.CWR,
};

const KNOWN_KEYS = new Set([
  't', 'iface', 'src', 'dst', 'proto', 'sport', 'dport', 'flags', 'seq', 'ack', 'window', 'mss', 'wscale', 'sackok',
  'payload', 'payload_hex', 'ttl', 'tos', 'ipid', 'fragment', 'mac', 'type', 'code', 'id', 'mtu', 'inner', 'uid', 'gid', 'comment', 'route',
]);

type Json = Record<string, unknown>;

class LineReader {
  constructor(
    readonly line: number,
    readonly obj: Json,
    readonly where: string,
  ) {}

  fail(message: string): never {
    throw new PacketFileError(this.line, 1, this.where ? `${this.where}: ${message}` : message);
  }

  has(key: string): boolean {
    return this.obj[key] !== undefined;
  }

  int(key: string, min: number, max: number): number | undefined {
    const v = this.obj[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) this.fail(`"${key}" must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
    return v;
  }

  str(key: string): string | undefined {
    const v = this.obj[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') this.fail(`"${key}" must be a string, got ${JSON.stringify(v)}`);
    return v;
  }

  bool(key: string): boolean | undefined {
    const v = this.obj[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'boolean') this.fail(`"${key}" must be true or false`);
    return v;
  }

  address(key: string): { family: Family; value: bigint } | undefined {
    const text = this.str(key);
    if (text === undefined) return undefined;
    const a = parseAddress(text);
    if (!a) this.fail(`"${key}": "${text}" is not an IPv4 or IPv6 address`);
    return a;
  }
}

function parseProto(r: LineReader, family: Family): number {
  const v = r.obj.proto;
  if (v === undefined) r.fail('"proto" is missing (tcp, udp, icmp, icmpv6 or a protocol number)');
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0 || v > 255) r.fail('"proto" number must be 0-255');
    return v;
  }
  if (typeof v !== 'string') r.fail('"proto" must be a name or a number');
  const p = PROTO_NAMES[v.toLowerCase()];
  if (p === undefined) r.fail(`unknown protocol "${v}" (tcp, udp, udplite, sctp, dccp, icmp, icmpv6, gre, esp, ah, or a number)`);
  if (p === PROTO.icmp && family === 'ipv6') r.fail('"icmp" in an IPv6 packet: write "icmpv6"');
  if (p === PROTO.icmpv6 && family === 'ipv4') r.fail('"icmpv6" in an IPv4 packet: write "icmp"');
  return p;
}

function parseFlags(r: LineReader): number {
  const text = r.str('flags');
  if (text === undefined) r.fail('a TCP packet needs "flags" (e.g. "S", "SA", "A", "PA", "FA", "R")');
  let f = 0;
  for (const ch of text.toUpperCase().replace(/[|,\s.]/g, '')) {
    const bit = FLAG_LETTERS[ch];
    if (bit === undefined) r.fail(`unknown TCP flag "${ch}" in "${text}" (letters F S R P A U E C)`);
    f |= bit;
  }
  return f;
}

function parsePayload(r: LineReader): Uint8Array {
  const text = r.str('payload');
  const hex = r.str('payload_hex');
  if (text !== undefined && hex !== undefined) r.fail('give "payload" or "payload_hex", not both');
  if (hex !== undefined) {
    const clean = hex.replace(/\s+/g, '');
    if (!/^([0-9a-fA-F]{2})*$/.test(clean)) r.fail('"payload_hex" must be pairs of hex digits');
    const out = new Uint8Array(clean.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
    return out;
  }
  // FTP and friends need CRLF line ends: "\r\n" in JSON strings is passed through as such.
  return new TextEncoder().encode(text ?? '');
}

function parseMac(r: LineReader): bigint | undefined {
  const text = r.str('mac');
  if (text === undefined) return undefined;
  if (!/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(text)) r.fail('"mac" must look like aa:bb:cc:dd:ee:ff');
  return BigInt(`0x${text.replace(/:/g, '')}`);
}

function parseIcmpType(r: LineReader, family: Family): number {
  const v = r.obj.type;
  if (v === undefined) return family === 'ipv4' ? 8 : 128;
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0 || v > 255) r.fail('"type" must be 0-255');
    return v;
  }
  if (typeof v !== 'string') r.fail('"type" must be a number or a name such as "echo-request"');
  const pair = ICMP_TYPES[v.toLowerCase()];
  const t = pair?.[family === 'ipv4' ? 0 : 1];
  if (t === undefined) r.fail(`unknown ${family === 'ipv4' ? 'ICMP' : 'ICMPv6'} type "${v}"`);
  return t;
}

/** The packet part of a line (also used for `inner`); `src` may be missing for local packets. */
function parsePacket(r: LineReader, allowNoSrc: boolean): { packet: Packet; srcGiven: boolean; seqGiven: boolean; ackGiven: boolean } {
  for (const k of Object.keys(r.obj)) {
    if (!KNOWN_KEYS.has(k)) r.fail(`unknown field "${k}"`);
  }
  const dst = r.address('dst');
  if (!dst) r.fail('"dst" is missing');
  const src = r.address('src');
  if (!src && !allowNoSrc) r.fail('"src" is missing (only packets from "local" may leave it out)');
  if (src && src.family !== dst.family) {
    r.fail(`address family mismatch: src ${formatAddress(src.family, src.value)} is ${src.family}, dst ${formatAddress(dst.family, dst.value)} is ${dst.family}`);
  }
  const family = dst.family;
  const proto = parseProto(r, family);
  const packet: Packet = {
    family,
    src: src?.value ?? 0n,
    dst: dst.value,
    proto,
    ttl: r.int('ttl', 0, 255) ?? 64,
    payload: parsePayload(r),
  };
  const tos = r.int('tos', 0, 255);
  if (tos !== undefined) packet.tos = tos;
  const ipid = r.int('ipid', 0, 65535);
  if (ipid !== undefined) packet.ipId = ipid;
  if (r.bool('fragment')) packet.fragment = true;
  const mac = parseMac(r);
  if (mac !== undefined) packet.macSrc = mac;
  let seqGiven = true;
  let ackGiven = true;
  const ports = proto === PROTO.tcp || proto === PROTO.udp || proto === PROTO.udplite || proto === PROTO.sctp || proto === PROTO.dccp;
  if (ports) {
    const sport = r.int('sport', 0, 65535);
    const dport = r.int('dport', 0, 65535);
    if (sport === undefined || dport === undefined) r.fail(`a ${Object.keys(PROTO_NAMES).find((k) => PROTO_NAMES[k] === proto)} packet needs "sport" and "dport"`);
    packet.sport = sport;
    packet.dport = dport;
  } else if (r.has('sport') || r.has('dport')) {
    r.fail('"sport"/"dport" only apply to tcp, udp, udplite, sctp and dccp');
  }
  if (proto === PROTO.tcp) {
    const flags = parseFlags(r);
    const seq = r.int('seq', 0, 0xffffffff);
    const ack = r.int('ack', 0, 0xffffffff);
    seqGiven = seq !== undefined;
    ackGiven = ack !== undefined || (flags & TCP_FLAG.ACK) === 0;
    packet.tcp = { flags, seq: seq ?? 0, ack: ack ?? 0, window: r.int('window', 0, 65535) ?? 64240 };
    const mss = r.int('mss', 0, 65535);
    const wscale = r.int('wscale', 0, 14);
    if (mss !== undefined) packet.tcp.mss = mss;
    if (wscale !== undefined) packet.tcp.wscale = wscale;
    if (r.bool('sackok')) packet.tcp.sackPerm = true;
  } else {
    for (const k of ['flags', 'ack', 'window', 'mss', 'wscale', 'sackok']) if (r.has(k)) r.fail(`"${k}" only applies to tcp`);
  }
  if (proto === PROTO.icmp || proto === PROTO.icmpv6) {
    const type = parseIcmpType(r, family);
    const echo = family === 'ipv4' ? [0, 8, 13, 14, 15, 16, 17, 18].includes(type) : [128, 129, 139, 140].includes(type);
    packet.icmp = { type, code: r.int('code', 0, 255) ?? 0 };
    if (echo) {
      packet.icmp.id = r.int('id', 0, 65535) ?? 1;
      packet.icmp.seq = r.int('seq', 0, 65535) ?? 1;
    } else if (r.has('id')) {
      packet.icmp.id = r.int('id', 0, 65535);
    }
    const mtu = r.int('mtu', 0, 65535);
    if (mtu !== undefined) packet.icmp.mtu = mtu;
    const inner = r.obj.inner;
    if (inner !== undefined) {
      if (typeof inner !== 'object' || inner === null || Array.isArray(inner)) r.fail('"inner" must be an object (the quoted packet)');
      const ir: LineReader = new LineReader(r.line, inner as Json, r.where ? `${r.where}.inner` : 'inner');
      for (const k of ['t', 'iface']) if (ir.has(k)) ir.fail(`"${k}" does not belong in a quoted packet`);
      const q = parsePacket(ir, false).packet;
      if (q.family !== family) ir.fail('the quoted packet must be of the same address family');
      packet.icmp.inner = q;
    }
  } else {
    for (const k of ['type', 'code', 'id', 'mtu', 'inner']) if (r.has(k)) r.fail(`"${k}" only applies to icmp/icmpv6`);
    if (proto !== PROTO.tcp && r.has('seq')) r.fail('"seq" only applies to tcp and icmp echo');
  }
  return { packet, srcGiven: src !== undefined, seqGiven, ackGiven };
}

/**
 * Parses a whole packet file. `resolveIface` maps an interface name of the file to the
 * device (logical names like `lan` are accepted); it returns undefined for unknown names.
 * Throws PacketFileError for the first mistake, with its line.
 */
export function parsePacketFile(text: string, resolveIface: (name: string) => string | undefined): SimInput[] {
  const out: SimInput[] = [];
  let lastT = Number.NEGATIVE_INFINITY;
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, idx) => {
    const line = idx + 1;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    let obj: unknown;
    try {
      obj = JSON.parse(trimmed);
    } catch (e) {
      throw new PacketFileError(line, 1, `not valid JSON: ${(e as Error).message}`);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new PacketFileError(line, 1, 'each line must be a JSON object');
    const r: LineReader = new LineReader(line, obj as Json, '');
    const t = r.obj.t;
    if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) r.fail('"t" (seconds, a number ≥ 0) is missing or invalid');
    if (t < lastT) r.fail(`"t" goes backwards (${t} after ${lastT}); packets must be in time order`);
    lastT = t;
    const iface = r.str('iface');
    if (iface === undefined) r.fail('"iface" is missing (the arrival interface, or "local" for a packet this host sends)');
    const local = iface === 'local';
    const device = local ? undefined : resolveIface(iface);
    if (!local && device === undefined) r.fail(`unknown interface "${iface}"`);
    const { packet, srcGiven, seqGiven, ackGiven } = parsePacket(r, local);
    const uid = r.int('uid', 0, 0xffffffff);
    const gid = r.int('gid', 0, 0xffffffff);
    if (!local && (uid !== undefined || gid !== undefined)) r.fail('"uid"/"gid" only apply to local packets');
    const fill = { ...(srcGiven ? {} : { src: true }), ...(seqGiven ? {} : { seq: true }), ...(ackGiven ? {} : { ack: true }) };
    const routeName = r.str('route');
    let route: SimInput['route'];
    if (routeName !== undefined) {
      if (routeName === 'local') route = { kind: 'local' };
      else {
        const dev = resolveIface(routeName);
        if (dev === undefined) r.fail(`"route": unknown interface "${routeName}"`);
        route = { kind: 'forward', device: dev };
      }
    }
    out.push({
      t,
      ingress: local ? { kind: 'local' } : { kind: 'iface', device: device! },
      packet,
      line,
      ...(Object.keys(fill).length > 0 ? { fill } : {}),
      ...(uid !== undefined ? { uid } : {}),
      ...(gid !== undefined ? { gid } : {}),
      ...(route ? { route } : {}),
    });
  });
  return out;
}

/** A packet back in the file's form (for `--format json` and for writing files). */
export function packetToJson(p: Packet): Record<string, unknown> {
  const o: Record<string, unknown> = { src: formatAddress(p.family, p.src), dst: formatAddress(p.family, p.dst) };
  const name = Object.keys(PROTO_NAMES).find((k) => PROTO_NAMES[k] === p.proto);
  o.proto = name ?? p.proto;
  if (p.sport !== undefined) o.sport = p.sport;
  if (p.dport !== undefined) o.dport = p.dport;
  if (p.tcp) {
    o.flags = Object.entries(FLAG_LETTERS)
      .filter(([, bit]) => p.tcp!.flags & bit)
      .map(([l]) => l)
      .join('');
    o.seq = p.tcp.seq;
    o.ack = p.tcp.ack;
    o.window = p.tcp.window;
    if (p.tcp.mss !== undefined) o.mss = p.tcp.mss;
    if (p.tcp.wscale !== undefined) o.wscale = p.tcp.wscale;
    if (p.tcp.sackPerm) o.sackok = true;
  }
  if (p.icmp) {
    o.type = p.icmp.type;
    o.code = p.icmp.code;
    if (p.icmp.id !== undefined) o.id = p.icmp.id;
    if (p.icmp.seq !== undefined) o.seq = p.icmp.seq;
    if (p.icmp.mtu !== undefined) o.mtu = p.icmp.mtu;
    if (p.icmp.inner) o.inner = packetToJson(p.icmp.inner);
  }
  o.ttl = p.ttl;
  // Everything the reader takes back, so that a written packet reads as the same packet.
  if (p.tos !== undefined) o.tos = p.tos;
  if (p.ipId !== undefined) o.ipid = p.ipId;
  if (p.fragment) o.fragment = true;
  if (p.payload.length > 0) {
    const text = new TextDecoder('utf-8', { fatal: false }).decode(p.payload);
    if (/^[\x20-\x7e\r\n\t]*$/.test(text)) o.payload = text;
    else o.payload_hex = [...p.payload].map((b) => b.toString(16).padStart(2, '0')).join('');
  }
  return o;
}
