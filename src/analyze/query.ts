import type { Flow, Policy } from '../ir/policy.js';
import { Prepass } from './box/prepass.js';
import { DEFAULT_FIELDS } from './box/candidates.js';
import { assumptionsOf } from './check.js';
import { runPacket, type Verdict } from './concrete/interp.js';
import { encodeFlow, flowIngresses } from './flow.js';
import { flowMember } from './expectations.js';
import { polish } from './polish.js';
import { type FamilyModel, buildFamilyModel } from './model/build.js';
import { replayWitnesses } from './replay.js';
import type { InternalError, QueryOutcome, QueryReport } from './types.js';
import { makeWitness, ruleRef } from './witness.js';
import { type Z3Bool, z3 } from './z3/context.js';
import { readInput } from './z3/read-model.js';
import { Session, newZ3Stats } from './z3/session.js';

export interface QueryOptions {
  readonly timeoutMs?: number;
  /** Different deciding rules to show per verdict (default 4). */
  readonly perVerdict?: number;
  readonly replay?: boolean;
}

/**
 * `nfproof query POLICY FLOW`: every verdict the flow's packets can get (delivered locally,
 * forwarded, sent, dropped), each with a witness packet and the rules that decided it. A verdict
 * not listed is proved impossible for the flow (or reported unknown on a solver timeout).
 */
export async function queryFlow(policy: Policy, flow: Flow, opts: QueryOptions = {}): Promise<QueryReport> {
  const { ctx } = await z3();
  const stats = newZ3Stats();
  const outcomes: QueryOutcome[] = [];
  const unknown: string[] = [];
  const internalErrors: InternalError[] = [];
  const models: FamilyModel[] = [];
  const families = (['ipv4', 'ipv6'] as const).filter((f) => (!flow.family || flow.family === f) && (policy.rulesets[f].tables.length > 0 || flow.family === f));
  for (const family of families) {
    const model = buildFamilyModel(policy, family, [flow]);
    models.push(model);
    const slice = new Prepass(model);
    for (const ingress of flowIngresses(model, flow)) {
      const fe = encodeFlow(ctx, model, flow, ingress, `q${family}${ingress}.`, slice);
      const session = new Session(ctx, fe.base, opts.timeoutMs ?? 5000, stats);
      const verdicts: [Verdict, Z3Bool][] =
        ingress === 'iface' ? [['local', fe.out.local], ['forwarded', fe.out.forwarded], ['dropped', fe.out.dropped]] : [['sent', fe.out.sent], ['dropped', fe.out.dropped]];
      try {
        for (const [verdict, term] of verdicts) {
          const blocked: Z3Bool[] = [];
          for (let n = 0; n < (opts.perVerdict ?? 4); n++) {
            const a = await session.ask(fe.member, term, ...blocked);
            if (a.kind === 'unknown') {
              unknown.push(`${family} ${verdict}: ${a.reason}`);
              break;
            }
            if (a.kind === 'unsat') break;
            const raw = readInput(model, fe.out.vars, a.model, ingress, DEFAULT_FIELDS[model.family]);
            const rawOut = runPacket(model, raw);
            const rawKey = keyRule(model, rawOut);
            const input = rawOut.verdict === verdict ? polish(model, raw, (o, x) => o.verdict === verdict && keyRule(model, o) === rawKey && flowMember(model, flow, x, o)) : raw;
            const out = runPacket(model, input);
            const witness = makeWitness(model, input, out);
            if (out.verdict !== verdict) {
              internalErrors.push({ message: `Z3 says ${verdict} but the concrete model says ${out.verdict}`, witness });
              break;
            }
            const key = keyRule(model, out);
            const deciding = out.path
              .filter((s) => s.ruleId === undefined ? s.action.startsWith('policy') : /^(ACCEPT|DROP|REJECT|SNAT|DNAT|MASQUERADE|REDIRECT|NETMAP)/.test(s.action) || s.action.includes('unmodelled'))
              .map((s) => ({ ...(s.ruleId !== undefined ? { rule: ruleRef(model, model.rules[s.ruleId]) } : {}), action: `${s.hook} ${s.table}/${s.chain} ${s.action}` }));
            outcomes.push({ family, verdict, deciding, witness });
            if (key === undefined) break;
            const f = fe.out.fire.get(key);
            if (!f) break;
            blocked.push(fe.enc.not(f));
          }
        }
      } finally {
        session.release();
      }
    }
  }
  if (opts.replay ?? true) {
    const r = replayWitnesses(policy, models, outcomes.map((o) => ({ w: o.witness })));
    internalErrors.push(...r.errors);
  }
  return { flow, outcomes, unknown, assumptions: assumptionsOf(policy, models), internalErrors };
}

/** The rule that decided the verdict (for finding other deciding rules): the dropping rule, or the last accepting one. */
function keyRule(model: FamilyModel, out: ReturnType<typeof runPacket>): number | undefined {
  if (out.verdict === 'dropped') return out.decidedBy && 'ruleId' in out.decidedBy ? out.decidedBy.ruleId : undefined;
  const accepts = out.path.filter((s) => s.ruleId !== undefined && s.action === 'ACCEPT' && s.table === 'filter');
  const last = accepts[accepts.length - 1] ?? out.path.filter((s) => s.ruleId !== undefined && s.action === 'ACCEPT').pop();
  void model;
  return last?.ruleId;
}
