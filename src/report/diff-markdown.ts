import type { DiffClass, DiffReport } from '../analyze/diff/types.js';
import { KIND_ORDER, KIND_TITLE, diffSummary, ruleWhere } from './diff.js';

/**
 * `nfproof diff --format markdown`: for a pull-request comment. A summary line, then one table
 * per kind of change: the packets (first cubes), what the old and the new ruleset do with them
 * and where, and a witness packet.
 */
function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function code(s: string): string {
  return s ? `\`${s.replace(/`/g, "'")}\`` : '';
}

function row(c: DiffClass, maxCubes: number): string {
  const cubes = c.cubes.slice(0, maxCubes).map((x) => code(x.flow + (x.conditions.length ? ` [${x.conditions.join('; ')}]` : '')));
  if (c.cubes.length > maxCubes) cubes.push(`… ${c.cubes.length - maxCubes} more`);
  const side = (s: 'old' | 'new') => {
    const where = ruleWhere(c, s);
    return `${cell(c[s].summary.replace(/ \([^()]*:\d+\)$/, ''))}${where ? ` (${code(where)})` : ''}`;
  };
  const replay = c.replay.status === 'agrees' ? ' ✔︎ replayed' : '';
  return `| ${cubes.join('<br>')} | ${side('old')} | ${side('new')} | ${code(c.witness.summary)}${replay} |`;
}

export function renderDiffMarkdown(r: DiffReport, opts: { readonly maxClasses?: number; readonly maxCubes?: number } = {}): string {
  const maxClasses = opts.maxClasses ?? 30;
  const maxCubes = opts.maxCubes ?? 3;
  const icon = r.status === 'equivalent' ? '✅' : r.status === 'unknown' ? '❔' : '⚠️';
  const out: string[] = [`### ${icon} nfproof diff`, '', diffSummary(r), ''];
  for (const kind of KIND_ORDER) {
    const cs = r.classes.filter((c) => c.kind === kind);
    if (cs.length === 0) continue;
    out.push(`#### ${KIND_TITLE[kind]} (${cs.length})`, '', '| packets | before | after | witness |', '|---|---|---|---|');
    for (const c of cs.slice(0, maxClasses)) out.push(row(c, maxCubes));
    if (cs.length > maxClasses) out.push('', `_… and ${cs.length - maxClasses} more (see the JSON report)._`);
    out.push('');
  }
  if (r.allowed.length) out.push(`<details><summary>${r.allowed.length} expected change(s) (allow list)</summary>`, '', ...r.allowed.slice(0, maxClasses).map((c) => `- ${KIND_TITLE[c.kind]}: ${code(c.cubes[0].flow)}`), '', '</details>', '');
  if (r.unknown.length) out.push('#### not decided', '', ...r.unknown.map((u) => `- ${cell(u.reason)}${u.region ? ` — ${code(u.region)}` : ''}`), '');
  if (r.internalErrors.length) out.push('#### internal errors', '', ...r.internalErrors.map((e) => `- ${cell(e.message)}`), '');
  if (r.assumptions.length) out.push('<details><summary>assumptions</summary>', '', ...r.assumptions.map((a) => `- ${cell(a)}`), '', '</details>', '');
  return out.join('\n');
}
