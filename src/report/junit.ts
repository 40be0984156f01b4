import type { CheckReport } from '../analyze/types.js';
import { formatLocation } from '../util/span.js';
import { renderWitness } from './findings-text.js';

/**
 * JUnit XML for CI test tabs (Jenkins, GitLab, GitHub test reporters): one test suite for the
 * findings — a test case per finding kind and rule, failing for errors (and warnings with
 * `failOn: warning`) — and one for the `expect` statements, a test case each.
 */
function esc(s: string): string {
  // XML 1.0 forbids most control characters even when escaped; drop them.
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function toJunit(report: CheckReport, opts: { readonly failOn?: 'error' | 'warning' } = {}): string {
  const failOn = opts.failOn ?? 'error';
  const failing = (sev: string) => sev === 'error' || (failOn === 'warning' && sev === 'warning');
  const seconds = (report.stats.totalMs / 1000).toFixed(3);
  const findingCases = report.findings.map((f) => {
    const where = f.rule ? formatLocation(f.rule.span) : f.chain ? formatLocation(f.chain.span) : 'policy';
    const name = `${f.kind} ${where}${f.rule ? ` ${f.rule.text}` : f.chain ? ` chain ${f.chain.name}` : ''}`;
    const body = `${f.message}${f.witness ? `\n${renderWitness(f.witness)}` : ''}`;
    const classname = `nfproof.findings.${f.rule ? `${f.rule.family}.${f.rule.table}.${f.rule.chain}` : f.chain ? `${f.chain.family}.${f.chain.table}` : 'policy'}`;
    const inner = failing(f.severity)
      ? `<failure type="${esc(f.code)}" message="${esc(f.message)}">${esc(body)}</failure>`
      : `<system-out>${esc(`${f.severity}: ${body}`)}</system-out>`;
    return `    <testcase name="${esc(name)}" classname="${esc(classname)}" time="0">${inner}</testcase>`;
  });
  const failures = report.findings.filter((f) => failing(f.severity)).length;
  const expectCases = report.expectations.map((e) => {
    const name = `expect ${e.expectation.kind} ${formatLocation(e.expectation.span)}`;
    const body = `${e.message}${e.witness ? `\n${renderWitness(e.witness)}` : ''}`;
    const inner =
      e.status === 'failed'
        ? `<failure type="expectation" message="${esc(e.message)}">${esc(body)}</failure>`
        : e.status === 'unknown'
          ? `<error type="undecided" message="${esc(e.message)}">${esc(body)}</error>`
          : `<system-out>${esc(body)}</system-out>`;
    return `    <testcase name="${esc(name)}" classname="nfproof.expectations" time="0">${inner}</testcase>`;
  });
  const eFail = report.expectations.filter((e) => e.status === 'failed').length;
  const eErr = report.expectations.filter((e) => e.status === 'unknown').length;
  const internal = report.internalErrors.map(
    (ie) => `    <testcase name="${esc(`internal: ${ie.message.slice(0, 80)}`)}" classname="nfproof.internal" time="0"><error type="internal" message="${esc(ie.message)}">${esc(ie.witness ? renderWitness(ie.witness) : ie.message)}</error></testcase>`,
  );
  const suites = [
    `  <testsuite name="nfproof findings" tests="${Math.max(findingCases.length, 1)}" failures="${failures}" errors="0" skipped="0" time="${seconds}">`,
    ...(findingCases.length ? findingCases : ['    <testcase name="no findings" classname="nfproof.findings" time="0"/>']),
    '  </testsuite>',
    `  <testsuite name="nfproof expectations" tests="${expectCases.length}" failures="${eFail}" errors="${eErr}" skipped="0" time="0">`,
    ...expectCases,
    '  </testsuite>',
    ...(internal.length
      ? [`  <testsuite name="nfproof internal" tests="${internal.length}" failures="0" errors="${internal.length}" skipped="0" time="0">`, ...internal, '  </testsuite>']
      : []),
  ];
  const total = Math.max(findingCases.length, 1) + expectCases.length + internal.length;
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="nfproof check" tests="${total}" failures="${failures + eFail}" errors="${eErr + internal.length}" time="${seconds}">`,
    ...suites,
    '</testsuites>',
    '',
  ].join('\n');
}
