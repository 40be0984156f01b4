import { PROTO } from '../../../src/ir/fields.js';
import type { SimInput } from '../../../src/netfilter/api.js';
import type { Packet } from '../../../src/netfilter/packet.js';
import { parseAddress } from '../../../src/util/ip.js';
import { tcpFlags } from './craft.js';

/**
 * Reads the packet files shipped beside policies/*.nfp (the JSON Lines format of issue 4:
 * `{"t", "iface", "src", "dst", "proto", "sport", "dport", "flags", "seq", "ack", "payload"}`,
 * plus `type`/`code`/`id` for ICMP and `ttl`). Omitted seq/ack are left for the simulator to
 * fill (SimInput.fill); the kernel then gets the completed packet.
 *
 * The simulator's CLI has the authoritative reader for users; this one is only what the
 * harness needs to replay the examples, and it refuses anything it does not understand.
 */
interface Line {
  t?: number;
  iface?: string;
  src?: string;
  dst?: string;
  proto?: string | number;
  sport?: number;
  dport?: number;
  flags?: string;
  seq?: number;
  ack?: number;
  payload?: string;
  ttl?: number;
  type?: number;
  code?: number;
  id?: number;
}

const KNOWN = new Set(['t', 'iface', 'src', 'dst', 'proto', 'sport', 'dport', 'flags', 'seq', 'ack', 'payload', 'ttl', 'type', 'code', 'id']);

export function parsePacketLines(text: string, file: string): SimInput[] {
  const out: SimInput[] = [];
  text.split('\n').forEach((raw, i) => {
    const lineNo = i + 1;
    const where = `${file}:${lineNo}`;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    let j: Line;
    try {
      j = JSON.parse(line) as Line;
    } catch (e) {
      throw new Error(`${where}: not JSON (${e instanceof Error ? e.message : e})`);
    }
    for (const k of Object.keys(j)) if (!KNOWN.has(k)) throw new Error(`${where}: unknown field "${k}"`);
    const src = parseAddress(j.src ?? '');
    const dst = parseAddress(j.dst ?? '');
    if (!src || !dst || src.family !== dst.family) throw new Error(`${where}: src and dst must be addresses of one family`);
    const proto = typeof j.proto === 'number' ? j.proto : (PROTO as Record<string, number>)[j.proto ?? ''];
    if (proto === undefined) throw new Error(`${where}: unknown proto ${JSON.stringify(j.proto)}`);
    const payload = new TextEncoder().encode(j.payload ?? '');
    const p: Packet = { family: src.family, src: src.value, dst: dst.value, proto, ttl: j.ttl ?? 64, payload };
    if (proto === PROTO.tcp || proto === PROTO.udp) {
      p.sport = j.sport ?? 0;
      p.dport = j.dport ?? 0;
    }
    const fill: { seq?: boolean; ack?: boolean } = {};
    if (proto === PROTO.tcp) {
      p.tcp = { flags: tcpFlags(j.flags ?? 'S'), seq: j.seq ?? 0, ack: j.ack ?? 0, window: 64240 };
      if (j.seq === undefined) fill.seq = true;
      if (j.ack === undefined) fill.ack = true;
    }
    if (proto === PROTO.icmp || proto === PROTO.icmpv6) {
      p.icmp = { type: j.type ?? (proto === PROTO.icmp ? 8 : 128), code: j.code ?? 0, id: j.id ?? 0, seq: j.seq ?? 0 };
    }
    if (j.iface === undefined) throw new Error(`${where}: "iface" is missing (a device, or "local")`);
    out.push({
      t: j.t ?? 0,
      ingress: j.iface === 'local' ? { kind: 'local' } : { kind: 'iface', device: j.iface },
      packet: p,
      line: lineNo,
      ...(Object.keys(fill).length ? { fill } : {}),
    });
  });
  return out;
}
