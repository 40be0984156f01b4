import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import type { DslContext, WordCursor } from '../dsl.js';
import type { RuleView } from '../kind.js';
import { NAT_PORT_PROTOS, type NatRange, parseNatRange } from '../nat-range.js';

/** Shared pieces of the NAT targets (snat, dnat, masquerade, redirect, netmap). */

export type NatFlag = 'random' | 'fully-random' | 'persistent';

export interface NatFlags {
  readonly random: boolean;
  readonly fullyRandom: boolean;
  readonly persistent: boolean;
}

/** Reads `to MAPPING` (or nothing when `optional`); reports and returns a string on error. */
export function readMapping(
  cur: WordCursor,
  ctx: DslContext,
  what: string,
  opts: { portsOnly?: boolean; optional?: boolean; example: string },
): NatRange | undefined | 'error' {
  if (!cur.accept('to')) {
    if (opts.optional) return undefined;
    ctx.report(diag('error', 'E-nat-syntax', cur.here(), `\`${what}\` needs \`to …\``, `e.g. ${opts.example}`));
    return 'error';
  }
  const w = cur.next();
  const r = w?.type === 'atom' ? parseNatRange(w.text, opts.portsOnly ? { portsOnly: true } : {}) : 'missing mapping';
  if (typeof r === 'string' || (opts.portsOnly && !r.ports)) {
    ctx.report(diag('error', 'E-bad-nat-range', w?.span ?? cur.endSpan, typeof r === 'string' ? r : `${what} maps ports only: to :PORT[-PORT]`, `e.g. ${opts.example}`));
    return 'error';
  }
  return r;
}

/** Reads trailing flags among `allowed`. */
export function readNatFlags(cur: WordCursor, allowed: readonly NatFlag[]): { flags: NatFlags; end?: Span } {
  const f = { random: false, fullyRandom: false, persistent: false };
  let end: Span | undefined;
  for (let w = cur.peekAtom(); w !== undefined && (allowed as readonly string[]).includes(w); w = cur.peekAtom()) {
    if (w === 'random') f.random = true;
    else if (w === 'fully-random') f.fullyRandom = true;
    else f.persistent = true;
    end = cur.next()!.span;
  }
  return { flags: f, ...(end ? { end } : {}) };
}

export function natFlagWords(t: NatFlags): string[] {
  return [...(t.random ? ['random'] : []), ...(t.fullyRandom ? ['fully-random'] : []), ...(t.persistent ? ['persistent'] : [])];
}

export function natFlagOptions(t: NatFlags): string[] {
  return [...(t.random ? ['--random'] : []), ...(t.fullyRandom ? ['--random-fully'] : []), ...(t.persistent ? ['--persistent'] : [])];
}

/** iptables refuses a port mapping unless the rule matches tcp, udp, sctp, dccp (or icmp). */
export function validateNatPorts(
  range: NatRange | undefined,
  span: Span,
  rule: RuleView,
  report: (code: string, span: Span, message: string, hint?: string) => void,
): void {
  if (!range?.ports) return;
  const ok = rule.matches.some((m) => m.kind === 'proto' && !m.negated && m.protos.length === 1 && NAT_PORT_PROTOS.includes(m.protos[0]));
  if (!ok) report('E-nat-ports-protocol', span, 'a NAT port mapping needs the rule to match tcp, udp, sctp or dccp', 'add `tcp` or `udp` to the rule (iptables: "Need TCP, UDP, SCTP or DCCP with port specification")');
}
