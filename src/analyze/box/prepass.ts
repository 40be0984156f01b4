import { opaqueParts } from '../../ir/constraint.js';
import type { Hook } from '../../ir/netfilter.js';
import { type ConcreteOutcome, runPacket } from '../concrete/interp.js';
import type { PacketInput } from '../concrete/input.js';
import { type FamilyModel, type ModelChain, type ModelRule, chainKey, lookupChain } from '../model/build.js';
import { type Box, BoxDomain } from './box.js';
import { candidates } from './candidates.js';
import { type BoxApprox, ConstraintBoxes, UNION_CAP } from './from-constraint.js';
import { universe } from './universe.js';

/**
 * The fast pre-pass: decides for most rules, without Z3, whether any packet can fire them.
 *
 * For every chain it computes an over-approximation of the packets that enter it (a union of
 * boxes: the hook's universe for built-in chains, the matching packets of every jump for user
 * chains). For a rule r it then looks at E(r) = entry ∩ match(r):
 *
 *  - E(r) empty: no packet that matches r ever enters its chain: r is dead ("no entry");
 *  - a packet picked from E(r) that the concrete interpreter confirms fires r: r is live;
 *  - otherwise the earlier rules of the chain that overlap E(r) are subtracted in order (only
 *    what they surely decide: their under-approximation, minus what a jump's chain returns):
 *    nothing left means r is dead and those rules are to blame; a confirmed packet from what
 *    is left means r is live.
 *
 * Whatever is not settled (budget exceeded, or no candidate confirmed) is left to Z3. Claims of
 * deadness are sound because every set is an over-approximation of what can happen, and every
 * subtracted set an under-approximation; claims of liveness carry a concrete packet.
 */
export type PrepassResult =
  | { readonly kind: 'fires'; readonly input: PacketInput; readonly outcome: ConcreteOutcome }
  | { readonly kind: 'dead'; readonly cause: 'no-entry' }
  | { readonly kind: 'dead'; readonly cause: 'decided-earlier'; readonly blame: readonly number[] }
  | { readonly kind: 'open'; readonly reason: string; readonly region: readonly Box[] };

export interface PrepassStats {
  rules: number;
  fired: number;
  dead: number;
  open: number;
  subtractions: number;
  candidatesTried: number;
  ms: number;
}

/** Per-rule work limit for the subtraction (box operations). */
const SUBTRACT_BUDGET = 60_000;
const PIECES_CAP = 4096;

export class Prepass {
  readonly dom: BoxDomain;
  readonly boxes: readonly BoxApprox[];
  /** Hull of each rule's over-approximation, for quick overlap tests. */
  private readonly hulls: readonly (Box | undefined)[];
  readonly entries = new Map<string, Box[]>();
  private readonly returned = new Map<string, Box[]>();
  /** E(r): packets at the rule that match it (over-approximation). */
  readonly reachMatch: Box[][] = [];
  readonly results: PrepassResult[] = [];
  readonly stats: PrepassStats = { rules: 0, fired: 0, dead: 0, open: 0, subtractions: 0, candidatesTried: 0, ms: 0 };
  private readonly hooksOfChain = new Map<string, Hook>();

  constructor(readonly model: FamilyModel) {
    this.dom = new BoxDomain(model.family, model.ifaces.size);
    const cb = new ConstraintBoxes(this.dom, model.ifaces);
    this.boxes = model.rules.map((r) => cb.of(r.constraint));
    this.hulls = this.boxes.map((b) => (b.over.length ? b.over.reduce((h, x) => this.dom.hull(h, x)) : undefined));
  }

  run(onRule?: (done: number) => void): readonly PrepassResult[] {
    const t0 = performance.now();
    for (const c of this.model.chains.values()) this.entry(c);
    for (const r of this.model.rules) {
      this.results[r.id] = this.checkRule(r);
      onRule?.(r.id + 1);
    }
    for (const r of this.results) {
      if (r.kind === 'fires') this.stats.fired++;
      else if (r.kind === 'dead') this.stats.dead++;
      else this.stats.open++;
    }
    this.stats.rules = this.model.rules.length;
    this.stats.ms = performance.now() - t0;
    return this.results;
  }

  /** Packets entering a chain (over-approximation), computed top-down from the hooks. */
  entry(c: ModelChain, stack: ModelChain[] = []): Box[] {
    const key = chainKey(c.table, c.name);
    const known = this.entries.get(key);
    if (known) return known;
    let boxes: Box[];
    if (c.hook) {
      boxes = universe(this.model, this.dom, c.hook, c.table);
      this.hooksOfChain.set(key, c.hook);
    } else if (stack.includes(c)) {
      boxes = [];
    } else {
      boxes = [];
      for (const caller of c.callers) {
        const parent = lookupChain(this.model, caller.table, caller.chain)!;
        this.entry(parent, [...stack, c]);
        boxes.push(...this.matchAt(caller));
        const h = this.hooksOfChain.get(chainKey(parent.table, parent.name));
        if (h && !this.hooksOfChain.has(key)) this.hooksOfChain.set(key, h);
      }
      boxes = this.cap(boxes.filter((b) => !this.dom.isEmpty(b)));
    }
    this.entries.set(key, boxes);
    return boxes;
  }

  /** E(r) = entry(chain) ∩ over(match(r)). */
  matchAt(r: ModelRule): Box[] {
    const cached = this.reachMatch[r.id];
    if (cached) return cached;
    const chain = lookupChain(this.model, r.table, r.chain)!;
    const entry = this.entry(chain);
    const out: Box[] = [];
    for (const e of entry) {
      for (const m of this.boxes[r.id].over) {
        const x = this.dom.intersect(e, m);
        if (x && !this.dom.isEmpty(x)) out.push(x);
      }
    }
    const capped = this.cap(out);
    this.reachMatch[r.id] = capped;
    return capped;
  }

  private cap(boxes: Box[]): Box[] {
    if (boxes.length <= UNION_CAP) return boxes;
    return [boxes.reduce((h, b) => this.dom.hull(h, b))];
  }

  /** Packets a user chain returns to its caller (over-approximation), bottom-up. */
  private returnedFrom(c: ModelChain, stack: ModelChain[] = []): Box[] {
    const key = chainKey(c.table, c.name);
    const known = this.returned.get(key);
    if (known) return known;
    if (stack.includes(c)) return this.entry(c);
    const out: Box[] = [];
    for (const r of c.rules) {
      if (r.effect.type === 'return') out.push(...this.matchAt(r));
      else if (r.effect.type === 'goto') {
        const t = lookupChain(this.model, c.table, r.effect.chain);
        if (t) out.push(...this.intersectUnions(this.matchAt(r), this.returnedFrom(t, [...stack, c])));
      }
    }
    const fallOff = this.subtractEarlier(c, c.rules.length, this.entry(c), [...stack, c]);
    out.push(...fallOff.rest);
    const capped = this.cap(out.filter((b) => !this.dom.isEmpty(b)));
    this.returned.set(key, capped);
    return capped;
  }

  private intersectUnions(a: readonly Box[], b: readonly Box[]): Box[] {
    const out: Box[] = [];
    for (const x of a) for (const y of b) {
      const z = this.dom.intersect(x, y);
      if (z && !this.dom.isEmpty(z)) out.push(z);
    }
    return out;
  }

  /**
   * What surely stops the walk of a chain at rule i for the packets it matches
   * (under-approximation): its under-approximated match for terminal rules, minus what comes
   * back for jumps; nothing for rules that may let the packet go on.
   */
  private decides(r: ModelRule, stack: ModelChain[]): readonly Box[] {
    const e = r.effect;
    switch (e.type) {
      case 'accept':
      case 'drop':
      case 'reject':
      case 'return':
      case 'goto':
      case 'nat':
        return this.boxes[r.id].under;
      case 'jump': {
        const t = lookupChain(this.model, r.table, e.chain);
        if (!t || stack.includes(t)) return [];
        const back = this.returnedFrom(t, stack);
        let out: Box[] = [...this.boxes[r.id].under];
        for (const b of back) {
          out = out.flatMap((x) => this.dom.subtract(x, b));
          if (out.length > PIECES_CAP) return [];
        }
        return out;
      }
      case 'opaque':
        return e.terminates === 'yes' ? this.boxes[r.id].under : [];
      case 'continue':
        return [];
      default: {
        const never: never = e;
        throw new Error(`unhandled effect ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * `from` minus what rules 0..k-1 of the chain surely decide. `complete` is false when the
   * budget ran out (then `rest` is still a superset of the truth).
   */
  private subtractEarlier(
    c: ModelChain,
    k: number,
    from: readonly Box[],
    stack: ModelChain[],
  ): { rest: Box[]; blame: number[]; complete: boolean } {
    let rest: Box[] = [...from];
    const blame: number[] = [];
    let ops = 0;
    for (let i = 0; i < k && rest.length > 0; i++) {
      const r = c.rules[i];
      const hull = this.hulls[r.id];
      if (!hull) continue;
      const restHull = rest.length === 1 ? rest[0] : undefined;
      if (restHull && !this.dom.overlaps(hull, restHull)) continue;
      if (!rest.some((x) => this.dom.overlaps(hull, x))) continue;
      const dec = this.decides(r, stack);
      if (dec.length === 0) continue;
      let next: Box[] = [];
      let removed = false;
      for (const x of rest) {
        let pieces: Box[] = [x];
        for (const d of dec) {
          if (!this.dom.overlaps(x, d)) continue;
          const np: Box[] = [];
          for (const p of pieces) {
            ops++;
            const s = this.dom.subtract(p, d);
            if (s.length !== 1 || s[0] !== p) removed = true;
            np.push(...s);
          }
          pieces = np;
        }
        next.push(...pieces);
      }
      this.stats.subtractions++;
      if (removed) {
        next = next.filter((b) => !this.dom.isEmpty(b));
        blame.push(r.id);
      }
      rest = next;
      if (ops > SUBTRACT_BUDGET || rest.length > PIECES_CAP) return { rest, blame, complete: false };
    }
    return { rest, blame, complete: true };
  }

  private tryCandidates(r: ModelRule, region: readonly Box[], hook: Hook): PrepassResult | undefined {
    const keys = opaqueParts(r.constraint).map((o) => o.key);
    const opaqueOn = keys.length ? Object.fromEntries(keys.map((k) => [k, true])) : undefined;
    let seed = r.id + 1;
    for (const box of region.slice(0, 4)) {
      for (const input of candidates(this.model, this.dom, box, hook, 3, seed++)) {
        for (const inp of opaqueOn ? [{ ...input, opaque: opaqueOn }, input] : [input]) {
          this.stats.candidatesTried++;
          const outcome = runPacket(this.model, inp);
          if (outcome.fired.includes(r.id)) return { kind: 'fires', input: inp, outcome };
        }
      }
    }
    return undefined;
  }

  private checkRule(r: ModelRule): PrepassResult {
    const chain = lookupChain(this.model, r.table, r.chain)!;
    const e = this.matchAt(r);
    if (e.length === 0) return { kind: 'dead', cause: 'no-entry' };
    const hook = this.hooksOfChain.get(chainKey(chain.table, chain.name)) ?? 'PREROUTING';
    const quick = this.tryCandidates(r, e, hook);
    if (quick) return quick;
    const sub = this.subtractEarlier(chain, r.index, e, [chain]);
    if (sub.complete && sub.rest.length === 0) return { kind: 'dead', cause: 'decided-earlier', blame: sub.blame };
    const found = this.tryCandidates(r, sub.rest, hook);
    if (found) return found;
    return {
      kind: 'open',
      reason: sub.complete ? 'no candidate packet confirmed' : 'subtraction budget exceeded',
      region: sub.complete ? sub.rest : e,
    };
  }
}
