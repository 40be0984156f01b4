import type { CheckReport, ExpectationResult, Finding, QueryReport, Witness } from '../analyze/types.js';
import { type Diagnostic, diag } from '../util/diagnostics.js';
import type { SourceFiles } from '../util/sources.js';
import { NO_SPAN, formatLocation } from '../util/span.js';
import { type TextOptions, renderDiagnostic } from './text.js';

/**
 * Text rendering of `nfproof check` and `nfproof query`: each finding as a diagnostic with a
 * code frame at the rule, then its witness (the packet, where it went, the rules that decided);
 * each expectation with its status and counterexample.
 */

export function findingDiagnostic(f: Finding): Diagnostic {
  const span = f.rule?.span ?? f.chain?.span ?? NO_SPAN;
  return diag(
    f.severity,
    f.code,
    span,
    f.message,
    f.hint,
    f.related.length ? f.related.slice(0, 3).map((r) => ({ span: r.rule.span, message: `\`${r.rule.text}\` ${r.note}` })) : undefined,
  );
}

export function renderWitness(w: Witness, indent = '  '): string {
  const lines: string[] = [`${indent}witness: ${w.summary}`];
  for (const s of w.path) {
    const at = s.rule ? ` ${formatLocation(s.rule.span)} \`${s.rule.text}\`` : '';
    lines.push(`${indent}  ${s.hook} ${s.table}/${s.chain}:${at} → ${s.action}`);
  }
  const end =
    w.verdict === 'dropped'
      ? `dropped (${w.dropReason ?? 'dropped'})`
      : w.verdict === 'local'
        ? 'delivered to a local socket'
        : `${w.verdict} out of ${w.egress ?? '?'}`;
  lines.push(`${indent}  ⇒ ${end}${w.egressSummary && w.verdict !== 'dropped' ? ` as ${w.egressSummary}` : ''}`);
  if (w.dependsOn.length) lines.push(`${indent}  (assuming: ${w.dependsOn.join('; ')})`);
  if (w.replay) lines.push(`${indent}  simulator: ${w.replay.status}${w.replay.detail ? ` — ${w.replay.detail}` : ''}`);
  if (w.reply) {
    lines.push(`${indent}reply:`);
    lines.push(renderWitness(w.reply, `${indent}  `));
  }
  return lines.join('\n');
}

const STATUS_WORD = { proved: 'holds', failed: 'FAILS', unknown: 'unknown' } as const;

export function renderExpectation(e: ExpectationResult, sources: SourceFiles, opts: TextOptions): string {
  const sev = e.status === 'failed' ? 'error' : e.status === 'unknown' ? 'warning' : 'info';
  const d = diag(sev, `nfproof/expect-${e.expectation.kind}`, e.expectation.span, `expectation ${STATUS_WORD[e.status]}: ${e.message}`);
  const text = renderDiagnostic(d, sources, opts);
  return e.witness && e.status !== 'proved' ? `${text}\n${renderWitness(e.witness)}` : text;
}

export function renderCheckText(report: CheckReport, sources: SourceFiles, opts: TextOptions & { readonly verbose?: boolean }): string {
  const blocks: string[] = [];
  if (report.assumptions.length) blocks.push(report.assumptions.map((a) => `note: assumed: ${a}`).join('\n'));
  const ordered = [...report.findings].sort(
    (a, b) =>
      (a.rule?.span.file ?? a.chain?.span.file ?? '').localeCompare(b.rule?.span.file ?? b.chain?.span.file ?? '') ||
      (a.rule?.span.start.offset ?? a.chain?.span.start.offset ?? 0) - (b.rule?.span.start.offset ?? b.chain?.span.start.offset ?? 0),
  );
  for (const f of ordered) {
    const text = renderDiagnostic(findingDiagnostic(f), sources, opts);
    blocks.push(f.witness ? `${text}\n${renderWitness(f.witness)}` : text);
  }
  for (const e of report.expectations) {
    if (e.status === 'proved' && !opts.verbose) continue;
    blocks.push(renderExpectation(e, sources, opts));
  }
  for (const ie of report.internalErrors) {
    blocks.push(`internal error: ${ie.message}${ie.rule ? ` (rule at ${formatLocation(ie.rule.span)})` : ''}\n  this is a bug in nfproof; please report it with the policy${ie.witness ? `\n${renderWitness(ie.witness)}` : ''}`);
  }
  blocks.push(summaryLine(report));
  return blocks.join('\n\n') + '\n';
}

export function summaryLine(report: CheckReport): string {
  const count = (sev: string) => report.findings.filter((f) => f.severity === sev).length;
  const e = report.expectations;
  const s = report.stats;
  const parts = [
    `${s.rules} rules checked`,
    `${count('error')} error${count('error') === 1 ? '' : 's'}`,
    `${count('warning')} warning${count('warning') === 1 ? '' : 's'}`,
  ];
  if (count('info')) parts.push(`${count('info')} note${count('info') === 1 ? '' : 's'}`);
  if (e.length) {
    parts.push(`expectations: ${e.filter((x) => x.status === 'proved').length} hold, ${e.filter((x) => x.status === 'failed').length} fail${e.some((x) => x.status === 'unknown') ? `, ${e.filter((x) => x.status === 'unknown').length} unknown` : ''}`);
  }
  if (report.internalErrors.length) parts.push(`${report.internalErrors.length} INTERNAL ERROR${report.internalErrors.length === 1 ? '' : 'S'}`);
  const timing = `${(s.totalMs / 1000).toFixed(2)} s; ${s.prepassDecided} rules by the pre-pass, ${s.z3Decided} by Z3 (${s.z3Queries} queries)${s.undecided ? `, ${s.undecided} undecided` : ''}; ${s.replayAgreed}/${s.replayed} witnesses confirmed by the simulator`;
  return `${parts.join(', ')} (${timing})`;
}

export function renderQueryText(q: QueryReport, opts: TextOptions): string {
  const blocks: string[] = [];
  if (q.assumptions.length) blocks.push(q.assumptions.map((a) => `note: assumed: ${a}`).join('\n'));
  if (q.outcomes.length === 0) blocks.push('no packet of this flow can exist here');
  for (const o of q.outcomes) {
    const deciding = o.deciding.map((d) => (d.rule ? `${formatLocation(d.rule.span)} \`${d.rule.text}\`` : d.action)).join('; ');
    blocks.push(`${o.family} ${o.verdict.toUpperCase()}${deciding ? ` — decided by ${deciding}` : ''}\n${renderWitness(o.witness)}`);
  }
  for (const u of q.unknown) blocks.push(`unknown: ${u}`);
  for (const ie of q.internalErrors) blocks.push(`internal error: ${ie.message}`);
  void opts;
  return blocks.join('\n\n') + '\n';
}
