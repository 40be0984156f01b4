import type { IToken } from 'chevrotain';
import type { Definition, DslContext, Word } from '../../../src/kinds/dsl.js';
import { WordCursor } from '../../../src/kinds/dsl.js';
import { MATCH_KEYWORDS, type Match, TARGET_KEYWORDS, type Target } from '../../../src/kinds/index.js';
import type { Diagnostic } from '../../../src/util/diagnostics.js';
import type { Family } from '../../../src/util/ip.js';
import type { Span } from '../../../src/util/span.js';
import { NfpLexer } from '../../../src/syntax/tokens.js';

/**
 * Test support: turns one rule line of .nfp into the kinds' Words with the real lexer of
 * src/syntax, and reads clauses the way the rule parser does (each clause starts with a
 * keyword; kinds sharing a keyword decide with `accepts`). Kept small and independent of the
 * rule parser so the kinds can be tested on their own.
 */

function spanOf(t: IToken, file: string): Span {
  return {
    file,
    start: { line: t.startLine ?? 1, col: t.startColumn ?? 1, offset: t.startOffset },
    end: { line: t.endLine ?? 1, col: (t.endColumn ?? 0) + 1, offset: (t.endOffset ?? t.startOffset) + 1 },
  };
}

export function words(text: string, file = 'case.nfp'): Word[] {
  const lexed = NfpLexer.tokenize(text);
  if (lexed.errors.length) throw new Error(`lexer: ${lexed.errors.map((e) => e.message).join('; ')}`);
  const tokens = lexed.tokens;
  let i = 0;
  const one = (): Word => {
    const t = tokens[i++];
    const span = spanOf(t, file);
    switch (t.tokenType.name) {
      case 'String':
        return { type: 'string', value: JSON.parse(t.image) as string, span };
      case 'Ref':
        return { type: 'ref', name: t.image.slice(1), span };
      case 'Bang':
        return { type: 'bang', span };
      case 'Neq':
        return { type: 'neq', span };
      case 'Comma':
        return { type: 'comma', span };
      case 'LBrace': {
        const items: Word[][] = [];
        let cur: Word[] = [];
        while (i < tokens.length && tokens[i].tokenType.name !== 'RBrace') {
          if (tokens[i].tokenType.name === 'Comma') {
            i++;
            items.push(cur);
            cur = [];
          } else if (tokens[i].tokenType.name === 'Newline') {
            i++;
          } else {
            cur.push(one());
          }
        }
        const close = tokens[i++];
        if (cur.length) items.push(cur);
        return { type: 'set', items, span: { ...span, end: spanOf(close, file).end } };
      }
      default:
        return { type: 'atom', text: t.image, span };
    }
  };
  const out: Word[] = [];
  while (i < tokens.length) out.push(one());
  return out;
}

export interface ParsedRule {
  readonly matches: Match[];
  readonly target?: Target;
  readonly diagnostics: Diagnostic[];
}

export interface ParseOptions {
  readonly family?: Family;
  readonly mode?: 'rule' | 'flow';
  readonly defines?: Readonly<Record<string, string>>;
}

/** Parses a rule's clauses (matches, then at most one target) from DSL text. */
export function parseRule(text: string, opts: ParseOptions = {}): ParsedRule {
  const ws = words(text);
  const endSpan = ws.length ? ws[ws.length - 1].span : { file: 'case.nfp', start: { line: 1, col: 1, offset: 0 }, end: { line: 1, col: 1, offset: 0 } };
  const cur = new WordCursor(ws, endSpan);
  const diagnostics: Diagnostic[] = [];
  const matches: Match[] = [];
  let target: Target | undefined;
  const defs = new Map<string, Definition>();
  for (const [name, value] of Object.entries(opts.defines ?? {})) {
    defs.set(name, { name, value: words(value), span: endSpan });
  }
  const ctx: DslContext = {
    mode: opts.mode ?? 'rule',
    ...(opts.family ? { family: opts.family } : {}),
    previous: matches,
    resolve(ref) {
      const d = defs.get(ref.name);
      if (!d) diagnostics.push({ severity: 'error', code: 'E-undefined-define', message: `@${ref.name} is not defined`, span: ref.span });
      return d;
    },
    report(d) {
      diagnostics.push(d);
    },
  };
  while (!cur.atEnd()) {
    const w = cur.peek()!;
    const key = w.type === 'atom' ? w.text : undefined;
    const start = cur.position;
    const m = (key !== undefined ? (MATCH_KEYWORDS.get(key) ?? []) : []).filter((k) => !k.accepts || k.accepts(cur, ctx));
    const t = (key !== undefined ? (TARGET_KEYWORDS.get(key) ?? []) : []).filter((k) => !k.accepts || k.accepts(cur, ctx));
    if (m.length + t.length !== 1) {
      diagnostics.push({
        severity: 'error',
        code: m.length + t.length === 0 ? 'T-unknown-clause' : 'T-ambiguous-clause',
        message: `${m.length + t.length === 0 ? 'no' : 'several'} kinds for \`${key ?? w.type}\` (${[...m, ...t].map((k) => k.kind).join(', ')})`,
        span: w.span,
      });
      break;
    }
    if (m.length === 1) {
      if (target) {
        diagnostics.push({ severity: 'error', code: 'T-match-after-target', message: 'match after the target', span: w.span });
        break;
      }
      const node = m[0].parse(cur, ctx);
      if (!node) break;
      matches.push(node);
    } else {
      if (target) {
        diagnostics.push({ severity: 'error', code: 'T-two-targets', message: 'two targets', span: w.span });
        break;
      }
      const node = t[0].parse(cur, ctx);
      if (!node) break;
      target = node;
    }
    if (cur.position === start) throw new Error(`kind for \`${key}\` consumed nothing`);
  }
  return { matches, ...(target ? { target } : {}), diagnostics };
}
