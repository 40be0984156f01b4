import fc from 'fast-check';
import { PROTO } from '../../../src/ir/fields.js';
import type { HostModel, Interface } from '../../../src/ir/policy.js';
import type { SimInput } from '../../../src/netfilter/api.js';
import { routeMetric } from '../../../src/netfilter/host.js';
import type { Packet } from '../../../src/netfilter/packet.js';
import { packetToJson } from '../../../src/netfilter/packet-file.js';
import { type Family, formatAddress, prefixMask } from '../../../src/util/ip.js';
import { answer, at, icmpError, tcpFlags } from './craft.js';
import type { InputContext, InputSpec } from './run.js';

/**
 * Random traffic for the differential property: sequences of sessions (TCP conversations with
 * mutations, UDP exchanges, pings, ICMP errors about earlier packets, FTP passive sessions)
 * between endpoints around a host model. Sessions are drawn abstractly (interface index,
 * "near"/"far"/"fw", small numbers) and resolved against the host when the sequence runs, so
 * fast-check can shrink them independently of the policy. Ports come from small sets so that
 * flows clash on purpose. Replies are computed from what the request became (after NAT) and
 * enter where it left; a request delivered to the firewall is answered by the firewall itself.
 */

export interface EndpointSpec {
  readonly iface: number;
  readonly where: 'near' | 'far' | 'fw';
  readonly n: number;
}

interface Common {
  readonly family: number;
  readonly client: EndpointSpec;
  readonly server: EndpointSpec;
}

export type TcpMutation = 'none' | 'rst-client' | 'rst-server' | 'retransmit' | 'skip-synack' | 'bad-seq';

export type SessionSpec =
  | (Common & { readonly kind: 'tcp'; readonly sport: number; readonly dport: number; readonly steps: number; readonly mutation: TcpMutation; readonly isn: readonly [number, number] })
  | (Common & { readonly kind: 'udp'; readonly sport: number; readonly dport: number; readonly requests: number; readonly replies: number })
  | (Common & { readonly kind: 'ping'; readonly id: number; readonly reply: boolean })
  | (Common & { readonly kind: 'icmp-error'; readonly about: number; readonly type: number; readonly code: number })
  | (Common & { readonly kind: 'ftp'; readonly sport: number; readonly dataPort: number });

const endpoint = fc.record({
  iface: fc.nat({ max: 3 }),
  where: fc.constantFrom<EndpointSpec['where']>('near', 'far', 'fw'),
  n: fc.nat({ max: 5 }),
});

const common = { family: fc.nat({ max: 1 }), client: endpoint, server: endpoint };
const SPORTS = [1024, 2000, 40000, 40001, 80, 21];
const DPORTS = [80, 443, 53, 22, 8080, 21];

export const sessionArb: fc.Arbitrary<SessionSpec> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('tcp' as const),
      ...common,
      sport: fc.constantFrom(...SPORTS),
      dport: fc.constantFrom(...DPORTS),
      steps: fc.integer({ min: 1, max: 9 }),
      mutation: fc.constantFrom<TcpMutation>('none', 'none', 'rst-client', 'rst-server', 'retransmit', 'skip-synack', 'bad-seq'),
      isn: fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff })),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('udp' as const),
      ...common,
      sport: fc.constantFrom(...SPORTS),
      dport: fc.constantFrom(...DPORTS),
      requests: fc.integer({ min: 1, max: 2 }),
      replies: fc.integer({ min: 0, max: 2 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('ping' as const), ...common, id: fc.constantFrom(1, 7, 4660), reply: fc.boolean() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('icmp-error' as const),
      ...common,
      about: fc.nat({ max: 3 }),
      type: fc.constantFrom(3, 11),
      code: fc.constantFrom(0, 1, 3, 4),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('ftp' as const), ...common, sport: fc.constantFrom(40000, 40001), dataPort: fc.constantFrom(5001, 40000) }) },
);

/** A sequence: a few sessions, replayed one after the other from a clean conntrack table. */
export const sequenceArb = fc.array(sessionArb, { minLength: 1, maxLength: 4 });

// ------------------------------------------------------------------------------------------------
// Resolution against a host model

interface Resolved {
  readonly addr: bigint;
  /** Where a packet from this endpoint enters: a device, or `local` for the firewall itself. */
  readonly ingress: string;
}

function familyAddress(i: Interface, family: Family) {
  return i.addresses.find((a) => a.family === family);
}

/** A documentation address outside every generated subnet, for hosts beyond a route. */
function farAddress(family: Family, n: number, viaTen: boolean): bigint {
  if (family === 'ipv4') return viaTen ? 0x0ac80000n + BigInt(n + 1) : 0xc6336400n + BigInt(n + 7); // 10.200.0.x or 198.51.100.x
  return viaTen ? 0xfd990000000000000000000000000000n + BigInt(n + 1) : 0x20010db8ffff00000000000000000000n + BigInt(n + 7);
}

export function resolveEndpoint(host: HostModel, family: Family, e: EndpointSpec): Resolved {
  const i = host.interfaces[e.iface % host.interfaces.length];
  const a = familyAddress(i, family);
  if (e.where === 'fw' && a) return { addr: a.addr, ingress: 'local' };
  if (e.where === 'far') {
    const r = host.routes.find((x) => x.family === family && x.device === i.device);
    if (r) return { addr: farAddress(family, e.n, r.dest.len !== 0), ingress: i.device };
  }
  if (a) {
    const base = a.addr & prefixMask(family, a.prefixLen);
    let addr = base + 2n + BigInt(e.n);
    if (addr === a.addr) addr += 10n;
    return { addr, ingress: i.device };
  }
  // No address of this family on the interface: a host somewhere beyond it.
  return { addr: farAddress(family, e.n, false), ingress: i.device };
}

/**
 * The device the host would send a packet to `addr` out of: the longest matching prefix among
 * connected subnets and routes (lowest metric on a tie), as the kernel's FIB picks it; undefined
 * without a route. Used only to keep generated traffic away from hairpins.
 */
export function routeDevice(host: HostModel, family: Family, addr: bigint): string | undefined {
  let best: { len: number; metric: number; device: string } | undefined;
  const consider = (net: bigint, len: number, metric: number, device: string) => {
    if ((addr & prefixMask(family, len)) !== (net & prefixMask(family, len))) return;
    if (!best || len > best.len || (len === best.len && metric < best.metric)) best = { len, metric, device };
  };
  // Connected routes: metric 0 (IPv4) and 256 (IPv6), as the kernel installs them.
  for (const i of host.interfaces) for (const a of i.addresses) if (a.family === family) consider(a.addr, a.prefixLen, family === 'ipv4' ? 0 : 256, i.device);
  for (const r of host.routes) if (r.family === family) consider(r.dest.addr, r.dest.len, routeMetric(family, r.metric), r.device);
  return best?.device;
}

/** Families a host can carry traffic of (an address of the family on some interface). */
export function hostFamilies(host: HostModel): Family[] {
  return (['ipv4', 'ipv6'] as Family[]).filter((f) => host.interfaces.some((i) => familyAddress(i, f)));
}

const bytes = (s: string) => new TextEncoder().encode(s);

/**
 * The inputs of one sequence on `host`. `base` is the index of the sequence's first input
 * (references to earlier packets are by input index).
 */
export function resolveSequence(host: HostModel, sessions: readonly SessionSpec[]): InputSpec[] {
  const families = hostFamilies(host);
  const out: InputSpec[] = [];
  const firsts: number[] = [];
  if (families.length === 0) return out;
  for (const s of sessions) {
    const family = families[s.family % families.length];
    const c = resolveEndpoint(host, family, s.client);
    // The server sits behind another interface than the client's (or is the firewall): traffic
    // sent back out the interface it came in by makes the kernel send redirects, which the
    // simulator does not model (and IPv6 cannot switch off).
    // Where the host really sends the server's packets decides the hairpin, not the endpoint's label.
    const egress = (r: Resolved) => (r.ingress === 'local' ? 'local' : (routeDevice(host, family, r.addr) ?? r.ingress));
    let v = resolveEndpoint(host, family, s.server);
    for (let k = 1; k < host.interfaces.length && egress(v) === c.ingress; k++) {
      v = resolveEndpoint(host, family, { ...s.server, iface: s.server.iface + k });
    }
    if (v.ingress !== 'local') v = { ...v, ingress: routeDevice(host, family, v.addr) ?? v.ingress };
    if (v.addr === c.addr && v.ingress !== 'local') v = { ...v, addr: v.addr + 1n };
    const first = out.length;
    // ICMP errors are about the first packet of an earlier session that starts with a fixed packet.
    if (s.kind !== 'icmp-error') firsts.push(first);
    /** The answering side's input: back the way request `i` went (or as if it had not been NATed). */
    const back = (i: number, make: (req: Packet) => Packet) => (ctx: InputContext): SimInput => {
      const req = ctx.out(i);
      const dev = ctx.outDevice(i);
      if (req && dev) return at(0, dev, make(req));
      const orig = resolveRequest(out[i], ctx);
      return at(0, v.ingress, make(orig));
    };
    switch (s.kind) {
      case 'tcp':
        out.push(...tcpSession(family, c, v, s, first, back));
        break;
      case 'udp': {
        const req = (k: number): Packet => ({ family, src: c.addr, dst: v.addr, proto: PROTO.udp, ttl: 64, sport: s.sport, dport: s.dport, payload: bytes(`q${k}`) });
        out.push(at(0, c.ingress, req(0)));
        for (let k = 0; k < s.replies; k++) out.push(back(first, (r) => ({ ...r, src: r.dst, dst: r.src, sport: r.dport, dport: r.sport, ttl: 64, payload: bytes(`a${k}`) })));
        if (s.requests > 1) out.push(at(0, c.ingress, req(1)));
        break;
      }
      case 'ping': {
        const v4 = family === 'ipv4';
        out.push(at(0, c.ingress, { family, src: c.addr, dst: v.addr, proto: v4 ? PROTO.icmp : PROTO.icmpv6, ttl: 64, icmp: { type: v4 ? 8 : 128, code: 0, id: s.id, seq: 1 }, payload: bytes('ping') }));
        if (s.reply) out.push(back(first, (r) => ({ ...r, src: r.dst, dst: r.src, ttl: 64, icmp: { ...r.icmp!, type: v4 ? 0 : 129 } })));
        break;
      }
      case 'icmp-error': {
        const about = firsts.length > 0 ? firsts[s.about % firsts.length] : undefined;
        if (about === undefined) {
          // Nothing to complain about yet: an error quoting a packet nobody sent (INVALID).
          const fake: Packet = { family, src: c.addr, dst: v.addr, proto: PROTO.udp, ttl: 63, sport: 1234, dport: 53, payload: bytes('x') };
          out.push(at(0, v.ingress === 'local' ? c.ingress : v.ingress, errorPacket(family, v.addr, c.addr, s, fake)));
        } else {
          // The error is of the family of the packet it is about.
          out.push(back(about, (r) => errorPacket(r.family, r.dst, r.src, s, r)));
        }
        break;
      }
      case 'ftp':
        out.push(...ftpSession(family, c, v, s, first, back));
        break;
      default: {
        const never: never = s;
        throw new Error(`unknown session ${JSON.stringify(never)}`);
      }
    }
  }
  return out;
}

function errorPacket(family: Family, from: bigint, to: bigint, s: { type: number; code: number }, about: Packet): Packet {
  // ICMPv6 has other numbers: destination unreachable is 1, time exceeded 3.
  const type = family === 'ipv4' ? s.type : s.type === 3 ? 1 : 3;
  const code = family === 'ipv4' ? s.code : Math.min(s.code, 1);
  return icmpError(formatAddress(family, from), formatAddress(family, to), type, code, about, type === 3 && code === 4 && family === 'ipv4' ? { mtu: 1280 } : {});
}

/** The packet of a fixed input; computed inputs are only ever references to earlier fixed ones here. */
function resolveRequest(spec: InputSpec | undefined, ctx: InputContext): Packet {
  if (!spec) throw new Error('reference to a missing input');
  return typeof spec === 'function' ? spec(ctx).packet : spec.packet;
}

type Back = (i: number, make: (req: Packet) => Packet) => (ctx: InputContext) => SimInput;

function tcpSession(family: Family, c: Resolved, v: Resolved, s: Extract<SessionSpec, { kind: 'tcp' }>, first: number, back: Back): InputSpec[] {
  const [ci, si] = s.isn;
  const u32 = (x: number) => x >>> 0;
  const fromClient = (flags: string, seq: number, ack: number, payload = ''): InputSpec =>
    at(0, c.ingress, { family, src: c.addr, dst: v.addr, proto: PROTO.tcp, ttl: 64, sport: s.sport, dport: s.dport, tcp: { flags: tcpFlags(flags), seq: u32(seq), ack: u32(ack), window: 64240 }, payload: bytes(payload) });
  const fromServer = (flags: string, seq: number, ack: number, payload = ''): InputSpec => back(first, (r) => answer(r, flags, { seq: u32(seq), ack: u32(ack), payload }));
  const req = 'GET /\r\n';
  const resp = 'HTTP/1.0 200\r\n';
  const script: InputSpec[] = [
    fromClient('S', ci, 0),
    fromServer('SA', si, ci + 1),
    fromClient('A', ci + 1, si + 1),
    fromClient('PA', ci + 1, si + 1, req),
    fromServer('PA', si + 1, ci + 1 + req.length, resp),
    fromClient('FA', ci + 1 + req.length, si + 1 + resp.length),
    fromServer('FA', si + 1 + resp.length, ci + 2 + req.length),
    fromClient('A', ci + 2 + req.length, si + 2 + resp.length),
    fromClient('S', ci + 100000, 0),
  ];
  let steps = script.slice(0, s.steps);
  // A reset replaces the last step, but never the SYN: every other step refers back to it.
  const withReset = (rst: InputSpec) => (steps.length > 1 ? [...steps.slice(0, -1), rst] : [...steps, rst]);
  switch (s.mutation) {
    case 'none':
      break;
    case 'rst-client':
      steps = withReset(fromClient('R', ci + 1, 0));
      break;
    case 'rst-server':
      steps = withReset(fromServer('RA', si + 1, ci + 1));
      break;
    case 'retransmit':
      steps = [...steps, steps[steps.length - 1]];
      break;
    case 'skip-synack':
      steps = steps.filter((_, k) => k !== 1);
      break;
    case 'bad-seq':
      steps = [...steps, fromServer('PA', si + 0x40000000, ci + 1, 'stray')];
      break;
    default: {
      const never: never = s.mutation;
      throw new Error(`unknown mutation ${never}`);
    }
  }
  return steps;
}

/**
 * A passive FTP session: handshake, banner, login, PASV (EPSV for IPv6) and the data SYN to the
 * announced port. The 227 reply names the server's address as the server sees it; the data
 * connection goes to the address and port in the reply as the client received it.
 */
function ftpSession(family: Family, c: Resolved, v: Resolved, s: Extract<SessionSpec, { kind: 'ftp' }>, first: number, back: Back): InputSpec[] {
  const cs = 1000;
  const ss = 5000;
  const client = (flags: string, seq: number, ack: number, payload = '', dport = 21, sport = s.sport, dst = v.addr): Packet => ({
    family,
    src: c.addr,
    dst,
    proto: PROTO.tcp,
    ttl: 64,
    sport,
    dport,
    tcp: { flags: tcpFlags(flags), seq, ack, window: 64240 },
    payload: bytes(payload),
  });
  const banner = '220 ftp\r\n';
  const user = 'USER ftp\r\n';
  const ok = '230 ok\r\n';
  const pasv = family === 'ipv4' ? 'PASV\r\n' : 'EPSV\r\n';
  const p = s.dataPort;
  const announce = (r: Packet): string => {
    if (family === 'ipv6') return `229 Entering Extended Passive Mode (|||${p}|)\r\n`;
    const a = formatAddress('ipv4', r.src).replaceAll('.', ',');
    return `227 Entering Passive Mode (${a},${p >> 8},${p & 255}).\r\n`;
  };
  const c0 = cs + 1;
  const s0 = ss + 1;
  const replyAt = first + 7;
  return [
    at(0, c.ingress, client('S', cs, 0)),
    back(first, (r) => answer(r, 'SA', { seq: ss, ack: c0 })),
    at(0, c.ingress, client('A', c0, s0)),
    back(first, (r) => answer(r, 'PA', { seq: s0, ack: c0, payload: banner })),
    at(0, c.ingress, client('PA', c0, s0 + banner.length, user)),
    back(first, (r) => answer(r, 'PA', { seq: s0 + banner.length, ack: c0 + user.length, payload: ok })),
    at(0, c.ingress, client('PA', c0 + user.length, s0 + banner.length + ok.length, pasv)),
    back(first, (r) => answer(r, 'PA', { seq: s0 + banner.length + ok.length, ack: c0 + user.length + pasv.length, payload: announce(r) })),
    (ctx) => {
      // Where the client was told to connect: the reply as it reached the client.
      const got = ctx.out(replyAt);
      const text = got ? Buffer.from(got.payload).toString('latin1') : '';
      const m = /\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/.exec(text);
      const dst = m && family === 'ipv4' ? (BigInt(m[1]) << 24n) | (BigInt(m[2]) << 16n) | (BigInt(m[3]) << 8n) | BigInt(m[4]) : v.addr;
      const port = m ? Number(m[5]) * 256 + Number(m[6]) : p;
      return at(0, c.ingress, client('S', 777, 0, '', port, s.sport + 1000, dst));
    },
  ];
}

// ------------------------------------------------------------------------------------------------
// Printing a case so it can be replayed with `nfproof simulate --packets`

/**
 * One input as a line of the simulator's JSON Lines packet format (issue 4), written by the
 * simulator's own writer, so that `nfproof simulate POLICY --packets FILE` reads it back as
 * the same input (a quoted packet is an `inner` object there).
 */
export function packetLine(input: SimInput): string {
  const iface = input.ingress.kind === 'local' ? 'local' : input.ingress.device;
  const owner = { ...(input.uid !== undefined ? { uid: input.uid } : {}), ...(input.gid !== undefined ? { gid: input.gid } : {}) };
  return JSON.stringify({ t: input.t, iface, ...packetToJson(input.packet), ...owner });
}


