import type { Policy } from '../ir/policy.js';
import type { Family } from '../util/ip.js';
import { Prepass } from './box/prepass.js';
import { checkExpectations } from './expectations.js';
import { type RuleStatus, buildFindings, statusFromDecision } from './findings.js';
import { type FamilyModel, buildFamilyModel } from './model/build.js';
import { replayReport } from './replay.js';
import type { CheckReport, CheckStats, ExpectationResult, Finding, InternalError } from './types.js';
import { makeWitness, ruleRef } from './witness.js';
import { z3 } from './z3/context.js';
import { decideRule } from './z3/rules.js';
import { newZ3Stats } from './z3/session.js';

export interface CheckOptions {
  /** Time limit of one solver query, in milliseconds (default 5000). */
  readonly timeoutMs?: number;
  /**
   * Also report the order-dependent overlaps (generalization, correlation) as info findings
   * (default false: they are how most firewalls are written, not mistakes).
   */
  readonly anomalies?: boolean;
  /** Replay every witness in the simulator (default true). */
  readonly replay?: boolean;
  /** Progress, for a bar on a TTY. */
  readonly onProgress?: (p: { readonly phase: string; readonly done: number; readonly total: number }) => void;
}

/** Families worth analysing: those with rules, or named by an expectation. */
export function familiesOf(policy: Policy): Family[] {
  return (['ipv4', 'ipv6'] as const).filter((f) => policy.rulesets[f].tables.some((t) => t.chains.some((c) => c.rules.length > 0)) || policy.expectations.some((e) => expectationFamilies(e).includes(f)));
}

function expectationFamilies(e: Policy['expectations'][number]): Family[] {
  const flows = e.kind === 'no-findings' ? [] : e.kind === 'only' ? [e.within, ...e.allowed] : [e.flow];
  return flows.flatMap((f) => (f.family ? [f.family] : ['ipv4', 'ipv6']));
}

/**
 * `nfproof check`: findings for every rule, the policy's `expect` statements, each finding and
 * counterexample with a witness replayed in the simulator.
 */
export async function checkPolicy(policy: Policy, opts: CheckOptions = {}): Promise<CheckReport> {
  const t0 = performance.now();
  const timeoutMs = opts.timeoutMs ?? 5000;
  const z3stats = newZ3Stats();
  const stats: CheckStats = { rules: 0, prepassDecided: 0, z3Decided: 0, undecided: 0, z3Queries: 0, z3Ms: 0, prepassMs: 0, findingsMs: 0, expectationsMs: 0, replayMs: 0, totalMs: 0, replayed: 0, replayAgreed: 0 };
  const findings: Finding[] = [];
  const internalErrors: InternalError[] = [];
  const models: FamilyModel[] = [];
  const flows = policy.expectations.flatMap((e) => (e.kind === 'no-findings' ? [] : e.kind === 'only' ? [e.within, ...e.allowed] : [e.flow]));
  for (const family of familiesOf(policy)) {
    const model = buildFamilyModel(policy, family, flows);
    models.push(model);
    const prepass = new Prepass(model);
    const total = model.rules.length;
    prepass.run((done) => opts.onProgress?.({ phase: `${family} rules`, done, total }));
    stats.prepassMs += prepass.stats.ms;
    stats.rules += total;
    const status: RuleStatus[] = [];
    const open: number[] = [];
    prepass.results.forEach((r, id) => {
      if (r.kind === 'fires') status[id] = { kind: 'fires', input: r.input, via: 'prepass' };
      else if (r.kind === 'dead') status[id] = { kind: 'dead', cause: r.cause, blame: r.cause === 'decided-earlier' ? r.blame : [], via: 'prepass' };
      else open.push(id);
    });
    stats.prepassDecided += total - open.length;
    if (open.length) {
      const { ctx } = await z3();
      let done = 0;
      for (const id of open) {
        const res = prepass.results[id];
        const region = res.kind === 'open' ? res.region : prepass.reachMatch[id];
        const d = statusFromDecision(await decideRule(ctx, model, prepass, model.rules[id], region, timeoutMs, z3stats));
        if (d.kind === 'internal-error') {
          internalErrors.push({ message: d.message, witness: makeWitness(model, d.input), rule: ruleRef(model, model.rules[id]) });
          status[id] = { kind: 'unknown', reason: 'internal error (see above)' };
        } else status[id] = d;
        if (d.kind === 'unknown') stats.undecided++;
        else stats.z3Decided++;
        opts.onProgress?.({ phase: `${family} solver`, done: ++done, total: open.length });
      }
    }
    const tf = performance.now();
    const built = buildFindings(model, prepass, status, { anomalies: opts.anomalies ?? false });
    stats.findingsMs += performance.now() - tf;
    findings.push(...built.findings);
    internalErrors.push(...built.internalErrors);
    for (const n of model.notes) internalErrors.push({ message: n.message });
  }
  mergeFamilies(findings, models);
  const te = performance.now();
  const checked = await checkExpectations(policy, models, findings, { timeoutMs, stats: z3stats });
  stats.expectationsMs = performance.now() - te;
  const expectations: ExpectationResult[] = checked.results;
  internalErrors.push(...checked.internal);
  stats.z3Queries = z3stats.queries;
  stats.z3Ms = z3stats.ms;
  const report: CheckReport = { findings, expectations, assumptions: assumptionsOf(policy, models), internalErrors, stats };
  if (opts.replay ?? true) {
    const tr = performance.now();
    const r = replayReport(policy, models, report);
    stats.replayMs = performance.now() - tr;
    stats.replayed = r.replayed;
    stats.replayAgreed = r.agreed;
    internalErrors.push(...r.errors);
  }
  stats.totalMs = performance.now() - t0;
  return report;
}

const FAMILY_NAME: Readonly<Record<Family, string>> = { ipv4: 'IPv4', ipv6: 'IPv6' };

function spanKey(span: { file: string; start: { offset: number } }): string {
  return `${span.file}|${span.start.offset}`;
}

/** What a finding is about, whatever the family: its kind, its place, the rules it names. */
function substance(f: Finding): string {
  const span = f.rule?.span ?? f.chain?.span;
  return `${f.kind}|${span ? spanKey(span) : ''}|${f.related.map((r) => spanKey(r.rule.span)).join(',')}`;
}

/**
 * A table of both families (`table filter` without ip/ip6) is analysed once per family, so a
 * rule there can get a finding twice at the same place. Findings of the same kind on the same
 * rule that name the same other rules are one finding, said to hold in both families (the
 * IPv4 witness is kept); a finding that holds in one family only, or differs in substance
 * between them, says which family it is about.
 */
export function mergeFamilies(findings: Finding[], models: readonly FamilyModel[]): void {
  const places = new Map<Family, Set<string>>();
  for (const m of models) {
    const mine = new Set<string>();
    for (const r of m.rules) mine.add(spanKey(r.span));
    for (const c of m.chains.values()) mine.add(spanKey(c.span));
    places.set(m.family, mine);
  }
  const familyOf = (f: Finding): Family | undefined => f.rule?.family ?? f.chain?.family;
  const shared = (f: Finding): boolean => {
    const span = f.rule?.span ?? f.chain?.span;
    if (!span || span.start.line === 0) return false;
    const k = spanKey(span);
    return models.length === 2 && models.every((m) => places.get(m.family)!.has(k));
  };
  const byPlace = new Map<string, Finding[]>();
  for (const f of findings) {
    if (!shared(f)) continue;
    const k = spanKey((f.rule?.span ?? f.chain?.span)!) + '|' + f.kind;
    byPlace.set(k, [...(byPlace.get(k) ?? []), f]);
  }
  const drop = new Set<Finding>();
  const renamed = new Map<Finding, Finding>();
  for (const group of byPlace.values()) {
    const [first, ...rest] = group;
    const twin = rest.find((g) => familyOf(g) !== familyOf(first) && substance(g) === substance(first));
    if (twin) {
      renamed.set(first, { ...first, message: `${first.message} (in IPv4 and IPv6)`, families: ['ipv4', 'ipv6'] });
      drop.add(twin);
    }
    for (const g of group) {
      if (g === first && twin) continue;
      if (g === twin) continue;
      const fam = familyOf(g)!;
      renamed.set(g, { ...g, message: `${g.message} (in ${FAMILY_NAME[fam]} only)`, families: [fam] });
    }
  }
  for (let i = findings.length - 1; i >= 0; i--) {
    const f = findings[i];
    if (drop.has(f)) findings.splice(i, 1);
    else if (renamed.has(f)) findings[i] = renamed.get(f)!;
  }
}

/** What the analysis took for granted, stated in every report. */
export function assumptionsOf(policy: Policy, models: readonly FamilyModel[]): string[] {
  const out: string[] = [];
  if (!policy.host) {
    out.push('no host model: any destination may be local or forwarded, and any interface may be an ingress or egress');
  }
  out.push('packets arrive unmarked (mark 0); a flow is the first packet of a connection (ct state NEW) with TTL 64, not a fragment, no martian or broadcast source, coming in by the interface its source is routed through, unless it says otherwise');
  out.push('multicast is delivered locally, never forwarded (no multicast routing daemon)');
  const opaque = new Set<string>();
  for (const m of models) {
    for (const r of m.rules) {
      if (r.effect.type === 'opaque') opaque.add(r.effect.reason);
      collectOpaque(r.constraint, opaque);
    }
  }
  for (const o of [...opaque].sort()) out.push(`unmodelled: ${o}; it may match or not, and results that depend on it are not proved`);
  return out;
}

function collectOpaque(c: import('../ir/constraint.js').Constraint, out: Set<string>): void {
  switch (c.op) {
    case 'opaque':
      out.add(c.reason);
      return;
    case 'and':
    case 'or':
      c.of.forEach((x) => collectOpaque(x, out));
      return;
    case 'not':
      collectOpaque(c.of, out);
      return;
    default:
      return;
  }
}
