import { type Constraint, ifaceMatches } from '../../ir/constraint.js';
import { type NumericField, NUMERIC_FIELDS } from '../../ir/fields.js';
import { contains, type IntervalSet } from '../../util/intervals.js';
import type { Family } from '../../util/ip.js';
import { type Frame, readField } from '../frame.js';
import { ipLength } from '../packet.js';

/**
 * Compiles a Constraint (src/ir/constraint.ts) into a closure over a Frame. The result must
 * agree with evaluateConstraint on frameView(frame) for every packet (property-tested); it is
 * faster because small fields are read as numbers straight from the packet, IPv4 addresses as
 * cached numbers, and interval sets become flat Float64Arrays or one comparison.
 */
export type Pred = (f: Frame) => boolean;
export type OpaqueDecider = (c: Extract<Constraint, { op: 'opaque' }>, f: Frame) => boolean;

/** Number-valued readers for fields that fit a double exactly; -1 means "absent". */
type NumReader = (f: Frame) => number;

function numberReader(field: NumericField, family: Family): NumReader | undefined {
  switch (field) {
    case 'saddr':
      return family === 'ipv4' ? (f) => f.srcN : undefined;
    case 'daddr':
      return family === 'ipv4' ? (f) => f.dstN : undefined;
    case 'proto':
      return (f) => f.pkt.proto;
    case 'sport':
      return (f) => (f.hasPortsNow() ? (f.pkt.sport as number) : -1);
    case 'dport':
      return (f) => (f.hasPortsNow() && f.pkt.dport !== undefined ? f.pkt.dport : -1);
    case 'tcpflags':
      return (f) => (!f.pkt.fragment && f.pkt.tcp ? f.pkt.tcp.flags : -1);
    case 'ttl':
      return (f) => f.pkt.ttl;
    case 'length':
      return (f) => ipLength(f.pkt);
    case 'mark':
      return (f) => f.mark >>> 0;
    case 'ctstate':
      return (f) => f.ctStateBit;
    case 'fragment':
      return (f) => (f.pkt.fragment ? 1 : 0);
    case 'pkttype':
      return (f) => f.pkttype;
    default:
      return undefined;
  }
}

/** Membership in an interval set of numbers, specialised for the common small shapes. */
function numberSetTest(set: IntervalSet): (v: number) => boolean {
  const flat = new Float64Array(set.length * 2);
  set.forEach(([lo, hi], i) => {
    flat[2 * i] = Number(lo);
    flat[2 * i + 1] = Number(hi);
  });
  if (set.length === 0) return () => false;
  if (set.length === 1) {
    const lo = flat[0];
    const hi = flat[1];
    return lo === hi ? (v) => v === lo : (v) => v >= lo && v <= hi;
  }
  if (set.length <= 4) {
    return (v) => {
      for (let i = 0; i < flat.length; i += 2) if (v >= flat[i] && v <= flat[i + 1]) return true;
      return false;
    };
  }
  const n = set.length;
  return (v) => {
    let lo = 0;
    let hi = n - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (v < flat[2 * mid]) hi = mid - 1;
      else if (v > flat[2 * mid + 1]) lo = mid + 1;
      else return true;
    }
    return false;
  };
}

function fitsNumber(field: NumericField, family: Family): boolean {
  const b = NUMERIC_FIELDS[field].bits;
  return b === 'addr' ? family === 'ipv4' : b <= 32;
}

export function compileConstraint(c: Constraint, family: Family, opaque: OpaqueDecider): Pred {
  switch (c.op) {
    case 'true':
      return () => true;
    case 'false':
      return () => false;
    case 'and': {
      const parts = c.of.map((x) => compileConstraint(x, family, opaque));
      if (parts.length === 2) {
        const [a, b] = parts;
        return (f) => a(f) && b(f);
      }
      return (f) => {
        for (let i = 0; i < parts.length; i++) if (!parts[i](f)) return false;
        return true;
      };
    }
    case 'or': {
      const parts = c.of.map((x) => compileConstraint(x, family, opaque));
      return (f) => {
        for (let i = 0; i < parts.length; i++) if (parts[i](f)) return true;
        return false;
      };
    }
    case 'not': {
      const inner = compileConstraint(c.of, family, opaque);
      return (f) => !inner(f);
    }
    case 'in': {
      const read = numberReader(c.field, family);
      if (read) {
        const test = numberSetTest(c.set);
        return (f) => {
          const v = read(f);
          return v >= 0 && test(v);
        };
      }
      const field = c.field;
      const set = c.set;
      return (f) => {
        const v = readField(f, field);
        return v !== undefined && contains(set, v);
      };
    }
    case 'masked': {
      const read = numberReader(c.field, family);
      if (read && fitsNumber(c.field, family)) {
        const mask = Number(c.mask);
        const value = Number(c.value);
        return (f) => {
          const v = read(f);
          return v >= 0 && (v & mask) >>> 0 === value;
        };
      }
      const { field, mask, value } = c;
      return (f) => {
        const v = readField(f, field);
        return v !== undefined && (v & mask) === value;
      };
    }
    case 'present': {
      const read = numberReader(c.field, family);
      if (read) return (f) => read(f) >= 0;
      const field = c.field;
      return (f) => readField(f, field) !== undefined;
    }
    case 'iface': {
      const { name, wildcard } = c;
      if (c.field === 'iif') return wildcard ? (f) => f.iif.startsWith(name) : (f) => f.iif === name;
      return wildcard ? (f) => f.oif.startsWith(name) : (f) => f.oif === name;
    }
    case 'opaque':
      return (f) => opaque(c, f);
    default: {
      const never: never = c;
      throw new Error(`unhandled constraint ${JSON.stringify(never)}`);
    }
  }
}

export { ifaceMatches };
