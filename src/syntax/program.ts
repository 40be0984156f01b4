import { dirname, isAbsolute, join, normalize } from 'node:path';
import type { Definition, Word } from '../kinds/dsl.js';
import type { Match } from '../kinds/index.js';
import type { SurfaceChain, SurfaceHost, SurfacePolicy, SurfaceRule, SurfaceTable, TableFamily } from '../ir/lower-types.js';
import type { Expectation } from '../ir/policy.js';
import { closest } from '../ir/check/suggest.js';
import { type Diagnostic, diag } from '../util/diagnostics.js';
import type { SourceFiles } from '../util/sources.js';
import type { Span } from '../util/span.js';
import type { DefineStmt, FileAst, HostStmt, IncludeStmt, ServiceStmt, Statement, TableStmt } from './ast.js';
import { type ClauseScope, type ServiceDef, parseClauses } from './clauses.js';
import { parseExpectation } from './expect.js';
import { readHost } from './host.js';
import { parseFile } from './parser.js';

/**
 * From files to a SurfacePolicy: reads the root file and its includes, collects the
 * declarations (defines, services, host, tables, expects), and reads every rule's clauses
 * with the kinds. Name resolution that needs the whole program happens here (defines,
 * services); everything about tables, chains and interfaces is left to lowering.
 */

export interface Scope extends ClauseScope {
  readonly host?: SurfaceHost;
}

const FAMILY_WORDS: Readonly<Record<string, TableFamily>> = { ip: 'ipv4', ip6: 'ipv6', inet: 'inet' };
const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

export interface ProgramResult {
  readonly surface: SurfacePolicy;
  readonly scope: Scope;
}

export function buildProgram(
  root: string,
  rootText: string | undefined,
  sources: SourceFiles,
  report: (d: Diagnostic) => void,
): ProgramResult {
  const files: string[] = [];
  const statements: Statement[] = [];
  loadFile(root, rootText, sources, report, files, statements, []);

  const defines = new Map<string, Definition>();
  const defineSpans = new Map<string, Span>();
  const services = new Map<string, ServiceDef>();
  const hosts: HostStmt[] = [];
  const tables: TableStmt[] = [];
  const expects: { words: readonly Word[]; span: Span }[] = [];

  for (const s of statements) {
    switch (s.kind) {
      case 'define':
        addDefine(s, defines, defineSpans, report);
        break;
      case 'service':
        addService(s, services, report);
        break;
      case 'host':
        if (hosts.length) {
          report(diag('error', 'E-duplicate-host', s.name.span, 'a policy describes one host', 'merge the host blocks', [{ span: hosts[0].name.span, message: 'first host block' }]));
        } else hosts.push(s);
        break;
      case 'table':
        tables.push(s);
        break;
      case 'expect':
        expects.push(s);
        break;
      case 'include':
        break;
      case 'stray':
        report(strayDiagnostic(s.words, s.span));
        break;
      default: {
        const never: never = s;
        void never;
      }
    }
  }

  const usedDefines = new Set<string>();
  const brokenDefines = defineCycles(defines, report);
  const scope = makeScope(defines, services, usedDefines, brokenDefines, report);

  const host = hosts[0] ? readHost(hosts[0], report) : undefined;
  const surfaceTables = tables.map((t) => readTable(t, scope, report)).filter((t): t is SurfaceTable => t !== undefined);
  const expectations = expects.map((e) => parseExpectation(e.words, e.span, scope, report)).filter((e): e is Expectation => e !== undefined);

  // Defines referenced by other defines count as used; then warn about the rest.
  for (const d of defines.values()) for (const r of refsIn(d.value)) if (usedDefines.has(d.name)) usedDefines.add(r);
  for (const d of defines.values()) {
    if (!usedDefines.has(d.name) && !isReferencedByDefine(d.name, defines)) {
      report(diag('warning', 'W-unused-define', defineSpans.get(d.name) ?? d.span, `@${d.name} is defined but never used`, 'remove it, or use it in a rule'));
    }
  }
  // Services that were never used are still read, so their mistakes show.
  for (const s of services.values()) {
    if (!scope.usedServices.has(s.name)) {
      scope.service(s.name, s.span, report, false);
      report(diag('warning', 'W-unused-service', s.nameSpan ?? s.span, `service ${s.name} is defined but never used`, 'remove it, or use it in a rule: service NAME'));
    }
  }

  return {
    surface: { ...(host ? { host } : {}), tables: surfaceTables, expectations, sources: files },
    scope: { ...scope, ...(host ? { host } : {}) },
  };
}

/** A file on the include path, with the include statement in it that led further down. */
interface IncludeStep {
  readonly file: string;
  readonly via: IncludeStmt;
}

function loadFile(
  path: string,
  text: string | undefined,
  sources: SourceFiles,
  report: (d: Diagnostic) => void,
  files: string[],
  out: Statement[],
  ancestors: readonly IncludeStep[],
): void {
  if (text === undefined) text = sources.read(path);
  else sources.add(path, text);
  files.push(path);
  const parsed = parseFile(text, path);
  parsed.diagnostics.forEach(report);
  for (const s of parsed.ast.statements) {
    if (s.kind === 'include') include(s, [...ancestors, { file: path, via: s }], sources, report, files, out);
    else out.push(s);
  }
}

function include(
  s: IncludeStmt,
  stack: readonly IncludeStep[],
  sources: SourceFiles,
  report: (d: Diagnostic) => void,
  files: string[],
  out: Statement[],
): void {
  // An empty path comes from a missing or unquoted one, already reported by the parser.
  if (s.path === '') return;
  if (s.extra.length) {
    report(diag('error', 'E-syntax', s.extra[0].span, 'unexpected words after the include path', 'include "FILE.nfp"'));
  }
  const from = stack[stack.length - 1].file;
  const target = isAbsolute(s.path) ? normalize(s.path) : normalize(join(dirname(from), s.path));
  const at = stack.findIndex((c) => c.file === target);
  if (at >= 0) {
    const loop = stack.slice(at);
    report(
      diag(
        'error',
        'E-include-cycle',
        s.pathSpan,
        `include cycle: ${[...loop.map((c) => c.file), target].join(' → ')}`,
        'a file cannot include itself, directly or through other files; move what both need into a third file',
        loop.slice(0, -1).map((c) => ({ span: c.via.pathSpan, message: `${c.file} includes ${c.via.path}` })),
      ),
    );
    return;
  }
  if (files.includes(target)) return; // already read through another include: once is enough
  let text: string;
  try {
    text = sources.read(target);
  } catch (e) {
    const code = e instanceof Error && 'code' in e ? String((e as { code: unknown }).code) : '';
    report(
      diag(
        'error',
        'E-include-read',
        s.pathSpan,
        `cannot read ${target}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : e instanceof Error ? e.message : String(e)}`,
        'include paths are relative to the including file',
      ),
    );
    return;
  }
  loadFile(target, text, sources, report, files, out, stack);
}

function addDefine(s: DefineStmt, defines: Map<string, Definition>, spans: Map<string, Span>, report: (d: Diagnostic) => void): void {
  if (!NAME_RE.test(s.name.text)) {
    report(diag('error', 'E-bad-name', s.name.span, `\`${s.name.text}\` cannot be a define name`, 'letters, digits, _ . - (it is used as @name)'));
    return;
  }
  const earlier = spans.get(s.name.text);
  if (earlier) {
    report(diag('error', 'E-duplicate-define', s.name.span, `@${s.name.text} is defined twice`, 'keep one definition', [{ span: earlier, message: 'first defined here' }]));
    return;
  }
  spans.set(s.name.text, s.name.span);
  if (s.value.length !== 1) {
    const comma = s.value.some((w) => w.type === 'comma');
    report(
      diag(
        'error',
        'E-define-value',
        s.value[0]?.span ?? s.span,
        s.value.length === 0 ? `@${s.name.text} has no value` : `the value of @${s.name.text} is more than one word`,
        comma || s.value.length > 1 ? 'write several values as a set: define web = { 80, 443 }' : 'e.g. define inside = { 192.168.1.0/24 }',
      ),
    );
    return;
  }
  defines.set(s.name.text, { name: s.name.text, value: s.value, span: s.span });
}

function addService(s: ServiceStmt, services: Map<string, ServiceDef>, report: (d: Diagnostic) => void): void {
  if (!NAME_RE.test(s.name.text)) {
    report(diag('error', 'E-bad-name', s.name.span, `\`${s.name.text}\` cannot be a service name`, 'letters, digits, _ . -'));
    return;
  }
  const earlier = services.get(s.name.text);
  if (earlier) {
    report(diag('error', 'E-duplicate-service', s.name.span, `service ${s.name.text} is defined twice`, 'keep one definition', [{ span: earlier.nameSpan ?? earlier.span, message: 'first defined here' }]));
    return;
  }
  if (s.words.length === 0) {
    report(diag('error', 'E-service-value', s.span, `service ${s.name.text} has no clauses`, 'e.g. service dns = proto { udp, tcp } dport 53'));
    return;
  }
  services.set(s.name.text, { name: s.name.text, span: s.span, nameSpan: s.name.span, words: s.words });
}

function refsIn(words: readonly Word[]): string[] {
  const out: string[] = [];
  for (const w of words) {
    if (w.type === 'ref') out.push(w.name);
    else if (w.type === 'set') for (const item of w.items) out.push(...refsIn(item));
  }
  return out;
}

function isReferencedByDefine(name: string, defines: ReadonlyMap<string, Definition>): boolean {
  for (const d of defines.values()) if (d.name !== name && refsIn(d.value).includes(name)) return true;
  return false;
}

/** Reports each cycle among defines once; returns the defines on cycles. */
function defineCycles(defines: ReadonlyMap<string, Definition>, report: (d: Diagnostic) => void): Set<string> {
  const broken = new Set<string>();
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (name: string) => {
    state.set(name, 'open');
    path.push(name);
    for (const r of refsIn(defines.get(name)!.value)) {
      if (!defines.has(r)) continue;
      if (state.get(r) === 'open') {
        const loop = path.slice(path.indexOf(r));
        loop.forEach((n) => broken.add(n));
        const spans = loop.map((n) => defines.get(n)!.span);
        report(
          diag(
            'error',
            'E-define-cycle',
            defines.get(name)!.span,
            loop.length === 1 ? `@${name} refers to itself` : `defines refer to each other in a cycle: ${[...loop, r].map((n) => `@${n}`).join(' → ')}`,
            'a define can use other defines, but not itself through them',
            spans.slice(0, -1).map((s, i) => ({ span: s, message: `@${loop[i]} uses @${loop[i + 1]}` })),
          ),
        );
      } else if (!state.has(r)) visit(r);
    }
    path.pop();
    state.set(name, 'done');
  };
  for (const n of defines.keys()) if (!state.has(n)) visit(n);
  return broken;
}

function makeScope(
  defines: ReadonlyMap<string, Definition>,
  services: ReadonlyMap<string, ServiceDef>,
  usedDefines: Set<string>,
  brokenDefines: ReadonlySet<string>,
  _report: (d: Diagnostic) => void,
): ClauseScope & { usedServices: Set<string>; service(name: string, use: Span, report: (d: Diagnostic) => void, markUsed?: boolean): readonly Match[] | undefined } {
  const parsedServices = new Map<string, readonly Match[] | null>();
  const inProgress = new Set<string>();
  const usedServices = new Set<string>();
  const scope = {
    defines,
    brokenDefines,
    usedServices,
    markDefineUsed: (n: string) => usedDefines.add(n),
    serviceNames: () => services.keys(),
    service(name: string, use: Span, report: (d: Diagnostic) => void, markUsed = true): readonly Match[] | undefined {
      const def = services.get(name);
      if (!def) {
        const near = closest(name, services.keys());
        report(diag('error', 'E-undefined-service', use, `no service \`${name}\``, near ? `did you mean \`${near}\`?` : `add \`service ${name} = CLAUSES\``));
        return undefined;
      }
      if (markUsed) usedServices.add(name);
      const done = parsedServices.get(name);
      if (done !== undefined) return done ?? undefined;
      if (inProgress.has(name)) {
        report(diag('error', 'E-service-cycle', use, `service ${name} uses itself`, 'a service can use other services, but not itself through them'));
        return undefined;
      }
      inProgress.add(name);
      const endSpan = def.words[def.words.length - 1].span;
      const r = parseClauses(def.words, endSpan, 'service', scope, report);
      inProgress.delete(name);
      const result = r.ok ? r.matches : null;
      parsedServices.set(name, result);
      return result ?? undefined;
    },
  };
  return scope;
}

function readTable(t: TableStmt, scope: ClauseScope, report: (d: Diagnostic) => void): SurfaceTable | undefined {
  let family: TableFamily = 'inet';
  if (t.family) {
    const f = FAMILY_WORDS[t.family.text];
    if (!f) {
      report(diag('error', 'E-bad-family', t.family.span, `\`${t.family.text}\` is not a family`, 'table ip NAME (IPv4), table ip6 NAME (IPv6), or table NAME for both'));
      return undefined;
    }
    family = f;
  }
  for (const l of t.stray) {
    const w = l.words[0];
    const looksLikeRule = w.type === 'atom' && w.text !== 'chain';
    report(
      diag(
        'error',
        'E-not-a-chain',
        l.span,
        'only chains go directly in a table',
        looksLikeRule ? 'put rules inside a chain: chain input { … }' : 'write chain NAME [policy accept|drop] { … }',
      ),
    );
  }
  const chains: SurfaceChain[] = t.chains.map((c) => {
    const rules: SurfaceRule[] = [];
    for (const line of c.rules) {
      const r = parseClauses(line.words, line.words[line.words.length - 1].span, 'rule', scope, report, family === 'inet' ? {} : { family });
      if (!r.ok || !r.target) continue;
      rules.push({
        ...(r.family ? { family: r.family } : {}),
        matches: r.matches,
        target: r.target,
        ...(r.comment !== undefined ? { comment: r.comment } : {}),
        span: line.span,
      });
    }
    return { name: c.name, ...(c.policy ? { policy: c.policy } : {}), rules, span: c.span };
  });
  return { family, name: t.name, chains, span: t.span };
}

function strayDiagnostic(words: readonly Word[], span: Span): Diagnostic {
  const w = words[0];
  if (!w) return diag('error', 'E-unbalanced-brace', span, 'this `}` closes nothing', 'remove it, or look for a missing `{` above');
  const text = w.type === 'atom' ? w.text : '';
  const statements = ['include', 'host', 'define', 'service', 'table', 'expect'];
  const near = text ? closest(text, [...statements, 'chain']) : undefined;
  const hint =
    text === 'chain'
      ? 'chains go inside a table: table filter { chain input { … } }'
      : text === 'interface' || text === 'route' || text === 'sysctl'
        ? `\`${text}\` lines go inside a host block: host NAME { … }`
        : near
          ? `did you mean \`${near}\`?`
          : `a statement starts with ${statements.join(', ')}; rules go inside a chain`;
  return diag('error', 'E-unknown-statement', w.span, text ? `\`${text}\` does not start a statement` : 'a statement cannot start here', hint);
}

