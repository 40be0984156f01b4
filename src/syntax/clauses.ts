import { type Definition, type DslContext, type Word, WordCursor, wordText } from '../kinds/dsl.js';
import {
  MATCH_KEYWORDS,
  type Match,
  type MatchKind,
  TARGET_KEYWORDS,
  type Target,
  type TargetKind,
  printTarget,
  targetEffect,
} from '../kinds/index.js';
import { closest } from '../ir/check/suggest.js';
import { type Diagnostic, diag } from '../util/diagnostics.js';
import { type Family, parsePrefix, parseRange } from '../util/ip.js';
import type { Span } from '../util/span.js';

/**
 * Reads the clauses of one rule (or one expect flow) from its words. Each clause starts with
 * a keyword that some kind owns (src/kinds); the kind reads its own arguments. Besides the
 * kinds' clauses a rule may hold:
 *
 *   ip | ip6          first word only: the rule applies to that family only
 *   service NAME      the match clauses of a `service` definition
 *   comment "TEXT"    the rule's comment (kept in the IR and emitted as -m comment)
 *
 * After a clause that fails, reading goes on at the next word that starts a clause, so every
 * mistake of a line is reported, each once.
 */

export interface ServiceDef {
  readonly name: string;
  readonly span: Span;
  readonly nameSpan?: Span;
  readonly words: readonly Word[];
}

/** The names a line can refer to. */
export interface ClauseScope {
  readonly defines: ReadonlyMap<string, Definition>;
  /** Parses (once) and returns the matches of a service, or undefined if it is unknown or broken. */
  service(name: string, use: Span, report: (d: Diagnostic) => void): readonly Match[] | undefined;
  readonly serviceNames: () => Iterable<string>;
  /** Called for every @name that resolves. */
  markDefineUsed(name: string): void;
  /** Defines that are part of a cycle (already reported): resolve to nothing, silently. */
  readonly brokenDefines: ReadonlySet<string>;
}

export type ClauseMode = 'rule' | 'flow' | 'service';

export interface ParsedClauses {
  readonly family?: Family;
  readonly familySpan?: Span;
  readonly matches: readonly Match[];
  readonly target?: Target;
  readonly comment?: string;
  /** True when nothing was reported as an error while reading. */
  readonly ok: boolean;
}

const FAMILY_WORDS: Readonly<Record<string, Family>> = { ip: 'ipv4', ip6: 'ipv6' };

function kindsFor<K extends { accepts?(cur: WordCursor, ctx: DslContext): boolean }>(
  map: ReadonlyMap<string, readonly K[]>,
  key: string,
  cur: WordCursor,
  ctx: DslContext,
): K | undefined {
  // Registry order decides between kinds sharing a keyword; each may look ahead to decline.
  return map.get(key)?.find((k) => !k.accepts || k.accepts(cur, ctx));
}

function startsClause(w: Word | undefined): boolean {
  if (w?.type !== 'atom') return false;
  return MATCH_KEYWORDS.has(w.text) || TARGET_KEYWORDS.has(w.text) || w.text === 'comment' || w.text === 'service';
}

export function parseClauses(
  words: readonly Word[],
  endSpan: Span,
  mode: ClauseMode,
  scope: ClauseScope,
  report: (d: Diagnostic) => void,
  opts: { readonly family?: Family } = {},
): ParsedClauses {
  let ok = true;
  const rep = (d: Diagnostic) => {
    if (d.severity === 'error') ok = false;
    report(d);
  };
  const cur = new WordCursor(words, endSpan);
  const matches: Match[] = [];
  let target: Target | undefined;
  let comment: string | undefined;
  let family: Family | undefined;
  let familySpan: Span | undefined;

  const first = cur.peek();
  if (first?.type === 'atom' && first.text in FAMILY_WORDS) {
    family = FAMILY_WORDS[first.text];
    familySpan = first.span;
    cur.next();
    if (mode === 'service') {
      rep(diag('error', 'E-service-family', first.span, 'a service cannot be restricted to a family', `write \`${first.text}\` at the start of the rules that use it`));
    } else if (opts.family && opts.family !== family) {
      rep(
        diag('error', 'E-family-mismatch', first.span, `\`${first.text}\` rule in a table of the other family`, 'move the rule to an inet table (`table NAME`) or a table of its family'),
      );
    }
  }

  const ctx: DslContext = {
    mode: mode === 'flow' ? 'flow' : 'rule',
    ...((family ?? opts.family) ? { family: family ?? opts.family } : {}),
    previous: matches,
    resolve(ref) {
      if (scope.brokenDefines.has(ref.name)) return undefined;
      const d = scope.defines.get(ref.name);
      if (!d) {
        const near = closest(ref.name, scope.defines.keys());
        rep(
          diag('error', 'E-undefined-define', ref.span, `@${ref.name} is not defined`, near ? `did you mean @${near}?` : `add \`define ${ref.name} = …\` (a value or a { set })`),
        );
        return undefined;
      }
      scope.markDefineUsed(ref.name);
      return d;
    },
    report: rep,
  };

  /**
   * After a failed clause: go on at the next word that can start one. Words of the kinds'
   * vocabulary and values are skipped as leftovers of the failed clause; a word nobody knows
   * stops the skip, so that it is reported too.
   */
  const skip = (from: number) => {
    if (cur.position === from) cur.next();
    while (!cur.atEnd() && !startsClause(cur.peek()) && !isStrangeWord(cur.peek()!)) cur.next();
  };

  while (!cur.atEnd()) {
    const w = cur.peek()!;
    const start = cur.position;
    if (w.type !== 'atom') {
      rep(unexpectedWord(w));
      skip(start);
      continue;
    }

    if (w.text === 'comment') {
      cur.next();
      const s = cur.next();
      if (mode !== 'rule') {
        rep(diag('error', 'E-comment-here', w.span, `\`comment\` belongs to a rule, not to ${mode === 'flow' ? 'an expect flow' : 'a service'}`, 'use a # comment for notes'));
      } else if (s?.type !== 'string') {
        rep(diag('error', 'E-comment-syntax', s?.span ?? w.span, '`comment` needs a quoted text', 'e.g. comment "web from inside"'));
        skip(cur.position);
      } else if (comment !== undefined) {
        rep(diag('error', 'E-two-comments', w.span, 'a rule has one comment', 'join the texts into one string'));
      } else {
        comment = s.value;
      }
      continue;
    }

    if (w.text === 'service') {
      cur.next();
      const n = cur.next();
      if (n?.type !== 'atom') {
        rep(diag('error', 'E-service-syntax', n?.span ?? w.span, '`service` needs the name of a service', 'e.g. service dns'));
        skip(cur.position);
        continue;
      }
      const ms = scope.service(n.text, n.span, rep);
      if (!ms) {
        skip(cur.position);
        continue;
      }
      if (mode === 'flow') {
        const bad = ms.find((m) => !(MATCH_KEYWORDS_BY_KIND.get(m.kind)?.inFlows ?? false));
        if (bad) {
          rep(diag('error', 'E-not-in-flow', n.span, `service ${n.text} has a clause that cannot describe a flow`, 'expect flows use header and conntrack-state matches only'));
          continue;
        }
      }
      matches.push(...ms);
      continue;
    }

    const mk = kindsFor(MATCH_KEYWORDS, w.text, cur, ctx) as MatchKind<Match> | undefined;
    const tk = mk ? undefined : (kindsFor(TARGET_KEYWORDS, w.text, cur, ctx) as TargetKind<Target> | undefined);

    if (mk) {
      if (mode === 'flow' && !mk.inFlows) {
        rep(diag('error', 'E-not-in-flow', w.span, `\`${w.text}\` cannot describe a flow`, 'expect flows use header and conntrack-state matches (addresses, ports, protocol, interfaces, ct state…)'));
        const before = cur.position;
        const silent: DslContext = { ...ctx, report: () => undefined };
        mk.parse(cur, silent);
        skip(before);
        continue;
      }
      const m = mk.parse(cur, ctx);
      if (m) matches.push(m);
      else {
        ok = false;
        skip(start);
      }
      continue;
    }

    if (tk) {
      if (mode !== 'rule') {
        rep(
          diag(
            'error',
            'E-action-here',
            w.span,
            mode === 'flow' ? `\`${w.text}\` is an action; an expect flow only describes packets` : `\`${w.text}\` is an action; a service is a list of match clauses`,
            mode === 'flow' ? undefined : 'put the action in the rule that uses the service',
          ),
        );
        skip(start);
        continue;
      }
      const t = tk.parse(cur, ctx);
      if (!t) {
        ok = false;
        skip(start);
        continue;
      }
      if (target) {
        const continues = targetEffect(target, family ?? opts.family ?? 'ipv4').type === 'continue';
        rep(
          diag(
            'error',
            'E-two-actions',
            t.span,
            `a rule has one action, and this one already has \`${printTarget(target)}\``,
            continues
              ? `\`${printTarget(target)}\` goes on to the next rule: write \`${printTarget(t)}\` as a rule of its own after it (e.g. \`log prefix "x: "; drop\`)`
              : 'split it into two rules',
          ),
        );
        continue;
      }
      target = t;
      continue;
    }

    const d = unknownWord(w, mode, start === 0, cur.peek(1));
    rep(d);
    if (d.code === 'E-misplaced-block' || d.code === 'E-policy-syntax') break; // the line is not a rule at all
    if (d.code === 'E-unknown-clause') cur.position = start + 2; // its second word is part of the same report
    skip(start);
  }

  if (mode === 'rule' && !target && ok) {
    rep(
      diag(
        'error',
        'E-no-action',
        words.length ? { file: endSpan.file, start: words[0].span.start, end: endSpan.end } : endSpan,
        'this rule has no action',
        'end it with an action: accept, drop, reject, return, jump CHAIN, log …, snat to …, or `counter` to only count',
      ),
    );
  }

  return {
    ...(family ? { family, familySpan } : {}),
    matches,
    ...(target ? { target } : {}),
    ...(comment !== undefined ? { comment } : {}),
    ok,
  };
}

/** Every word the kinds' syntax lines use (`rate`, `burst`, `prefix`, `level`…). */
const VOCABULARY = new Set(
  [...MATCH_KEYWORDS.values(), ...TARGET_KEYWORDS.values()]
    .flat()
    .flatMap((k) => k.syntax)
    .flatMap((line) => line.toLowerCase().match(/[a-z][a-z0-9-]*/g) ?? []),
);

/** An identifier-like word that no kind uses: probably a typo, worth its own report. */
function isStrangeWord(w: Word): boolean {
  return w.type === 'atom' && /^[A-Za-z][A-Za-z_-]*$/.test(w.text) && !VOCABULARY.has(w.text.toLowerCase());
}

const MATCH_KEYWORDS_BY_KIND = new Map<string, MatchKind<Match>>(
  [...MATCH_KEYWORDS.values()].flat().map((k) => [k.kind as string, k]),
);

const ALL_WORDS = [...MATCH_KEYWORDS.keys(), ...TARGET_KEYWORDS.keys(), 'comment', 'service'];

function unknownWord(w: Word & { type: 'atom' }, mode: ClauseMode, atStart: boolean, next: Word | undefined): Diagnostic {
  const text = w.text;
  const owners = [...(MATCH_KEYWORDS.get(text) ?? []), ...(TARGET_KEYWORDS.get(text) ?? [])];
  if (owners.length) {
    // A keyword several kinds share (`ct …`), none of which took what follows.
    const forms = owners.flatMap((k) => k.syntax.filter((x) => x.startsWith(`${text} `) || x === text));
    const seconds = [...new Set(forms.map((f) => f.split(/\s+/)[1]).filter((x): x is string => x !== undefined && /^[a-z-]+$/.test(x)))];
    const nextText = next?.type === 'atom' ? next.text : undefined;
    const near = nextText ? closest(nextText, seconds) : undefined;
    return diag(
      'error',
      'E-unknown-clause',
      next ? { ...w.span, end: next.span.end } : w.span,
      `\`${text}${nextText ? ` ${nextText}` : ''}\` is not a clause nfproof knows`,
      near ? `did you mean \`${text} ${near}\`?` : `the ${text} clauses are: ${forms.join('; ')}`,
    );
  }
  if (parsePrefix(text) || parseRange(text)) {
    return diag('error', 'E-unknown-word', w.span, `an address needs a keyword in front of it`, `write saddr ${text} or daddr ${text}`);
  }
  if (/^\d+(-\d+)?$/.test(text)) {
    return diag('error', 'E-unknown-word', w.span, `a number needs a keyword in front of it`, `for a port write dport ${text} (after tcp or udp)`);
  }
  if (atStart && (text === 'chain' || text === 'table' || text === 'host')) {
    return diag('error', 'E-misplaced-block', w.span, `\`${text}\` cannot start a rule`, 'a block is not closed: is a `}` missing above?');
  }
  if (atStart && text === 'policy') {
    return diag('error', 'E-policy-syntax', w.span, 'a chain policy is written in the chain header', 'write: chain input policy drop { … }');
  }
  if (text === 'inet' || text === 'ip' || text === 'ip6') {
    return diag('error', 'E-family-position', w.span, `\`${text}\` can only be the first word of a ${mode === 'flow' ? 'flow' : 'rule'}`, 'move it to the start');
  }
  const near = closest(text, ALL_WORDS);
  return diag(
    'error',
    'E-unknown-word',
    w.span,
    `\`${text}\` is not a ${mode === 'rule' ? 'match or action' : 'match'} nfproof knows`,
    near ? `did you mean \`${near}\`?` : 'see grammar/REFERENCE.md for every clause',
  );
}

function unexpectedWord(w: Word): Diagnostic {
  const what = w.type === 'string' ? `string ${wordText(w)}` : w.type === 'set' ? '{ set }' : w.type === 'ref' ? `@${w.name}` : `\`${wordText(w)}\``;
  const hint =
    w.type === 'string'
      ? 'a text after a rule goes in `comment "…"`'
      : w.type === 'comma'
        ? 'a list of values is written as a set: { 80, 443 }'
        : w.type === 'bang' || w.type === 'neq'
          ? 'negation comes after the keyword: saddr != 10.0.0.1'
          : 'a value needs a keyword in front of it, e.g. saddr @inside or dport { 80, 443 }';
  return diag('error', 'E-unexpected-word', w.span, `unexpected ${what}`, hint);
}
