import { PROTO } from '../../ir/fields.js';
import type { Rule } from '../../ir/policy.js';
import type { ImportContext, ImportedOption } from '../../kinds/iptables.js';
import {
  ALL_MATCH_KINDS,
  ALL_TARGET_KINDS,
  type Match,
  type MatchKind,
  OPAQUE_MATCH_FALLBACK,
  OPAQUE_TARGET_FALLBACK,
  TARGET_KINDS,
  type Target,
  type TargetKind,
} from '../../kinds/index.js';
import { parseProtoName } from '../../kinds/match/proto.js';
import { type Diagnostic, diag } from '../../util/diagnostics.js';
import type { Family } from '../../util/ip.js';
import type { Span } from '../../util/span.js';
import type { ModuleSection, RuleSpec, TargetSpec } from './rule-spec.js';

/**
 * Turns the grouped words of one rule into an IR rule by asking the kinds: each option goes to
 * the kind that claims it (MatchKind.iptables.claims), each target name to the kind that names
 * it. What no kind models — an unknown module, an option a kind does not claim, an unknown
 * target — is kept verbatim by the opaque kinds, with a warning: importing a real dump never
 * fails because nfproof does not know an extension, and the analyzer never proves anything
 * through what it does not know. A kind that claims an option but cannot read its value is
 * treated the same way (its complaint becomes the warning), except for the built-in options,
 * which have no opaque form.
 */
export interface ImportStats {
  rules: number;
  /** Rules whose every match and target is modelled by a kind (nothing opaque). */
  modelledRules: number;
  /** Opaque matches by module and opaque targets by name, with counts. */
  readonly opaqueMatches: Map<string, number>;
  readonly opaqueTargets: Map<string, number>;
}

export function newStats(): ImportStats {
  return { rules: 0, modelledRules: 0, opaqueMatches: new Map(), opaqueTargets: new Map() };
}

export interface RuleImportContext {
  readonly family: Family;
  /** The rule's table: a `-j NAME` that is no target name jumps to its chain NAME. */
  readonly table: { readonly chains: ReadonlyMap<string, unknown> };
  /** Errors reported so far (a rule with a new one is not kept). */
  errorCount(): number;
  /** Sections already read in this import (see SectionCache). */
  readonly cache?: SectionCache;
  report(d: Diagnostic): void;
  /**
   * Reports a warning that repeats across rules (the same unmodelled module in 1,600 rules)
   * once: `make` runs for the first occurrence of `key` only; the importer adds the count.
   */
  once(key: string, make: () => Diagnostic): void;
  readonly stats: ImportStats;
}

type AnyMatchKind = MatchKind<Match>;
type AnyTargetKind = TargetKind<Target>;

/** Which kind claims which option of which module (null: the built-in options). */
const CLAIMS: ReadonlyMap<string | null, ReadonlyMap<string, AnyMatchKind>> = (() => {
  const map = new Map<string | null, Map<string, AnyMatchKind>>();
  for (const k of ALL_MATCH_KINDS) {
    for (const c of k.iptables.claims) {
      const opts = map.get(c.module) ?? new Map<string, AnyMatchKind>();
      for (const o of c.options) if (!opts.has(o)) opts.set(o, k);
      map.set(c.module, opts);
    }
  }
  return map;
})();

const TARGET_BY_NAME: ReadonlyMap<string, AnyTargetKind> = new Map(ALL_TARGET_KINDS.flatMap((k) => k.iptables.names.map((n) => [n, k] as const)));

/** The match module iptables loads for `-p NAME` when an option follows without `-m`. */
function protoModule(proto: number | undefined): string | undefined {
  switch (proto) {
    case PROTO.tcp:
      return 'tcp';
    case PROTO.udp:
      return 'udp';
    case PROTO.icmp:
      return 'icmp';
    case PROTO.icmpv6:
      return 'icmp6';
    case PROTO.sctp:
      return 'sctp';
    case PROTO.dccp:
      return 'dccp';
    default:
      return undefined;
  }
}

/** The rule's positive `-p`, as a number. */
function ruleProto(builtins: readonly ImportedOption[]): number | undefined {
  const p = builtins.filter((o) => o.name === '-p' && !o.negated).at(-1);
  return p ? parseProtoName(p.args[0] ?? '') : undefined;
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

/** Calls a kind with a report that only collects, so its errors can turn into a fallback. */
function tryKind<T>(run: (report: (d: Diagnostic) => void) => T): { value: T; errors: Diagnostic[]; others: Diagnostic[] } {
  const errors: Diagnostic[] = [];
  const others: Diagnostic[] = [];
  const value = run((d) => (d.severity === 'error' ? errors : others).push(d));
  return { value, errors, others };
}

/** Moves options a known module does not have, but the rule's protocol match does, to the implicit section. */
function placeLooseOptions(spec: RuleSpec, proto: number | undefined, report: (d: Diagnostic) => void): ModuleSection[] {
  const pm = protoModule(proto);
  const protoClaims = pm !== undefined ? CLAIMS.get(pm) : undefined;
  const implicit: ImportedOption[] = [...spec.loose];
  const sections: ModuleSection[] = [];
  for (const s of spec.sections) {
    if (s === null) continue;
    const own = CLAIMS.get(s.module);
    if (own && protoClaims && s.module !== pm && s.module !== 'comment' && !s.options.every((o) => own.has(o.name))) {
      const keep = s.options.filter((o) => own.has(o.name) || !protoClaims.has(o.name));
      implicit.push(...s.options.filter((o) => !own.has(o.name) && protoClaims.has(o.name)));
      sections.push({ ...s, options: keep });
    } else {
      sections.push(s);
    }
  }
  if (implicit.length === 0) return sections;
  if (pm === undefined) {
    report(
      diag('error', 'E-import-loose-option', implicit[0].span, `\`${implicit[0].name}\` belongs to no match: there is no \`-m\` before it and no \`-p\` whose match has it`, 'load its match first, e.g. `-p tcp -m tcp --dport 22`'),
    );
    return sections;
  }
  // iptables loads the protocol's match where the first such option stands.
  const at = spec.sections.indexOf(null);
  const section: ModuleSection = { module: pm, span: implicit[0].span, options: implicit };
  const before = at < 0 ? sections.length : spec.sections.slice(0, at).filter((s) => s !== null).length;
  sections.splice(before, 0, section);
  return sections;
}

/**
 * Large dumps repeat the same sections thousands of times (`-m state --state NEW`, one MAC per
 * rule of a host list…). A section the kinds read without a word of complaint is remembered by
 * its text; the next identical one reuses the nodes with their spans moved to the new place.
 * A node's span is re-anchored on the section or option it started and ended at; a section
 * whose nodes cannot be anchored that way is simply not remembered.
 */
export type SectionCache = Map<string, CachedSection>;

interface CachedSection {
  readonly matches: readonly Match[];
  readonly anchors: readonly (readonly [number, number])[];
  /** Kept verbatim (opaque): the key of its warning, counted again on every hit. */
  readonly opaque?: string;
}

function sectionKey(s: ModuleSection, base: Omit<ImportContext, 'report'>): string {
  let k = `${base.family}|${base.proto ?? ''}|${s.module}`;
  for (const o of s.options) k += `\u0000${o.negated ? '!' : ''}${o.name}\u0001${o.args.join('\u0001')}`;
  return k;
}

/** Whether a node holds spans below its own (nested nodes, whose spans a cache hit would not move). */
function hasInnerSpans(x: unknown, top = true): boolean {
  if (Array.isArray(x)) return x.some((v) => hasInnerSpans(v, false));
  if (x === null || typeof x !== 'object') return false;
  return Object.entries(x).some(([k, v]) => (k === 'span' ? !top : hasInnerSpans(v, false)));
}

/** Index of the option (or -1 for the section words) where a node's span starts and ends. */
function anchorsOf(matches: readonly Match[], s: ModuleSection): (readonly [number, number])[] | undefined {
  const out: (readonly [number, number])[] = [];
  for (const m of matches) {
    if (hasInnerSpans(m)) return undefined;
    const start = m.span.start.offset === s.span.start.offset ? -1 : s.options.findIndex((o) => o.span.start.offset === m.span.start.offset);
    const end = m.span.end.offset === s.span.end.offset ? -1 : s.options.findIndex((o) => o.span.end.offset === m.span.end.offset);
    if ((start < 0 && m.span.start.offset !== s.span.start.offset) || (end < 0 && m.span.end.offset !== s.span.end.offset)) return undefined;
    out.push([start, end]);
  }
  return out;
}

function reanchor(cached: CachedSection, s: ModuleSection): Match[] {
  return cached.matches.map((m, i) => {
    const [a, b] = cached.anchors[i];
    const from = a < 0 ? s.span : s.options[a].span;
    const to = b < 0 ? s.span : s.options[b].span;
    return { ...m, span: { file: from.file, start: from.start, end: to.end } };
  });
}

function importSection(s: ModuleSection, base: Omit<ImportContext, 'report'>, ctx: RuleImportContext): { matches: Match[]; opaque: boolean } {
  const own = CLAIMS.get(s.module);
  const modelled = own !== undefined && s.options.length > 0 && s.options.every((o) => own.has(o.name));
  const key = ctx.cache ? sectionKey(s, base) : undefined;
  const hit = key !== undefined ? ctx.cache?.get(key) : undefined;
  if (hit) {
    if (hit.opaque) {
      // The same warning again: counted, not repeated (its text was made the first time).
      bump(ctx.stats.opaqueMatches, s.module);
      ctx.once(hit.opaque, () => diag('warning', 'W-import-opaque-match', s.span, ''));
    }
    return { matches: reanchor(hit, s), opaque: hit.opaque !== undefined };
  }
  const remember = (matches: readonly Match[], opaque?: string) => {
    if (key === undefined) return;
    const anchors = anchorsOf(matches, s);
    if (anchors) ctx.cache?.set(key, { matches, anchors, ...(opaque !== undefined ? { opaque } : {}) });
  };
  let warning: string;
  if (modelled) {
    const byKind = new Map<AnyMatchKind, ImportedOption[]>();
    for (const o of s.options) {
      const k = own.get(o.name) as AnyMatchKind;
      byKind.set(k, [...(byKind.get(k) ?? []), o]);
    }
    const run = tryKind((report) => [...byKind].flatMap(([k, opts]) => [...k.iptables.fromIptables(s.module, opts, { ...base, sectionSpan: s.span, report })]));
    if (run.errors.length === 0) {
      run.others.forEach(ctx.report);
      if (run.others.length === 0) remember(run.value);
      return { matches: run.value, opaque: false };
    }
    const first = run.errors[0];
    warning = `m:${s.module}:${first.code}`;
    ctx.once(warning, () =>
      diag('warning', 'W-import-opaque-match', first.span, `\`-m ${s.module}\` is kept verbatim, not modelled: ${first.message}`, 'nfproof emits it back unchanged; the analyzer treats it as unknown'),
    );
  } else {
    const unknown = s.options.find((o) => !own?.has(o.name));
    warning = `m:${s.module}:${own === undefined ? '' : (unknown?.name ?? '-')}`;
    ctx.once(warning, () => {
      const why =
        own === undefined
          ? `nfproof does not model the \`${s.module}\` match`
          : unknown
            ? `nfproof does not model \`${unknown.name}\` of \`-m ${s.module}\``
            : `\`-m ${s.module}\` without options is not modelled`;
      return diag('warning', 'W-import-opaque-match', unknown?.span ?? s.span, `${why}; kept verbatim`, 'it is emitted back unchanged; the analyzer treats it as unknown and proves nothing through it');
    });
  }
  bump(ctx.stats.opaqueMatches, s.module);
  const opaqueDiags: Diagnostic[] = [];
  const matches = [...OPAQUE_MATCH_FALLBACK.iptables.fromIptables(s.module, s.options, { ...base, sectionSpan: s.span, report: (d) => opaqueDiags.push(d) })];
  opaqueDiags.forEach(ctx.report);
  if (opaqueDiags.length === 0) remember(matches, warning);
  return { matches, opaque: true };
}

function importTarget(t: TargetSpec | undefined, lineSpan: Span, base: Omit<ImportContext, 'report'>, ctx: RuleImportContext): { target?: Target; opaque: boolean } {
  if (t === undefined) {
    return { target: TARGET_KINDS.counter.iptables.fromIptables('', [], { ...base, report: ctx.report, isGoto: false, span: lineSpan }), opaque: false };
  }
  const tctx = { ...base, isGoto: t.isGoto, span: t.span };
  const kind = t.isGoto ? undefined : TARGET_BY_NAME.get(t.name);
  if (kind) {
    const run = tryKind((report) => kind.iptables.fromIptables(t.name, t.options, { ...tctx, report }));
    if (run.errors.length === 0 && run.value) {
      run.others.forEach(ctx.report);
      return { target: run.value, opaque: false };
    }
    const first = run.errors[0];
    ctx.once(`t:${t.name}:${first?.code ?? ''}`, () =>
      diag('warning', 'W-import-opaque-target', first?.span ?? t.span, `\`-j ${t.name}\` is kept verbatim, not modelled: ${first?.message ?? `nfproof could not read this ${t.name} target`}`, 'nfproof emits it back unchanged; the analyzer treats its outcome as unknown'),
    );
  } else if (ctx.table.chains.has(t.name)) {
    const target = TARGET_KINDS.jump.iptables.fromIptables(t.name, t.options, { ...tctx, report: ctx.report });
    return { target, opaque: false };
  } else if (t.isGoto) {
    ctx.report(diag('error', 'E-import-unknown-chain', t.span, `\`-g ${t.name}\`: there is no chain ${t.name} in this table`, `declare it with \`:${t.name} - [0:0]\` (or \`-N ${t.name}\`) before the rules`));
    return { opaque: false };
  } else {
    const upper = t.name.toUpperCase();
    const hint = TARGET_BY_NAME.has(upper) || upper === 'RETURN'
      ? `targets are written in capitals: -j ${upper}`
      : "if it is meant to be a chain, declare it; otherwise the analyzer treats this rule's outcome as unknown";
    ctx.once(`t:${t.name}`, () => diag('warning', 'W-import-opaque-target', t.span, `\`${t.name}\` is neither a target nfproof models nor a chain of this table; kept verbatim`, hint));
  }
  bump(ctx.stats.opaqueTargets, t.name);
  return { target: OPAQUE_TARGET_FALLBACK.iptables.fromIptables(t.name, t.options, { ...tctx, report: ctx.report }), opaque: true };
}

export function importRule(spec: RuleSpec, lineSpan: Span, ctx: RuleImportContext): Rule | undefined {
  const proto = ruleProto(spec.builtins);
  const base: Omit<ImportContext, 'report'> = { family: ctx.family, ...(proto !== undefined ? { proto } : {}) };
  const errorsBefore = ctx.errorCount();
  const report = ctx.report;
  const rctx = ctx;

  const matches: Match[] = [];
  // Built-in options: no opaque form exists for them, so a kind's complaint stays an error.
  const builtinKinds = new Map<AnyMatchKind, ImportedOption[]>();
  for (const o of spec.builtins) {
    const k = CLAIMS.get(null)?.get(o.name);
    if (!k) {
      report(diag('error', 'E-import-unsupported', o.span, `nfproof cannot model \`${o.name}\` yet`, 'remove it or file an issue'));
      continue;
    }
    builtinKinds.set(k, [...(builtinKinds.get(k) ?? []), o]);
  }
  for (const [k, opts] of builtinKinds) matches.push(...k.iptables.fromIptables(null, opts, { ...base, report }));

  let opaque = false;
  let comment: string | undefined;
  for (const s of placeLooseOptions(spec, proto, report)) {
    if (s.module === 'comment') {
      for (const o of s.options) {
        if (o.name !== '--comment' || o.args.length !== 1 || o.negated) {
          report(diag('error', 'E-import-comment', o.span, '`-m comment` takes exactly `--comment TEXT`'));
          continue;
        }
        if (comment !== undefined) {
          report(diag('warning', 'W-import-two-comments', o.span, 'the rule has two comments; nfproof keeps them joined by a space, which iptables will write as one'));
        }
        comment = comment === undefined ? o.args[0] : `${comment} ${o.args[0]}`;
      }
      continue;
    }
    const r = importSection(s, base, rctx);
    matches.push(...r.matches);
    opaque ||= r.opaque;
  }

  const t = importTarget(spec.target, lineSpan, base, rctx);
  opaque ||= t.opaque;
  if (ctx.errorCount() > errorsBefore || !t.target) return undefined;
  ctx.stats.rules++;
  if (!opaque) ctx.stats.modelledRules++;
  return { matches, target: t.target, span: lineSpan, ...(comment !== undefined ? { comment } : {}), ...(spec.counters ? { counters: spec.counters } : {}) };
}
