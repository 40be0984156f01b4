import { type Match, type Target, printMatch, printTarget } from '../kinds/index.js';
import { type AddrItem, type AddrValue, type PortItem, type PortValue, formatAddrValue, formatPortValue } from '../kinds/values.js';
import { lowerPolicy, restrictMatches, restrictRule } from '../ir/lower.js';
import type { Chain, Expectation, Flow, HostModel, Policy, Rule, Table } from '../ir/policy.js';
import { TABLES, type TableName } from '../ir/netfilter.js';
import type { Diagnostic } from '../util/diagnostics.js';
import { FAMILIES, type Family, formatAddress } from '../util/ip.js';
import { SourceFiles } from '../util/sources.js';
import { isGenerated } from '../util/span.js';
import { buildProgram } from './program.js';

/**
 * Canonical .nfp text for a policy: host block, defines, tables, expectations. Parsing the
 * text gives back the same IR (ignoring spans) — the round-trip property in
 * test/syntax/roundtrip.test.ts. Used by `nfproof import` (through the importer's folding,
 * whose repeated lists carry a define name in `ref`) and by anyone who wants to show IR as DSL.
 *
 * - Values that carry a `ref` are printed as `@name`, with one `define` per name. If two uses
 *   of a name disagree within one family, the later ones are printed inline.
 * - A table present in both families is printed once (`table NAME`, both families) when its
 *   chains and policies agree; rules that exist in one family only get an `ip`/`ip6` prefix.
 *   Otherwise it is printed as `table ip NAME` and `table ip6 NAME`.
 * - Built-in chains that are empty and ACCEPT are left out (lowering adds them back).
 */
export interface PrintOptions {
  /** Indentation unit (default two spaces). */
  readonly indent?: string;
}

export function printPolicy(policy: Policy, opts: PrintOptions = {}): string {
  const first = render(policy, opts, new Set());
  if (first.merged.size === 0) return first.text;
  // Merging two families into one inet table is decided rule by rule; reading the text back
  // confirms it, and a table whose families do not come back as they were is printed apart.
  const bad = mergedMismatches(policy, first.text, first.merged);
  return bad.size === 0 ? first.text : render(policy, opts, bad).text;
}

function render(policy: Policy, opts: PrintOptions, noMerge: ReadonlySet<TableName>): { text: string; merged: Set<TableName> } {
  const ind = opts.indent ?? '  ';
  const defines = new DefineTable();
  const sections: string[] = [];
  const merged = new Set<TableName>();

  if (policy.host) sections.push(printHost(policy.host, ind));

  const tableBlocks: string[] = [];
  for (const name of TABLES) {
    const t4 = policy.rulesets.ipv4.tables.find((t) => t.name === name);
    const t6 = policy.rulesets.ipv6.tables.find((t) => t.name === name);
    const out = printTables(name, t4, t6, defines, ind, !noMerge.has(name));
    if (out.merged) merged.add(name);
    tableBlocks.push(...out.blocks);
  }
  const expects = policy.expectations.map((e) => printExpectation(e, defines));

  // Defines are collected while printing, so they are rendered last but placed first.
  const defs = defines.render();
  if (defs) sections.push(defs);
  sections.push(...tableBlocks);
  if (expects.length) sections.push(expects.join('\n'));
  return { text: sections.join('\n\n') + '\n', merged };
}

/** Tables printed merged whose rules do not read back as they were, family by family. */
function mergedMismatches(policy: Policy, text: string, merged: ReadonlySet<TableName>): Set<TableName> {
  const problems: Diagnostic[] = [];
  const report = (d: Diagnostic) => problems.push(d);
  const { surface } = buildProgram('<printed>', text, new SourceFiles(), report);
  const back = lowerPolicy(surface, report);
  if (problems.some((d) => d.severity === 'error')) return new Set(merged);
  const bad = new Set<TableName>();
  for (const name of merged) {
    for (const f of FAMILIES) {
      const a = policy.rulesets[f].tables.find((t) => t.name === name);
      const b = back.rulesets[f].tables.find((t) => t.name === name);
      if (!a || !b || tableSignature(a, f) !== tableSignature(b, f)) bad.add(name);
    }
  }
  return bad;
}

/** The text of a table's chains and rules with every value written out (no @names). */
function tableSignature(t: Table, f: Family): string {
  return t.chains
    .map((c) => `${c.name} ${c.policy ?? ''}\n${c.rules.map((r) => `${[...r.matches.map((m) => printMatch(inlineRefs(m))), printTarget(r.target as Target)].join(' ')} ${JSON.stringify(r.comment ?? null)}`).join('\n')}`)
    .join('\n') + f;
}

/** The match with every named value written out (its `ref` removed). */
function inlineRefs<N extends Match>(m: N): N {
  let out: N = m;
  for (const [key, v] of Object.entries(m)) {
    if (typeof v === 'object' && v !== null && typeof (v as { ref?: unknown }).ref === 'string') {
      const { ref: _dropped, ...inline } = v as { ref: string };
      void _dropped;
      out = { ...out, [key]: inline };
    }
  }
  return out;
}

function hasRefs(r: Rule): boolean {
  return r.matches.some((m) => inlineRefs(m) !== m);
}

// ---------------------------------------------------------------------------------------------
// host

function printHost(h: HostModel, ind: string): string {
  const lines = [`host ${h.name} {`];
  for (const i of h.interfaces) {
    const addrs = i.addresses.map((a) => `${formatAddress(a.family, a.addr)}/${a.prefixLen}`);
    lines.push(`${ind}interface ${i.name}${i.device !== i.name ? ` dev ${i.device}` : ''}${addrs.length ? ` address ${addrs.join(', ')}` : ''}`);
  }
  for (const r of h.routes) {
    const dev = h.interfaces.find((i) => i.device === r.device)?.name ?? r.device;
    // `default` alone means both families, so a gateway-less default route is written as a prefix.
    const dest = r.dest.len === 0 && r.via !== undefined ? 'default' : `${formatAddress(r.family, r.dest.addr)}/${r.dest.len}`;
    lines.push(
      `${ind}route ${dest}${r.via !== undefined ? ` via ${formatAddress(r.family, r.via)}` : ''} dev ${dev}${r.metric !== undefined ? ` metric ${r.metric}` : ''}`,
    );
  }
  for (const [k, v] of Object.entries(h.sysctls)) lines.push(`${ind}sysctl ${k} ${atomOrString(v)}`);
  lines.push('}');
  return lines.join('\n');
}

function atomOrString(v: string): string {
  return /^[^\s{},;#"=!@][^\s{},;#"=!]*$/.test(v) ? v : JSON.stringify(v);
}

// ---------------------------------------------------------------------------------------------
// defines

type RefValue = { kind: 'addr'; value: AddrValue } | { kind: 'port'; value: PortValue };

/**
 * The define behind each `@name` met while printing. An address define may hold items of both
 * families while each use in a rule holds only its family's (lowering restricts it), so the
 * define is assembled family by family; uses must agree within a family.
 */
class DefineTable {
  private readonly order: string[] = [];
  private readonly kinds = new Map<string, 'addr' | 'port'>();
  /** Text of the items of each family (ports: one entry under 'any'), as first met. */
  private readonly seen = new Map<string, Map<Family | 'any', string>>();
  private readonly addrItems = new Map<string, Partial<Record<Family, { items: AddrItem[]; excluded: AddrItem[] }>>>();
  /** A use with items of both families fixes the written order (lowering keeps it in such uses). */
  private readonly wholeOrder = new Map<string, { items: readonly AddrItem[]; excluded: readonly AddrItem[] }>();
  private readonly portItems = new Map<string, PortItem[]>();

  /**
   * Registers a use; returns false when it disagrees with an earlier use of the same name
   * (the caller then prints the value inline).
   */
  use(name: string, v: RefValue): boolean {
    const kind = this.kinds.get(name);
    if (kind !== undefined && kind !== v.kind) return false;
    const known = this.seen.get(name) ?? new Map<Family | 'any', string>();
    const parts: { key: Family | 'any'; text: string; add: () => void }[] = [];
    if (v.kind === 'port') {
      parts.push({ key: 'any', text: formatPortValue({ items: v.value.items }), add: () => this.portItems.set(name, [...v.value.items]) });
    } else {
      for (const f of FAMILIES) {
        const items = v.value.items.filter((i) => i.family === f);
        const excluded = v.value.excluded.filter((i) => i.family === f);
        if (items.length === 0 && excluded.length === 0) continue;
        parts.push({
          key: f,
          text: formatAddrValue({ items, excluded }),
          add: () => {
            const acc = this.addrItems.get(name) ?? {};
            acc[f] = { items, excluded };
            this.addrItems.set(name, acc);
          },
        });
      }
    }
    if (parts.some((p) => known.has(p.key) && known.get(p.key) !== p.text)) return false;
    if (v.kind === 'addr' && parts.length > 1 && !this.wholeOrder.has(name)) this.wholeOrder.set(name, { items: v.value.items, excluded: v.value.excluded });
    if (!this.seen.has(name)) {
      this.seen.set(name, known);
      this.kinds.set(name, v.kind);
      this.order.push(name);
    }
    for (const p of parts) {
      if (known.has(p.key)) continue;
      known.set(p.key, p.text);
      p.add();
    }
    return true;
  }

  render(): string {
    return this.order
      .map((name) => {
        if (this.kinds.get(name) === 'port') return `define ${name} = ${setOf(formatPortValue({ items: this.portItems.get(name)! }))}`;
        const perFamily = this.addrItems.get(name) ?? {};
        const a = this.wholeOrder.get(name) ?? {
          items: FAMILIES.flatMap((f) => perFamily[f]?.items ?? []),
          excluded: FAMILIES.flatMap((f) => perFamily[f]?.excluded ?? []),
        };
        return `define ${name} = ${setOf(formatAddrValue(a))}`;
      })
      .join('\n');
  }
}

/** Defines are always written as sets, which reads well and keeps one form. */
function setOf(text: string): string {
  return text.startsWith('{') ? text : `{ ${text} }`;
}

function isAddrValue(v: unknown): v is AddrValue {
  return typeof v === 'object' && v !== null && Array.isArray((v as AddrValue).items) && Array.isArray((v as AddrValue).excluded);
}

function isPortValue(v: unknown): v is PortValue {
  return typeof v === 'object' && v !== null && Array.isArray((v as PortValue).items) && !('excluded' in v);
}

/**
 * Registers the defines a match refers to, and returns the match to print: the same one, or
 * a copy whose disagreeing value is inlined (its `ref` removed).
 */
function withDefines<N extends Match>(m: N, defines: DefineTable): N {
  let out: N = m;
  for (const [key, v] of Object.entries(m)) {
    if (typeof v !== 'object' || v === null || typeof (v as { ref?: unknown }).ref !== 'string') continue;
    const ref = (v as { ref: string }).ref;
    const rv: RefValue | undefined = isAddrValue(v) ? { kind: 'addr', value: v } : isPortValue(v) ? { kind: 'port', value: v } : undefined;
    if (rv && defines.use(ref, rv)) continue;
    const { ref: _dropped, ...inline } = v as { ref: string };
    void _dropped;
    out = { ...out, [key]: inline };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// tables

const FAMILY_WORD: Record<Family, string> = { ipv4: 'ip', ipv6: 'ip6' };

function ruleText(r: Rule, family: Family, defines: DefineTable | undefined): string {
  const ms = defines ? r.matches.map((m) => withDefines(m, defines)) : r.matches;
  const parts = [...ms.map(printMatch), printTarget(r.target as Target)];
  if (r.comment !== undefined) parts.push(`comment ${JSON.stringify(r.comment)}`);
  return parts.join(' ');
}

/** Whether the rule, written without a family in an inet table, lowers to exactly itself in `family` and `other` (with `twin`). */
function sharable(r: Rule, family: Family, twin: Rule, other: Family): boolean {
  const here = restrictRule(r, family);
  const there = restrictRule(r, other);
  return here !== undefined && there !== undefined && ruleText(here, family, undefined) === ruleText(r, family, undefined) && ruleText(there, other, undefined) === ruleText(twin, other, undefined);
}

/** Whether the rule, written without a family in an inet table, would also produce a rule in `other`. */
function leaksInto(r: Rule, other: Family): boolean {
  return restrictRule(r, other) !== undefined;
}

function isImplicit(c: Chain): boolean {
  return c.hook !== undefined && c.rules.length === 0 && (c.policy ?? 'ACCEPT') === 'ACCEPT';
}

function chainHeader(c: Chain): string {
  const name = c.hook ? c.hook.toLowerCase() : c.name;
  return `chain ${name}${c.hook && c.policy === 'DROP' ? ' policy drop' : ''} {`;
}

function block(header: string, chains: readonly { header: string; lines: readonly string[] }[], ind: string): string {
  const out = [header];
  for (const c of chains) {
    if (c.lines.length === 0) {
      out.push(`${ind}${c.header} }`);
      continue;
    }
    out.push(`${ind}${c.header}`);
    for (const l of c.lines) out.push(`${ind}${ind}${l}`);
    out.push(`${ind}}`);
  }
  out.push('}');
  return out.join('\n');
}

function printTables(
  name: TableName,
  t4: Table | undefined,
  t6: Table | undefined,
  defines: DefineTable,
  ind: string,
  mayMerge: boolean,
): { blocks: string[]; merged: boolean } {
  if (t4 && t6 && mayMerge) {
    const merged = mergeTables(t4, t6, defines);
    if (merged) return { blocks: [block(`table ${name} {`, merged, ind)], merged: true };
  }
  const out: string[] = [];
  for (const [t, f] of [
    [t4, 'ipv4'],
    [t6, 'ipv6'],
  ] as const) {
    if (!t) continue;
    const chains = t.chains.filter((c) => !isImplicit(c)).map((c) => ({ header: chainHeader(c), lines: c.rules.map((r) => ruleText(r, f, defines)) }));
    out.push(block(`table ${FAMILY_WORD[f]} ${name} {`, chains, ind));
  }
  return { blocks: out, merged: false };
}

/** Which of two family-specific rules to print first: source order if known, else IPv4 unless it would leak into IPv6. */
function comesFirst(r4: Rule, r6: Rule): boolean {
  if (r4.span.file === r6.span.file && !isGenerated(r4.span) && r4.span.start.offset !== r6.span.start.offset) return r4.span.start.offset < r6.span.start.offset;
  return !leaksInto(r4, 'ipv6') || leaksInto(r6, 'ipv4');
}

/**
 * One inet table for both families, or undefined when their chains differ or they share too
 * little to read well as one. printPolicy confirms the result by reading it back.
 */
function mergeTables(t4: Table, t6: Table, defines: DefineTable): { header: string; lines: string[] }[] | undefined {
  if (t4.chains.length !== t6.chains.length) return undefined;
  let shared = 0;
  let single = 0;
  type Planned = { rule: Rule; twin?: Rule; family: Family | 'both' };
  const plan: { chain: Chain; lines: Planned[] }[] = [];
  for (let k = 0; k < t4.chains.length; k++) {
    const c4 = t4.chains[k];
    const c6 = t6.chains[k];
    if (c4.name !== c6.name || (c4.policy ?? 'ACCEPT') !== (c6.policy ?? 'ACCEPT')) return undefined;
    const lines: Planned[] = [];
    let i = 0;
    let j = 0;
    const a = c4.rules;
    const b = c6.rules;
    // A greedy walk: any interleaving keeps each family's order, which is all parsing needs.
    while (i < a.length || j < b.length) {
      const same =
        i < a.length &&
        j < b.length &&
        ruleText(a[i], 'ipv4', undefined) === ruleText(b[j], 'ipv6', undefined) &&
        // A rule with @names holds each family's items of the define: the same text covers both.
        (hasRefs(a[i]) || sharable(a[i], 'ipv4', b[j], 'ipv6'));
      if (same) {
        lines.push({ rule: a[i], twin: b[j], family: 'both' });
        shared++;
        i++;
        j++;
      } else if (i < a.length && (j >= b.length || comesFirst(a[i], b[j]))) {
        lines.push({ rule: a[i++], family: 'ipv4' });
        single++;
      } else {
        lines.push({ rule: b[j++], family: 'ipv6' });
        single++;
      }
    }
    plan.push({ chain: c4, lines });
  }
  // Mostly family-specific rules read better as two tables.
  if (single > 2 * shared) return undefined;
  return plan
    .filter((p) => !(isImplicit(p.chain) && p.lines.length === 0))
    .map((p) => ({
      header: chainHeader(p.chain),
      lines: p.lines.map((l) => {
        if (l.family !== 'both') return `${FAMILY_WORD[l.family]} ${ruleText(l.rule, l.family, defines)}`;
        ruleText(l.twin!, 'ipv6', defines); // registers the IPv6 items of its defines
        return ruleText(l.rule, 'ipv4', defines);
      }),
    }));
}

// ---------------------------------------------------------------------------------------------
// expectations

export function printFlow(f: Flow, defines?: DefineTable): string {
  const possible = FAMILIES.filter((fam) => restrictMatches(f.matches, fam) !== undefined);
  // A @define may bring items of the other family back when parsed, so a flow with one keeps its family word.
  const refs = f.matches.some((m) => Object.values(m).some((v) => typeof v === 'object' && v !== null && typeof (v as { ref?: unknown }).ref === 'string'));
  const prefix = f.family && (refs || !(possible.length === 1 && possible[0] === f.family)) ? `${FAMILY_WORD[f.family]} ` : '';
  const ms = defines ? f.matches.map((m) => withDefines(m, defines)) : f.matches;
  return prefix + ms.map(printMatch).join(' ');
}

function printExpectation(e: Expectation, defines: DefineTable): string {
  const via = e.kind !== 'no-findings' && e.via !== undefined ? ` via ${isHookName(e.via) ? e.via.toLowerCase() : e.via}` : '';
  switch (e.kind) {
    case 'no-findings':
      return `expect no ${e.finding} rules`;
    case 'reachable': {
      const t = e.translated;
      const tr = t
        ? ` translated${t.saddr !== undefined ? ` saddr ${formatAddress(addrFamily(t.saddr, e.flow.family), t.saddr)}` : ''}${
            t.daddr !== undefined ? ` daddr ${formatAddress(addrFamily(t.daddr, e.flow.family), t.daddr)}` : ''
          }${t.sport !== undefined ? ` sport ${t.sport}` : ''}${t.dport !== undefined ? ` dport ${t.dport}` : ''}`
        : '';
      return `expect reachable ${printFlow(e.flow, defines)}${via}${tr}${e.withReply ? ' with reply' : ''}`;
    }
    case 'unreachable':
      return `expect unreachable ${printFlow(e.flow, defines)}${via}`;
    case 'only':
      return `expect only ${e.allowed.map((f) => printFlow(f, defines)).join(' or ')} within ${printFlow(e.within, defines)}${via}`;
    default: {
      const never: never = e;
      return never;
    }
  }
}

function isHookName(s: string): boolean {
  return ['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'].includes(s);
}

function addrFamily(v: bigint, f: Family | undefined): Family {
  return f ?? (v > 0xffffffffn ? 'ipv6' : 'ipv4');
}
