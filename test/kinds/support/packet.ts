import { type Constraint, evaluateConstraint } from '../../../src/ir/constraint.js';
import type { NumericField, PacketView } from '../../../src/ir/fields.js';
import { matchConstraint, matchKind } from '../../../src/kinds/index.js';
import type { MatchEvalContext } from '../../../src/kinds/kind.js';
import { type Family, parseAddress } from '../../../src/util/ip.js';
import { parseRule } from './dsl.js';

/**
 * A PacketView stub for hand-picked packets: numeric fields by name (addresses may be written
 * as text), interfaces, family. A field that is not given is absent — as on a real packet
 * without it (no ports on ICMP, no conntrack entry on an invalid packet, no socket on a
 * forwarded one).
 */
export interface PacketSpec {
  readonly family?: Family;
  readonly iif?: string;
  readonly oif?: string;
  readonly [field: string]: string | number | bigint | undefined;
}

export function packet(spec: PacketSpec): PacketView {
  const family = spec.family ?? 'ipv4';
  const values = new Map<string, bigint>();
  for (const [k, v] of Object.entries(spec)) {
    if (k === 'family' || k === 'iif' || k === 'oif' || v === undefined) continue;
    values.set(k, typeof v === 'string' ? (parseAddress(v)?.value ?? BigInt(v)) : BigInt(v));
  }
  return {
    family,
    iif: spec.iif ?? '',
    oif: spec.oif ?? '',
    num: (f: NumericField) => values.get(f),
  };
}

/** The conjunction of a DSL rule's matches, as constraints. */
export function ruleConstraints(dsl: string, family: Family = 'ipv4'): Constraint[] {
  const r = parseRule(dsl, { family });
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length) throw new Error(`${dsl}: ${errors.map((d) => d.message).join('; ')}`);
  return r.matches.map((m) => matchConstraint(m, family));
}

/** Does the packet match every clause of the DSL rule? Opaque parts must not be reached. */
export function matchesPacket(dsl: string, spec: PacketSpec): boolean {
  const p = packet(spec);
  return ruleConstraints(dsl, p.family).every((c) =>
    evaluateConstraint(c, p, (o) => {
      throw new Error(`${dsl}: reached opaque ${o.key}`);
    }),
  );
}

/** Runs a rule's matches through their kinds' evaluate() on a virtual clock (limit, recent …). */
export class Evaluator {
  private readonly locals = new Map<unknown, unknown>();
  private readonly shared = new Map<string, unknown>();
  readonly matches;

  constructor(dsl: string, private readonly family: Family = 'ipv4') {
    this.matches = parseRule(dsl, { family }).matches;
  }

  run(now: number, spec: PacketSpec): boolean | undefined {
    const p = packet({ family: this.family, ...spec });
    let result: boolean | undefined = true;
    for (const m of this.matches) {
      const ctx: MatchEvalContext = {
        packet: p,
        now,
        hook: 'INPUT',
        local: <T>(init: () => T): T => {
          if (!this.locals.has(m)) this.locals.set(m, init());
          return this.locals.get(m) as T;
        },
        shared: <T>(name: string, init: () => T): T => {
          if (!this.shared.has(name)) this.shared.set(name, init());
          return this.shared.get(name) as T;
        },
      };
      const kind = matchKind(m);
      const c = kind.constraint(m, this.family);
      const v = evaluateConstraint(c, p, (o) => {
        const r = kind.evaluate?.(m as never, o, ctx);
        if (r === undefined) throw new Error(`${kind.kind}: undecided`);
        return r;
      });
      if (!v) return false;
      result = v;
    }
    return result;
  }
}
