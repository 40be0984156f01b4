import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PROTO } from '../../src/ir/fields.js';
import type { Hook, TableName } from '../../src/ir/netfilter.js';
import { MATCH_KINDS, type Match, TARGET_KINDS, type Target, matchKind, printMatch, printTarget } from '../../src/kinds/index.js';
import type { Family } from '../../src/util/ip.js';
import { NO_SPAN } from '../../src/util/span.js';
import { type GenContext, MATCH_ARBITRARIES, TARGET_ARBITRARIES } from '../gen/kinds/index.js';
import { parseRule } from './support/dsl.js';
import { emitRule, importRule } from './support/iptables.js';

/**
 * Properties over every kind's generator (test/gen/kinds): the DSL print parses back to the same
 * IR (print∘parse is the identity), and the iptables text imports back to IR that emits the same
 * text again. Generators must produce canonical IR for the first to hold, which is what the
 * whole-policy round trip (test/gen/policy.ts) relies on. Fixed seed; ~1 s.
 */
const seed = Number(process.env.NFPROOF_SEED ?? 42);
/** Generated cases per kind, spread over the contexts it generates in. */
const PER_KIND = 100;

/** Drops spans (and undefined optionals) so IR from different sources compares by meaning. */
function strip(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(strip);
  if (x && typeof x === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(x)) if (k !== 'span' && v !== undefined) out[k] = strip(v);
    return out;
  }
  return x;
}

const protoMatch = (p: number): Match => ({ kind: 'proto', negated: false, protos: [p], span: NO_SPAN });

/** Contexts that let every kind generate: families, protocols, tables and hooks. */
const CONTEXTS: readonly GenContext[] = (['ipv4', 'ipv6'] as Family[]).flatMap((family) =>
  [undefined, PROTO.tcp, PROTO.udp, family === 'ipv4' ? PROTO.icmp : PROTO.icmpv6, PROTO.sctp, PROTO.dccp].flatMap((proto) =>
    (
      [
        ['filter', ['INPUT']],
        ['filter', ['OUTPUT']],
        ['filter', ['FORWARD']],
        ['nat', ['PREROUTING']],
        ['nat', ['POSTROUTING']],
        ['raw', ['PREROUTING']],
        ['mangle', ['PREROUTING']],
        ['mangle', ['POSTROUTING']],
      ] as [TableName, Hook[]][]
    ).map(([table, hooks]) => ({ family, ...(proto !== undefined ? { proto } : {}), table, hooks, ipsets: ['blocklist'] })),
  ),
);

function ruleText(matches: readonly Match[], target?: Target): string {
  return [...matches.map(printMatch), ...(target ? [printTarget(target)] : [])].join(' ');
}

function checkRule(ctx: GenContext, matches: Match[], target?: Target): void {
  const text = ruleText(matches, target);
  const parsed = parseRule(text, { family: ctx.family });
  const errors = parsed.diagnostics.filter((d) => d.severity === 'error');
  expect(errors, text).toEqual([]);
  expect(strip(parsed.matches), text).toEqual(strip(matches));
  expect(strip(parsed.target), text).toEqual(strip(target));
  const lines = emitRule(matches, target, ctx.family);
  if (lines.length !== 1) return;
  const imported = importRule(lines[0], ctx.family, 'gen.rules', new Set(['svc']));
  expect(imported.diagnostics, lines[0]).toEqual([]);
  expect(emitRule(imported.matches, imported.target, ctx.family), `${text}\n${lines[0]}`).toEqual(lines);
}

describe('every match kind: DSL and iptables round trips of generated IR', () => {
  for (const kind of Object.keys(MATCH_KINDS) as Match['kind'][]) {
    it(kind, () => {
      const usable = CONTEXTS.map((ctx) => [ctx, (MATCH_ARBITRARIES[kind] as (c: GenContext) => fc.Arbitrary<Match> | undefined)(ctx)] as const).filter(([, a]) => a);
      const RUNS = Math.max(3, Math.ceil(PER_KIND / usable.length));
      const generated = usable.length;
      for (const [ctx, arb] of usable) {
        if (!arb) continue;
        const pre = ctx.proto !== undefined ? [protoMatch(ctx.proto)] : [];
        fc.assert(
          fc.property(arb, (m) => {
            if (matchKind(m).forFamily(m, ctx.family) !== m) return;
            checkRule(ctx, [...pre, m]);
          }),
          { seed, numRuns: RUNS },
        );
      }
      expect(generated, `no context lets ${kind} generate`).toBeGreaterThan(0);
    });
  }
});

describe('every target kind: DSL and iptables round trips of generated IR', () => {
  for (const kind of Object.keys(TARGET_KINDS) as Target['kind'][]) {
    it(kind, () => {
      // A SYN flags test in tcp rules, for the targets that need one (tcpmss).
      const syn: Match = { kind: 'tcp-flags', negated: false, flags: 0x02, mask: 0x06, span: NO_SPAN };
      const usable = CONTEXTS.map((c) => (c.proto === PROTO.tcp ? { ...c, matches: [protoMatch(PROTO.tcp), syn] } : c))
        .map(
          (ctx) => [ctx, (TARGET_ARBITRARIES[kind] as (c: GenContext & { chains: readonly string[] }) => fc.Arbitrary<Target> | undefined)({ ...ctx, chains: ['svc'] })] as const,
        )
        .filter(([, a]) => a);
      const RUNS = Math.max(3, Math.ceil(PER_KIND / usable.length));
      const generated = usable.length;
      for (const [ctx, arb] of usable) {
        if (!arb) continue;
        const pre = ctx.matches ? [...ctx.matches] : ctx.proto !== undefined ? [protoMatch(ctx.proto)] : [];
        fc.assert(
          fc.property(arb, (t) => checkRule(ctx, pre, t)),
          { seed, numRuns: RUNS },
        );
      }
      expect(generated, `no context lets ${kind} generate`).toBeGreaterThan(0);
    });
  }
});
