import type { SideEffect } from '../../ir/effect.js';
import type { Hook } from '../../ir/netfilter.js';
import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import type { WordCursor } from '../dsl.js';
import { clauseSpan } from '../helpers.js';
import type { TargetKind } from '../kind.js';

/**
 * The CT target (raw table): set up the connection this packet is about to create.
 *
 *   ct notrack                      do not track it (-j CT --notrack; the packet is UNTRACKED)
 *   ct helper set ftp               attach a helper (-j CT --helper ftp); needs a protocol match
 *   ct zone set 5 [original|reply]  conntrack zone (--zone, --zone-orig, --zone-reply)
 *   ct event set new,related …      events to report (--ctevents); `ct expectation event set …`
 *   ct timeout set NAME             a timeout policy (--timeout)
 *
 * Several settings can follow one another: `ct helper set ftp zone set 3`. A plain `ct` with no
 * setting is not accepted (iptables allows -j CT alone: it is `xt target CT`).
 */
export interface CtTarget {
  readonly kind: 'ct';
  readonly notrack?: boolean;
  readonly helper?: string;
  readonly zone?: number;
  readonly zoneDir?: 'original' | 'reply';
  readonly events?: readonly string[];
  readonly expEvents?: readonly string[];
  readonly timeout?: string;
  readonly span: Span;
}

const CT_EVENTS = ['new', 'related', 'destroy', 'reply', 'assured', 'protoinfo', 'helper', 'mark', 'natseqinfo', 'secmark'] as const;
const EXP_EVENTS = ['new'] as const;
const NAME_RE = /^[A-Za-z0-9_.-]{1,31}$/;
const SETTING_WORDS = ['notrack', 'helper', 'zone', 'event', 'expectation', 'timeout'];

function readEvents(cur: WordCursor, allowed: readonly string[]): string[] | undefined {
  const w = cur.next();
  const parts: string[] = w?.type === 'atom' ? w.text.split(',') : [];
  while (cur.peek()?.type === 'comma' && cur.peek(1)?.type === 'atom') {
    cur.next();
    parts.push(...(cur.next() as { text: string }).text.split(','));
  }
  const list = parts.filter((p) => p !== '');
  return list.length > 0 && list.every((p) => allowed.includes(p)) ? allowed.filter((a) => list.includes(a)) : undefined;
}

export const ctTargetKind: TargetKind<CtTarget> = {
  kind: 'ct',
  doc: 'Raw-table CT target: no tracking, a helper (ftp …), a zone, events or a timeout policy for the new connection.',
  syntax: [
    'ct notrack',
    'ct helper set NAME',
    'ct zone set N [original|reply]',
    'ct event set EVENT[,EVENT…]',
    'ct expectation event set new',
    'ct timeout set NAME',
    '(several settings may follow `ct` one after another)',
  ],
  keywords: ['ct'],
  tables: ['raw'],

  accepts(cur) {
    const w = cur.peekAtom(1);
    if (w === 'notrack' || w === 'expectation') return true;
    return (w === 'helper' || w === 'zone' || w === 'event' || w === 'timeout') && cur.peekAtom(2) === 'set';
  },

  parse(cur, ctx) {
    const kw = cur.next()!;
    const node: { -readonly [K in keyof CtTarget]: CtTarget[K] } = { kind: 'ct', span: kw.span };
    const fail = (message: string, hint?: string) => {
      ctx.report(diag('error', 'E-ct-target', cur.here(), message, hint));
      return undefined;
    };
    let any = false;
    for (let w = cur.peekAtom(); w !== undefined && SETTING_WORDS.includes(w); w = cur.peekAtom()) {
      cur.next();
      any = true;
      if (w === 'notrack') {
        node.notrack = true;
        continue;
      }
      if (w === 'expectation' && !cur.accept('event')) return fail('expected `ct expectation event set new`');
      if (!cur.accept('set')) return fail(`expected \`set\` after \`${w}\``, 'e.g. ct helper set ftp');
      if (w === 'helper' || w === 'timeout') {
        const n = cur.next();
        const text = n?.type === 'atom' ? n.text : n?.type === 'string' ? n.value : '';
        if (!NAME_RE.test(text)) return fail(`\`${w} set\` needs a name`, w === 'helper' ? 'ftp, tftp, sip, irc, amanda, pptp, sane, snmp, netbios-ns …' : 'the name of a timeout policy (nfct add timeout …)');
        if (w === 'helper') node.helper = text;
        else node.timeout = text;
      } else if (w === 'zone') {
        const n = cur.next();
        const v = n?.type === 'atom' && /^\d+$/.test(n.text) && Number(n.text) <= 65535 ? Number(n.text) : undefined;
        if (v === undefined) return fail('`zone set` needs a zone number 0-65535');
        node.zone = v;
        const d = cur.accept('original', 'reply');
        if (d) node.zoneDir = d.text as 'original' | 'reply';
      } else {
        const list = readEvents(cur, w === 'event' ? CT_EVENTS : EXP_EVENTS);
        if (!list) return fail('unknown event', `events: ${(w === 'event' ? CT_EVENTS : EXP_EVENTS).join(', ')}`);
        if (w === 'event') node.events = list;
        else node.expEvents = list;
      }
    }
    if (!any) return fail('`ct` as a target needs a setting', 'ct notrack, ct helper set ftp, ct zone set 1 …');
    return { ...node, span: clauseSpan(kw.span, cur) };
  },

  print(t) {
    const w = ['ct'];
    if (t.notrack) w.push('notrack');
    if (t.helper !== undefined) w.push('helper set', t.helper);
    if (t.zone !== undefined) w.push('zone set', String(t.zone), ...(t.zoneDir ? [t.zoneDir] : []));
    if (t.events) w.push('event set', t.events.join(','));
    if (t.expEvents) w.push('expectation event set', t.expEvents.join(','));
    if (t.timeout !== undefined) w.push('timeout set', t.timeout);
    return w.join(' ');
  },

  effect(t) {
    const actions: SideEffect[] = t.notrack
      ? [{ type: 'notrack' }]
      : [{ type: 'ct-template', ...(t.helper !== undefined ? { helper: t.helper } : {}), ...(t.zone !== undefined ? { zone: t.zone } : {}) }];
    return { type: 'continue', actions };
  },

  hooks(): readonly Hook[] {
    return ['PREROUTING', 'OUTPUT'];
  },

  validate(t, rule, report) {
    // xt_CT: "You must specify a L4 protocol and not use inversions on it" (helpers, timeouts).
    if ((t.helper !== undefined || t.timeout !== undefined) && !rule.matches.some((m) => m.kind === 'proto' && !m.negated && m.protos.length === 1)) {
      report('E-ct-helper-protocol', t.span, 'a conntrack helper or timeout needs the rule to match one protocol', 'add e.g. `tcp dport 21` before `ct helper set ftp`');
    }
  },

  iptables: {
    names: ['CT'],
    emit(t) {
      const out = ['-j', 'CT'];
      if (t.notrack) out.push('--notrack');
      if (t.helper !== undefined) out.push('--helper', t.helper);
      if (t.timeout !== undefined) out.push('--timeout', t.timeout);
      if (t.events) out.push('--ctevents', t.events.join(','));
      if (t.expEvents) out.push('--expevents', t.expEvents.join(','));
      // Zone 0 is the default zone in either direction: the kernel keeps no trace of it (its save
      // prints a bare `-j CT`), so neither do we — the round trip stays exact.
      if (t.zone !== undefined && t.zone !== 0) out.push(t.zoneDir === 'original' ? '--zone-orig' : t.zoneDir === 'reply' ? '--zone-reply' : '--zone', String(t.zone));
      return out;
    },
    fromIptables(_name, options, ctx) {
      const node: { -readonly [K in keyof CtTarget]: CtTarget[K] } = { kind: 'ct', span: ctx.span };
      for (const o of options) {
        const a = o.args[0] ?? '';
        switch (o.name) {
          case '--notrack':
            node.notrack = true;
            break;
          case '--helper':
            node.helper = a;
            break;
          case '--timeout':
            node.timeout = a;
            break;
          case '--ctevents':
          case '--expevents': {
            const list = a.split(',');
            if (list.some((e) => !(o.name === '--ctevents' ? CT_EVENTS : EXP_EVENTS).includes(e as never))) {
              ctx.report(diag('error', 'E-import-target', o.span, `CT ${o.name} ${a}: unknown event`));
              break;
            }
            if (o.name === '--ctevents') node.events = CT_EVENTS.filter((e) => list.includes(e));
            else node.expEvents = list;
            break;
          }
          case '--zone':
          case '--zone-orig':
          case '--zone-reply':
            if (!/^\d+$/.test(a)) ctx.report(diag('error', 'E-import-target', o.span, `CT ${o.name} ${a}: not a zone number`));
            else {
              node.zone = Number(a);
              if (o.name !== '--zone') node.zoneDir = o.name === '--zone-orig' ? 'original' : 'reply';
            }
            break;
          default:
            ctx.report(diag('error', 'E-import-target', o.span, `CT does not take ${o.name}`));
        }
      }
      // A bare -j CT attaches an empty template: the default zone 0, no helper — which is also
      // how iptables-save prints `--zone 0` in any direction (checked on the kernel).
      if (!node.notrack && node.helper === undefined && node.zone === undefined && !node.events && !node.expEvents && node.timeout === undefined) node.zone = 0;
      return node;
    },
  },
};
