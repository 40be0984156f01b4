import type { Word } from '../kinds/dsl.js';
import { restrictMatches } from '../ir/lower.js';
import { HOOKS, isHook } from '../ir/netfilter.js';
import type { Expectation, FindingKind, Flow, Translation } from '../ir/policy.js';
import { type Diagnostic, diag } from '../util/diagnostics.js';
import { FAMILIES, type Family, parseAddress } from '../util/ip.js';
import type { Span } from '../util/span.js';
import { type ClauseScope, parseClauses } from './clauses.js';

/**
 * `expect` statements (grammar/GRAMMAR.md):
 *
 *   expect reachable FLOW [via HOOK|CHAIN] [translated FIELD VALUE …] [with reply]
 *   expect unreachable FLOW [via HOOK|CHAIN]
 *   expect only FLOW {or FLOW} within FLOW [via HOOK|CHAIN]
 *   expect no shadowed|redundant|unreachable rules
 *
 * A FLOW is a list of match clauses read by the kinds in flow mode (`from`/`to` allowed),
 * optionally starting with `ip`/`ip6`. When the clauses fit only one family (an IPv4
 * address…), the flow is of that family.
 */
const FINDINGS: readonly FindingKind[] = ['shadowed', 'redundant', 'unreachable'];

function isAtom(w: Word | undefined, ...texts: string[]): boolean {
  return w?.type === 'atom' && texts.includes(w.text);
}

function spanOf(words: readonly Word[], fallback: Span): Span {
  if (words.length === 0) return fallback;
  const a = words[0].span;
  const b = words[words.length - 1].span;
  return { file: a.file, start: a.start, end: b.end };
}

/** Splits `words` at each top-level atom in `seps`; returns [leading part, ...[sep, part]]. */
function splitAt(words: readonly Word[], seps: readonly string[]): { head: Word[]; parts: { sep: Word & { type: 'atom' }; words: Word[] }[] } {
  const head: Word[] = [];
  const parts: { sep: Word & { type: 'atom' }; words: Word[] }[] = [];
  for (const w of words) {
    if (w.type === 'atom' && seps.includes(w.text)) parts.push({ sep: w, words: [] });
    else (parts.length ? parts[parts.length - 1].words : head).push(w);
  }
  return { head, parts };
}

export function parseFlowWords(words: readonly Word[], fallback: Span, scope: ClauseScope, report: (d: Diagnostic) => void): Flow | undefined {
  const span = spanOf(words, fallback);
  if (words.length === 0) {
    report(diag('error', 'E-empty-flow', fallback, 'a flow needs at least one clause', 'e.g. tcp from 10.0.0.0/8 to 192.168.1.10 dport 22'));
    return undefined;
  }
  const parsed = parseClauses(words, span, 'flow', scope, report);
  if (!parsed.ok) return undefined;
  return makeFlow(parsed.matches, parsed.family, span, report);
}

/** Fixes the flow's family (written, or the only one its clauses allow) and restricts its clauses to it. */
export function makeFlow(matches: Flow['matches'], written: Family | undefined, span: Span, report: (d: Diagnostic) => void): Flow | undefined {
  const possible = (written ? [written] : FAMILIES).filter((f) => restrictMatches(matches, f) !== undefined);
  if (possible.length === 0) {
    report(
      diag(
        'error',
        'E-no-family',
        span,
        written ? `no ${written === 'ipv4' ? 'IPv4' : 'IPv6'} packet fits this flow` : 'no packet fits this flow: its clauses are of different families',
        'use addresses of one family',
      ),
    );
    return undefined;
  }
  if (possible.length === 1) {
    return { family: possible[0], matches: restrictMatches(matches, possible[0])!, span };
  }
  return { matches, span };
}

export function parseExpectation(words: readonly Word[], span: Span, scope: ClauseScope, report: (d: Diagnostic) => void): Expectation | undefined {
  const head = words[0];
  const kind = head?.type === 'atom' ? head.text : '';
  const rest = words.slice(1);
  const restSpan = spanOf(rest, span);
  switch (kind) {
    case 'no': {
      const f = rest[0]?.type === 'atom' ? rest[0].text : '';
      if (!(FINDINGS as readonly string[]).includes(f) || !isAtom(rest[1], 'rules') || rest.length !== 2) {
        report(diag('error', 'E-expect-syntax', restSpan, '`expect no` takes shadowed, redundant or unreachable, then `rules`', 'e.g. expect no shadowed rules'));
        return undefined;
      }
      return { kind: 'no-findings', finding: f as FindingKind, span };
    }
    case 'reachable':
    case 'unreachable': {
      const { head: flowWords, parts } = splitAt(rest, kind === 'reachable' ? ['via', 'translated', 'with'] : ['via']);
      const flow = parseFlowWords(flowWords, restSpan, scope, report);
      let via: string | undefined;
      let translated: Translation | undefined;
      let withReply = false;
      let ok = flow !== undefined;
      for (const p of parts) {
        if (p.sep.text === 'via') {
          const v = readVia(p.sep, p.words, report);
          if (v === undefined) ok = false;
          else via = v;
        } else if (p.sep.text === 'translated') {
          translated = readTranslation(p.sep, p.words, report);
          if (!translated) ok = false;
        } else {
          if (!isAtom(p.words[0], 'reply') || p.words.length !== 1) {
            report(diag('error', 'E-expect-syntax', spanOf(p.words, p.sep.span), '`with` is followed by `reply`', 'with reply: the replies of the flow get back too'));
            ok = false;
          } else withReply = true;
        }
      }
      if (!ok || !flow) return undefined;
      return kind === 'reachable'
        ? { kind, flow, ...(via !== undefined ? { via } : {}), ...(translated ? { translated } : {}), withReply, span }
        : { kind, flow, ...(via !== undefined ? { via } : {}), span };
    }
    case 'only': {
      const { head: first, parts } = splitAt(rest, ['or', 'within', 'via']);
      const allowedWords: { words: Word[]; at: Span }[] = [{ words: first, at: restSpan }];
      let withinWords: { words: Word[]; at: Span } | undefined;
      let via: string | undefined;
      let ok = true;
      for (const p of parts) {
        if (p.sep.text === 'or') {
          if (withinWords) {
            report(diag('error', 'E-expect-syntax', p.sep.span, '`or` after `within`', 'expect only FLOW or FLOW … within FLOW'));
            ok = false;
          }
          allowedWords.push({ words: p.words, at: p.sep.span });
        } else if (p.sep.text === 'within') {
          if (withinWords) {
            report(diag('error', 'E-expect-syntax', p.sep.span, 'a second `within`', 'expect only FLOW or FLOW … within FLOW'));
            ok = false;
          }
          withinWords = { words: p.words, at: p.sep.span };
        } else {
          const v = readVia(p.sep, p.words, report);
          if (v === undefined) ok = false;
          else via = v;
        }
      }
      if (!withinWords) {
        report(diag('error', 'E-expect-syntax', restSpan, '`expect only` needs `within FLOW`: the packets the allowed flows are part of', 'e.g. expect only tcp dport { 80, 443 } within iif wan to 192.168.18.10'));
        return undefined;
      }
      const allowed = allowedWords.map((a) => parseFlowWords(a.words, a.at, scope, report));
      const within = parseFlowWords(withinWords.words, withinWords.at, scope, report);
      if (!ok || !within || allowed.some((a) => !a)) return undefined;
      return { kind: 'only', allowed: allowed as Flow[], within, ...(via !== undefined ? { via } : {}), span };
    }
    default:
      report(
        diag(
          'error',
          'E-expect-syntax',
          head?.span ?? span,
          head ? `\`${kind || 'this'}\` is not a kind of expectation` : '`expect` needs what to expect',
          'expect reachable FLOW …, expect unreachable FLOW, expect only FLOW within FLOW, expect no shadowed rules',
        ),
      );
      return undefined;
  }
}

function readVia(sep: Word, words: readonly Word[], report: (d: Diagnostic) => void): string | undefined {
  const w = words[0];
  if (w?.type !== 'atom' || words.length !== 1) {
    report(diag('error', 'E-expect-syntax', spanOf(words, sep.span), '`via` takes one hook or chain name', `a hook (${HOOKS.map((h) => h.toLowerCase()).join(', ')}) or a user chain`));
    return undefined;
  }
  const upper = w.text.toUpperCase();
  return isHook(upper) ? upper : w.text;
}

function readTranslation(sep: Word, words: readonly Word[], report: (d: Diagnostic) => void): Translation | undefined {
  const out: { saddr?: bigint; daddr?: bigint; sport?: number; dport?: number } = {};
  const bad = (span: Span, message: string) => {
    report(diag('error', 'E-expect-syntax', span, message, 'translated [saddr ADDR] [daddr ADDR] [sport PORT] [dport PORT]'));
    return undefined;
  };
  if (words.length === 0) return bad(sep.span, '`translated` needs the header values after NAT');
  for (let i = 0; i < words.length; i += 2) {
    const f = words[i];
    const v = words[i + 1];
    const field = f.type === 'atom' ? f.text : '';
    const text = v?.type === 'atom' ? v.text : undefined;
    if (field !== 'saddr' && field !== 'daddr' && field !== 'sport' && field !== 'dport') return bad(f.span, `\`${field || 'this'}\` is not a field that NAT changes`);
    if (field in out) return bad(f.span, `${field} is given twice`);
    if (text === undefined) return bad(f.span, `${field} needs a value`);
    if (field === 'saddr' || field === 'daddr') {
      const a = parseAddress(text);
      if (!a) return bad(v!.span, `\`${text}\` is not an address (one address, no prefix)`);
      out[field] = a.value;
    } else {
      if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) return bad(v!.span, `\`${text}\` is not a port`);
      out[field] = Number(text);
    }
  }
  return { ...out, span: spanOf(words, sep.span) };
}
