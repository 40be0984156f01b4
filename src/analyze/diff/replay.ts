import { PORT_PROTOS } from '../../ir/fields.js';
import type { Policy } from '../../ir/policy.js';
import type { SimOutcome } from '../../netfilter/api.js';
import { createSimulator } from '../../netfilter/simulator.js';
import type { ConcreteOutcome } from '../concrete/interp.js';
import type { PacketInput } from '../concrete/input.js';
import { compareOutcome, replayHost, toSimPacket } from '../replay.js';
import type { DiffKind } from './compare.js';
import type { DiffContext } from './context.js';

/**
 * Replaying a difference's witness in the simulator on both sides. Each side's simulation must
 * agree with the analyzer's model of that side, and the two simulations must show the claimed
 * difference; anything else is an internal error of nfproof, reported, never hidden.
 *
 * Without a host model the replay host is built from what the model chose for the witness (the
 * analyzer's replayHost), once for both sides, so both simulators route alike.
 */
export type PairReplay = { readonly status: 'agrees' | 'disagrees' | 'not-replayed'; readonly detail: string };

interface Run {
  readonly input: PacketInput;
  readonly out: ConcreteOutcome;
}

function simulate(policy: Policy, input: PacketInput): SimOutcome {
  const sim = createSimulator(policy, { trace: true });
  const uid = input.fields.uid;
  const gid = input.fields.gid;
  return sim.process({
    t: 0,
    ingress: input.ingress.kind === 'iface' ? { kind: 'iface', device: input.ingress.device } : { kind: 'local' },
    packet: toSimPacket(input),
    ...(input.ingress.kind === 'local' && uid !== undefined ? { uid: Number(uid) } : {}),
    ...(input.ingress.kind === 'local' && gid !== undefined ? { gid: Number(gid) } : {}),
  });
}

/** The kind of difference two simulations show (undefined: none). */
function simKind(a: SimOutcome, b: SimOutcome): DiffKind | undefined {
  const da = a.verdict !== 'dropped';
  const db = b.verdict !== 'dropped';
  if (da !== db) return db ? 'allowed' : 'denied';
  if (!da) {
    // The rule that drops: a REJECT on one side and a DROP (or another REJECT) on the other.
    // Whether the kernel then sends the answer (not for fragments, broadcasts…) is its business.
    const how = (o: SimOutcome) => {
      const last = [...o.trace].reverse().find((s) => s.rule !== undefined || s.action.startsWith('policy'));
      return last ? last.action.replace(/\s+/g, ' ') : o.dropReason ?? '';
    };
    return how(a) !== how(b) ? 'deny-changed' : undefined;
  }
  const pa = a.egress?.packet ?? a.delivered;
  const pb = b.egress?.packet ?? b.delivered;
  if (pa && pb) {
    if (pa.src !== pb.src || pa.dst !== pb.dst) return 'nat';
    if (PORT_PROTOS.includes(pa.proto) && !pa.fragment && (pa.sport !== pb.sport || pa.dport !== pb.dport)) return 'nat';
  }
  if (a.verdict !== b.verdict || a.egress?.device !== b.egress?.device) return 'rerouted';
  return undefined;
}

export function replayPair(ctx: DiffContext, kind: DiffKind, a: Run, b: Run, dependsOn: readonly string[]): PairReplay {
  if (dependsOn.length) return { status: 'not-replayed', detail: `depends on what nfproof does not model: ${dependsOn.join('; ')}` };
  if (a.input.ctState !== 'NEW') return { status: 'not-replayed', detail: `a ${a.input.ctState} packet needs its connection set up first` };
  const pa = ctx.a.model.policy;
  const pb = ctx.b.model.policy;
  const host = pa.host ?? pb.host ?? replayHost(ctx.a.model, a.input, a.out, b);
  try {
    const sa = simulate({ ...pa, host }, a.input);
    const sb = simulate({ ...pb, host }, b.input);
    const da = compareOutcome(ctx.a.model, a.out, sa);
    if (da) return { status: 'disagrees', detail: `old side: the simulator disagrees with the model: ${da}` };
    const db = compareOutcome(ctx.b.model, b.out, sb);
    if (db) return { status: 'disagrees', detail: `new side: the simulator disagrees with the model: ${db}` };
    const k = simKind(sa, sb);
    if (k !== kind) return { status: 'disagrees', detail: `the simulator shows ${k ?? 'no difference'} where the diff claims ${kind}` };
    return { status: 'agrees', detail: `simulator: old ${sa.verdict}${sa.egress ? ` out of ${sa.egress.device}` : ''}, new ${sb.verdict}${sb.egress ? ` out of ${sb.egress.device}` : ''}` };
  } catch (e) {
    return { status: 'not-replayed', detail: `the simulator refused the witness: ${e instanceof Error ? e.message : String(e)}` };
  }
}
