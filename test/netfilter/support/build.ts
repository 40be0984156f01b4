import type { TargetEffect } from '../../../src/ir/effect.js';
import { PROTO, TCP_FLAG } from '../../../src/ir/fields.js';
import type { ChainPolicy, Hook, TableName } from '../../../src/ir/netfilter.js';
import type { Chain, HostModel, Policy, Rule, Ruleset, Table } from '../../../src/ir/policy.js';
import { type Match, type Target, targetEffect } from '../../../src/kinds/index.js';
import { parseNatRange } from '../../../src/kinds/nat-range.js';
import type { SimInput, SimOptions, Simulator } from '../../../src/netfilter/api.js';
import type { Packet } from '../../../src/netfilter/packet.js';
import { createSimulator } from '../../../src/netfilter/simulator.js';
import { type Family, parseAddress, parsePrefix } from '../../../src/util/ip.js';
import type { Span } from '../../../src/util/span.js';

/**
 * Builders for hand-made policies and packets in simulator tests (the tests state exactly the
 * IR they mean, independent of the DSL parser). Rules get spans on increasing lines of
 * `test.nfp` so traces can be checked for `file:line`.
 */

let line = 1;
export function span(l = line++): Span {
  return { file: 'test.nfp', start: { line: l, col: 1, offset: 0 }, end: { line: l, col: 2, offset: 1 } };
}

export function addr(text: string): bigint {
  const a = parseAddress(text);
  if (!a) throw new Error(`bad address ${text}`);
  return a.value;
}

// ---------------------------------------------------------------- matches

function addrMatch(dir: 'src' | 'dst', text: string, negated = false): Match {
  const p = parsePrefix(text);
  if (!p) throw new Error(`bad prefix ${text}`);
  return { kind: 'addr', dir, negated, value: { items: [{ type: 'prefix', family: p.family, addr: p.addr, len: p.len }], excluded: [] }, span: span() };
}
export const saddr = (t: string, neg = false) => addrMatch('src', t, neg);
export const daddr = (t: string, neg = false) => addrMatch('dst', t, neg);

function portMatch(dir: 'src' | 'dst', ports: number | readonly [number, number] | readonly number[], negated = false): Match {
  const items =
    typeof ports === 'number'
      ? [[ports, ports] as const]
      : ports.length === 2 && ports[0] <= ports[1] && !Array.isArray((ports as unknown as unknown[])[0])
        ? [[ports[0], ports[1]] as const]
        : ports.map((p) => [p, p] as const);
  return { kind: 'port', dir, negated, value: { items }, span: span() };
}
export const sport = (p: number | readonly [number, number], neg = false) => portMatch('src', p, neg);
export const dport = (p: number | readonly [number, number], neg = false) => portMatch('dst', p, neg);
export const dports = (ps: readonly number[]) => ({ kind: 'port', dir: 'dst', negated: false, value: { items: ps.map((p) => [p, p] as const) }, span: span() }) as Match;

export function proto(name: keyof typeof PROTO | number, negated = false): Match {
  return { kind: 'proto', negated, protos: [typeof name === 'number' ? name : PROTO[name]], span: span() };
}

export function iif(device: string, negated = false): Match {
  return { kind: 'iface', dir: 'in', negated, device: device.replace(/\+$/, ''), wildcard: device.endsWith('+'), span: span() };
}
export function oif(device: string, negated = false): Match {
  return { kind: 'iface', dir: 'out', negated, device: device.replace(/\+$/, ''), wildcard: device.endsWith('+'), span: span() };
}

export function ctstate(...states: ('NEW' | 'ESTABLISHED' | 'RELATED' | 'INVALID' | 'UNTRACKED')[]): Match {
  return { kind: 'ct-state', negated: false, states, span: span() };
}

export function mark(value: number, mask = 0xffffffff, field: 'mark' | 'ctmark' = 'mark'): Match {
  return { kind: 'mark', field, negated: false, value: BigInt(value), mask: BigInt(mask), span: span() };
}

// ---------------------------------------------------------------- targets

/**
 * Targets whose kinds are not needed for the test's point (or not written yet) are built as
 * opaque targets with the effect given here; the simulator is created with an effect override
 * that returns it (see `simulate`).
 */
const EFFECTS = new WeakMap<Target, TargetEffect>();
const LABELS = new WeakMap<Target, string>();

export function effect(e: TargetEffect, label: string): Target {
  const t: Target = { kind: 'opaque', name: 'TEST', args: [label], span: span() };
  EFFECTS.set(t, e);
  LABELS.set(t, label);
  return t;
}

export const ACCEPT: () => Target = () => ({ kind: 'verdict', verdict: 'accept', span: span() });
export const DROP: () => Target = () => ({ kind: 'verdict', verdict: 'drop', span: span() });
export const RETURN = () => effect({ type: 'return' }, 'return');
export const jump = (chain: string): Target => ({ kind: 'jump', mode: 'jump', chain, span: span() });
export const goto = (chain: string): Target => ({ kind: 'jump', mode: 'goto', chain, span: span() });

export function snat(to: string, flags: { random?: boolean; fullyRandom?: boolean; persistent?: boolean } = {}): Target {
  const r = parseNatRange(to);
  if (typeof r === 'string') throw new Error(r);
  return { kind: 'snat', to: r, random: flags.random ?? false, fullyRandom: flags.fullyRandom ?? false, persistent: flags.persistent ?? false, span: span() };
}

function natEffect(type: 'snat' | 'dnat' | 'masquerade' | 'redirect' | 'netmap', to: string | undefined, flags: { random?: boolean; fullyRandom?: boolean; persistent?: boolean } = {}): TargetEffect {
  const r = to === undefined ? {} : parseNatRange(to, { portsOnly: type === 'masquerade' || type === 'redirect' });
  if (typeof r === 'string') throw new Error(r);
  return {
    type: 'nat',
    nat: {
      type,
      ...(r.addr ? { addr: r.addr } : {}),
      ...(r.ports ? { ports: [BigInt(r.ports[0]), BigInt(r.ports[1])] as const } : {}),
      random: flags.random ?? false,
      fullyRandom: flags.fullyRandom ?? false,
      persistent: flags.persistent ?? false,
    },
  };
}

export const dnat = (to: string, flags = {}) => effect(natEffect('dnat', to, flags), `dnat to ${to}`);
export const masquerade = (ports?: string, flags = {}) => effect(natEffect('masquerade', ports, flags), `masquerade${ports ? ` to :${ports}` : ''}`);
export const redirect = (ports?: string) => effect(natEffect('redirect', ports), `redirect${ports ? ` to :${ports}` : ''}`);
export function netmap(prefix: string): Target {
  const p = parsePrefix(prefix)!;
  const hostBits = BigInt((p.family === 'ipv4' ? 32 : 128) - p.len);
  return effect({ type: 'nat', nat: { type: 'netmap', addr: [p.addr, p.addr | ((1n << hostBits) - 1n)], random: false, fullyRandom: false, persistent: false } }, `netmap to ${prefix}`);
}
export const rejectRst = () => effect({ type: 'reject', reply: { type: 'tcp-reset' } }, 'reject with tcp reset');
export const rejectIcmp = (code = 3) => effect({ type: 'reject', reply: { type: 'icmp', icmpType: 3, code } }, `reject with icmp code ${code}`);
export const rejectIcmp6 = (code = 4) => effect({ type: 'reject', reply: { type: 'icmpv6', icmpType: 1, code } }, `reject with icmpv6 code ${code}`);
export const notrack = () => effect({ type: 'continue', actions: [{ type: 'notrack' }] }, 'notrack');
export const ctHelper = (helper: string) => effect({ type: 'continue', actions: [{ type: 'ct-template', helper }] }, `ct helper set ${helper}`);
export const setMark = (v: number, mask = 0xffffffff) => effect({ type: 'continue', actions: [{ type: 'xmark', field: 'mark', mask: BigInt(mask), xor: BigInt(v) }] }, `mark set ${v}`);
export const log = (prefix: string) => effect({ type: 'continue', actions: [{ type: 'log', prefix }] }, `log prefix "${prefix}"`);

// ---------------------------------------------------------------- structure

export function rule(matches: readonly Match[], target: Target, l?: number): Rule {
  return { matches, target, span: span(l) };
}

export function chain(name: string, rules: readonly Rule[], opts: { hook?: Hook; policy?: ChainPolicy } = {}): Chain {
  const hook = opts.hook ?? (['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'].includes(name) ? (name as Hook) : undefined);
  return { name, ...(hook ? { hook, policy: opts.policy ?? 'ACCEPT' } : {}), rules, span: span() };
}

export function table(name: TableName, chains: readonly Chain[]): Table {
  return { name, chains, span: span() };
}

export function ruleset(family: Family, tables: readonly Table[]): Ruleset {
  const order: TableName[] = ['raw', 'mangle', 'nat', 'filter', 'security'];
  return { family, tables: [...tables].sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name)) };
}

export interface HostSpec {
  readonly interfaces: readonly { name: string; device: string; addrs: readonly string[] }[];
  readonly routes?: readonly { dest: string; via?: string; device: string; metric?: number }[];
  readonly sysctls?: Record<string, string>;
}

export function host(spec: HostSpec): HostModel {
  return {
    name: 'gw',
    interfaces: spec.interfaces.map((i) => ({
      name: i.name,
      device: i.device,
      addresses: i.addrs.map((a) => {
        const p = parsePrefix(a)!;
        const [addrText] = a.split('/');
        return { family: p.family, addr: addr(addrText), prefixLen: p.len };
      }),
      span: span(),
    })),
    routes: (spec.routes ?? []).map((r) => {
      const dest = r.dest === 'default' ? parsePrefix(r.via?.includes(':') ? '::/0' : '0.0.0.0/0')! : parsePrefix(r.dest)!;
      return {
        family: dest.family,
        dest: { family: dest.family, addr: dest.addr, len: dest.len },
        ...(r.via ? { via: addr(r.via) } : {}),
        device: r.device,
        ...(r.metric !== undefined ? { metric: r.metric } : {}),
        span: span(),
      };
    }),
    sysctls: spec.sysctls ?? {},
    span: span(),
  };
}

export function policy(h: HostModel | undefined, v4: readonly Table[], v6: readonly Table[] = []): Policy {
  return {
    ...(h ? { host: h } : {}),
    rulesets: { ipv4: ruleset('ipv4', v4), ipv6: ruleset('ipv6', v6) },
    expectations: [],
    sources: ['test.nfp'],
    origin: 'nfp',
  };
}

/** A simulator that understands the test-only effect targets above. */
export function simulate(p: Policy, opts: SimOptions = {}): Simulator {
  return createSimulator(p, opts, {
    effectOf: (r, family) => EFFECTS.get(r.target) ?? targetEffect(r.target, family),
    labelOf: (r) => LABELS.get(r.target),
  });
}

// ---------------------------------------------------------------- packets

export const F = TCP_FLAG;

export function flagsOf(text: string): number {
  let f = 0;
  for (const ch of text) {
    const bit = { F: F.FIN, S: F.SYN, R: F.RST, P: F.PSH, A: F.ACK, U: F.URG, E: F.ECE, C: F.CWR }[ch];
    if (bit === undefined) throw new Error(`bad flag ${ch}`);
    f |= bit;
  }
  return f;
}

export interface PacketSpec {
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  flags?: string;
  seq?: number;
  ack?: number;
  window?: number;
  payload?: string;
  ttl?: number;
  icmp?: { type: number; code?: number; id?: number; seq?: number; inner?: Packet };
}

export function tcp(s: PacketSpec): Packet {
  const family = s.src.includes(':') ? 'ipv6' : 'ipv4';
  return {
    family,
    src: addr(s.src),
    dst: addr(s.dst),
    proto: PROTO.tcp,
    ttl: s.ttl ?? 64,
    sport: s.sport ?? 1024,
    dport: s.dport ?? 80,
    tcp: { flags: flagsOf(s.flags ?? 'S'), seq: s.seq ?? 1000, ack: s.ack ?? 0, window: s.window ?? 64240 },
    payload: new TextEncoder().encode(s.payload ?? ''),
  };
}

export function udp(s: PacketSpec): Packet {
  const family = s.src.includes(':') ? 'ipv6' : 'ipv4';
  return { family, src: addr(s.src), dst: addr(s.dst), proto: PROTO.udp, ttl: s.ttl ?? 64, sport: s.sport ?? 1024, dport: s.dport ?? 53, payload: new TextEncoder().encode(s.payload ?? '') };
}

export function icmp(s: PacketSpec): Packet {
  const family = s.src.includes(':') ? 'ipv6' : 'ipv4';
  const i = s.icmp ?? { type: family === 'ipv4' ? 8 : 128 };
  return {
    family,
    src: addr(s.src),
    dst: addr(s.dst),
    proto: family === 'ipv4' ? PROTO.icmp : PROTO.icmpv6,
    ttl: s.ttl ?? 64,
    icmp: { type: i.type, code: i.code ?? 0, ...(i.id !== undefined ? { id: i.id } : {}), ...(i.seq !== undefined ? { seq: i.seq } : {}), ...(i.inner ? { inner: i.inner } : {}) },
    payload: new Uint8Array(0),
  };
}

export function at(t: number, device: string | 'local', packet: Packet, fill?: SimInput['fill']): SimInput {
  return { t, ingress: device === 'local' ? { kind: 'local' } : { kind: 'iface', device }, packet, ...(fill ? { fill } : {}) };
}
