import { contains, type IntervalSet } from '../util/intervals.js';
import type { IfaceField, NumericField, PacketView } from './fields.js';

/**
 * The neutral meaning of a match: a boolean formula over packet fields.
 *
 * Every match kind says what it means once, as a Constraint. The simulator evaluates it on a
 * concrete packet (evaluateConstraint below, or a compiled form), the analyzer encodes it in Z3
 * and in interval boxes. Because both read the same formula, "the simulator and the analyzer
 * agree on what a match means" holds by construction; what remains to test is the pipeline.
 *
 * Semantics of missing fields: `in`, `masked` and `present` are false when the packet has no
 * such field. Kinds express negation of a field test by complementing the value set (still
 * false for a missing field, as iptables' `! --dport` is on a non-port packet), or by `not`
 * around the whole test where the kernel really inverts (interfaces, marks on every packet).
 */
export type Constraint =
  | { readonly op: 'true' }
  | { readonly op: 'false' }
  | { readonly op: 'and'; readonly of: readonly Constraint[] }
  | { readonly op: 'or'; readonly of: readonly Constraint[] }
  | { readonly op: 'not'; readonly of: Constraint }
  /** The field exists and its value lies in the set. */
  | { readonly op: 'in'; readonly field: NumericField; readonly set: IntervalSet }
  /** The field exists and (value & mask) == value_. */
  | { readonly op: 'masked'; readonly field: NumericField; readonly mask: bigint; readonly value: bigint }
  /** The field exists on this packet. */
  | { readonly op: 'present'; readonly field: NumericField }
  /**
   * Interface name test as the kernel does it: exact, or with `wildcard` a prefix match
   * (`eth+` is name "eth" with wildcard). Absent interfaces compare as "".
   */
  | { readonly op: 'iface'; readonly field: IfaceField; readonly name: string; readonly wildcard: boolean }
  /**
   * Something nfproof cannot express over header fields (rate limits, recent lists, unknown
   * modules). `key` identifies the test: two opaque constraints with the same key are the same
   * unknown boolean. The simulator asks the kind; the analyzer keeps it a free variable and
   * marks every result that depends on it.
   */
  | { readonly op: 'opaque'; readonly key: string; readonly reason: string };

export const TRUE: Constraint = Object.freeze({ op: 'true' });
export const FALSE: Constraint = Object.freeze({ op: 'false' });

export function and(...of: Constraint[]): Constraint {
  const flat: Constraint[] = [];
  for (const c of of) {
    if (c.op === 'false') return FALSE;
    if (c.op === 'true') continue;
    if (c.op === 'and') flat.push(...c.of);
    else flat.push(c);
  }
  return flat.length === 0 ? TRUE : flat.length === 1 ? flat[0] : { op: 'and', of: flat };
}

export function or(...of: Constraint[]): Constraint {
  const flat: Constraint[] = [];
  for (const c of of) {
    if (c.op === 'true') return TRUE;
    if (c.op === 'false') continue;
    if (c.op === 'or') flat.push(...c.of);
    else flat.push(c);
  }
  return flat.length === 0 ? FALSE : flat.length === 1 ? flat[0] : { op: 'or', of: flat };
}

export function not(c: Constraint): Constraint {
  if (c.op === 'true') return FALSE;
  if (c.op === 'false') return TRUE;
  if (c.op === 'not') return c.of;
  return { op: 'not', of: c };
}

export function inSet(field: NumericField, set: IntervalSet): Constraint {
  return { op: 'in', field, set };
}

export function eq(field: NumericField, value: bigint | number): Constraint {
  const v = BigInt(value);
  return { op: 'in', field, set: [[v, v]] };
}

export function masked(field: NumericField, mask: bigint | number, value: bigint | number): Constraint {
  return { op: 'masked', field, mask: BigInt(mask), value: BigInt(value) };
}

export function present(field: NumericField): Constraint {
  return { op: 'present', field };
}

export function iface(field: IfaceField, name: string, wildcard: boolean): Constraint {
  return { op: 'iface', field, name, wildcard };
}

export function opaque(key: string, reason: string): Constraint {
  return { op: 'opaque', key, reason };
}

/** The kernel's interface comparison (xt ifname compare with the `+` wildcard). */
export function ifaceMatches(actual: string, name: string, wildcard: boolean): boolean {
  return wildcard ? actual.startsWith(name) : actual === name;
}

/**
 * Reference evaluation of a constraint on a concrete packet. The simulator may compile
 * constraints into something faster, but must agree with this function (a property test checks).
 */
export function evaluateConstraint(
  c: Constraint,
  p: PacketView,
  decideOpaque: (c: Extract<Constraint, { op: 'opaque' }>) => boolean,
): boolean {
  switch (c.op) {
    case 'true':
      return true;
    case 'false':
      return false;
    case 'and':
      return c.of.every((x) => evaluateConstraint(x, p, decideOpaque));
    case 'or':
      return c.of.some((x) => evaluateConstraint(x, p, decideOpaque));
    case 'not':
      return !evaluateConstraint(c.of, p, decideOpaque);
    case 'in': {
      const v = p.num(c.field);
      return v !== undefined && contains(c.set, v);
    }
    case 'masked': {
      const v = p.num(c.field);
      return v !== undefined && (v & c.mask) === c.value;
    }
    case 'present':
      return p.num(c.field) !== undefined;
    case 'iface':
      return ifaceMatches(c.field === 'iif' ? p.iif : p.oif, c.name, c.wildcard);
    case 'opaque':
      return decideOpaque(c);
    default: {
      const never: never = c;
      throw new Error(`unhandled constraint ${JSON.stringify(never)}`);
    }
  }
}

/** Collects the opaque tests a constraint depends on (the analyzer reports them with a finding). */
export function opaqueParts(c: Constraint, out: Extract<Constraint, { op: 'opaque' }>[] = []): typeof out {
  switch (c.op) {
    case 'and':
    case 'or':
      c.of.forEach((x) => opaqueParts(x, out));
      break;
    case 'not':
      opaqueParts(c.of, out);
      break;
    case 'opaque':
      out.push(c);
      break;
    default:
      break;
  }
  return out;
}
