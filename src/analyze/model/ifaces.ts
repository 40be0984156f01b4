import { ifaceMatches } from '../../ir/constraint.js';
import { type IntervalSet, normalize } from '../../util/intervals.js';

/** A name pattern as rules use it: exact, or a prefix with iptables' `+` wildcard. */
export interface IfacePattern {
  readonly name: string;
  readonly wildcard: boolean;
}

const IFNAME_MAX = 15;

/**
 * Interface names as a finite domain. Rules only ever compare a name with exact names and
 * prefixes, so names fall into a few classes that no rule can tell apart; each class gets one
 * representative name and an index. Index 0 is "" (no interface: iif on OUTPUT, oif on INPUT).
 *
 * Classes: every exact name that occurs (in rules, flows or the host model), and for every
 * wildcard prefix W the names that start with W but with no longer wildcard and equal no exact
 * name, and finally names that no pattern matches at all.
 */
export class IfaceDomain {
  readonly names: readonly string[];
  private readonly index = new Map<string, number>();
  private readonly patterns: readonly IfacePattern[];

  constructor(patterns: readonly IfacePattern[], exactNames: readonly string[]) {
    const exact = new Set<string>([...exactNames, ...patterns.filter((p) => !p.wildcard).map((p) => p.name)]);
    exact.delete('');
    const wild = [...new Set(patterns.filter((p) => p.wildcard).map((p) => p.name))];
    this.patterns = [...[...exact].map((name) => ({ name, wildcard: false })), ...wild.map((name) => ({ name, wildcard: true }))];
    const names: string[] = ['', ...[...exact].sort()];
    const taken = new Set(names);
    const signatures = new Set(names.filter((n) => n !== '').map((n) => this.signature(n)));
    const candidates = (prefix: string): string[] => {
      const out: string[] = [];
      for (let i = 0; i < 10; i++) out.push(`${prefix}${i}`);
      for (let i = 0; i < 10; i++) out.push(`${prefix}x${i}`);
      out.push(prefix);
      return out.filter((n) => n.length > 0 && n.length <= IFNAME_MAX);
    };
    // One representative per wildcard class, then one for "matches no pattern".
    for (const w of [...[...wild].sort(), undefined]) {
      // Names no pattern matches: an ordinary-looking device name if one is free.
      const pool = w === undefined ? [...candidates('eth'), ...candidates('nfp')] : candidates(w);
      for (const n of pool) {
        if (taken.has(n)) continue;
        const sig = this.signature(n);
        if (signatures.has(sig)) continue;
        if (w !== undefined && !ifaceMatches(n, w, true)) continue;
        names.push(n);
        taken.add(n);
        signatures.add(sig);
        break;
      }
    }
    this.names = names;
    names.forEach((n, i) => this.index.set(n, i));
  }

  get size(): number {
    return this.names.length;
  }

  /** Which patterns a name matches, as a string key: names with the same key are interchangeable. */
  private signature(name: string): string {
    return this.patterns.map((p) => (ifaceMatches(name, p.name, p.wildcard) ? '1' : '0')).join('');
  }

  /** The class index of any concrete name (a name the policy never mentions maps to its class). */
  classOf(name: string): number {
    const direct = this.index.get(name);
    if (direct !== undefined) return direct;
    const sig = this.signature(name);
    const i = this.names.findIndex((n) => n !== '' && this.signature(n) === sig);
    return i >= 0 ? i : 0;
  }

  nameOf(index: number): string {
    return this.names[index] ?? '';
  }

  /** Indices of the classes whose names match the pattern. */
  matching(name: string, wildcard: boolean): IntervalSet {
    const out: [bigint, bigint][] = [];
    this.names.forEach((n, i) => {
      if (ifaceMatches(n, name, wildcard)) out.push([BigInt(i), BigInt(i)]);
    });
    return normalize(out);
  }

  /** Indices of the given exact names (unknown names are ignored). */
  indicesOf(names: Iterable<string>): IntervalSet {
    const out: [bigint, bigint][] = [];
    for (const n of names) {
      const i = this.index.get(n);
      if (i !== undefined) out.push([BigInt(i), BigInt(i)]);
    }
    return normalize(out);
  }

  /** The class of names no pattern matches, if there is one. */
  unnamed(): number | undefined {
    // lo is a class of its own but a poor stand-in for "some other device" in a witness.
    const i = this.names.findIndex((n) => n !== '' && n !== 'lo' && this.signature(n).indexOf('1') < 0);
    return i > 0 ? i : undefined;
  }

  /** Every class but "" (a packet that came in on, or goes out of, some device). */
  nonEmpty(): IntervalSet {
    return this.size > 1 ? [[1n, BigInt(this.size - 1)]] : [];
  }
}
