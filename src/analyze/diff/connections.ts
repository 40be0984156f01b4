import type { SideEffect } from '../../ir/effect.js';
import { CT_HELPER, type CtHelperName } from '../../ir/fields.js';
import { type IntervalSet, normalize } from '../../util/intervals.js';
import type { FamilyModel } from '../model/build.js';
import { absentValue } from '../model/fields.js';

/**
 * The connections a packet of an existing connection (ESTABLISHED, RELATED) can belong to,
 * when every connection was made by one of the two rulesets being compared: its mark is one
 * the rules can give (0 when no rule writes one), its master's helper one that a rule attaches
 * (automatic helper assignment is off by default), and its status is made of the bits
 * conntrack sets (IPS_EXPECTED … IPS_DYING). The diff starts its walks from these, so a report
 * never talks about connection marks or helpers that neither ruleset can produce, and a mask
 * test on the status has an exact box form.
 */
export interface ConnectionDomain {
  /** Values of the connection mark; undefined: any (the rules can write too many). */
  readonly ctmark?: IntervalSet;
  /** Master helper ids, with the absent value for "no master helper". */
  readonly cthelper: IntervalSet;
  readonly ctstatus: IntervalSet;
}

/** More mark values than this, and any value is taken as possible. */
const MAX_MARKS = 64;
const M32 = 0xffffffffn;

function sideEffects(models: readonly FamilyModel[]): SideEffect[] {
  return models.flatMap((m) => m.rules.flatMap((r) => (r.effect.type === 'continue' ? r.effect.actions : [])));
}

/** The values mark and ctmark can hold: 0 to start with, closed under the rules' writes. */
function markValues(effects: readonly SideEffect[]): { mark?: Set<bigint>; ctmark?: Set<bigint> } {
  const sets = { mark: new Set<bigint>([0n]), ctmark: new Set<bigint>([0n]) };
  const writes = effects.filter((e) => e.type === 'xmark' || e.type === 'copy-mark');
  for (let grew = true; grew; ) {
    grew = false;
    for (const e of writes) {
      const to = e.type === 'xmark' ? e.field : e.to;
      const before = sets[to].size;
      if (e.type === 'xmark') for (const v of [...sets[to]]) sets[to].add(((v & ~e.mask & M32) ^ e.xor) & M32);
      else for (const t of [...sets[e.to]]) for (const f of sets[e.from]) sets[e.to].add(((t & ~e.toMask & M32) ^ (f & e.fromMask)) & M32);
      if (sets[to].size > MAX_MARKS) return { mark: sets.mark.size > MAX_MARKS ? undefined : sets.mark };
      if (sets[to].size !== before) grew = true;
    }
  }
  return sets;
}

export function connectionDomain(models: readonly FamilyModel[]): ConnectionDomain {
  const effects = sideEffects(models);
  const { ctmark } = markValues(effects);
  const family = models[0]?.family ?? 'ipv4';
  const helpers = new Set<bigint>([absentValue('cthelper', family)]);
  for (const e of effects) {
    if (e.type !== 'ct-template' || e.helper === undefined) continue;
    // The kernel compares a helper name by prefix (xt_helper.c): a name nfproof does not number is none it knows.
    const id = (CT_HELPER as Record<string, number>)[e.helper as CtHelperName];
    if (id !== undefined) helpers.add(BigInt(id));
  }
  const points = (xs: Iterable<bigint>): IntervalSet => normalize([...xs].map((x) => [x, x] as const));
  return {
    ...(ctmark ? { ctmark: points(ctmark) } : {}),
    cthelper: points(helpers),
    ctstatus: [[0n, 0x3ffn]],
  };
}
