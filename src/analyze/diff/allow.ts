import { and } from '../../ir/constraint.js';
import type { Flow } from '../../ir/policy.js';
import { matchConstraint } from '../../kinds/index.js';
import { type Diagnostic, diag } from '../../util/diagnostics.js';
import type { SourceFiles } from '../../util/sources.js';
import { FIELD_SLOT } from '../model/fields.js';
import type { DiffKind, RawDiff } from './compare.js';
import type { DiffContext } from './context.js';
import type { Box } from './space.js';
import { type Piece, type Sym, initialSym, setVals, slotVal } from './sym.js';
import { term } from './space.js';

/**
 * The `--allow FILE` of `nfproof diff`: expected differences, so that CI fails only on the
 * others. One entry per line:
 *
 *     # comment
 *     KIND FLOW
 *
 * KIND is `allowed` (newly allowed), `denied` (newly denied), `nat` (NAT rewrite changed),
 * `rerouted` (delivered elsewhere), `deny-changed` (DROP vs REJECT) or `changed` (any of them).
 * FLOW is a flow in the DSL's syntax, as in `expect` and `nfproof query`
 * (`tcp from any to 10.1.2.3 dport 22 iif wan ct state new`); `iif { a, b }` stands for one
 * line per interface. A flow describes the packet as it arrives; its `oif` is the device the
 * packet leaves by on either side. A flow without `iif` also covers locally generated packets.
 *
 * A difference is expected where an entry of its kind covers it — exactly: a class covered in
 * part is split, and only the rest is reported as unexpected.
 */
export type AllowKind = DiffKind | 'changed';
const KINDS: readonly AllowKind[] = ['allowed', 'denied', 'nat', 'rerouted', 'deny-changed', 'changed'];

export interface AllowEntry {
  readonly kind: AllowKind;
  readonly flow: Flow;
  /** The line as written (for reports). */
  readonly text: string;
  readonly line: number;
}

export interface AllowList {
  readonly file: string;
  readonly entries: readonly AllowEntry[];
}

type FlowParser = (text: string, file: string, sources: SourceFiles) => { flow?: Flow; diagnostics: readonly Diagnostic[] };

function expandSets(flow: string): string[] {
  const m = /\b(iif|oif)\s*\{([^}]*)\}/.exec(flow);
  if (!m) return [flow];
  const names = m[2].split(',').map((s) => s.trim()).filter(Boolean);
  return names.flatMap((n) => expandSets(flow.slice(0, m.index) + `${m[1]} ${n}` + flow.slice(m.index + m[0].length)));
}

/** Reads an allow file. `parseFlow` is the DSL front end's (src/syntax), passed in to keep layers apart. */
export function parseAllowList(text: string, file: string, sources: SourceFiles, parseFlow: FlowParser): { list?: AllowList; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const entries: AllowEntry[] = [];
  sources.add(file, text);
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = raw.replace(/(^|\s)#.*$/, '').trimEnd();
    const body = line.trimStart();
    if (!body) return;
    const indent = line.length - body.length;
    const word = /^\S+/.exec(body)![0];
    const at = { file, start: { line: i + 1, col: indent + 1, offset: 0 }, end: { line: i + 1, col: indent + word.length + 1, offset: 0 } };
    if (!(KINDS as readonly string[]).includes(word)) {
      diagnostics.push(diag('error', 'E-allow-kind', at, `\`${word}\` is not a kind of difference`, `start the line with one of ${KINDS.join(', ')}`));
      return;
    }
    const rest = body.slice(word.length);
    const flowText = rest.trimStart();
    if (!flowText) {
      diagnostics.push(diag('error', 'E-allow-flow', at, `\`${word}\` needs a flow`, `e.g. ${word} tcp to 10.1.2.3 dport 22`));
      return;
    }
    const col = indent + word.length + (rest.length - flowText.length);
    for (const one of expandSets(flowText)) {
      // Padded so that the flow's positions are the file's.
      const padded = '\n'.repeat(i) + ' '.repeat(col) + one;
      const r = parseFlow(padded, file, sources);
      diagnostics.push(...r.diagnostics);
      if (r.flow) entries.push({ kind: word as AllowKind, flow: r.flow, text: body, line: i + 1 });
    }
  });
  sources.add(file, text);
  const failed = diagnostics.some((d) => d.severity === 'error');
  return { ...(failed ? {} : { list: { file, entries } }), diagnostics };
}

/**
 * The part of a raw difference the allow list covers, as boxes. Flows are read on the arriving
 * packet with the state conntrack gives it; `oif` on the device it leaves by on either side.
 */
export function allowedPart(ctx: DiffContext, list: AllowList, raw: RawDiff, box: Box, used: Set<AllowEntry>): Box[] {
  const out: Box[] = [];
  let rest: Box[] = [box];
  const cls = raw.a.piece.cls;
  for (const e of list.entries) {
    if (rest.length === 0) break;
    if (e.kind !== 'changed' && e.kind !== raw.kind) continue;
    if (e.flow.family && e.flow.family !== ctx.family) continue;
    if (cls.local && e.flow.matches.some((m) => m.kind === 'iface' && m.dir === 'in')) continue;
    const c = and(...e.flow.matches.map((m) => matchConstraint(m, ctx.family)));
    for (const egress of [raw.a.out.egress, raw.b.out.egress]) {
      const sym: Sym = setVals({ ...initialSym(cls), ...(egress ? { oif: egress } : {}), ctDone: true }, { ctstate: slotVal(FIELD_SLOT.ctstate) });
      const next: Box[] = [];
      for (const b of rest) {
        const piece: Piece = { terms: [term(b)], sym, cls };
        let hit: Box[];
        try {
          hit = ctx.a.walker.matcher.region(c, piece, b);
        } catch {
          hit = [];
        }
        if (hit.length) used.add(e);
        out.push(...hit);
        next.push(...ctx.space.minus([b], hit));
      }
      rest = next;
    }
  }
  return out;
}

/** Splits a raw difference (one box of it) into the part the list expects and the rest. */
export function splitByAllowList(ctx: DiffContext, list: AllowList, raw: RawDiff, box: Box, used: Set<AllowEntry>): { expected: Box[]; unexpected: Box[] } {
  const ok = allowedPart(ctx, list, raw, box, used);
  return { expected: ok, unexpected: ctx.space.minus([box], ok) };
}
