import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Constraint, evaluateConstraint } from '../../src/ir/constraint.js';
import { NUMERIC_FIELDS, type NumericField, PROTO } from '../../src/ir/fields.js';
import { CtTable } from '../../src/netfilter/conntrack/table.js';
import { Tuple } from '../../src/netfilter/conntrack/tuple.js';
import { CTINFO, Frame, NO_CT, frameView } from '../../src/netfilter/frame.js';
import { Host } from '../../src/netfilter/host.js';
import type { Packet } from '../../src/netfilter/packet.js';
import { buildDispatch } from '../../src/netfilter/rules/dispatch.js';
import { compileConstraint } from '../../src/netfilter/rules/predicate.js';
import { type IntervalSet, normalize } from '../../src/util/intervals.js';
import type { Family } from '../../src/util/ip.js';
import { host } from './support/build.js';

/**
 * The simulator's compiled predicates must mean exactly what src/ir/constraint.ts's reference
 * evaluator says (the analyzer reads the same constraints), and the dispatch index must never
 * hide a rule that matches. Random constraints over every field × random packets.
 */
const SEED = Number(process.env.NFPROOF_SEED ?? 42);
const RUNS = Number(process.env.NFPROOF_RUNS ?? 300);

const FIELDS = Object.keys(NUMERIC_FIELDS) as NumericField[];

function maxFor(field: NumericField, family: Family): bigint {
  const b = NUMERIC_FIELDS[field].bits;
  const bits = b === 'addr' ? (family === 'ipv4' ? 32 : 128) : b;
  return (1n << BigInt(bits)) - 1n;
}

/** Values a random packet actually takes, so that sets hit them often. */
const INTERESTING: Partial<Record<NumericField, bigint[]>> = {
  proto: [6n, 17n, 1n, 58n, 47n],
  sport: [0n, 22n, 80n, 1024n, 40000n, 65535n],
  dport: [0n, 22n, 80n, 1024n, 40000n, 65535n],
  ctstate: [1n, 2n, 4n, 8n, 64n],
  tcpflags: [2n, 18n, 16n, 4n, 17n],
  icmptype: [0n, 3n, 8n, 11n, 128n],
  mark: [0n, 1n, 0xffn, 0xffffffffn],
};

function valueArb(field: NumericField, family: Family): fc.Arbitrary<bigint> {
  const max = maxFor(field, family);
  const picks = INTERESTING[field] ?? [];
  return picks.length ? fc.oneof(fc.constantFrom(...picks), fc.bigInt(0n, max)) : fc.bigInt(0n, max);
}

function setArb(field: NumericField, family: Family): fc.Arbitrary<IntervalSet> {
  const max = maxFor(field, family);
  const iv = fc.tuple(valueArb(field, family), fc.bigInt(0n, max > 1000n ? 1000n : max)).map(([lo, w]) => [lo, lo + w > max ? max : lo + w] as const);
  return fc.array(iv, { minLength: 0, maxLength: 6 }).map((items) => normalize(items));
}

function leafArb(family: Family): fc.Arbitrary<Constraint> {
  const field = fc.constantFrom(...FIELDS);
  return fc.oneof(
    { weight: 5, arbitrary: field.chain((f) => setArb(f, family).map((set): Constraint => ({ op: 'in', field: f, set }))) },
    {
      weight: 2,
      arbitrary: field.chain((f) =>
        fc.tuple(valueArb(f, family), valueArb(f, family)).map(([mask, v]): Constraint => ({ op: 'masked', field: f, mask, value: v & mask })),
      ),
    },
    { weight: 1, arbitrary: field.map((f): Constraint => ({ op: 'present', field: f })) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom('iif' as const, 'oif' as const), fc.constantFrom('eth0', 'eth1', 'eth', 'lo', ''), fc.boolean())
        .map(([fieldName, name, wildcard]): Constraint => ({ op: 'iface', field: fieldName, name, wildcard })),
    },
    { weight: 1, arbitrary: fc.constantFrom<Constraint>({ op: 'true' }, { op: 'false' }) },
    { weight: 1, arbitrary: fc.constantFrom('a', 'b', 'c').map((key): Constraint => ({ op: 'opaque', key, reason: 'test' })) },
  );
}

function constraintArb(family: Family): fc.Arbitrary<Constraint> {
  const { tree } = fc.letrec<{ tree: Constraint }>((tie) => ({
    tree: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      leafArb(family),
      fc.array(tie('tree'), { minLength: 1, maxLength: 4 }).map((of): Constraint => ({ op: 'and', of })),
      fc.array(tie('tree'), { minLength: 1, maxLength: 4 }).map((of): Constraint => ({ op: 'or', of })),
      tie('tree').map((of): Constraint => ({ op: 'not', of })),
    ),
  }));
  return tree;
}

const gw = new Host(
  host({
    interfaces: [
      { name: 'lan', device: 'eth0', addrs: ['10.0.0.1/24', 'fd00::1/64'] },
      { name: 'wan', device: 'eth1', addrs: ['198.51.100.1/24', '2001:db8::1/64'] },
    ],
    routes: [{ dest: 'default', via: '198.51.100.254', device: 'eth1' }],
  }),
);

interface FrameSpec {
  family: Family;
  src: bigint;
  dst: bigint;
  proto: number;
  sport: number;
  dport: number;
  flags: number;
  icmpType: number;
  ttl: number;
  tos: number;
  fragment: boolean;
  mark: number;
  iif: string;
  oif: string;
  pkttype: number;
  ct: 'none' | 'untracked' | 'entry';
  ctinfo: number;
  ctmark: number;
  status: number;
  uid: number | undefined;
  payload: number;
}

function frameArb(family: Family): fc.Arbitrary<FrameSpec> {
  const addr = family === 'ipv4' ? fc.oneof(fc.constantFrom(0x0a000005n, 0xc6336401n, 0xffffffffn, 0x7f000001n), fc.bigInt(0n, 0xffffffffn)) : fc.bigInt(0n, (1n << 128n) - 1n);
  return fc.record({
    family: fc.constant(family),
    src: addr,
    dst: addr,
    proto: fc.constantFrom(6, 17, 1, 58, 47, 132),
    sport: fc.constantFrom(0, 22, 80, 1024, 40000, 65535),
    dport: fc.integer({ min: 0, max: 65535 }),
    flags: fc.integer({ min: 0, max: 255 }),
    icmpType: fc.constantFrom(0, 3, 8, 11, 128, 135),
    ttl: fc.integer({ min: 0, max: 255 }),
    tos: fc.integer({ min: 0, max: 255 }),
    fragment: fc.boolean(),
    mark: fc.constantFrom(0, 1, 0xff, 0xffffffff, 0x80000000),
    iif: fc.constantFrom('', 'eth0', 'eth1', 'lo'),
    oif: fc.constantFrom('', 'eth0', 'eth1'),
    pkttype: fc.constantFrom(0, 1, 2),
    ct: fc.constantFrom('none' as const, 'untracked' as const, 'entry' as const),
    ctinfo: fc.constantFrom(CTINFO.NEW, CTINFO.ESTABLISHED, CTINFO.RELATED, CTINFO.ESTABLISHED_REPLY, CTINFO.RELATED_REPLY),
    ctmark: fc.constantFrom(0, 7, 0xffffffff),
    status: fc.integer({ min: 0, max: 0x3fff }),
    uid: fc.option(fc.integer({ min: 0, max: 65535 }), { nil: undefined }),
    payload: fc.integer({ min: 0, max: 100 }),
  });
}

function makeFrame(s: FrameSpec): Frame {
  const table = new CtTable(s.family === 'ipv4' ? 1 : 4, 16);
  const f = new Frame(table, gw);
  f.family = s.family;
  const icmp = s.proto === 1 || s.proto === 58;
  const ports = s.proto === 6 || s.proto === 17 || s.proto === 132;
  const p: Packet = {
    family: s.family,
    src: s.src,
    dst: s.dst,
    proto: s.proto,
    ttl: s.ttl,
    tos: s.tos,
    payload: new Uint8Array(s.payload),
    ...(s.fragment ? { fragment: true } : {}),
    ...(ports ? { sport: s.sport, dport: s.dport } : {}),
    ...(s.proto === PROTO.tcp ? { tcp: { flags: s.flags, seq: 1, ack: 2, window: 100 } } : {}),
    ...(icmp ? { icmp: { type: s.icmpType, code: 0, id: 9 } } : {}),
  };
  f.pkt = p;
  f.iif = s.iif;
  f.oif = s.oif;
  f.mark = s.mark;
  f.pkttype = s.pkttype;
  f.uid = s.uid;
  f.refresh();
  if (s.ct === 'untracked') {
    f.untracked = true;
    f.ctinfo = CTINFO.UNTRACKED;
  } else if (s.ct === 'entry') {
    const t = new Tuple();
    t.proto = s.proto;
    t.sport = 5;
    t.dport = 6;
    t.src[0] = 1;
    t.dst[0] = 2;
    const i = table.alloc(t, t, 0);
    table.status[i] = s.status;
    table.mark[i] = s.ctmark;
    f.ct = i;
    f.ctinfo = s.ctinfo;
  } else {
    f.ct = NO_CT;
  }
  return f;
}

const decide = (c: Extract<Constraint, { op: 'opaque' }>) => c.key !== 'b';

describe('compiled predicates agree with evaluateConstraint', () => {
  for (const family of ['ipv4', 'ipv6'] as const) {
    it(`on random constraints and packets (${family})`, () => {
      fc.assert(
        fc.property(constraintArb(family), frameArb(family), (c, spec) => {
          const f = makeFrame(spec);
          const compiled = compileConstraint(c, family, (oc) => decide(oc))(f);
          const reference = evaluateConstraint(c, frameView(f), decide);
          expect(compiled).toBe(reference);
        }),
        { seed: SEED, numRuns: RUNS * 3 },
      );
    });
  }
});

describe('the dispatch index never hides a matching rule', () => {
  for (const family of ['ipv4', 'ipv6'] as const) {
    it(`keeps every matching rule, in order (${family})`, () => {
      // Rules shaped like real ones: protocol, ports and addresses, sometimes something else.
      const ruleArb = fc
        .tuple(
          fc.option(fc.constantFrom(6n, 17n, 1n), { nil: undefined }),
          fc.option(setArb('dport', family), { nil: undefined }),
          fc.option(setArb('daddr', family), { nil: undefined }),
          fc.option(setArb('saddr', family), { nil: undefined }),
          fc.option(leafArb(family), { nil: undefined }),
        )
        .map(([proto, dports, daddrs, saddrs, extra]): Constraint => {
          const of: Constraint[] = [];
          if (proto !== undefined) of.push({ op: 'in', field: 'proto', set: [[proto, proto]] });
          if (dports) of.push({ op: 'in', field: 'dport', set: dports });
          if (daddrs) of.push({ op: 'in', field: 'daddr', set: daddrs });
          if (saddrs) of.push({ op: 'in', field: 'saddr', set: saddrs });
          if (extra) of.push(extra);
          return { op: 'and', of };
        });
      fc.assert(
        fc.property(fc.array(ruleArb, { minLength: 20, maxLength: 80 }), fc.array(frameArb(family), { minLength: 1, maxLength: 20 }), (constraints, specs) => {
          const rules = constraints.map((c) => ({ constraint: c, stateful: false, test: compileConstraint(c, family, (oc) => decide(oc)) }));
          const d = buildDispatch(rules, family);
          for (const spec of specs) {
            const f = makeFrame(spec);
            const matching = rules.flatMap((r, i) => (r.test(f) ? [i] : []));
            if (!d) continue;
            const cand = [...d.candidates(f)];
            expect(cand).toEqual([...cand].sort((a, b) => a - b));
            for (const m of matching) expect(cand).toContain(m);
          }
        }),
        { seed: SEED, numRuns: Math.max(20, RUNS / 5) },
      );
    });
  }
});
