import { isAbsolute, relative, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as Sarif from 'sarif';
import type { CheckReport, ExpectationResult, Finding, Witness } from '../analyze/types.js';
import type { Span } from '../util/span.js';
import { renderWitness } from './findings-text.js';

/**
 * SARIF 2.1.0 for GitHub code scanning and other CI viewers: one result per finding and per
 * failed or undecided expectation, located at the rule (file, line, column), with the rules
 * involved as related locations and the witness's walk as a code flow. Internal errors are tool
 * notifications and mark the run as not successful.
 */
export const SARIF_SCHEMA = 'https://json.schemastore.org/sarif-2.1.0.json';

interface RuleInfo {
  readonly id: string;
  readonly name: string;
  readonly short: string;
  readonly full: string;
  readonly level: Sarif.ReportingConfiguration.level;
  readonly tags: readonly string[];
}

const RULES: readonly RuleInfo[] = [
  { id: 'nfproof/unreachable', name: 'UnreachableRule', short: 'Rule no packet can reach', full: 'No packet that matches the rule ever reaches it: its chain is never entered by such a packet, or its tests contradict each other.', level: 'error', tags: ['correctness'] },
  { id: 'nfproof/shadowed', name: 'ShadowedRule', short: 'Rule shadowed by earlier rules with a different action', full: 'Every packet the rule matches is decided earlier by rules with a different action, so the rule never fires.', level: 'error', tags: ['correctness'] },
  { id: 'nfproof/redundant', name: 'RedundantRule', short: 'Rule that changes no verdict', full: 'Every packet the rule matches is decided earlier with the same action (for a NAT rule: the same mapping), or removing the rule gives every packet the same verdict.', level: 'warning', tags: ['maintainability'] },
  { id: 'nfproof/generalization', name: 'Generalization', short: 'Rule generalizes an earlier exception', full: 'The rule matches a superset of an earlier rule that has a different action; the earlier rule is an exception to it. Reported with --anomalies only.', level: 'note', tags: ['correctness'] },
  { id: 'nfproof/correlation', name: 'Correlation', short: 'Rules overlap with different actions', full: 'Two rules overlap partly with different actions; their order decides the packets in the overlap. Reported with --anomalies only.', level: 'note', tags: ['correctness'] },
  { id: 'nfproof/unused-chain', name: 'UnusedChain', short: 'Chain no packet enters', full: 'No rule jumps to the chain, or every rule that does is unreachable.', level: 'warning', tags: ['maintainability'] },
  { id: 'nfproof/nat-never-fires', name: 'NatNeverFires', short: 'NAT rule that never fires', full: "No new connection's first packet that matches the NAT rule can reach it.", level: 'error', tags: ['correctness'] },
  { id: 'nfproof/undecided', name: 'Undecided', short: 'Rule the solver could not decide', full: 'The solver ran out of time deciding whether any packet reaches the rule.', level: 'note', tags: [] },
  { id: 'nfproof/expect-reachable', name: 'ExpectReachable', short: 'Expected reachability does not hold', full: 'An `expect reachable` statement has a counterexample packet.', level: 'error', tags: ['correctness'] },
  { id: 'nfproof/expect-unreachable', name: 'ExpectUnreachable', short: 'Expected unreachability does not hold', full: 'An `expect unreachable` statement has a packet that gets through.', level: 'error', tags: ['security'] },
  { id: 'nfproof/expect-only', name: 'ExpectOnly', short: 'Traffic outside the allowed flows gets through', full: 'An `expect only` statement has a delivered packet outside the allowed flows.', level: 'error', tags: ['security'] },
  { id: 'nfproof/expect-no-findings', name: 'ExpectNoFindings', short: 'Findings where none were expected', full: 'An `expect no … rules` statement fails.', level: 'error', tags: ['correctness'] },
];

function uriOf(file: string, root: string): { uri: string; uriBaseId?: string } {
  if (!isAbsolute(file)) return { uri: file.split(sep).join('/'), uriBaseId: '%SRCROOT%' };
  const rel = relative(root, file);
  if (rel && !rel.startsWith('..') && !isAbsolute(rel)) return { uri: rel.split(sep).join('/'), uriBaseId: '%SRCROOT%' };
  return { uri: pathToFileURL(file).href };
}

function location(span: Span, root: string, message?: string, id?: number): Sarif.Location | undefined {
  if (span.start.line < 1) return undefined;
  const sameLine = span.end.line === span.start.line && span.end.col > span.start.col;
  return {
    ...(id !== undefined ? { id } : {}),
    physicalLocation: {
      artifactLocation: uriOf(span.file, root),
      region: {
        startLine: span.start.line,
        startColumn: Math.max(1, span.start.col),
        ...(sameLine ? { endLine: span.end.line, endColumn: span.end.col } : {}),
      },
    },
    ...(message ? { message: { text: message } } : {}),
  };
}

function codeFlow(w: Witness, root: string): Sarif.CodeFlow | undefined {
  const locations: Sarif.ThreadFlowLocation[] = w.path.flatMap((s) => {
    const loc = s.rule ? location(s.rule.span, root, `${s.hook} ${s.table}/${s.chain}: ${s.action}`) : undefined;
    return loc ? [{ location: loc }] : [];
  });
  if (locations.length === 0) return undefined;
  return { message: { text: w.summary }, threadFlows: [{ locations }] };
}

function findingResult(f: Finding, root: string): Sarif.Result {
  const span = f.rule?.span ?? f.chain?.span;
  const loc = span ? location(span, root) : undefined;
  const related = f.related.flatMap((r, i) => {
    const l = location(r.rule.span, root, `\`${r.rule.text}\` ${r.note}`, i + 1);
    return l ? [l] : [];
  });
  const flow = f.witness ? codeFlow(f.witness, root) : undefined;
  const ruleIndex = RULES.findIndex((r) => r.id === f.code);
  return {
    ruleId: f.code,
    ...(ruleIndex >= 0 ? { ruleIndex } : {}),
    level: f.severity === 'info' ? 'note' : f.severity,
    message: { text: f.witness ? `${f.message}\n${renderWitness(f.witness)}` : f.message },
    ...(loc ? { locations: [loc] } : {}),
    ...(related.length ? { relatedLocations: related } : {}),
    ...(flow ? { codeFlows: [flow] } : {}),
    partialFingerprints: { nfproofRule: fingerprint(f) },
    properties: { kind: f.kind, decidedBy: f.decidedBy, ...(f.witness?.replay ? { replay: f.witness.replay.status } : {}) },
  };
}

/** Stable across runs and line moves: the kind and the rule's text and chain. */
function fingerprint(f: Finding): string {
  const what = f.rule ? `${f.rule.family}/${f.rule.table}/${f.rule.chain}/${f.rule.text}` : `${f.chain?.family}/${f.chain?.table}/${f.chain?.name}`;
  let h = 2166136261;
  for (const ch of `${f.kind}|${what}`) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  return h.toString(16).padStart(8, '0');
}

function expectationResult(e: ExpectationResult, root: string): Sarif.Result | undefined {
  if (e.status === 'proved') return undefined;
  const id = `nfproof/expect-${e.expectation.kind}`;
  const loc = location(e.expectation.span, root);
  const flow = e.witness ? codeFlow(e.witness, root) : undefined;
  return {
    ruleId: id,
    ruleIndex: RULES.findIndex((r) => r.id === id),
    level: e.status === 'failed' ? 'error' : 'warning',
    message: { text: `expectation ${e.status === 'failed' ? 'fails' : 'could not be decided'}: ${e.message}${e.witness ? `\n${renderWitness(e.witness)}` : ''}` },
    ...(loc ? { locations: [loc] } : {}),
    ...(flow ? { codeFlows: [flow] } : {}),
  };
}

export function toSarif(report: CheckReport, opts: { readonly root?: string } = {}): Sarif.Log {
  const root = opts.root ?? process.cwd();
  const results = [
    ...report.findings.map((f) => findingResult(f, root)),
    ...report.expectations.flatMap((e) => {
      const r = expectationResult(e, root);
      return r ? [r] : [];
    }),
  ];
  return {
    $schema: SARIF_SCHEMA,
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'nfproof',
            semanticVersion: '0.1.0',
            informationUri: 'https://github.com/nfproof/nfproof',
            rules: RULES.map((r) => ({
              id: r.id,
              name: r.name,
              shortDescription: { text: r.short },
              fullDescription: { text: r.full },
              help: { text: r.full },
              defaultConfiguration: { level: r.level },
              properties: { tags: [...r.tags], precision: 'very-high' },
            })),
          },
        },
        originalUriBaseIds: { '%SRCROOT%': { uri: pathToFileURL(root.endsWith(sep) ? root : root + sep).href } },
        invocations: [
          {
            executionSuccessful: report.internalErrors.length === 0,
            toolExecutionNotifications: report.internalErrors.map((ie) => ({ level: 'error' as const, message: { text: ie.message } })),
          },
        ],
        results,
        properties: { assumptions: [...report.assumptions] },
      },
    ],
  };
}
