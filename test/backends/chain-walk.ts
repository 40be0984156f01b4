import { type Constraint, evaluateConstraint } from '../../src/ir/constraint.js';
import { NUMERIC_FIELDS, type NumericField, type PacketView } from '../../src/ir/fields.js';
import type { Hook } from '../../src/ir/netfilter.js';
import type { Policy, Table } from '../../src/ir/policy.js';
import { type Match, matchConstraint, printTarget, targetEffect } from '../../src/kinds/index.js';
import type { Family } from '../../src/util/ip.js';
import { maxOf } from '../../src/util/intervals.js';
import { fieldBits } from '../../src/ir/fields.js';

/**
 * A small reference walk of one table's chains for one packet, with netfilter's rules for
 * jumps: `-j` pushes a return point, `-g` does not, RETURN or falling off a user chain goes back
 * to the last return point, and falling off (or RETURN in) a built-in chain applies its policy.
 * It records every non-terminating target that runs, so two rulesets can be compared for "same
 * verdict, same side effects, each run as often". Opaque matches are decided from the packet
 * alone: every unknown test decides the same way for one packet (true for about half
 * of the packets), because its text may be normalised differently on the two sides.
 */
export interface Walk {
  readonly verdict: string;
  readonly effects: readonly string[];
}

const constraints = new WeakMap<object, Constraint>();
function constraintOf(m: Match, family: Family): Constraint {
  let c = constraints.get(m);
  if (!c) {
    c = matchConstraint(m, family);
    constraints.set(m, c);
  }
  return c;
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

export function walk(table: Table, hook: Hook, family: Family, p: PacketView & { readonly id: string }): Walk {
  const chains = new Map(table.chains.map((c) => [c.hook ?? c.name, c]));
  const builtin = chains.get(hook);
  if (!builtin) return { verdict: 'ACCEPT', effects: [] };
  const effects: string[] = [];
  const decide = (_c: Extract<Constraint, { op: 'opaque' }>) => (hash(p.id) & 1) === 1;
  const stack: { chain: string; index: number }[] = [];
  let chain = builtin.name;
  let index = 0;
  for (let steps = 0; steps < 100_000; steps++) {
    const c = chains.get(chain);
    const rules = c?.rules ?? [];
    if (index >= rules.length) {
      const back = stack.pop();
      if (!back) return { verdict: builtin.policy ?? 'ACCEPT', effects };
      ({ chain, index } = back);
      continue;
    }
    const rule = rules[index];
    const matched = rule.matches.every((m) => evaluateConstraint(constraintOf(m, family), p, decide));
    if (!matched) {
      index++;
      continue;
    }
    const e = targetEffect(rule.target, family);
    switch (e.type) {
      case 'accept':
        return { verdict: 'ACCEPT', effects };
      case 'drop':
        return { verdict: 'DROP', effects };
      case 'reject':
      case 'nat':
        return { verdict: JSON.stringify(e, (_k, v) => (typeof v === 'bigint' ? String(v) : v)), effects };
      case 'return': {
        const back = stack.pop();
        if (!back) return { verdict: builtin.policy ?? 'ACCEPT', effects };
        ({ chain, index } = back);
        continue;
      }
      case 'jump':
        stack.push({ chain, index: index + 1 });
        chain = e.chain;
        index = 0;
        continue;
      case 'goto':
        chain = e.chain;
        index = 0;
        continue;
      case 'continue':
        // The neutral effect, not the DSL text: a default written out (`level warn`) and left
        // out (as iptables-save prints it) are the same action.
        effects.push(JSON.stringify(e.actions, (_k, v) => (typeof v === 'bigint' ? String(v) : v)));
        index++;
        continue;
      case 'opaque':
        if (e.terminates === 'yes') return { verdict: `opaque ${printTarget(rule.target)}`, effects };
        effects.push(printTarget(rule.target));
        index++;
        continue;
      default: {
        const never: never = e;
        throw new Error(`unhandled effect ${JSON.stringify(never)}`);
      }
    }
  }
  throw new Error('chain walk did not end (a loop?)');
}

/** Values worth trying per field: those the policy's constraints mention, and their neighbours. */
export function interestingValues(policy: Policy, family: Family): { nums: Map<NumericField, bigint[]>; ifaces: string[] } {
  const nums = new Map<NumericField, bigint[]>();
  const ifaces = new Set<string>(['', 'lo']);
  const add = (f: NumericField, v: bigint) => {
    const max = maxOf(fieldBits(f, family));
    for (const x of [v - 1n, v, v + 1n]) if (x >= 0n && x <= max) nums.set(f, [...(nums.get(f) ?? []), x]);
  };
  const visit = (c: Constraint): void => {
    switch (c.op) {
      case 'and':
      case 'or':
        c.of.forEach(visit);
        return;
      case 'not':
        visit(c.of);
        return;
      case 'in':
        for (const [lo, hi] of c.set) {
          add(c.field, lo);
          add(c.field, hi);
          add(c.field, (lo + hi) / 2n);
        }
        return;
      case 'masked':
        add(c.field, c.value);
        add(c.field, c.value | ~c.mask & maxOf(fieldBits(c.field, family)));
        return;
      case 'iface':
        ifaces.add(c.name);
        if (c.wildcard) ifaces.add(`${c.name}9`);
        return;
      default:
        return;
    }
  };
  for (const t of policy.rulesets[family].tables) for (const ch of t.chains) for (const r of ch.rules) for (const m of r.matches) visit(matchConstraint(m, family));
  for (const f of Object.keys(NUMERIC_FIELDS) as NumericField[]) if (!nums.has(f)) nums.set(f, [0n, 1n]);
  return { nums, ifaces: [...ifaces] };
}
