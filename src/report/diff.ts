import type { DiffClass, DiffKind, DiffReport } from '../analyze/diff/types.js';
import { formatFileLine } from '../util/span.js';

/**
 * `nfproof diff` as text: a verdict line, then the changed classes grouped by what changed
 * (newly allowed, newly denied, NAT changed, other), each with the deciding rule on each side,
 * its packets as cubes in flow syntax, and a witness packet replayed in the simulator.
 */
export const KIND_TITLE: Readonly<Record<DiffKind, string>> = {
  allowed: 'newly allowed',
  denied: 'newly denied',
  nat: 'NAT changed',
  rerouted: 'delivered elsewhere',
  'deny-changed': 'denied differently (DROP/REJECT)',
};

export const KIND_ORDER: readonly DiffKind[] = ['allowed', 'denied', 'nat', 'rerouted', 'deny-changed'];

export interface DiffTextOptions {
  readonly color: boolean;
  /** Most classes shown per group, and cubes per class (the JSON output has them all). */
  readonly maxClasses?: number;
  readonly maxCubes?: number;
}

const bold = (on: boolean, s: string) => (on ? `\u001b[1m${s}\u001b[0m` : s);

/** One line saying what the diff found. */
export function diffSummary(r: DiffReport): string {
  const fams = r.families.map((f) => f.family).join(', ') || 'no family';
  if (r.status === 'equivalent') return `${r.old} and ${r.new} are equivalent (${fams}): every packet gets the same verdict, NAT and egress (proved)`;
  const n = r.classes.length;
  const parts = KIND_ORDER.map((k) => [k, r.classes.filter((c) => c.kind === k).length] as const)
    .filter(([, c]) => c > 0)
    .map(([k, c]) => `${c} ${KIND_TITLE[k]}`);
  if (r.status === 'unknown' && n === 0) return `${r.old} vs ${r.new} (${fams}): no difference found, but not proved equivalent (${r.unknown.length} open question${r.unknown.length === 1 ? '' : 's'})`;
  const allowed = r.allowed.length ? `; ${r.allowed.length} expected by the allow list` : '';
  return `${r.old} vs ${r.new} (${fams}): ${n} class${n === 1 ? '' : 'es'} of packets changed${parts.length ? ` (${parts.join(', ')})` : ''}${allowed}`;
}

export function decisionText(c: DiffClass, side: 'old' | 'new'): string {
  const s = c[side];
  return s.summary;
}

function cubeLine(cube: DiffClass['cubes'][number]): string {
  return cube.conditions.length ? `${cube.flow}  [${cube.conditions.join('; ')}]` : cube.flow;
}

function renderClass(c: DiffClass, i: number, opts: DiffTextOptions): string[] {
  const maxCubes = opts.maxCubes ?? 6;
  const lines = [`  ${i}. ${c.family === 'ipv6' ? '[ipv6] ' : ''}old: ${decisionText(c, 'old')}`, `     new: ${decisionText(c, 'new')}`];
  lines.push(`     packets${c.cubes.length > 1 ? ` (${c.cubes.length} cubes)` : ''}:`);
  for (const cube of c.cubes.slice(0, maxCubes)) lines.push(`       ${cubeLine(cube)}`);
  if (c.cubes.length > maxCubes) lines.push(`       … and ${c.cubes.length - maxCubes} more cubes (--format json lists them all)`);
  const replay = c.replay.status === 'agrees' ? 'the simulator agrees' : `not replayed: ${c.replay.detail}`;
  lines.push(`     witness: ${c.witness.summary} (${replay})`);
  if (c.decidedBy === 'z3') lines.push('     found by Z3 around the witness: the class may extend beyond these cubes');
  if (c.dependsOn.length) lines.push(`     depends on: ${c.dependsOn.join('; ')}`);
  return lines;
}

export function renderDiffText(r: DiffReport, opts: DiffTextOptions): string {
  const out: string[] = [bold(opts.color, diffSummary(r))];
  const maxClasses = opts.maxClasses ?? 20;
  for (const kind of KIND_ORDER) {
    const cs = r.classes.filter((c) => c.kind === kind);
    if (cs.length === 0) continue;
    out.push('', bold(opts.color, `${KIND_TITLE[kind]} (${cs.length})`));
    cs.slice(0, maxClasses).forEach((c, i) => out.push(...renderClass(c, i + 1, opts)));
    if (cs.length > maxClasses) out.push(`  … and ${cs.length - maxClasses} more classes (--format json lists them all)`);
  }
  if (r.allowed.length) {
    out.push('', bold(opts.color, `expected by the allow list (${r.allowed.length})`));
    for (const c of r.allowed.slice(0, maxClasses)) out.push(`  ${KIND_TITLE[c.kind]}: ${cubeLine(c.cubes[0])}${c.cubes.length > 1 ? ` (+${c.cubes.length - 1} cubes)` : ''}`);
  }
  if (r.allowUnused.length) {
    out.push('', 'allow entries that matched no difference (stale?):');
    for (const u of r.allowUnused) out.push(`  line ${u.line}: ${u.text}`);
  }
  if (r.unknown.length) {
    out.push('', bold(opts.color, `not decided (${r.unknown.length})`));
    for (const u of r.unknown) out.push(`  - ${u.reason}${u.region ? `\n    where: ${u.region}` : ''}`);
  }
  if (r.internalErrors.length) {
    out.push('', bold(opts.color, `internal errors (${r.internalErrors.length}): nfproof contradicted itself; please report`));
    for (const e of r.internalErrors) out.push(`  - ${e.message}${e.witness ? `\n    witness: ${e.witness}` : ''}`);
  }
  for (const s of r.skipped) out.push('', `${s.family}: not compared: ${s.reason}`);
  if (r.assumptions.length) {
    out.push('', 'assumptions:');
    for (const a of r.assumptions) out.push(`  - ${a}`);
  }
  return out.join('\n') + '\n';
}

/** Where a class points in the sources: the new side's deciding rule, else the old side's. */
export function classLocation(c: DiffClass): { file: string; line: number; col: number } | undefined {
  const span = c.new.decision?.span ?? c.old.decision?.span;
  if (!span || span.start.line < 1) return undefined;
  return { file: span.file, line: span.start.line, col: span.start.col };
}

export function ruleWhere(c: DiffClass, side: 'old' | 'new'): string {
  const d = c[side].decision;
  return d?.span && d.span.start.line > 0 ? formatFileLine(d.span) : '';
}
