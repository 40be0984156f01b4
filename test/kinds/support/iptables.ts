import { PROTO } from '../../../src/ir/fields.js';
import {
  ALL_MATCH_KINDS,
  ALL_TARGET_KINDS,
  type Match,
  OPAQUE_MATCH_FALLBACK,
  OPAQUE_TARGET_FALLBACK,
  type Target,
  matchKind,
  targetKind,
} from '../../../src/kinds/index.js';
import { sectionsOf } from '../../../src/backends/emit/line.js';
import type { ImportContext, ImportedOption } from '../../../src/kinds/iptables.js';
import type { Diagnostic } from '../../../src/util/diagnostics.js';
import type { Family } from '../../../src/util/ip.js';
import { type Span, NO_SPAN } from '../../../src/util/span.js';
import { parseProtoName } from '../../../src/kinds/match/proto.js';

/**
 * Test support: a minimal iptables rule writer and reader built only on the kinds' records, so
 * each kind's split/emit/claims/fromIptables can be checked line by line (and against the
 * kernel) without the rest of the backends. Sections are laid out by the emitter's own
 * sectionsOf (iptables-save's layout: built-in options in their fixed order, then one `-m`
 * section per match in rule order, `-m tcp`/`-m udp` options gathered into one), then the target.
 */

/** Kinds pre-quote string options (quoteIptablesString); other words are quoted only when they must be. */
function quote(w: string): string {
  if (/^"(?:[^"\\]|\\.)*"$/.test(w)) return w;
  return w !== '' && !/[\s"'\\]/.test(w) ? w : `"${w.replace(/["\\']/g, (c) => `\\${c}`)}"`;
}

function protoOf(matches: readonly Match[]): number | undefined {
  const p = matches.find((m) => m.kind === 'proto' && !m.negated && m.protos.length === 1);
  return p?.kind === 'proto' ? p.protos[0] : undefined;
}

/** The rule body (after `-A CHAIN`) of every iptables rule the matches and target become. */
export function emitRule(matches: readonly Match[], target: Target | undefined, family: Family): string[] {
  // Split multi-valued matches; the rule becomes the cross product of the pieces.
  let combos: Match[][] = [[]];
  for (const m of matches) {
    const k = matchKind(m);
    const pieces = k.iptables.split ? k.iptables.split(m, { family, proto: protoOf(matches) }) : [m];
    combos = combos.flatMap((c) => pieces.map((p) => [...c, p]));
  }
  return combos.map((combo) => {
    const ctx = { family, proto: protoOf(combo) };
    // Sections are assembled by the emitter's own rule (src/backends/emit/line.ts).
    const { builtins, sections } = sectionsOf(combo.map((m) => matchKind(m).iptables.emit(m, ctx)));
    const words: string[] = [];
    for (const f of builtins) words.push(...f.args);
    for (const s of sections) {
      words.push('-m', s.module);
      for (const f of s.fragments) words.push(...f.args);
    }
    if (target) words.push(...targetKind(target).iptables.emit(target, ctx));
    return words.map(quote).join(' ');
  });
}

/** iptables-restore's word splitting (double quotes, backslash escapes). */
export function splitIptables(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ') i++;
    if (i >= line.length) break;
    let w = '';
    let q = false;
    while (i < line.length && (q || line[i] !== ' ')) {
      if (line[i] === '"') q = !q;
      else if (line[i] === '\\' && i + 1 < line.length) w += line[++i];
      else w += line[i];
      i++;
    }
    out.push(w);
  }
  return out;
}

export interface ImportedRule {
  readonly matches: Match[];
  readonly target?: Target;
  readonly diagnostics: Diagnostic[];
}

const BUILTINS = new Set(['-s', '-d', '-i', '-o', '-p', '-f']);
const ONE_WORD = new Set(['--log-prefix', '--nflog-prefix', '--comment', '--helper']);

/** Reads a rule body (`-p tcp -m tcp --dport 22 -j ACCEPT`) back through the kinds' claims. */
export function importRule(body: string, family: Family, file = 'case.rules', chains: ReadonlySet<string> = new Set()): ImportedRule {
  const w = splitIptables(body);
  const diagnostics: Diagnostic[] = [];
  let col = 1;
  const spanAt = (): Span => ({ file, start: { line: 1, col, offset: col - 1 }, end: { line: 1, col: col + 1, offset: col } });
  type Section = { module: string | null; options: ImportedOption[]; span: Span };
  const sections: Section[] = [{ module: null, options: [], span: NO_SPAN }];
  let targetName: string | undefined;
  let isGoto = false;
  const targetOptions: ImportedOption[] = [];
  let i = 0;
  while (i < w.length) {
    col = i + 1;
    let negated = false;
    if (w[i] === '!') {
      negated = true;
      i++;
    }
    const name = w[i++];
    if (name === '-m') {
      sections.push({ module: w[i++], options: [], span: spanAt() });
      continue;
    }
    if (name === '-j' || name === '-g') {
      targetName = w[i++];
      isGoto = name === '-g';
      continue;
    }
    const args: string[] = [];
    // Option arguments run to the next option word; `-f` takes none; string options take one
    // word whatever it looks like (`--log-prefix -x-`).
    if (ONE_WORD.has(name)) args.push(w[i++]);
    else while (name !== '-f' && i < w.length && !/^--?[a-z]/.test(w[i]) && w[i] !== '!') args.push(w[i++]);
    // `! --opt` or the old `--opt ! value`.
    const opt: ImportedOption = { name, args, negated, span: spanAt() };
    if (targetName !== undefined) targetOptions.push(opt);
    else if (BUILTINS.has(name)) sections[0].options.push(opt);
    else sections[sections.length - 1].options.push(opt);
  }
  const protoOpt = sections[0].options.find((o) => o.name === '-p' && !o.negated);
  const proto = protoOpt ? parseProtoName(protoOpt.args[0] ?? '') : undefined;
  const ctx: ImportContext = { family, ...(proto !== undefined ? { proto } : {}), report: (d) => diagnostics.push(d) };
  const matches: Match[] = [];
  for (const s of sections) {
    // Group this section's options by the kind that claims them, keeping first-seen order.
    const groups = new Map<(typeof ALL_MATCH_KINDS)[number], ImportedOption[]>();
    const unclaimed: ImportedOption[] = [];
    for (const o of s.options) {
      const k = ALL_MATCH_KINDS.find((kind) => kind.iptables.claims.some((c) => c.module === s.module && c.options.includes(o.name)));
      if (k) groups.set(k, [...(groups.get(k) ?? []), o]);
      else unclaimed.push(o);
    }
    if (s.module !== null && s.options.length === 0) {
      // No options: the first kind claiming the module takes it (`-m rpfilter`).
      const k = ALL_MATCH_KINDS.find((kind) => kind.iptables.claims.some((c) => c.module === s.module));
      if (k) groups.set(k, []);
    }
    for (const [k, opts] of groups) matches.push(...k.iptables.fromIptables(s.module, opts, { ...ctx, sectionSpan: s.span }));
    if (s.module !== null && (unclaimed.length > 0 || groups.size === 0)) {
      matches.push(...OPAQUE_MATCH_FALLBACK.iptables.fromIptables(s.module, unclaimed, { ...ctx, sectionSpan: s.span }));
    } else if (s.module === null && unclaimed.length) {
      diagnostics.push({ severity: 'error', code: 'T-unclaimed', message: `nobody claims ${unclaimed.map((o) => o.name).join(' ')}`, span: unclaimed[0].span });
    }
  }
  let target: Target | undefined;
  if (targetName !== undefined) {
    const tctx = { ...ctx, isGoto, span: spanAt() };
    const k = chains.has(targetName) ? undefined : ALL_TARGET_KINDS.find((kind) => kind.iptables.names.includes(targetName!));
    if (k) target = k.iptables.fromIptables(targetName, targetOptions, tctx);
    else if (chains.has(targetName) || isGoto) target = ALL_TARGET_KINDS.find((kind) => kind.kind === 'jump')!.iptables.fromIptables(targetName, targetOptions, tctx);
    else if (/^[A-Z][A-Z0-9_]*$/.test(targetName) && !isGoto) target = OPAQUE_TARGET_FALLBACK.iptables.fromIptables(targetName, targetOptions, tctx);
    else target = ALL_TARGET_KINDS.find((kind) => kind.kind === 'jump')!.iptables.fromIptables(targetName, targetOptions, tctx);
  }
  return { matches, ...(target ? { target } : {}), diagnostics };
}

export { PROTO };
