import type { Constraint } from '../../ir/constraint.js';
import { ifaceMatches } from '../../ir/constraint.js';
import type { IntervalSet } from '../../util/intervals.js';
import { FIELD_SLOT, presenceOf } from '../model/fields.js';
import type { PacketState } from './state.js';

/**
 * A constraint compiled to a closure over PacketState: field slots and presence kinds looked up
 * once, intervals scanned without re-normalising. Same meaning as evaluateConstraint
 * (src/ir/constraint.ts) — a unit property test compares the two on random constraints — but
 * several times faster, which matters when the pre-pass runs thousands of candidate packets.
 */
export type Compiled = (st: PacketState, opaque: (key: string) => boolean) => boolean;

function member(set: IntervalSet, v: bigint): boolean {
  // Sets from rules are short; a linear scan beats binary search below a few dozen intervals.
  if (set.length > 24) {
    let lo = 0;
    let hi = set.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const [l, h] = set[mid];
      if (v < l) hi = mid - 1;
      else if (v > h) lo = mid + 1;
      else return true;
    }
    return false;
  }
  for (const [l, h] of set) {
    if (v < l) return false;
    if (v <= h) return true;
  }
  return false;
}

export function compileConstraint(c: Constraint): Compiled {
  switch (c.op) {
    case 'true':
      return () => true;
    case 'false':
      return () => false;
    case 'and': {
      const parts = c.of.map(compileConstraint);
      return (st, o) => {
        for (const p of parts) if (!p(st, o)) return false;
        return true;
      };
    }
    case 'or': {
      const parts = c.of.map(compileConstraint);
      return (st, o) => {
        for (const p of parts) if (p(st, o)) return true;
        return false;
      };
    }
    case 'not': {
      const inner = compileConstraint(c.of);
      return (st, o) => !inner(st, o);
    }
    case 'in': {
      const f = c.field;
      const set = c.set;
      const always = presenceOf(f) === 'always';
      const slot = FIELD_SLOT[f];
      if (always && !st_derivable(f)) return (st) => member(set, st.values[slot]);
      return (st) => {
        const v = st.num(f);
        return v !== undefined && member(set, v);
      };
    }
    case 'masked': {
      const f = c.field;
      const { mask, value } = c;
      return (st) => {
        const v = st.num(f);
        return v !== undefined && (v & mask) === value;
      };
    }
    case 'present': {
      const f = c.field;
      return (st) => st.num(f) !== undefined;
    }
    case 'iface': {
      const { name, wildcard } = c;
      return c.field === 'iif' ? (st) => ifaceMatches(st.iif, name, wildcard) : (st) => ifaceMatches(st.oif, name, wildcard);
    }
    case 'opaque': {
      const key = c.key;
      return (_st, o) => o(key);
    }
    default: {
      const never: never = c;
      throw new Error(`unhandled constraint ${JSON.stringify(never)}`);
    }
  }
}

/** Fields whose value PacketState computes when read (not stored): they go through num(). */
function st_derivable(f: string): boolean {
  return f === 'srctype' || f === 'dsttype';
}
