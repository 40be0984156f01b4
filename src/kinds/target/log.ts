import { diag } from '../../util/diagnostics.js';
import { quoteIptablesString, utf8Length } from '../../util/iptables-quote.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { TargetKind } from '../kind.js';

/**
 * `log [prefix "…"] [level LEVEL] [tcp-sequence] [tcp-options] [ip-options] [uid] [macdecode]`
 * (-j LOG): write a kernel log line and go on with the next rule. Levels are syslog's (emerg …
 * debug, or 0-7); the default is warn (4), which iptables-save leaves out. The prefix holds at
 * most 29 bytes.
 */
export interface LogTarget {
  readonly kind: 'log';
  readonly prefix?: string;
  readonly level?: number;
  readonly flags: readonly LogFlag[];
  readonly span: Span;
}

export type LogFlag = 'tcp-sequence' | 'tcp-options' | 'ip-options' | 'uid' | 'macdecode';
const FLAG_ORDER: readonly LogFlag[] = ['tcp-sequence', 'tcp-options', 'ip-options', 'uid', 'macdecode'];
export const LEVELS = ['emerg', 'alert', 'crit', 'err', 'warn', 'notice', 'info', 'debug'] as const;
const LEVEL_ALIASES: Readonly<Record<string, number>> = { panic: 0, error: 3, warning: 4 };
const DEFAULT_LEVEL = 4;
const PREFIX_MAX = 29;

export function parseLevel(text: string): number | undefined {
  const i = (LEVELS as readonly string[]).indexOf(text);
  if (i >= 0) return i;
  if (text in LEVEL_ALIASES) return LEVEL_ALIASES[text];
  return /^[0-7]$/.test(text) ? Number(text) : undefined;
}

export const logKind: TargetKind<LogTarget> = {
  kind: 'log',
  doc: 'Log the packet to the kernel log (LOG) and continue with the next rule.',
  syntax: ['log [prefix "TEXT"] [level emerg|alert|crit|err|warn|notice|info|debug] [tcp-sequence] [tcp-options] [ip-options] [uid] [macdecode]'],
  keywords: ['log'],

  parse(cur, ctx) {
    const kw = cur.next()!;
    let prefix: string | undefined;
    let level: number | undefined;
    const flags = new Set<LogFlag>();
    for (;;) {
      const w = cur.peekAtom();
      if (w === 'prefix') {
        cur.next();
        const p = cur.next();
        if (p?.type !== 'string') {
          ctx.report(diag('error', 'E-log-prefix', p?.span ?? cur.endSpan, '`prefix` needs a "quoted string"', 'e.g. log prefix "drop: "'));
          return undefined;
        }
        if (utf8Length(p.value) > PREFIX_MAX || /[\n\0]/.test(p.value)) {
          ctx.report(diag('error', 'E-log-prefix', p.span, `the log prefix is longer than ${PREFIX_MAX} bytes or has a line break`, 'the kernel keeps at most 29 bytes'));
          return undefined;
        }
        prefix = p.value;
      } else if (w === 'level') {
        cur.next();
        const l = cur.next();
        const v = l?.type === 'atom' ? parseLevel(l.text) : undefined;
        if (v === undefined) {
          ctx.report(diag('error', 'E-log-level', l?.span ?? cur.endSpan, '`level` needs a syslog level', `${LEVELS.join(', ')} or 0-7`));
          return undefined;
        }
        level = v;
      } else if (w !== undefined && (FLAG_ORDER as readonly string[]).includes(w)) {
        cur.next();
        flags.add(w as LogFlag);
      } else break;
    }
    return {
      kind: 'log',
      ...(prefix !== undefined ? { prefix } : {}),
      ...(level !== undefined ? { level } : {}),
      flags: FLAG_ORDER.filter((f) => flags.has(f)),
      span: clauseSpan(kw.span, cur),
    };
  },

  print(t) {
    const w = ['log'];
    if (t.prefix !== undefined) w.push('prefix', JSON.stringify(t.prefix));
    if (t.level !== undefined) w.push('level', LEVELS[t.level]);
    w.push(...t.flags);
    return w.join(' ');
  },

  effect(t) {
    return { type: 'continue', actions: [{ type: 'log', ...(t.prefix !== undefined ? { prefix: t.prefix } : {}), level: t.level ?? DEFAULT_LEVEL }] };
  },

  iptables: {
    names: ['LOG'],
    emit(t) {
      const out = ['-j', 'LOG'];
      if (t.prefix !== undefined) out.push('--log-prefix', quoteIptablesString(t.prefix));
      if (t.level !== undefined && t.level !== DEFAULT_LEVEL) out.push('--log-level', String(t.level));
      for (const f of t.flags) out.push(`--log-${f}`);
      return out;
    },
    fromIptables(_name, options, ctx) {
      let prefix: string | undefined;
      let level: number | undefined;
      const flags = new Set<LogFlag>();
      for (const o of options) {
        if (o.name === '--log-prefix') prefix = o.args[0] ?? '';
        else if (o.name === '--log-level') {
          const v = parseLevel(o.args[0] ?? '');
          if (v === undefined) ctx.report(diag('error', 'E-import-target', o.span, `\`--log-level ${o.args[0] ?? ''}\` is not a level`));
          else if (v !== DEFAULT_LEVEL) level = v;
        } else if ((FLAG_ORDER as readonly string[]).includes(o.name.slice(6))) flags.add(o.name.slice(6) as LogFlag);
        else ctx.report(diag('error', 'E-import-target', o.span, `LOG does not take ${o.name}`));
      }
      return {
        kind: 'log',
        ...(prefix !== undefined ? { prefix } : {}),
        ...(level !== undefined ? { level } : {}),
        flags: FLAG_ORDER.filter((f) => flags.has(f)),
        span: ctx.span,
      };
    },
  },
};
