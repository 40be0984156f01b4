import { opaqueParts } from '../../ir/constraint.js';
import type { Hook } from '../../ir/netfilter.js';
import { type ConcreteOutcome, runPacket } from '../concrete/interp.js';
import type { PacketInput } from '../concrete/input.js';
import { type FamilyModel, type ModelChain, type ModelRule, chainKey, lookupChain } from '../model/build.js';
import { contains } from '../../util/intervals.js';
import { FIELDS, FIELD_SLOT, IIF_SLOT, OIF_SLOT, fieldMax } from '../model/fields.js';
import { type Box, BoxDomain, pickValue } from './box.js';
import { lazyCandidates } from './candidates.js';
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
const RETURNED_CAP = 2048;
const PIECES_CAP = 4096;

export class Prepass {
  readonly dom: BoxDomain;
  readonly boxes: readonly BoxApprox[];
  /** Hull of each rule's over-approximation, for quick overlap tests. */
  private readonly hulls: readonly (Box | undefined)[];
  readonly entries = new Map<string, Box[]>();
  /** A few uncapped entry boxes per chain (one per caller), to draw candidate packets from. */
  private readonly samples = new Map<string, Box[]>();
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
    // Callers before callees, so that packets that reach a chain are known when its rules are
    // checked (they are the best starting points for packets that reach deeper).
    let done = 0;
    for (const c of this.chainOrder()) {
      for (const r of c.rules) {
        this.results[r.id] = this.checkRule(r);
        onRule?.(++done);
      }
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

  /** Chains in an order where every caller's chain comes first (built-in chains lead). */
  private chainOrder(): ModelChain[] {
    const out: ModelChain[] = [];
    const seen = new Set<ModelChain>();
    const visit = (c: ModelChain, stack: Set<ModelChain>) => {
      if (seen.has(c) || stack.has(c)) return;
      stack.add(c);
      for (const caller of c.callers) visit(lookupChain(this.model, caller.table, caller.chain)!, stack);
      stack.delete(c);
      seen.add(c);
      out.push(c);
    };
    for (const c of this.model.chains.values()) visit(c, new Set());
    return out;
  }

  /**
   * A packet that reached a rule, changed only where this rule's box wants other values: it
   * probably still reaches the chain, and now matches the rule.
   */
  private adapted(r: ModelRule, from: PacketInput): PacketInput | undefined {
    for (const box of this.boxes[r.id].under.length ? this.boxes[r.id].under : this.boxes[r.id].over) {
      const fields: Record<string, bigint> = { ...from.fields };
      let iface = from.ingress;
      let ok = true;
      box.forEach((set, slot) => {
        if (!ok || set === undefined) return;
        if (slot === IIF_SLOT) {
          const cur = iface.kind === 'iface' ? this.model.ifaces.classOf(iface.device) : 0;
          if (!contains(set, BigInt(cur))) {
            const i = Number(set[0][0]);
            if (i === 0) ok = false;
            else iface = { kind: 'iface', device: this.model.ifaces.nameOf(i) };
          }
          return;
        }
        if (slot === OIF_SLOT) return;
        const f = FIELDS[slot];
        const v = fields[f];
        if (v !== undefined && contains(set, v)) return;
        if (set[0][0] > fieldMax(f, this.model.family)) {
          delete fields[f];
          return;
        }
        fields[f] = pickValue(set, undefined);
      });
      if (ok) return { ...from, ingress: iface, fields };
    }
    return undefined;
  }

  private tryAdapted(r: ModelRule, chain: ModelChain): PrepassResult | undefined {
    const seeds: PacketInput[] = [];
    // The closest earlier live rule of the chain, then the live jumps into the chain.
    for (let i = r.index - 1; i >= 0 && seeds.length < 2; i--) {
      const res = this.results[chain.rules[i].id];
      if (res?.kind === 'fires') seeds.push(res.input);
    }
    for (const caller of chain.callers) {
      const res = this.results[caller.id];
      if (res?.kind === 'fires') seeds.push(res.input);
      if (seeds.length >= 6) break;
    }
    const own = opaqueParts(r.constraint).map((o) => o.key);
    for (const seed of seeds) {
      const input = this.adapted(r, seed);
      if (!input) continue;
      const found = this.confirm(r, input, own);
      if (found) return found;
    }
    return undefined;
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
      boxes = boxes.filter((b) => !this.dom.isEmpty(b));
      this.samples.set(key, boxes.slice(0, 24));
      boxes = this.cap(boxes);
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

  private cap(boxes: Box[], limit = UNION_CAP): Box[] {
    if (boxes.length <= limit) return boxes;

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
    // Returned packets may carry rewritten marks/TOS/TTL: leave those slots open.
    const changed = this.mutates(c, [...stack, c]);
    if (changed.size) for (let i = 0; i < out.length; i++) out[i] = out[i].map((set, slot) => (changed.has(slot) ? undefined : set));
    // Returned sets are subtracted from jumps' matches: keep them precise longer than entries.
    const capped = this.cap(out.filter((b) => !this.dom.isEmpty(b)), RETURNED_CAP);
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
  private readonly decided = new Map<number, readonly Box[]>();

  private decides(r: ModelRule, stack: ModelChain[]): readonly Box[] {
    const known = this.decided.get(r.id);
    if (known) return known;
    const d = this.decidesUncached(r, stack);
    this.decided.set(r.id, d);
    return d;
  }

  private decidesUncached(r: ModelRule, stack: ModelChain[]): readonly Box[] {
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
    // Slots rewritten between rule i and rule k: what rule i saw there is not what k sees.
    const mutAfter: Set<number>[] = new Array(k);
    const acc = new Set<number>();
    for (let i = k - 1; i >= 0; i--) {
      mutAfter[i] = new Set(acc);
      for (const slot of this.mutatedBy(c.rules[i], stack)) acc.add(slot);
    }
    for (let i = 0; i < k && rest.length > 0; i++) {
      const r = c.rules[i];
      const hull = this.hulls[r.id];
      if (!hull) continue;
      const restHull = rest.length === 1 ? rest[0] : undefined;
      if (restHull && !this.dom.overlaps(hull, restHull)) continue;
      if (!rest.some((x) => this.dom.overlaps(hull, x))) continue;
      let dec = this.decides(r, stack);
      if (mutAfter[i].size) dec = dec.filter((d) => d.every((set, slot) => set === undefined || !mutAfter[i].has(slot)));
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

  private readonly mutatesCache = new Map<ModelChain, Set<number>>();

  /** Slots a rule can rewrite for the packets it matches (through its chain, if it jumps). */
  private mutatedBy(r: ModelRule, stack: ModelChain[]): Set<number> {
    const e = r.effect;
    const out = new Set<number>();
    if (e.type === 'continue') {
      for (const a of e.actions) {
        if (a.type === 'xmark') out.add(FIELD_SLOT[a.field]);
        else if (a.type === 'copy-mark') out.add(FIELD_SLOT[a.to]);
        else if (a.type === 'rewrite-tos') out.add(FIELD_SLOT.tos).add(FIELD_SLOT.dscp);
        else if (a.type === 'rewrite-ttl') out.add(FIELD_SLOT.ttl);
      }
    } else if (e.type === 'jump' || e.type === 'goto') {
      const t = lookupChain(this.model, r.table, e.chain);
      if (t && !stack.includes(t)) for (const x of this.mutates(t, [...stack, t])) out.add(x);
    }
    return out;
  }

  private mutates(c: ModelChain, stack: ModelChain[]): Set<number> {
    const known = this.mutatesCache.get(c);
    if (known) return known;
    const out = new Set<number>();
    for (const r of c.rules) for (const x of this.mutatedBy(r, stack)) out.add(x);
    this.mutatesCache.set(c, out);
    return out;
  }

  /**
   * What is left of `rest` (packets at the entry of user chain `c`) once every caller's earlier
   * rules took their share: packets of it that can really arrive. Empty means the rule is dead.
   * Returns undefined when the budget runs out.
   */
  private upward(c: ModelChain, rest: readonly Box[], blame: number[], depth = 0): Box[] | undefined {
    if (c.hook || rest.length === 0) return [...rest];
    if (depth > 6) return undefined;
    const out: Box[] = [];
    for (const caller of c.callers) {
      const parent = lookupChain(this.model, caller.table, caller.chain)!;
      const at = this.intersectUnions(rest, this.boxes[caller.id].over);
      if (at.length === 0) continue;
      const sub = this.subtractEarlier(parent, caller.index, at, [parent]);
      if (!sub.complete) return undefined;
      blame.push(...sub.blame.filter((b) => !blame.includes(b)));
      const up = this.upward(parent, sub.rest, blame, depth + 1);
      if (up === undefined) return undefined;
      out.push(...up);
    }
    return out;
  }

  private tryCandidates(r: ModelRule, region: readonly Box[], hook: Hook): PrepassResult | undefined {
    const own = opaqueParts(r.constraint).map((o) => o.key);
    let seed = r.id + 1;
    // Packets that come in by lo are looped-back local ones: a witness reads better with a
    // real device, so boxes that allow one go first.
    const lo = BigInt(this.model.ifaces.classOf('lo'));
    const onlyLo = (b: Box) => {
      const s = b[IIF_SLOT];
      return s !== undefined && s.length === 1 && s[0][0] === lo && s[0][1] === lo;
    };
    const ordered = [...region.filter((b) => !onlyLo(b)), ...region.filter(onlyLo)];
    for (const box of ordered.slice(0, 4)) {
      for (const input of lazyCandidates(this.model, this.dom, box, hook, 3, seed++)) {
        const found = this.confirm(r, input, own);
        if (found) return found;
      }
    }
    return undefined;
  }

  /**
   * Runs a candidate; when an unmodelled match upstream stops it (its assumed value made an
   * earlier rule decide the packet), flips that match and tries again, a few times. Unmodelled
   * matches of the rule itself start out matching.
   */
  private confirm(r: ModelRule, input: PacketInput, own: readonly string[]): PrepassResult | undefined {
    const opaque: Record<string, boolean> = Object.fromEntries(own.map((k) => [k, true]));
    for (let attempt = 0; attempt < 4; attempt++) {
      const inp = Object.keys(opaque).length ? { ...input, opaque: { ...opaque } } : input;
      this.stats.candidatesTried++;
      const outcome = runPacket(this.model, inp);
      if (outcome.fired.includes(r.id)) return { kind: 'fires', input: inp, outcome };
      if (outcome.opaqueUsed.length === 0) return undefined;
      // The last rule that matched on the way decided the packet: if an unmodelled test made it
      // match, assume the other answer for that test.
      const last = outcome.fired[outcome.fired.length - 1];
      const keys = last === undefined ? [] : opaqueParts(this.model.rules[last].constraint).map((o) => o.key).filter((k) => !own.includes(k));
      if (keys.length === 0) return undefined;
      for (const k of keys) opaque[k] = !(opaque[k] ?? false);
    }
    return undefined;
  }

  private checkRule(r: ModelRule): PrepassResult {
    const chain = lookupChain(this.model, r.table, r.chain)!;
    const e = this.matchAt(r);
    if (e.length === 0) return { kind: 'dead', cause: 'no-entry' };
    const hook = this.hooksOfChain.get(chainKey(chain.table, chain.name)) ?? 'PREROUTING';
    // Packets known to get here, adapted to this rule; then fresh ones from each caller's
    // packets (the capped entry may be a loose hull), then from the entry itself.
    const reused = this.tryAdapted(r, chain);
    if (reused) return reused;
    const sample = this.samples.get(chainKey(chain.table, chain.name));
    const fromCallers = sample ? this.intersectUnions(sample, this.boxes[r.id].over) : [];
    const quick = (fromCallers.length ? this.tryCandidates(r, fromCallers, hook) : undefined) ?? this.tryCandidates(r, e, hook);
    if (quick) return quick;
    const sub = this.subtractEarlier(chain, r.index, e, [chain]);
    if (sub.complete && sub.rest.length === 0) return { kind: 'dead', cause: 'decided-earlier', blame: sub.blame };
    if (sub.complete && !chain.hook) {
      // Nothing here decides the rest; maybe the rules before the jumps into this chain do.
      const upBlame: number[] = [];
      const up = this.upward(chain, sub.rest, upBlame);
      if (up !== undefined && up.length === 0) return { kind: 'dead', cause: 'no-entry' };
    }
    const found = this.tryCandidates(r, sub.rest, hook);
    if (found) return found;
    return {
      kind: 'open',
      reason: sub.complete ? 'no candidate packet confirmed' : 'subtraction budget exceeded',
      region: sub.complete ? sub.rest : e,
    };
  }
}
