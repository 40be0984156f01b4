import type { Hook } from '../../ir/netfilter.js';
import type { Box } from '../box/box.js';
import type { Prepass } from '../box/prepass.js';
import { DEFAULT_FIELDS } from '../box/candidates.js';
import { type ConcreteOutcome, runPacket } from '../concrete/interp.js';
import type { PacketInput } from '../concrete/input.js';
import { type FamilyModel, type ModelRule, lookupChain } from '../model/build.js';
import type { Z3Context } from './context.js';
import { Encoder } from './encode.js';
import { readInput } from './read-model.js';
import { polish } from '../polish.js';
import { Session, type Z3Stats } from './session.js';
import { ingressRegion, regionConstraint, relevanceFilter } from './slice.js';

/**
 * Z3 for the rules the pre-pass left open: can any packet fire this rule? The encoding is
 * sliced to the rules that can meet the rule's region; a model is read back into a packet and
 * confirmed by the concrete interpreter (a disagreement is an internal error of nfproof).
 */
export type RuleDecision =
  | { readonly kind: 'fires'; readonly input: PacketInput; readonly outcome: ConcreteOutcome }
  | { readonly kind: 'dead'; readonly cause: 'no-entry' | 'decided-earlier'; readonly blame: readonly number[]; readonly witness?: PacketInput }
  | { readonly kind: 'unknown'; readonly reason: string }
  | { readonly kind: 'internal-error'; readonly message: string; readonly input: PacketInput };

/** Hooks whose flows can bring a packet to the chain of this rule. */
export function ingressesFor(hooks: ReadonlySet<Hook>): ('iface' | 'local')[] {
  const out: ('iface' | 'local')[] = [];
  if ([...hooks].some((h) => h === 'PREROUTING' || h === 'INPUT' || h === 'FORWARD' || h === 'POSTROUTING')) out.push('iface');
  // Locally sent packets to this host come back in over lo, through PREROUTING and INPUT.
  if ([...hooks].some((h) => h === 'OUTPUT' || h === 'POSTROUTING' || h === 'PREROUTING' || h === 'INPUT')) out.push('local');
  return out;
}

function stopHook(hooks: ReadonlySet<Hook>): Hook | undefined {
  const hs = [...hooks];
  if (hs.length && hs.every((h) => h === 'PREROUTING')) return 'PREROUTING';
  if (hs.length && hs.every((h) => h === 'OUTPUT')) return 'OUTPUT';
  if (hs.length && hs.every((h) => h === 'PREROUTING' || h === 'INPUT')) return 'INPUT';
  if (hs.length && hs.every((h) => h === 'PREROUTING' || h === 'INPUT' || h === 'FORWARD')) return 'FORWARD';
  return undefined;
}

export async function decideRule(
  ctx: Z3Context,
  model: FamilyModel,
  prepass: Prepass,
  rule: ModelRule,
  region: readonly Box[],
  timeoutMs: number,
  stats: Z3Stats,
): Promise<RuleDecision> {
  const chain = lookupChain(model, rule.table, rule.chain)!;
  const ingress = ingressRegion(model, region, chain.hooks);
  const relevant = relevanceFilter(prepass, ingress);
  let unknown: string | undefined;
  const deadBy: { cause: 'no-entry' | 'decided-earlier'; blame: number[]; witness?: PacketInput }[] = [];
  for (const flow of ingressesFor(chain.hooks)) {
    const enc = new Encoder(ctx, model, { prefix: `q${rule.id}.`, ingress: flow, relevant, ...(stopHook(chain.hooks) ? { stopAfterHook: stopHook(chain.hooks) } : {}) });
    const out = enc.encode();
    const fire = out.fire.get(rule.id);
    if (!fire) {
      deadBy.push({ cause: 'no-entry', blame: [] });
      continue;
    }
    const session = new Session(ctx, [...out.assumptions, regionConstraint(enc, model, ingress)], timeoutMs, stats);
    try {
      const a = await session.ask(fire);
      if (a.kind === 'unknown') {
        unknown = a.reason;
        continue;
      }
      if (a.kind === 'sat') {
        const raw = readInput(model, out.vars, a.model, flow, DEFAULT_FIELDS[model.family]);
        const input = runPacket(model, raw).fired.includes(rule.id) ? polish(model, raw, (o) => o.fired.includes(rule.id)) : raw;
        const outcome = runPacket(model, input);
        if (!outcome.fired.includes(rule.id)) {
          return { kind: 'internal-error', message: `Z3 says the packet fires rule ${rule.id} (${rule.text}) but the concrete model disagrees`, input };
        }
        return { kind: 'fires', input, outcome };
      }
      // Dead in this flow: did any matching packet enter the chain at all?
      const entered = out.matchAt.get(rule.id);
      const e = entered ? await session.ask(entered) : ({ kind: 'unsat' } as const);
      if (e.kind !== 'sat') {
        deadBy.push({ cause: 'no-entry', blame: [] });
        continue;
      }
      const blame: number[] = [];
      let witness: PacketInput | undefined;
      for (const earlier of chain.rules.slice(0, rule.index)) {
        const f = out.fire.get(earlier.id);
        if (!f || !entered) continue;
        const b = await session.ask(entered, f);
        if (b.kind === 'sat') {
          blame.push(earlier.id);
          if (!witness) {
            const raw = readInput(model, out.vars, b.model, flow, DEFAULT_FIELDS[model.family]);
            witness = polish(model, raw, (o) => o.fired.includes(earlier.id));
          }
        }
        if (blame.length >= 8) break;
      }
      deadBy.push({ cause: 'decided-earlier', blame, ...(witness ? { witness } : {}) });
    } finally {
      session.release();
    }
  }
  if (unknown !== undefined) return { kind: 'unknown', reason: unknown };
  const decided = deadBy.find((d) => d.cause === 'decided-earlier');
  if (decided) return { kind: 'dead', cause: 'decided-earlier', blame: decided.blame, ...(decided.witness ? { witness: decided.witness } : {}) };
  return { kind: 'dead', cause: 'no-entry', blame: [] };
}
