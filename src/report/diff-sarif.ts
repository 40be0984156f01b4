import { isAbsolute, relative, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as Sarif from 'sarif';
import type { DiffClass, DiffKind, DiffReport } from '../analyze/diff/types.js';
import type { Span } from '../util/span.js';
import { KIND_TITLE, diffSummary } from './diff.js';

/**
 * `nfproof diff --format sarif`: SARIF 2.1.0 with one result per changed class, located at the
 * rule of the new ruleset that decides it (the old one as a related location), so code
 * scanning annotates the change where it was made. Differences the allow list expects are
 * results with a suppression; internal errors are tool notifications.
 */
const DESCRIPTIONS: Readonly<Record<DiffKind, string>> = {
  allowed: 'Packets the old ruleset dropped are now delivered.',
  denied: 'Packets the old ruleset delivered are now dropped.',
  nat: 'Packets are delivered both times, with a different header after NAT.',
  rerouted: 'Packets are delivered both times, but elsewhere (locally vs forwarded, another interface).',
  'deny-changed': 'Packets are dropped both times, but answered differently (DROP vs REJECT).',
};

const KINDS = Object.keys(DESCRIPTIONS) as DiffKind[];

function uriOf(file: string, root: string): { uri: string; uriBaseId?: string } {
  if (!isAbsolute(file)) return { uri: file.split(sep).join('/'), uriBaseId: '%SRCROOT%' };
  const rel = relative(root, file);
  if (rel && !rel.startsWith('..') && !isAbsolute(rel)) return { uri: rel.split(sep).join('/'), uriBaseId: '%SRCROOT%' };
  return { uri: pathToFileURL(file).href };
}

function location(span: Span | undefined, root: string, message?: string, id?: number): Sarif.Location | undefined {
  if (!span || span.start.line < 1) return undefined;
  return {
    ...(id !== undefined ? { id } : {}),
    physicalLocation: { artifactLocation: uriOf(span.file, root), region: { startLine: span.start.line, startColumn: Math.max(1, span.start.col) } },
    ...(message ? { message: { text: message } } : {}),
  };
}

function fingerprint(c: DiffClass): string {
  let h = 2166136261;
  for (const ch of `${c.kind}|${c.old.decision?.rule?.text ?? c.old.decision?.action}|${c.new.decision?.rule?.text ?? c.new.decision?.action}|${c.cubes[0]?.flow}`) {
    h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

function result(c: DiffClass, root: string, suppressed: boolean): Sarif.Result {
  const loc = location(c.new.decision?.span ?? c.old.decision?.span, root);
  const related = location(c.old.decision?.span, root, `before: ${c.old.summary}`, 1);
  const cubes = c.cubes.map((x) => `  ${x.flow}${x.conditions.length ? ` [${x.conditions.join('; ')}]` : ''}`).join('\n');
  return {
    ruleId: `nfproof/diff-${c.kind}`,
    ruleIndex: KINDS.indexOf(c.kind),
    level: c.kind === 'allowed' ? 'warning' : 'note',
    message: { text: `${KIND_TITLE[c.kind]}: ${c.cubes.length} cube(s)\n${cubes}\nbefore: ${c.old.summary}\nafter: ${c.new.summary}\nwitness: ${c.witness.summary}` },
    ...(loc ? { locations: [loc] } : {}),
    ...(related ? { relatedLocations: [related] } : {}),
    partialFingerprints: { nfproofDiff: fingerprint(c) },
    ...(suppressed ? { suppressions: [{ kind: 'external', justification: 'expected by the --allow file' }] } : {}),
    properties: { family: c.family, replay: c.replay.status, decidedBy: c.decidedBy },
  };
}

export function diffToSarif(r: DiffReport, opts: { readonly root?: string } = {}): Sarif.Log {
  const root = opts.root ?? process.cwd();
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'nfproof',
            semanticVersion: '0.1.0',
            informationUri: 'https://github.com/nfproof/nfproof',
            rules: KINDS.map((k) => ({
              id: `nfproof/diff-${k}`,
              name: `Diff${k.replace(/(^|-)(\w)/g, (_m, _d, ch: string) => ch.toUpperCase())}`,
              shortDescription: { text: KIND_TITLE[k] },
              fullDescription: { text: DESCRIPTIONS[k] },
              help: { text: DESCRIPTIONS[k] },
              defaultConfiguration: { level: k === 'allowed' ? 'warning' : 'note' },
            })),
          },
        },
        originalUriBaseIds: { '%SRCROOT%': { uri: pathToFileURL(root.endsWith(sep) ? root : root + sep).href } },
        invocations: [
          {
            executionSuccessful: r.internalErrors.length === 0,
            toolExecutionNotifications: [
              ...r.internalErrors.map((e) => ({ level: 'error' as const, message: { text: e.message } })),
              ...r.unknown.map((u) => ({ level: 'warning' as const, message: { text: `not decided: ${u.reason}` } })),
            ],
          },
        ],
        results: [...r.classes.map((c) => result(c, root, false)), ...r.allowed.map((c) => result(c, root, true))],
        properties: { summary: diffSummary(r), status: r.status, assumptions: [...r.assumptions] },
      },
    ],
  };
}

/** `--format json`: the report as it is (bigints as decimal strings). */
export function diffToJson(r: DiffReport): string {
  return JSON.stringify({ tool: 'nfproof', version: '0.1.0', ...r }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v instanceof Set ? [...v] : v), 2) + '\n';
}
