import fc from 'fast-check';
import type { Match, Target } from '../../../src/kinds/index.js';
import type { Family } from '../../../src/util/ip.js';
import { NO_SPAN } from '../../../src/util/span.js';
import type { AddrItem } from '../../../src/kinds/values.js';
import { PROTO } from '../../../src/ir/fields.js';
import type { Hook, TableName } from '../../../src/ir/netfilter.js';

/**
 * fast-check arbitraries for every kind, used by the round-trip property (IR → DSL → IR), the
 * emitter acceptance test (random policies into the kernel), the simulator/kernel differential
 * and the analyzer properties. One entry per kind; the registry type makes a missing kind a
 * compile error. Generated nodes are valid for the given family and carry NO_SPAN.
 *
 * `context` tells what the surrounding rule already has, because some kinds need it (ports need
 * a port protocol). Generators of whole rules (test/gen/policy.ts) add prerequisites first.
 */
export interface GenContext {
  readonly family: Family;
  /** The rule's single protocol, if it has one. */
  readonly proto?: number;
  /** The table the rule is in (default filter): targets and some matches are table-bound. */
  readonly table?: TableName;
  /**
   * Hooks the rule's chain is reached from (a built-in chain: its own). Kinds the kernel
   * restricts to some hooks (mac, owner, NAT targets …) generate only when all of these are
   * allowed; absent means "unknown", and those kinds then generate nothing.
   */
  readonly hooks?: readonly Hook[];
  /** Matches the rule already has (targets such as tcpmss need a SYN flags test). */
  readonly matches?: readonly Match[];
  /**
   * ipsets that exist where the rules will be loaded (the kernel refuses `-m set` naming a
   * missing set). Absent: the ipset kind generates nothing. Kernel tests create them with
   * `ipset create NAME hash:ip [family inet6]` in their namespace.
   */
  readonly ipsets?: readonly string[];
}

/** True when every hook of the context is among `allowed` (and the context says which hooks). */
export function onlyHooks(ctx: GenContext, allowed: readonly Hook[]): boolean {
  return ctx.hooks !== undefined && ctx.hooks.length > 0 && ctx.hooks.every((h) => allowed.includes(h));
}

const span = NO_SPAN;

/** A string of `min`..`max` characters from `chars` (much faster than fc.stringMatching). */
function word(chars: string, min: number, max: number): fc.Arbitrary<string> {
  return fc.array(fc.constantFrom(...chars), { minLength: min, maxLength: max }).map((a) => a.join(''));
}
const LOWER = 'abcdefghijklmnopqrstuvwxyz';
const DIGITS = '0123456789';

export function addrItem(family: Family): fc.Arbitrary<AddrItem> {
  const bits = family === 'ipv4' ? 32 : 128;
  const max = (1n << BigInt(bits)) - 1n;
  const prefix = fc.tuple(fc.bigInt(0n, max), fc.integer({ min: family === 'ipv4' ? 8 : 16, max: bits })).map(([a, len]) => {
    const mask = len === 0 ? 0n : (((1n << BigInt(len)) - 1n) << BigInt(bits - len)) & max;
    return { type: 'prefix', family, addr: a & mask, len } as const;
  });
  const range = fc.tuple(fc.bigInt(0n, max), fc.bigInt(1n, 1000n)).map(([a, w]) => {
    const last = a + w > max ? max : a + w;
    return { type: 'range', family, first: a, last } as const;
  });
  return fc.oneof({ weight: 4, arbitrary: prefix }, { weight: 1, arbitrary: range });
}

const portItem = fc.oneof(
  fc.integer({ min: 0, max: 65535 }).map((p) => [p, p] as const),
  fc.tuple(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 2000 })).map(([lo, w]) => [lo, Math.min(65535, lo + w)] as const),
);

type MatchArbs = { readonly [K in Match['kind']]: (ctx: GenContext) => fc.Arbitrary<Extract<Match, { kind: K }>> | undefined };
type TargetArbs = { readonly [K in Target['kind']]: (ctx: GenContext & { chains: readonly string[] }) => fc.Arbitrary<Extract<Target, { kind: K }>> | undefined };

export const MATCH_ARBITRARIES: MatchArbs = {
  addr: ({ family }) =>
    fc.record({
      kind: fc.constant('addr' as const),
      dir: fc.constantFrom('src' as const, 'dst' as const),
      negated: fc.boolean(),
      value: fc.record({ items: fc.array(addrItem(family), { minLength: 1, maxLength: 3 }), excluded: fc.constant([]) }),
      span: fc.constant(span),
    }),
  port: ({ proto }) =>
    proto === undefined || ![PROTO.tcp, PROTO.udp].includes(proto as 6 | 17)
      ? undefined
      : fc.record({
          kind: fc.constant('port' as const),
          dir: fc.constantFrom('src' as const, 'dst' as const),
          negated: fc.boolean(),
          value: fc.record({ items: fc.array(portItem, { minLength: 1, maxLength: 4 }) }),
          span: fc.constant(span),
        }),
  proto: ({ family }) =>
    fc.record({
      kind: fc.constant('proto' as const),
      negated: fc.constant(false),
      protos: fc.constantFrom<number>(PROTO.tcp, PROTO.udp, family === 'ipv4' ? PROTO.icmp : PROTO.icmpv6).map((p) => [p]),
      span: fc.constant(span),
    }),
  iface: () =>
    fc.record({
      kind: fc.constant('iface' as const),
      dir: fc.constantFrom('in' as const, 'out' as const),
      negated: fc.boolean(),
      device: fc.constantFrom('eth0', 'eth1', 'wan0', 'veth'),
      wildcard: fc.boolean(),
      span: fc.constant(span),
    }),
  'ct-state': () =>
    fc.record({
      kind: fc.constant('ct-state' as const),
      negated: fc.boolean(),
      // In the order iptables prints them (the IR keeps them sorted so).
      states: fc.subarray(['INVALID', 'NEW', 'RELATED', 'ESTABLISHED', 'UNTRACKED', 'SNAT', 'DNAT'] as const, { minLength: 1 }),
      span: fc.constant(span),
    }),
  'ct-status': () =>
    fc.record({
      kind: fc.constant('ct-status' as const),
      negated: fc.boolean(),
      statuses: fc.subarray(['EXPECTED', 'SEEN_REPLY', 'ASSURED', 'CONFIRMED'] as const, { minLength: 1 }),
      span: fc.constant(span),
    }),
  'ct-direction': () =>
    fc.record({ kind: fc.constant('ct-direction' as const), dir: fc.constantFrom('original' as const, 'reply' as const), span: fc.constant(span) }),
  'ct-tuple': ({ family }) => {
    const bits = family === 'ipv4' ? 32 : 128;
    const max = (1n << BigInt(bits)) - 1n;
    const range = (maxV: number) => fc.tuple(fc.integer({ min: 0, max: maxV }), fc.integer({ min: 0, max: 100 })).map(([lo, w]) => [lo, Math.min(maxV, lo + w)] as const);
    return fc.oneof(
      fc.record({ kind: fc.constant('ct-tuple' as const), field: fc.constant('proto' as const), negated: fc.boolean(), proto: fc.constantFrom(6, 17, 1, 47), span: fc.constant(span) }),
      fc.record({
        kind: fc.constant('ct-tuple' as const),
        field: fc.constantFrom('saddr' as const, 'daddr' as const),
        tuple: fc.constantFrom('original' as const, 'reply' as const),
        negated: fc.boolean(),
        family: fc.constant(family),
        addr: fc.bigInt(0n, max),
        len: fc.integer({ min: 1, max: bits }),
        span: fc.constant(span),
      }),
      fc.record({
        kind: fc.constant('ct-tuple' as const),
        field: fc.constantFrom('sport' as const, 'dport' as const),
        tuple: fc.constantFrom('original' as const, 'reply' as const),
        negated: fc.boolean(),
        range: range(65535),
        span: fc.constant(span),
      }),
      fc.record({ kind: fc.constant('ct-tuple' as const), field: fc.constant('expire' as const), negated: fc.boolean(), range: range(100000), span: fc.constant(span) }),
    );
  },
  'tcp-flags': ({ proto }) =>
    proto !== PROTO.tcp
      ? undefined
      : fc
          .record({ kind: fc.constant('tcp-flags' as const), negated: fc.boolean(), mask: fc.integer({ min: 1, max: 0x3f }), flags: fc.integer({ min: 0, max: 0x3f }), span: fc.constant(span) })
          .map((m) => ({ ...m, flags: m.flags & m.mask })),
  'tcp-option': ({ proto }) =>
    proto !== PROTO.tcp ? undefined : fc.record({ kind: fc.constant('tcp-option' as const), negated: fc.boolean(), option: fc.integer({ min: 1, max: 255 }), span: fc.constant(span) }),
  icmp: ({ family, proto }) => {
    const v6 = family === 'ipv6';
    if (proto !== (v6 ? PROTO.icmpv6 : PROTO.icmp)) return undefined;
    const spec = fc
      // ip6tables has no `any` ICMPv6 type.
      .record({ type: v6 ? fc.integer({ min: 0, max: 254 }) : fc.oneof(fc.constant('any' as const), fc.integer({ min: 0, max: 254 })), code: fc.option(fc.integer({ min: 0, max: 255 }), { nil: undefined }) })
      .map((t) => (t.type === 'any' || t.code === undefined ? { type: t.type } : t));
    return fc.record({
      kind: fc.constant('icmp' as const),
      v6: fc.constant(v6),
      negated: fc.boolean(),
      types: fc.array(spec, { minLength: 1, maxLength: 3 }),
      span: fc.constant(span),
    });
  },
  mac: (ctx) =>
    !onlyHooks(ctx, ['PREROUTING', 'INPUT', 'FORWARD'])
      ? undefined
      : fc.record({ kind: fc.constant('mac' as const), negated: fc.boolean(), addr: fc.bigInt(0n, (1n << 48n) - 1n), span: fc.constant(span) }),
  mark: () =>
    fc.record({
      kind: fc.constant('mark' as const),
      field: fc.constantFrom('mark' as const, 'ctmark' as const),
      negated: fc.boolean(),
      value: fc.bigInt(0n, 0xffffffffn),
      mask: fc.oneof(fc.constant(0xffffffffn), fc.bigInt(1n, 0xffffffffn)),
      span: fc.constant(span),
    }),
  limit: () =>
    fc.record({
      kind: fc.constant('limit' as const),
      rate: fc.record({ count: fc.integer({ min: 1, max: 1000 }), unit: fc.constantFrom('second' as const, 'minute' as const, 'hour' as const) }),
      burst: fc.integer({ min: 1, max: 100 }),
      span: fc.constant(span),
    }),
  hashlimit: () =>
    fc.record({
      kind: fc.constant('hashlimit' as const),
      name: fc.tuple(word(LOWER, 1, 1), word(LOWER + DIGITS + '_', 0, 10)).map(([a, b]) => a + b),
      above: fc.boolean(),
      rate: fc.record({ type: fc.constant('packets' as const), rate: fc.record({ count: fc.integer({ min: 1, max: 1000 }), unit: fc.constantFrom('second' as const, 'minute' as const) }) }),
      mode: fc.subarray(['srcip', 'srcport', 'dstip', 'dstport'] as const),
      span: fc.constant(span),
    }),
  recent: ({ family }) =>
    fc
      .record({
        kind: fc.constant('recent' as const),
        negated: fc.boolean(),
        op: fc.constantFrom('set' as const, 'check' as const, 'update' as const, 'remove' as const),
        name: fc.constantFrom('DEFAULT', 'ssh', 'scan'),
        seconds: fc.option(fc.integer({ min: 1, max: 3600 }), { nil: undefined }),
        side: fc.constantFrom('source' as const, 'dest' as const),
        span: fc.constant(span),
      })
      .map((m) => {
        const base = { kind: m.kind, negated: m.negated, op: m.op, name: m.name, side: m.side, span: m.span };
        return m.seconds !== undefined && (m.op === 'check' || m.op === 'update') ? { ...base, seconds: m.seconds } : base;
      })
      .map((m) => (family === 'ipv6' ? m : m)),
  addrtype: ({ family }) =>
    fc.record({
      kind: fc.constant('addrtype' as const),
      dir: fc.constantFrom('src' as const, 'dst' as const),
      negated: fc.boolean(),
      types: fc.subarray(family === 'ipv4' ? (['UNICAST', 'LOCAL', 'BROADCAST', 'MULTICAST'] as const) : (['UNICAST', 'LOCAL', 'ANYCAST', 'MULTICAST'] as const), { minLength: 1 }),
      span: fc.constant(span),
    }),
  dscp: () =>
    fc.oneof(
      fc.record({ kind: fc.constant('dscp' as const), field: fc.constant('dscp' as const), negated: fc.boolean(), value: fc.integer({ min: 0, max: 63 }), span: fc.constant(span) }),
      fc
        .record({ kind: fc.constant('dscp' as const), field: fc.constant('tos' as const), negated: fc.boolean(), value: fc.integer({ min: 0, max: 255 }), mask: fc.integer({ min: 1, max: 255 }), span: fc.constant(span) })
        .map((m) => ({ ...m, value: m.value & m.mask })),
    ),
  ttl: () =>
    fc
      .record({ kind: fc.constant('ttl' as const), op: fc.constantFrom('eq' as const, 'ne' as const, 'lt' as const, 'gt' as const), value: fc.integer({ min: 0, max: 255 }), span: fc.constant(span) })
      .filter((m) => !(m.op === 'lt' && m.value === 0) && !(m.op === 'gt' && m.value === 255)),
  pkttype: () =>
    fc.record({ kind: fc.constant('pkttype' as const), negated: fc.boolean(), type: fc.constantFrom('unicast' as const, 'broadcast' as const, 'multicast' as const, 'otherhost' as const), span: fc.constant(span) }),
  length: () =>
    fc.record({
      kind: fc.constant('length' as const),
      negated: fc.boolean(),
      range: fc.tuple(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 2000 })).map(([lo, w]) => [lo, Math.min(65535, lo + w)] as const),
      span: fc.constant(span),
    }),
  helper: () => fc.record({ kind: fc.constant('helper' as const), negated: fc.boolean(), name: fc.constantFrom('ftp', 'sip', 'tftp', 'ftp-21'), span: fc.constant(span) }),
  fragment: ({ family }) => (family !== 'ipv4' ? undefined : fc.record({ kind: fc.constant('fragment' as const), negated: fc.boolean(), span: fc.constant(span) })),
  owner: (ctx) =>
    !onlyHooks(ctx, ['OUTPUT', 'POSTROUTING'])
      ? undefined
      : fc.oneof(
          fc.record({ kind: fc.constant('owner' as const), what: fc.constant('socket' as const), negated: fc.boolean(), span: fc.constant(span) }),
          fc.record({
            kind: fc.constant('owner' as const),
            what: fc.constantFrom('uid' as const, 'gid' as const),
            negated: fc.boolean(),
            range: fc.tuple(fc.integer({ min: 0, max: 70000 }), fc.integer({ min: 0, max: 100 })).map(([lo, w]) => [lo, lo + w] as const),
            span: fc.constant(span),
          }),
        ),
  ipset: ({ ipsets }) =>
    !ipsets?.length
      ? undefined
      : fc.record({ kind: fc.constant('ipset' as const), negated: fc.boolean(), name: fc.constantFrom(...ipsets), dirs: fc.constantFrom(['src'] as const, ['dst'] as const), span: fc.constant(span) }),
  ipsec: (ctx) => {
    const dirs = (['in', 'out'] as const).filter((d) => onlyHooks(ctx, d === 'in' ? ['PREROUTING', 'INPUT', 'FORWARD'] : ['FORWARD', 'OUTPUT', 'POSTROUTING']));
    if (dirs.length === 0) return undefined;
    return fc.record({
      kind: fc.constant('ipsec' as const),
      dir: fc.constantFrom(...dirs),
      policy: fc.constantFrom('ipsec' as const, 'none' as const),
      strict: fc.constant(false),
      elements: fc.constant([]),
      span: fc.constant(span),
    });
  },
  connlimit: () =>
    fc.record({ kind: fc.constant('connlimit' as const), above: fc.boolean(), count: fc.integer({ min: 0, max: 1000 }), by: fc.constantFrom('saddr' as const, 'daddr' as const), span: fc.constant(span) }),
  rpfilter: (ctx) =>
    !onlyHooks(ctx, ['PREROUTING']) || (ctx.table !== 'raw' && ctx.table !== 'mangle')
      ? undefined
      : fc.record({ kind: fc.constant('rpfilter' as const), fail: fc.boolean(), loose: fc.boolean(), validmark: fc.boolean(), acceptLocal: fc.boolean(), span: fc.constant(span) }),
  physdev: () => fc.record({ kind: fc.constant('physdev' as const), isBridged: fc.boolean(), span: fc.constant(span) }),
  'sctp-dccp': ({ proto }) =>
    proto === PROTO.sctp
      ? fc.record({
          kind: fc.constant('sctp-dccp' as const),
          test: fc.constant('chunks' as const),
          negated: fc.boolean(),
          mode: fc.constantFrom('any' as const, 'all' as const, 'only' as const),
          chunks: fc.subarray(['DATA', 'INIT', 'INIT_ACK', 'ABORT'], { minLength: 1 }),
          span: fc.constant(span),
        })
      : proto === PROTO.dccp
        ? fc.record({ kind: fc.constant('sctp-dccp' as const), test: fc.constant('dccp-option' as const), negated: fc.boolean(), option: fc.integer({ min: 1, max: 255 }), span: fc.constant(span) })
        : undefined,
  // Modules nfproof does not model, in the exact form iptables-save prints them (checked on the kernel).
  opaque: () =>
    fc.record({
      kind: fc.constant('opaque' as const),
      module: fc.constant('statistic'),
      args: fc.tuple(fc.integer({ min: 2, max: 9 }), fc.integer({ min: 0, max: 1 })).map(([every, packet]) => ['--mode', 'nth', '--every', String(every), '--packet', String(packet)]),
      span: fc.constant(span),
    }),
};

const hasTable = (ctx: GenContext, t: TableName) => (ctx.table ?? 'filter') === t;
const natPortsOk = (proto: number | undefined) => proto === PROTO.tcp || proto === PROTO.udp;
const nflag = fc.boolean();

export const TARGET_ARBITRARIES: TargetArbs = {
  verdict: () => fc.record({ kind: fc.constant('verdict' as const), verdict: fc.constantFrom('accept' as const, 'drop' as const), span: fc.constant(span) }),
  counter: () => fc.record({ kind: fc.constant('counter' as const), span: fc.constant(span) }),
  return: () => fc.record({ kind: fc.constant('return' as const), span: fc.constant(span) }),
  jump: ({ chains }) =>
    chains.length === 0
      ? undefined
      : fc.record({ kind: fc.constant('jump' as const), mode: fc.constantFrom('jump' as const, 'goto' as const), chain: fc.constantFrom(...chains), span: fc.constant(span) }),
  reject: (ctx) => {
    if (!hasTable(ctx, 'filter') || !onlyHooks(ctx, ['INPUT', 'FORWARD', 'OUTPUT'])) return undefined;
    const own = ctx.family === 'ipv4' ? ['icmp-host-prohibited', 'icmp-net-unreachable', 'icmp-admin-prohibited'] : ['icmp6-adm-prohibited', 'icmp6-no-route'];
    const types = [...own, 'admin-prohibited', 'host-unreachable', ...(ctx.proto === PROTO.tcp ? ['tcp-reset'] : [])];
    return fc.record({ kind: fc.constant('reject' as const), with: fc.option(fc.constantFrom(...types), { nil: undefined }), span: fc.constant(span) }).map((t) => (t.with === undefined ? { kind: t.kind, span: t.span } : t));
  },
  log: () =>
    fc.record({
      kind: fc.constant('log' as const),
      prefix: word(LOWER + DIGITS + ' :_-"', 1, 20),
      level: fc.integer({ min: 0, max: 7 }),
      flags: fc.subarray(['tcp-sequence', 'tcp-options', 'ip-options', 'uid'] as const),
      span: fc.constant(span),
    }),
  nflog: () =>
    fc.record({ kind: fc.constant('nflog' as const), group: fc.integer({ min: 0, max: 65535 }), prefix: word(LOWER + DIGITS, 1, 10), threshold: fc.integer({ min: 1, max: 10 }), span: fc.constant(span) }),
  snat: (ctx) => {
    const { family, proto } = ctx;
    if (!hasTable(ctx, 'nat') || !onlyHooks(ctx, ['POSTROUTING', 'INPUT'])) return undefined;
    // iptables refuses a port mapping unless the rule matches tcp, udp, sctp or dccp.
    const portsOk = natPortsOk(proto);
    const bits = family === 'ipv4' ? 32 : 128;
    const max = (1n << BigInt(bits)) - 1n;
    return fc.record({
      kind: fc.constant('snat' as const),
      to: fc.record({
        family: fc.constant(family),
        addr: fc.bigInt(1n, max).map((a) => [a, a] as const),
        ports: portsOk ? fc.option(fc.integer({ min: 1, max: 65000 }).map((p) => [p, p + 10] as const), { nil: undefined }) : fc.constant(undefined),
      }).map((r) => (r.ports === undefined ? { family: r.family, addr: r.addr } : r)),
      random: fc.boolean(),
      fullyRandom: fc.boolean(),
      persistent: fc.boolean(),
      span: fc.constant(span),
    });
  },
  dnat: (ctx) => {
    if (!hasTable(ctx, 'nat') || !onlyHooks(ctx, ['PREROUTING', 'OUTPUT'])) return undefined;
    const bits = ctx.family === 'ipv4' ? 32 : 128;
    const max = (1n << BigInt(bits)) - 1n;
    return fc.record({
      kind: fc.constant('dnat' as const),
      to: fc
        .record({
          family: fc.constant(ctx.family),
          addr: fc.bigInt(1n, max).map((a) => [a, a] as const),
          ports: natPortsOk(ctx.proto) ? fc.option(fc.integer({ min: 1, max: 65000 }).map((p) => [p, p] as const), { nil: undefined }) : fc.constant(undefined),
        })
        .map((r) => (r.ports === undefined ? { family: r.family, addr: r.addr } : r)),
      random: nflag,
      persistent: nflag,
      span: fc.constant(span),
    });
  },
  masquerade: (ctx) =>
    !hasTable(ctx, 'nat') || !onlyHooks(ctx, ['POSTROUTING'])
      ? undefined
      : fc
          .record({
            kind: fc.constant('masquerade' as const),
            ports: natPortsOk(ctx.proto) ? fc.option(fc.integer({ min: 1024, max: 60000 }).map((p) => ({ ports: [p, p + 100] as const })), { nil: undefined }) : fc.constant(undefined),
            random: nflag,
            fullyRandom: nflag,
            span: fc.constant(span),
          })
          .map((t) => (t.ports === undefined ? { kind: t.kind, random: t.random, fullyRandom: t.fullyRandom, span: t.span } : t)),
  redirect: (ctx) =>
    !hasTable(ctx, 'nat') || !onlyHooks(ctx, ['PREROUTING', 'OUTPUT'])
      ? undefined
      : fc
          .record({
            kind: fc.constant('redirect' as const),
            ports: natPortsOk(ctx.proto) ? fc.option(fc.integer({ min: 1, max: 65000 }).map((p) => ({ ports: [p, p] as const })), { nil: undefined }) : fc.constant(undefined),
            random: nflag,
            span: fc.constant(span),
          })
          .map((t) => (t.ports === undefined ? { kind: t.kind, random: t.random, span: t.span } : t)),
  netmap: (ctx) => {
    if (!hasTable(ctx, 'nat') || !ctx.hooks?.length) return undefined;
    const bits = ctx.family === 'ipv4' ? 32 : 128;
    return fc.tuple(fc.bigInt(0n, (1n << BigInt(bits)) - 1n), fc.integer({ min: bits - 16, max: bits })).map(([a, len]) => ({
      kind: 'netmap' as const,
      to: { family: ctx.family, addr: a & (((1n << BigInt(len)) - 1n) << BigInt(bits - len)), len },
      span,
    }));
  },
  notrack: (ctx) => (!hasTable(ctx, 'raw') ? undefined : fc.record({ kind: fc.constant('notrack' as const), span: fc.constant(span) })),
  ct: (ctx) => {
    if (!hasTable(ctx, 'raw')) return undefined;
    const helperOk = ctx.proto === PROTO.tcp;
    return fc.oneof(
      fc.record({ kind: fc.constant('ct' as const), notrack: fc.constant(true as const), span: fc.constant(span) }),
      fc.record({ kind: fc.constant('ct' as const), zone: fc.integer({ min: 0, max: 65535 }), span: fc.constant(span) }),
      ...(helperOk ? [fc.record({ kind: fc.constant('ct' as const), helper: fc.constant('ftp'), span: fc.constant(span) })] : []),
    );
  },
  'mark-set': () =>
    fc.record({
      kind: fc.constant('mark-set' as const),
      field: fc.constantFrom('mark' as const, 'ctmark' as const),
      op: fc.oneof(
        fc.record({ type: fc.constant('xmark' as const), mask: fc.bigInt(0n, 0xffffffffn), xor: fc.bigInt(0n, 0xffffffffn) }),
        fc.record({ type: fc.constantFrom('save' as const, 'restore' as const), nfmask: fc.bigInt(0n, 0xffffffffn), ctmask: fc.bigInt(0n, 0xffffffffn) }),
      ),
      span: fc.constant(span),
    }).filter((t) => t.field === 'ctmark' || t.op.type === 'xmark'),
  // TCPMSS needs tcp and a flags test requiring SYN already in the rule (ctx.matches).
  tcpmss: (ctx) => {
    const syn = ctx.matches?.some((m) => m.kind === 'tcp-flags' && !m.negated && (m.flags & 0x02) !== 0);
    if (ctx.proto !== PROTO.tcp || !syn) return undefined;
    const clampOk = onlyHooks(ctx, ['FORWARD', 'OUTPUT', 'POSTROUTING']);
    return fc
      .record({ kind: fc.constant('tcpmss' as const), mss: clampOk ? fc.option(fc.integer({ min: 536, max: 1460 }), { nil: undefined }) : fc.integer({ min: 536, max: 1460 }), span: fc.constant(span) })
      .map((t) => (t.mss === undefined ? { kind: t.kind, span: t.span } : t));
  },
  checksum: (ctx) => (!hasTable(ctx, 'mangle') ? undefined : fc.record({ kind: fc.constant('checksum' as const), span: fc.constant(span) })),
  'dscp-set': (ctx) =>
    !hasTable(ctx, 'mangle')
      ? undefined
      : fc.oneof(
          fc.record({ kind: fc.constant('dscp-set' as const), field: fc.constant('dscp' as const), value: fc.integer({ min: 0, max: 63 }), span: fc.constant(span) }),
          fc.record({ kind: fc.constant('dscp-set' as const), field: fc.constant('tos' as const), value: fc.integer({ min: 0, max: 255 }), mask: fc.integer({ min: 1, max: 255 }), span: fc.constant(span) }),
        ),
  'ttl-set': (ctx) =>
    !hasTable(ctx, 'mangle')
      ? undefined
      : fc.record({ kind: fc.constant('ttl-set' as const), op: fc.constantFrom('set' as const, 'inc' as const, 'dec' as const), value: fc.integer({ min: 1, max: 255 }), span: fc.constant(span) }),
  classify: (ctx) =>
    !onlyHooks(ctx, ['FORWARD', 'OUTPUT', 'POSTROUTING'])
      ? undefined
      : fc.record({ kind: fc.constant('classify' as const), major: fc.integer({ min: 0, max: 0xffff }), minor: fc.integer({ min: 0, max: 0xffff }), span: fc.constant(span) }),
  queue: () => fc.record({ kind: fc.constant('queue' as const), num: fc.integer({ min: 0, max: 65535 }), bypass: fc.boolean(), fanout: fc.constant(false), span: fc.constant(span) }),
  tproxy: (ctx) =>
    !hasTable(ctx, 'mangle') || !onlyHooks(ctx, ['PREROUTING']) || !natPortsOk(ctx.proto)
      ? undefined
      : fc.record({ kind: fc.constant('tproxy' as const), to: fc.record({ ports: fc.integer({ min: 1, max: 65535 }).map((p) => [p, p] as const) }), span: fc.constant(span) }),
  opaque: () =>
    fc.record({ kind: fc.constant('opaque' as const), name: fc.constant('AUDIT'), args: fc.constantFrom(['--type', 'accept'], ['--type', 'drop']), span: fc.constant(span) }),
};
