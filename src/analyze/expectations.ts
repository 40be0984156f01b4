import { evaluateConstraint } from '../ir/constraint.js';
import { CT_STATE, type NumericField } from '../ir/fields.js';
import { HOOKS, type Hook } from '../ir/netfilter.js';
import type { Expectation, Flow, Policy, Translation } from '../ir/policy.js';
import { DEFAULT_FIELDS } from './box/candidates.js';
import { type ConcreteOutcome, runPacket } from './concrete/interp.js';
import type { PacketInput } from './concrete/input.js';
import { replyInput, replyReturns } from './concrete/reply.js';
import { PacketState } from './concrete/state.js';
import { initialValues } from './concrete/interp.js';
import { type FlowEncoding, encodeFlow, encodeReply, flowConstraint, flowIngresses, translatedTerm, viaTerm } from './flow.js';
import type { FamilyModel } from './model/build.js';
import type { ExpectationResult, Finding, Witness } from './types.js';
import { makeWitness } from './witness.js';
import { formatAddress } from '../util/ip.js';
import { polish } from './polish.js';
import { type Z3Bool, z3 } from './z3/context.js';
import { readInput } from './z3/read-model.js';
import { Session, type Z3Stats } from './z3/session.js';

/**
 * `expect` statements: reachable (optionally via a hook or chain, translated, with reply),
 * unreachable, only, and "no findings of a kind". Each is a universal claim over a flow's
 * packets; Z3 looks for a counterexample, which the concrete interpreter must confirm. A
 * counterexample that needs an unmodelled match to take some value makes the result unknown,
 * never proved or failed on the model's word alone.
 */
interface Ctx {
  readonly timeoutMs: number;
  readonly stats: Z3Stats;
  readonly internal: { message: string; witness?: Witness }[];
}

export async function checkExpectations(
  policy: Policy,
  models: readonly FamilyModel[],
  findings: readonly Finding[],
  opts: { timeoutMs: number; stats: Z3Stats },
): Promise<{ results: ExpectationResult[]; internal: { message: string; witness?: Witness }[] }> {
  const results: ExpectationResult[] = [];
  const ctx: Ctx = { timeoutMs: opts.timeoutMs, stats: opts.stats, internal: [] };
  for (const e of policy.expectations) {
    results.push(await checkOne(e, models, findings, ctx));
  }
  return { results, internal: ctx.internal };
}

function modelsFor(models: readonly FamilyModel[], flow: Flow): FamilyModel[] {
  return models.filter((m) => !flow.family || flow.family === m.family);
}

async function checkOne(e: Expectation, models: readonly FamilyModel[], findings: readonly Finding[], ctx: Ctx): Promise<ExpectationResult> {
  if (e.kind === 'no-findings') {
    const kinds = e.finding === 'unreachable' ? ['unreachable', 'nat-never-fires', 'unused-chain'] : [e.finding];
    const hits = findings.filter((f) => kinds.includes(f.kind));
    if (hits.length === 0) return { expectation: e, status: 'proved', message: `no ${e.finding} rules` };
    const first = hits[0];
    return {
      expectation: e,
      status: 'failed',
      message: `${hits.length} ${e.finding} rule${hits.length === 1 ? '' : 's'}, first: ${first.rule ? `${first.rule.span.file}:${first.rule.span.start.line}` : first.chain?.name ?? ''} — ${first.message}`,
      ...(first.witness ? { witness: first.witness } : {}),
    };
  }
  const flow = e.kind === 'only' ? e.within : e.flow;
  const fams = modelsFor(models, flow);
  if (fams.length === 0) return { expectation: e, status: 'failed', message: 'no ruleset of the flow’s family to check it against' };
  let example: Witness | undefined;
  const unknown: string[] = [];
  for (const model of fams) {
    for (const ingress of flowIngresses(model, flow)) {
      const r = await checkIn(e, model, ingress, ctx);
      if (r.status === 'failed') return { expectation: e, ...r };
      if (r.status === 'unknown') unknown.push(r.reason ?? r.message);
      example ??= r.witness;
    }
  }
  if (unknown.length) return { expectation: e, status: 'unknown', message: `could not decide: ${unknown[0]}`, reason: unknown.join('; '), ...(example ? { witness: example } : {}) };
  return { expectation: e, status: 'proved', message: provedMessage(e), ...(example ? { witness: example } : {}) };
}

function provedMessage(e: Exclude<Expectation, { kind: 'no-findings' }>): string {
  switch (e.kind) {
    case 'reachable':
      return `every packet of the flow is delivered${e.via ? ` via ${e.via}` : ''}${e.translated ? ', translated as expected' : ''}${e.withReply ? ', and its reply comes back' : ''}`;
    case 'unreachable':
      return `no packet of the flow is delivered${e.via ? ` via ${e.via}` : ''}`;
    case 'only':
      return 'only the allowed flows are delivered';
  }
}

type Partial3 = { status: 'proved' | 'failed' | 'unknown'; message: string; witness?: Witness; reason?: string };

async function checkIn(e: Exclude<Expectation, { kind: 'no-findings' }>, model: FamilyModel, ingress: 'iface' | 'local', ctx: Ctx): Promise<Partial3> {
  const { ctx: z } = await z3();
  const flow = e.kind === 'only' ? e.within : e.flow;
  const fe = encodeFlow(z, model, flow, ingress, `x${model.family}${ingress}.`);
  const enc = fe.enc;
  const via = e.via !== undefined ? viaTerm(model, fe, e.via) : undefined;
  if (e.via !== undefined && !via) return { status: 'failed', message: `via ${e.via}: there is no such hook or chain` };
  let good: Z3Bool;
  const base = [...fe.base];
  if (e.kind === 'reachable') {
    const parts = [fe.out.delivered, ...(via ? [via] : []), ...(e.translated ? [translatedTerm(fe, e.translated)] : [])];
    if (e.withReply) {
      const rep = encodeReply(z, model, fe, `y${model.family}${ingress}.`);
      base.push(...rep.base);
      parts.push(rep.delivered);
    }
    good = enc.and(parts);
  } else if (e.kind === 'unreachable') {
    good = enc.not(enc.and([fe.out.delivered, ...(via ? [via] : [])]));
  } else {
    const allowed = e.allowed.filter((a) => !a.family || a.family === model.family).map((a) => enc.flowMatches(flowConstraint(a, model), fe.out));
    good = enc.or([enc.not(enc.and([fe.out.delivered, ...(via ? [via] : [])])), ...allowed]);
  }
  const session = new Session(z, base, ctx.timeoutMs, ctx.stats);
  try {
    const cx = await session.ask(fe.member, enc.not(good));
    if (cx.kind === 'unknown') return { status: 'unknown', message: cx.reason, reason: cx.reason };
    if (cx.kind === 'sat') {
      const raw = readInput(model, fe.out.vars, cx.model, ingress, DEFAULT_FIELDS[model.family]);
      const rawCheck = concreteCheck(e, model, raw);
      const input = rawCheck.holds ? raw : polish(model, raw, (out, x) => flowMember(model, flow, x, out) && !concreteCheck(e, model, x).holds);
      const verdict = concreteCheck(e, model, input);
      const witness = verdict.witness;
      if (verdict.holds) {
        ctx.internal.push({ message: `Z3 found a counterexample to ${e.kind} that the concrete model does not confirm`, witness });
        return { status: 'unknown', message: 'internal disagreement between the solver and the concrete model (reported)', witness, reason: 'internal error' };
      }
      if (witness.dependsOn.length) {
        return { status: 'unknown', message: `a counterexample depends on an unmodelled match: ${witness.dependsOn.join('; ')}`, witness, reason: 'unmodelled match' };
      }
      return { status: 'failed', message: `counterexample: ${witness.summary} — ${verdict.why}`, witness };
    }
    // Proved here; find an example packet too (and notice a flow with no packets at all).
    if (e.kind !== 'reachable') return { status: 'proved', message: 'proved' };
    const ex = await session.ask(fe.member);
    if (ex.kind === 'unsat') return { status: 'failed', message: 'no packet fits this flow here (the claim holds only vacuously)' };
    if (ex.kind === 'sat') {
      const raw = readInput(model, fe.out.vars, ex.model, ingress, DEFAULT_FIELDS[model.family]);
      const input = polish(model, raw, (out, x) => flowMember(model, flow, x, out) && concreteCheck(e, model, x).holds);
      return { status: 'proved', message: 'proved', witness: concreteCheck(e, model, input).witness };
    }
    return { status: 'proved', message: 'proved' };
  } finally {
    session.release();
  }
}

/** Runs a candidate counterexample concretely: does the claim hold for this packet? */
export function concreteCheck(e: Exclude<Expectation, { kind: 'no-findings' }>, model: FamilyModel, input: PacketInput): { holds: boolean; why: string; witness: Witness } {
  const out = runPacket(model, input);
  const witness = makeWitness(model, input, out);
  const delivered = out.verdict !== 'dropped';
  const viaOk = e.via === undefined || passedVia(model, out, e.via);
  const inFlow = (f: Flow) => flowMember(model, f, input, out);
  switch (e.kind) {
    case 'reachable': {
      if (!delivered) return { holds: false, why: `it is dropped (${dropText(out)})`, witness };
      if (!viaOk) return { holds: false, why: `it does not pass ${e.via}`, witness };
      if (e.translated) {
        const bad = translationMismatch(model, out, e.translated);
        if (bad) return { holds: false, why: bad, witness };
      }
      if (e.withReply) {
        const rin = replyInput(model, input, out);
        if (!rin) return { holds: false, why: 'no reply can be sent', witness };
        const rout = runPacket(model, rin);
        const back = replyReturns(model, input, rout);
        const rw = makeWitness(model, rin, rout);
        const full = { ...witness, reply: rw, dependsOn: [...witness.dependsOn, ...rw.dependsOn] };
        return back.ok ? { holds: true, why: back.why, witness: full } : { holds: false, why: back.why, witness: full };
      }
      return { holds: true, why: `it is ${out.verdict}`, witness };
    }
    case 'unreachable':
      return delivered && viaOk ? { holds: false, why: `it is ${out.verdict}${out.egress ? ` out of ${out.egress}` : ''}`, witness } : { holds: true, why: 'it is not delivered', witness };
    case 'only': {
      if (!delivered || !viaOk) return { holds: true, why: 'not delivered', witness };
      const allowed = e.allowed.some((a) => (!a.family || a.family === model.family) && inFlow(a));
      return allowed ? { holds: true, why: 'allowed', witness } : { holds: false, why: `it is ${out.verdict} but belongs to none of the allowed flows`, witness };
    }
  }
}

/** Does the packet belong to the flow (its header as it arrives, its state, its interfaces)? */
export function flowMember(model: FamilyModel, f: Flow, input: PacketInput, out: ConcreteOutcome): boolean {
  const local = input.ingress.kind === 'local';
  const st = new PacketState(model.family, initialValues(model, input), local ? '' : (input.ingress as { device: string }).device, out.oif, local ? 'OUTPUT' : 'PREROUTING', local);
  st.set('ctstate', BigInt(CT_STATE[input.ctState]));
  return evaluateConstraint(flowConstraint(f, model), st, (c) => input.opaque?.[c.key] ?? false);
}

function dropText(out: ConcreteOutcome): string {
  const last = [...out.path].reverse().find((s) => s.action === 'DROP' || s.action === 'REJECT' || s.action.startsWith('policy'));
  return last ? `${out.dropReason}: ${last.table}/${last.chain} ${last.action}` : out.dropReason ?? 'dropped';
}

function passedVia(model: FamilyModel, out: ConcreteOutcome, via: string): boolean {
  const hook = via.toUpperCase() as Hook;
  if ((HOOKS as readonly string[]).includes(hook)) return out.hooks.includes(hook);
  return [...out.chains].some((k) => k.endsWith(`/${via}`));
}

function translationMismatch(model: FamilyModel, out: ConcreteOutcome, t: Translation): string | undefined {
  const show = (f: NumericField, v: bigint) => (f === 'saddr' || f === 'daddr' ? formatAddress(model.family, v) : String(v));
  const fields: [NumericField, bigint | number | undefined][] = [
    ['saddr', t.saddr],
    ['daddr', t.daddr],
    ['sport', t.sport],
    ['dport', t.dport],
  ];
  for (const [f, v] of fields) {
    if (v !== undefined && out.final[f] !== BigInt(v)) return `its ${f} becomes ${show(f, out.final[f])}, not ${show(f, BigInt(v))}`;
  }
  return undefined;
}
