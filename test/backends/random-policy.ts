import fc from 'fast-check';
import { TABLE_HOOKS, type Hook, type TableName } from '../../src/ir/netfilter.js';
import type { Chain, Policy, Rule, Table } from '../../src/ir/policy.js';
import { EMIT_REFUSALS, emitRule } from '../../src/backends/emit/rule.js';
import { type Match, type Target, matchKind, targetKind } from '../../src/kinds/index.js';
import type { RuleView } from '../../src/kinds/kind.js';
import type { Family } from '../../src/util/ip.js';
import { NO_SPAN, type Span } from '../../src/util/span.js';
import { type GenContext, MATCH_ARBITRARIES, TARGET_ARBITRARIES } from '../gen/kinds/index.js';

/**
 * Random valid policies for the emitter's kernel test, built from the per-kind arbitraries of
 * test/gen/kinds (so every kind registered there takes part). A rule is kept only when every
 * kind accepts it where it stands (hooks, tables, validate()); user chains are each reached
 * from one built-in chain and jump only forward, so there are no loops.
 *
 * This is the backends' own generator; test/gen/policy.ts (the whole-policy generator of the
 * syntax engineer) is used as well when it exists.
 */
const TABLE_CHOICE: readonly TableName[] = ['filter', 'nat', 'mangle', 'raw'];

type AnyArb = fc.Arbitrary<Match | Target>;

function spanAt(line: number): Span {
  return { file: 'random.nfp', start: { line, col: 1, offset: 0 }, end: { line, col: 1, offset: 0 } };
}

function withSpan<T extends { span: Span }>(x: T, span: Span): T {
  return { ...x, span };
}

function ruleIsValid(rule: Rule, table: TableName, chain: string, hook: Hook, family: Family): boolean {
  let ok = true;
  const view: RuleView = { table, chain, hooks: [hook], family, matches: rule.matches, span: rule.span };
  const report = () => {
    ok = false;
  };
  for (const m of rule.matches) {
    const k = matchKind(m);
    const hooks = k.hooks?.(m);
    if (hooks && !hooks.includes(hook)) return false;
    k.validate?.(m, view, report);
  }
  // The kernel refuses DROP in the nat table ("not intended for filtering").
  if (table === 'nat' && rule.target.kind === 'verdict' && rule.target.verdict === 'drop') return false;
  const tk = targetKind(rule.target);
  if (tk.tables && !tk.tables.includes(table)) return false;
  const th = tk.hooks?.(rule.target);
  if (th && !th.includes(hook)) return false;
  tk.validate?.(rule.target, view, report);
  if (!ok) return false;
  // Leave out rules the emitter refuses by design (no single iptables rule can hold them);
  // test/backends/emit.test.ts checks those refusals.
  let refused = false;
  emitRule(rule, { family, chain, ruleIndex: 1, sourceTag: true, allocateChain: (n) => n, report: (d) => (refused ||= d.severity === 'error' && EMIT_REFUSALS.has(d.code)) });
  return !refused;
}

/** Arbitraries per rule context, built once (some kinds' arbitraries are costly to build). */
const ARB_CACHE = new Map<string, { matches: AnyArb; targets: AnyArb }>();

function kindArbs(family: Family, proto: number | undefined, chains: readonly string[]): { matches: AnyArb; targets: AnyArb } {
  const key = `${family}|${proto ?? ''}|${chains.join(',')}`;
  const hit = ARB_CACHE.get(key);
  if (hit) return hit;
  const ctx: GenContext = { family, ...(proto !== undefined ? { proto } : {}) };
  const matchArbs = Object.entries(MATCH_ARBITRARIES)
    .filter(([k]) => k !== 'proto')
    .map(([, f]) => (f as (c: GenContext) => AnyArb | undefined)(ctx))
    .filter((a): a is AnyArb => a !== undefined);
  const targetArbs = Object.values(TARGET_ARBITRARIES)
    .map((f) => (f as (c: GenContext & { chains: readonly string[] }) => AnyArb | undefined)({ ...ctx, chains }))
    .filter((a): a is AnyArb => a !== undefined);
  const made = { matches: fc.oneof(...matchArbs), targets: fc.oneof(...targetArbs) };
  ARB_CACHE.set(key, made);
  return made;
}

function ruleArb(family: Family, chains: readonly string[], line: number): fc.Arbitrary<Rule> {
  const protoArb = MATCH_ARBITRARIES.proto({ family }) as fc.Arbitrary<Match>;
  return fc.option(protoArb, { nil: undefined, freq: 2 }).chain((protoMatch) => {
    const proto = protoMatch?.kind === 'proto' && protoMatch.protos.length === 1 && !protoMatch.negated ? protoMatch.protos[0] : undefined;
    const arbs = kindArbs(family, proto, chains);
    return fc
      .record({
        matches: fc.array(arbs.matches as fc.Arbitrary<Match>, { maxLength: 3 }),
        target: arbs.targets as fc.Arbitrary<Target>,
        comment: fc.option(fc.string({ maxLength: 30 }), { nil: undefined, freq: 3 }),
      })
      .map(({ matches, target, comment }) => {
        const span = spanAt(line);
        const all = [...(protoMatch ? [protoMatch] : []), ...matches].map((x) => withSpan(x, span));
        return { matches: all, target: withSpan(target, span), span, ...(comment !== undefined ? { comment } : {}) } as Rule;
      });
  });
}

function tableArb(family: Family, name: TableName, firstLine: number): fc.Arbitrary<Table> {
  const hooks = TABLE_HOOKS[name];
  return fc
    .record({
      users: fc.array(fc.constantFrom(...hooks), { maxLength: 3 }),
      policies: fc.array(fc.constantFrom('ACCEPT' as const, 'DROP' as const), { minLength: hooks.length, maxLength: hooks.length }),
    })
    .chain(({ users, policies }) => {
      const userNames = users.map((_, i) => `u${i}-${name}`);
      let line = firstLine;
      const chainRules = (chainName: string, hook: Hook, reach: readonly string[]) =>
        fc.array(ruleArb(family, reach, line++), { maxLength: 5 }).map((rules) => rules.filter((r) => ruleIsValid(r, name, chainName, hook, family)));
      const builtinArbs = hooks.map((hook, i) =>
        chainRules(hook, hook, userNames.filter((_, u) => users[u] === hook)).map(
          (rules): Chain => ({ name: hook, hook, policy: name === 'nat' ? 'ACCEPT' : policies[i], rules, span: NO_SPAN }),
        ),
      );
      const userArbs = users.map((hook, u) =>
        chainRules(userNames[u], hook, userNames.filter((_, v) => v > u && users[v] === hook)).map((rules): Chain => ({ name: userNames[u], rules, span: NO_SPAN })),
      );
      return fc.tuple(...builtinArbs, ...userArbs).map((chains): Table => ({ name, chains, span: NO_SPAN }));
    });
}

/** A random policy with tables in one family (the other left empty). */
export function randomPolicy(family: Family): fc.Arbitrary<Policy> {
  return fc.subarray([...TABLE_CHOICE], { minLength: 1 }).chain((names) =>
    fc.tuple(...names.map((n, i) => tableArb(family, n, 100 * (i + 1)))).map(
      (tables): Policy => ({
        rulesets: { ipv4: { family: 'ipv4', tables: family === 'ipv4' ? tables : [] }, ipv6: { family: 'ipv6', tables: family === 'ipv6' ? tables : [] } },
        expectations: [],
        sources: ['random.nfp'],
        origin: 'nfp',
      }),
    ),
  );
}
