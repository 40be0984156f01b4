import { type Constraint, TRUE, and, opaqueParts, or } from '../../ir/constraint.js';
import type { NatAction, RejectReply, SideEffect, TargetEffect } from '../../ir/effect.js';
import { CT_STATE, CT_STATUS, type NumericField } from '../../ir/fields.js';
import { CONNTRACK_PRIORITY, type Hook, TABLE_PRIORITY, type TableName } from '../../ir/netfilter.js';
import { type IntervalSet, contains, subtract, union } from '../../util/intervals.js';
import { prefixMask } from '../../util/ip.js';
import { ANSWER_TCP_FLAGS, ESTABLISHED_STATUS } from '../model/ct-validity.js';
import { CHOICE, type DropReason, TEMPLATE_VIEW, UNKNOWN_ADDR, type Verdict } from '../concrete/interp.js';
import { icmpInverseType } from '../../netfilter/conntrack/tuple.js';
import { type FamilyModel, type ModelChain, type ModelRule, type Stage, chainKey, lookupChain } from '../model/build.js';
import { FIELDS, FIELD_SLOT, IIF_SLOT, fieldMax, icmpProto } from '../model/fields.js';
import type { Matcher } from './region.js';
import { BoxRouting } from './routing.js';
import { BoxDomain } from '../box/box.js';
import { isStatefulOpaque } from './align.js';
import { ConstraintBoxes } from '../box/from-constraint.js';
import { type Box, Inexact, type L4Class, OverBudget, type Point, extendPoint, type Slot, type Space, type Term, addHoles, materialize, narrow, protosWith, setsOverlap, term, termHas, termsByValue } from './space.js';
import { type Piece, type Sym, type Val, coalesce, symKey, trailKey, constVal, evalVal, getVal, maskedVal, mergeBits, present, sameVal, setVals, slotVal, tracked, withStep, withTerms, xorMasked } from './sym.js';

/**
 * One side of a diff, walked over pieces of header space: the same steps as the analyzer's
 * concrete interpreter (concrete/interp.ts) — tables per hook in priority order, first-match
 * chains with jump/goto/return and policies, marks, NOTRACK, NAT on a connection's first packet,
 * routing from the host model — but for a whole box of packets at once. A piece splits where a
 * rule matches part of it; every part that reaches the end is a Leaf with one outcome.
 *
 * The diff's tests compare this walk with the concrete interpreter packet by packet, and every
 * reported difference is replayed through both the interpreter and the simulator.
 */
export interface SideOutcome {
  readonly verdict: Verdict;
  readonly dropReason?: DropReason;
  /** The DROP/REJECT rule or the built-in chain (`table/CHAIN`) whose policy dropped it. */
  readonly decidedBy?: { readonly ruleId: number } | { readonly policy: string };
  /** How a dropped packet is dropped: `drop`, or the REJECT answer. */
  readonly deny?: string;
  /** Output interface (class index) of a forwarded or sent packet. */
  readonly egress?: Val;
  /** Addresses and ports as the packet leaves or is delivered (after NAT). */
  readonly final: { readonly saddr: Val; readonly daddr: Val; readonly sport?: Val; readonly dport?: Val };
}

export interface Leaf {
  readonly piece: Piece;
  readonly out: SideOutcome;
}

interface ChainResult {
  acc: Piece[];
  drop: { piece: Piece; ruleId: number; deny: string; reason: DropReason }[];
  ret: Piece[];
  nat: { piece: Piece; rule: ModelRule; nat: NatAction }[];
  /** Packets the walk let go because no change lies ahead of them (pruneAt). */
  pruned: Piece[];
}

const M32 = 0xffffffffn;

export interface WalkLimits {
  /** Most pieces one run may create before it gives up (OverBudget). */
  readonly maxPieces: number;
}

/** Where this side differs from the other (from the alignment), for pruning. */
export interface ChangePoints {
  /** This side's rules the other side does not have (ids). */
  readonly changed: ReadonlySet<number>;
  /** Per chain (table/name), per position of this side: the other side's rules there. */
  readonly gaps: ReadonlyMap<string, ReadonlyMap<number, readonly ModelRule[]>>;
  /** Built-in chains (table/name) whose policy differs. */
  readonly policies: ReadonlySet<string>;
  /** The other side's over-approximation of a rule's match (for its rules in gaps). */
  otherHull(r: ModelRule): Box | undefined;
}

/** A place ahead where the sides may part: a rule of either side, or anything (a changed policy). */
type Gateway = { readonly own: boolean; readonly rule: ModelRule } | { readonly any: true };
interface GatewayList {
  readonly g: Gateway;
  readonly next?: GatewayList;
}

/** What follows a chain walk: gateways in the callers' rest, or true when later stages may change. */
type Cont = GatewayList | true | undefined;

function concat(a: GatewayList | undefined, b: Cont): Cont {
  if (b === true) return true;
  if (!a) return b;
  const items: Gateway[] = [];
  for (let l: GatewayList | undefined = a; l; l = l.next) items.push(l.g);
  let out: GatewayList | undefined = b;
  for (let i = items.length - 1; i >= 0; i--) out = { g: items[i], next: out };
  return out;
}

export class SideWalker {
  private readonly routing: BoxRouting;
  private readonly usesCtstatus: boolean;
  /** Some rule reads a connection's ports (then a new connection's ports need the protocol known). */
  private readonly usesCtPorts: boolean;
  /** Some rule reads the connection's protocol (then packets of existing connections split by state). */
  private readonly readsCtProto: boolean;
  /** The raw table has OUTPUT rules (which may tell this host's answers from a socket's packets). */
  private readonly rawOutputRules: boolean;
  private readonly opaqueRules: ReadonlyMap<number, readonly string[]>;
  /** Per rule, a box holding every packet that can match it (the analyzer's over-approximation). */
  private readonly hulls: readonly (Box | undefined)[];
  private boxesMade = 0;
  /** Boxes the current run may make (the limit, or less for a first try; see run). */
  private budget: number;
  /** A focused walk follows one point: only boxes holding it go on (see runFocused). */
  private focus?: Point;
  private readonly sure = new Map<number, Constraint>();
  private leaves: Leaf[] = [];
  private changes?: ChangePoints;
  private prune = false;
  private readonly gatewayCache = new Map<ModelChain, (GatewayList | undefined)[]>();
  private readonly changedChains = new Map<ModelChain, boolean>();

  constructor(
    readonly space: Space,
    readonly model: FamilyModel,
    readonly matcher: Matcher,
    /** This side's name for an unmodelled target's outcome (paired rules share one slot). */
    private readonly targetKey: (rule: ModelRule) => string,
    private readonly opaqueKey: (key: string) => string,
    private readonly limits: WalkLimits,
  ) {
    this.routing = new BoxRouting(space, model.routing);
    this.budget = limits.maxPieces;
    this.usesCtstatus = model.rules.some((r) => mentions(r.constraint, 'ctstatus'));
    this.readsCtProto = model.rules.some((r) => mentions(r.constraint, 'ctproto'));
    this.rawOutputRules = model.stages.OUTPUT.some((st) => st.table === 'raw' && st.chain.rules.length > 0);
    // Made now, not when a walk first splits on it, so that points located before a walk have it.
    if (this.rawOutputRules) this.answerSlot();
    this.usesCtPorts = model.rules.some((r) => (['ctorigsrcport', 'ctorigdstport', 'ctreplsrcport', 'ctrepldstport'] as const).some((f) => mentions(r.constraint, f)));
    // Tests with state carry an instance in their key (kinds/helpers.ts instanceKey); a test
    // without state answers alike for the same packet, wherever it is evaluated.
    const opaque = new Map<number, string[]>();
    for (const r of model.rules) {
      const keys = opaqueParts(r.constraint)
        .filter((o) => isStatefulOpaque(o.key))
        .map((o) => opaqueKey(o.key));
      if (keys.length) opaque.set(r.id, keys);
    }
    this.opaqueRules = opaque;
    const dom = new BoxDomain(model.family, model.ifaces.size);
    const cb = new ConstraintBoxes(dom, model.ifaces);
    this.hulls = model.rules.map((r) => {
      const over = cb.of(r.constraint).over;
      return over.length ? over.reduce((h, b) => dom.hull(h, b)) : undefined;
    });
  }

  /** Where this side differs from the other: enables pruning of packets no change can reach. */
  setChanges(c: ChangePoints): void {
    this.changes = c;
    this.gatewayCache.clear();
    this.changedChains.clear();
  }

  /** The rule's over-approximated match box (for the other side's gap tests). */
  hullOf(r: ModelRule): Box | undefined {
    return this.hulls[r.id];
  }

  /**
   * Walks pieces of arriving packets to their outcomes. With `prune`, packets whose walks have
   * not parted and can no longer reach a change are dropped: both sides treat them alike.
   */
  run(start: readonly Piece[], opts: { readonly prune?: boolean; readonly maxPieces?: number } = {}): Leaf[] {
    this.boxesMade = 0;
    this.budget = Math.min(opts.maxPieces ?? this.limits.maxPieces, this.limits.maxPieces);
    this.leaves = [];
    this.focus = undefined;
    this.prune = (opts.prune ?? false) && this.changes !== undefined;
    try {
      for (const p0 of start) this.enter(p0);
    } finally {
      this.prune = false;
    }
    return this.leaves;
  }

  // ---- pruning ---------------------------------------------------------------------

  /** Does the chain (or a chain it leads to) hold a change point? */
  private chainChanged(c: ModelChain, seen: Set<ModelChain> = new Set()): boolean {
    const known = this.changedChains.get(c);
    if (known !== undefined) return known;
    if (seen.has(c)) return false;
    seen.add(c);
    const ch = this.changes!;
    const key = chainKey(c.table, c.name);
    let out = ch.policies.has(key) || (ch.gaps.get(key)?.size ?? 0) > 0 || c.rules.some((r) => ch.changed.has(r.id));
    if (!out) {
      for (const r of c.rules) {
        const e = r.effect;
        if (e.type !== 'jump' && e.type !== 'goto') continue;
        const t = lookupChain(this.model, c.table, e.chain);
        if (t && this.chainChanged(t, seen)) {
          out = true;
          break;
        }
      }
    }
    if (seen.size === 1 || out) this.changedChains.set(c, out);
    return out;
  }

  /** Per position of a chain, the gateways at or after it (shared lists). */
  private gatewaysOf(c: ModelChain): (GatewayList | undefined)[] {
    const known = this.gatewayCache.get(c);
    if (known) return known;
    const ch = this.changes!;
    const key = chainKey(c.table, c.name);
    const gaps = ch.gaps.get(key);
    const n = c.rules.length;
    const out: (GatewayList | undefined)[] = new Array(n + 1);
    let acc: GatewayList | undefined;
    const push = (g: Gateway) => (acc = { g, next: acc });
    if (ch.policies.has(key)) push({ any: true });
    for (const r of gaps?.get(n) ?? []) push({ own: false, rule: r });
    out[n] = acc;
    for (let i = n - 1; i >= 0; i--) {
      const r = c.rules[i];
      const e = r.effect;
      const target = e.type === 'jump' || e.type === 'goto' ? lookupChain(this.model, c.table, e.chain) : undefined;
      if (ch.changed.has(r.id) || (target && this.chainChanged(target))) push({ own: true, rule: r });
      for (const g of gaps?.get(i) ?? []) push({ own: false, rule: g });
      out[i] = acc;
    }
    this.gatewayCache.set(c, out);
    return out;
  }

  private mayMatchAny(list: Cont, sym: Sym, box: Box): boolean {
    if (list === true) return true;
    for (let l = list; l; l = l.next) {
      const g = l.g;
      if ('any' in g) return true;
      if (g.own ? this.mayMatch(g.rule, sym, box) : this.mayMatchHull(this.changes!.otherHull(g.rule), sym, box)) return true;
    }
    return false;
  }

  /**
   * Untouched packets that no gateway ahead can catch — in this chain, or in the callers'
   * rest (`cont`; true: something later, beyond this hook's chains, may change) — are dropped.
   */
  private pruneAt(ps: Piece[], list: GatewayList | undefined, cont: Cont, gone: Piece[]): Piece[] {
    if (!this.prune || cont === true) return ps;
    const out: Piece[] = [];
    for (const p of ps) {
      if (p.touched) {
        out.push(p);
        continue;
      }
      if (!list && !cont) {
        gone.push(p);
        continue;
      }
      const terms: Term[] = [];
      const dropped: Term[] = [];
      for (const t of p.terms) (this.mayMatchAny(list, p.sym, t.box) || this.mayMatchAny(cont, p.sym, t.box) ? terms : dropped).push(t);
      if (terms.length) out.push(terms.length === p.terms.length ? p : withTerms(p, terms));
      if (dropped.length) gone.push(withTerms(p, dropped));
    }
    return out;
  }

  /** Untouched packets the other side's extra rules (at this position) may catch are touched. */
  private touchAtGap(ps: Piece[], rules: readonly ModelRule[] | undefined): Piece[] {
    if (!this.prune || !rules?.length) return ps;
    const out: Piece[] = [];
    for (const p of ps) {
      if (p.touched) {
        out.push(p);
        continue;
      }
      const hit: Term[] = [];
      const miss: Term[] = [];
      for (const t0 of p.terms) {
        // Only the part of the term inside the other rule's hull is touched: on the slots that
        // still hold the arriving value the hull cuts the term exactly, and the rest cannot
        // match that rule (a narrow moved rule would otherwise touch a whole wide term, which
        // then walks every rule after it instead of being pruned).
        let rest: Term | undefined = t0;
        for (const r of rules) {
          if (!rest) break;
          const hull = this.changes!.otherHull(r);
          if (!this.mayMatchHull(hull, p.sym, rest.box)) continue;
          const cut = this.hullCut(hull!, p.sym);
          if (!cut) {
            hit.push(rest);
            rest = undefined;
            break;
          }
          const inner = this.space.intersect(rest.box, cut);
          const inside = inner && narrow(this.space, rest, inner);
          if (inside) hit.push(inside);
          rest = this.space.contains(cut, rest.box) ? undefined : term(rest.box, addHoles(rest.holes, [cut]), rest.tag);
        }
        if (rest) miss.push(rest);
      }
      if (hit.length) out.push({ ...withTerms(p, hit), touched: true });
      if (miss.length) out.push(withTerms(p, miss));
    }
    return out;
  }

  /**
   * Built-in chains of this hook that this side's model lacks but the other side's rules fill
   * (align.ts: a table one side has no use for), with their priority: untouched packets there
   * are touched where those rules may catch them, as at a gap.
   */
  private missingChains(hook: Hook): readonly { readonly prio: number; readonly rules: readonly ModelRule[] }[] {
    if (!this.changes) return [];
    const out: { prio: number; rules: ModelRule[] }[] = [];
    for (const [key, byPos] of this.changes.gaps) {
      const [table, name] = key.split('/') as [TableName, string];
      if (name !== hook || this.model.stages[hook].some((s) => s.table === table)) continue;
      const prio = TABLE_PRIORITY[table]?.[hook];
      if (prio !== undefined) out.push({ prio, rules: [...byPos.values()].flat() });
    }
    return out.sort((x, y) => x.prio - y.prio);
  }

  /** Whether changes lie in later stages of this hook or in hooks that may follow it. */
  private changesAfter(hook: Hook, stage: number): boolean {
    if (!this.changes) return true;
    const later = this.model.stages[hook].slice(stage + 1).some((s) => this.chainChanged(s.chain));
    if (later) return true;
    const here = TABLE_PRIORITY[this.model.stages[hook][stage]?.table]?.[hook] ?? Number.NEGATIVE_INFINITY;
    if (this.missingChains(hook).some((m) => m.prio > here)) return true;
    const follow: Record<Hook, readonly Hook[]> = {
      PREROUTING: ['INPUT', 'FORWARD', 'POSTROUTING'],
      INPUT: [],
      FORWARD: ['POSTROUTING'],
      OUTPUT: ['POSTROUTING', 'PREROUTING', 'INPUT'],
      POSTROUTING: ['PREROUTING', 'INPUT'],
    };
    return follow[hook].some((h) => this.missingChains(h).length > 0 || this.model.stages[h].some((s) => this.chainChanged(s.chain)));
  }

  /**
   * Follows one point from a start piece: at every split only the box holding the point goes
   * on, and a test with no exact box form is made exact by pinning the slot it needs to the
   * point's value. The leaf is a box around the point whose packets all get the same symbolic
   * outcome — never too big, maybe smaller than the largest such box.
   */
  runFocused(start: Piece, point: Point): Leaf | undefined {
    this.boxesMade = 0;
    // One point's path makes few boxes; a limit set low to stop whole walks early (down to 1,
    // handing everything to Z3) must not stop the walk that widens Z3's points.
    this.budget = Math.max(this.limits.maxPieces, FOCUSED_MIN_BUDGET);
    this.leaves = [];
    this.focus = point;
    try {
      const p = this.keep([start])[0];
      if (!p) return undefined;
      this.enter(p);
      const whole = this.focusNow();
      return this.leaves.find((l) => l.piece.terms.some((t) => termHas(this.space, t, whole)));
    } finally {
      this.focus = undefined;
    }
  }

  private enter(p0: Piece): void {
    for (const p of this.arrive(p0)) {
      if (p.cls.local) this.fromSocket(p);
      else this.fromDevice(p);
    }
  }

  /** Drops, in a focused walk, the terms (and pieces) that do not hold the point. */
  private keep(ps: readonly Piece[]): Piece[] {
    if (!this.focus) return [...ps];
    const f = this.focusNow();
    const out: Piece[] = [];
    for (const p of ps) {
      const terms = p.terms.filter((t) => termHas(this.space, t, f));
      if (terms.length) out.push(withTerms(p, terms));
    }
    return out;
  }

  /** The focus point over the whole space (see extendPoint). */
  private focusNow(): Point {
    this.focus = extendPoint(this.space, this.focus!);
    return this.focus;
  }

  private count(n: number): void {
    this.boxesMade += n;
    if (this.boxesMade > this.budget) throw new OverBudget(`more than ${this.budget} boxes`);
  }

  /**
   * Runs fn on one box; in a focused walk an Inexact is answered by pinning its slot to the
   * point's value and trying again. Returns the (maybe pinned) box with the result.
   */
  private exact<T>(box0: Box, fn: (b: Box) => T): { box: Box; r: T } {
    let box = box0;
    for (let tries = 0; ; tries++) {
      try {
        return { box, r: fn(box) };
      } catch (e) {
        const f = this.focus ? this.focusNow() : undefined;
        if (!(e instanceof Inexact) || !f || e.slot === undefined || tries > 8) throw e;
        const v = f[e.slot] ?? 0n;
        box = this.space.with(box, e.slot, [[v, v]]);
      }
    }
  }

  /** Same, for a whole piece (pins apply to every box). */
  private exactPiece<T>(p0: Piece, fn: (p: Piece) => T): T {
    let p = p0;
    for (let tries = 0; ; tries++) {
      try {
        return fn(p);
      } catch (e) {
        const f = this.focus ? this.focusNow() : undefined;
        if (!(e instanceof Inexact) || !f || e.slot === undefined || tries > 8) throw e;
        const v = f[e.slot] ?? 0n;
        p = withTerms(
          p,
          p.terms.flatMap((t) => {
            const nt = narrow(this.space, t, this.space.with(t.box, e.slot!, [[v, v]]));
            return nt ? [nt] : [];
          }),
        );
      }
    }
  }

  private leaf(piece0: Piece, verdict: Verdict, extra: { dropReason?: DropReason; decidedBy?: SideOutcome['decidedBy']; deny?: string } = {}): void {
    const piece = this.keep([piece0])[0];
    if (!piece) return;
    const sym = piece.sym;
    // Where the protocol is open, ports are compared as values; a packet without ports keeps
    // whatever its slots say on both sides alike.
    const ports = present(piece, 'sport') !== false;
    const out: SideOutcome = {
      verdict,
      ...extra,
      ...(verdict === 'dropped' && !extra.deny ? { deny: 'drop' } : {}),
      ...(verdict === 'forwarded' || verdict === 'sent' ? { egress: sym.oif } : {}),
      final: {
        saddr: getVal(sym, 'saddr'),
        daddr: getVal(sym, 'daddr'),
        ...(ports ? { sport: getVal(sym, 'sport'), dport: getVal(sym, 'dport') } : {}),
      },
    };
    this.leaves.push({ piece, out });
  }

  // ---- the three flows -------------------------------------------------------------

  /**
   * The receive path sets the packet type from the destination the packet arrives with; a
   * socket's packet is unicast whatever its destination (Engine.outputPath).
   */
  private arrive(p: Piece): Piece[] {
    if (p.cls.local) return this.keep([{ ...p, sym: setVals(p.sym, { pkttype: constVal(0) }) }]);
    const r = this.model.routing;
    const daddr = getVal(p.sym, 'daddr');
    const out: Piece[] = [];
    let rest: Piece[] = [p];
    const classes: [bigint, IntervalSet][] = [
      ...(r.family === 'ipv4' ? [[1n, union([[0xffffffffn, 0xffffffffn]], r.broadcast)] as [bigint, IntervalSet]] : []),
      [2n, r.multicast],
    ];
    for (const [type, set] of classes) {
      const s = this.routing.split(rest, daddr, set);
      out.push(...s.yes.map((q) => ({ ...q, sym: setVals(q.sym, { pkttype: constVal(type) }) })));
      rest = s.no;
    }
    out.push(...rest.map((q) => ({ ...q, sym: setVals(q.sym, { pkttype: constVal(0) }) })));
    return this.keep(out);
  }

  private fromDevice(p0: Piece): void {
    const head = this.routing.headerCheck([p0]);
    for (const q of head.dropped) this.leaf(q, 'dropped', { dropReason: 'martian' });
    const pre = this.hook('PREROUTING', head.ok, 'dst');
    for (const d of this.routing.input(pre)) {
      const piece = this.keep([d.piece])[0];
      if (!piece) continue;
      if (d.kind === 'martian' || d.kind === 'unreachable') {
        this.leaf(piece, 'dropped', { dropReason: d.kind, ...(d.kind === 'unreachable' ? { deny: ANSWERED_DROP.unreachable } : {}) });
        continue;
      }
      if (d.kind === 'local') {
        for (const q of this.hook('INPUT', [piece], 'src')) this.leaf(q, 'local');
        continue;
      }
      if (d.kind !== 'forward') continue;
      // ip_forward / ip6_forward: only a frame addressed to this host is forwarded, not one that
      // came as a link-layer broadcast or multicast, even when DNAT made it unicast.
      const cast = this.routing.split([piece], getVal(piece.sym, 'pkttype'), [[0n, 0n]]);
      for (const q of cast.no) this.leaf(q, 'dropped', { dropReason: 'not-unicast' });
      // Forwarded: TTL must allow one more hop; it is decremented before FORWARD.
      const ttl = getVal(piece.sym, 'ttl');
      const s = this.routing.split(cast.yes, ttl, [[0n, 1n]]);
      for (const q of s.yes) this.leaf(q, 'dropped', { dropReason: 'ttl', deny: ANSWERED_DROP.ttl });
      const fwd = s.no.map((q) => ({ ...q, sym: setVals({ ...q.sym, oif: d.oif }, { ttl: addTo(getVal(q.sym, 'ttl'), -1n) }) }));
      const passed = this.hook('FORWARD', fwd, 'src');
      for (const q of this.hook('POSTROUTING', passed, 'src')) this.leaf(q, 'forwarded');
    }
  }

  /**
   * A local RELATED ICMP error or TCP reset may be this host's own answer to another packet
   * (CHOICE.answer, ct-validity.ts canBeAnswer): its connection is attached before raw, so
   * raw/OUTPUT sees it RELATED and conntrack leaves it be. Only a side whose raw table has
   * OUTPUT rules can tell the two apart; elsewhere the piece stays whole.
   */
  private splitAnswers(p: Piece): Piece[] {
    if (!this.rawOutputRules) return [p];
    const fam = this.model.family;
    const slot = this.answerSlot();
    const chosen = this.routing.split([p], slotVal(slot), [[1n, 1n]]);
    const related = this.routing.split(chosen.yes, slotVal(FIELD_SLOT.ctstate), [[BigInt(CT_STATE.RELATED), BigInt(CT_STATE.RELATED)]]);
    const whole = this.routing.split(related.yes, slotVal(FIELD_SLOT.fragment), [[0n, 0n]]);
    const tcp = this.routing.split(whole.yes, slotVal(FIELD_SLOT.proto), protosWith(fam, 'tcp'));
    const reset = this.routing.split(tcp.yes, slotVal(FIELD_SLOT.tcpflags), ANSWER_TCP_FLAGS);
    const icmp = this.routing.split(tcp.no, slotVal(FIELD_SLOT.proto), protosWith(fam, 'icmp'));
    const error = this.routing.split(icmp.yes, slotVal(FIELD_SLOT.icmptype), this.model.ct.icmpError);
    const attach = (q: Piece) => ({ ...q, cls: { ...q.cls, ct: 'old' as const }, sym: setVals({ ...q.sym, ctDone: true }, { ctstate: constVal(CT_STATE.RELATED) }) });
    // A TCP reset answers on the connection it resets: its protocol (ctProtoIsOwn).
    const answers = [...reset.yes.map((q) => attach({ ...q, sym: setVals(q.sym, { ctproto: getVal(q.sym, 'proto') }) })), ...error.yes.map(attach)];
    return this.keep([...chosen.no, ...related.no, ...whole.no, ...reset.no, ...icmp.no, ...error.no, ...answers]);
  }

  private answerSlot(): number {
    return this.choice(CHOICE.answer, 'an answer this host sends (ICMP error, TCP reset) or a socket\'s packet', [[0n, 1n]]);
  }

  private fromSocket(p0: Piece): void {
    for (const p of this.splitAnswers(p0)) this.fromLocal(p);
  }

  private fromLocal(p: Piece): void {
    const first = this.routing.output([p]);
    for (const q of first.unreachable) this.leaf(q, 'dropped', { dropReason: 'unreachable' });
    const routed = this.keep(first.routed.map(({ piece, oif }) => ({ ...piece, sym: { ...piece.sym, oif } })));
    // Rerouted once nat changed the destination (no route stops the packet), but OUTPUT's rules
    // keep seeing the first route's device (__ip_local_out fixes it for the whole hook).
    const dst0 = getVal(p.sym, 'daddr');
    const out = this.hook('OUTPUT', routed, 'dst', (table, ps) => {
      if (table !== 'mangle' && table !== 'nat') return ps;
      const r = this.routing.reroute(ps, dst0);
      for (const q of r.unreachable) this.leaf(q, 'dropped', { dropReason: 'unreachable' });
      return r.routed.map(({ piece }) => piece);
    });
    // It leaves by the last route, which POSTROUTING sees.
    const last = this.routing.reroute(out, dst0);
    for (const q of last.unreachable) this.leaf(q, 'dropped', { dropReason: 'unreachable' });
    const leaving = this.keep(last.routed.map(({ piece, oif }) => ({ ...piece, sym: { ...piece.sym, oif } })));
    const sent = this.hook('POSTROUTING', leaving, 'src');
    // Looped back (out by lo): in again by lo, through PREROUTING and INPUT; conntrack and NAT are done.
    const lo = BigInt(this.space.ifaces.classOf('lo'));
    const s = this.routing.split(sent, constVal(0), [[lo, lo]], (q) => q.sym.oif);
    // ip6_finish_output2 discards a group of scope 0 or 1 out of any device but lo.
    const scope = this.routing.outputScope(s.no);
    for (const q of scope.dropped) this.leaf(q, 'dropped', { dropReason: 'invalid-scope' });
    for (const q of scope.ok) this.leaf(q, 'sent');
    // Conntrack confirms the connection as it leaves; the looped-back packet sees it confirmed.
    const back = s.yes
      .flatMap((q) => {
        if (!this.usesCtstatus) return [q];
        const t = this.splitTracked(q);
        return [...t.no, ...t.yes.flatMap((x) => this.setStatusBits(x, CT_STATUS.CONFIRMED))];
      })
      .map((q) => ({ ...q, sym: { ...q.sym, iif: constVal(lo), oif: constVal(0) } }));
    // ip6_rcv_core checks the header on lo too (a source SNATed to a group address dies there).
    const head = this.routing.headerCheck(back);
    for (const q of head.dropped) this.leaf(q, 'dropped', { dropReason: 'martian' });
    const passed = this.hook('INPUT', this.hook('PREROUTING', head.ok, 'dst'), 'src');
    for (const q of passed) this.leaf({ ...q, sym: { ...q.sym, oif: constVal(lo) } }, 'sent');
  }

  // ---- hooks -----------------------------------------------------------------------

  private hook(hook: Hook, pieces0: readonly Piece[], natHook: 'dst' | 'src', afterTable?: (t: TableName, ps: Piece[]) => Piece[]): Piece[] {
    let pieces: Piece[] = pieces0.map((p) => ({ ...p, sym: { ...p.sym, hook } }));
    const stages = this.model.stages[hook];
    const missing = this.prune ? [...this.missingChains(hook)] : [];
    const touchMissing = (below: number) => {
      while (missing.length && missing[0].prio < below) pieces = this.touchAtGap(pieces, missing.shift()!.rules);
    };
    for (let si = 0; si < stages.length; si++) {
      const stage = stages[si];
      touchMissing(TABLE_PRIORITY[stage.table][hook] ?? 0);
      if (pieces.length === 0) break;
      const contAhead: Cont = this.changesAfter(hook, si) ? true : undefined;
      if (this.prune && !contAhead && !this.chainChanged(stage.chain)) pieces = pieces.filter((p) => p.touched);
      const prio = TABLE_PRIORITY[stage.table][hook] ?? 0;
      if (prio > CONNTRACK_PRIORITY) pieces = pieces.flatMap((p) => this.conntrack(p));
      if (stage.table === 'nat') pieces = this.natStage(stage, pieces, natHook, contAhead);
      else pieces = this.stageResult(stage, this.walk(stage.chain, pieces, [stage.chain], contAhead));
      if (afterTable) pieces = afterTable(stage.table, pieces);
      pieces = this.keep(pieces);
    }
    touchMissing(Number.POSITIVE_INFINITY);
    return coalesce(pieces.flatMap((p) => this.conntrack(p)), this.space);
  }

  /**
   * Conntrack lookup (priority -200): the state later tables see. A piece splits into the
   * packets that start a connection (their ct tuple is their own header) and the others.
   */
  private conntrack(p0: Piece): Piece[] {
    if (p0.sym.ctDone) return [p0];
    // A template gives way to the packet's own connection: its fields are the slots again (a
    // new connection's are filled in below).
    const p = p0.sym.templated ? { ...p0, sym: setVals(p0.sym, Object.fromEntries(Object.keys(TEMPLATE_VIEW).map((f) => [f, slotVal(FIELD_SLOT[f as NumericField])]))) } : p0;
    const s = p.sym;
    if (s.notrack) return [{ ...p, sym: setVals({ ...s, ctDone: true }, { ctstate: constVal(CT_STATE.UNTRACKED) }) }];
    const st = slotVal(FIELD_SLOT.ctstate);
    const forced: Piece[] = [];
    const kept: Piece[] = [];
    for (const e of this.effectiveState(p)) {
      if (e.state === 'declared') kept.push(e.piece);
      else forced.push({ ...e.piece, cls: { ...e.piece.cls, ct: 'old' as const }, sym: setVals({ ...e.piece.sym, ctDone: true }, { ctstate: constVal(e.state) }) });
    }
    const byNew = this.routing.split(kept, st, [[BigInt(CT_STATE.NEW), BigInt(CT_STATE.NEW)]]);
    const old = [...forced, ...this.existingConnection(byNew.no).map((q) => ({ ...q, cls: { ...q.cls, ct: 'old' as const }, sym: setVals({ ...q.sym, ctDone: true }, { ctstate: st }) }))];
    // The tuple's ports are the packet's, or 0 without ports: tell them apart only when a rule reads them.
    const fresh = byNew.yes.flatMap((q) => (this.usesCtPorts && present(q, 'sport') === undefined ? this.splitL4(q) : [q]));
    return [...old, ...fresh.flatMap((q) => this.freshConnection({ ...q, cls: { ...q.cls, ct: 'new' as const } }))];
  }

  /**
   * Packets of existing connections (state ESTABLISHED/RELATED/INVALID as declared), as
   * interp.ts existingConnection: an ESTABLISHED one's connection is confirmed and has seen a
   * reply; where the connection is found by the packet's own tuple, its protocol is the
   * packet's (ctProtoIsOwn): ESTABLISHED, and RELATED but for ICMP errors.
   */
  private existingConnection(pieces0: readonly Piece[]): Piece[] {
    const state = slotVal(FIELD_SLOT.ctstate);
    const one = (x: number): IntervalSet => [[BigInt(x), BigInt(x)]];
    // An ESTABLISHED packet's connection is confirmed and has seen a reply (ESTABLISHED_STATUS).
    let pieces: Piece[] = [...pieces0];
    if (this.usesCtstatus) {
      const e = this.routing.split(pieces, state, one(CT_STATE.ESTABLISHED));
      pieces = [...e.no, ...e.yes.flatMap((q) => this.setStatusBits(q, ESTABLISHED_STATUS))];
    }
    if (!this.readsCtProto) return pieces;
    const own = (q: Piece) => ({ ...q, sym: setVals(q.sym, { ctproto: getVal(q.sym, 'proto') }) });
    const est = this.routing.split(pieces, state, one(CT_STATE.ESTABLISHED));
    const rel = this.routing.split(est.no, state, one(CT_STATE.RELATED));
    const icmp = this.routing.split(rel.yes, slotVal(FIELD_SLOT.proto), protosWith(this.model.family, 'icmp'));
    const error = this.routing.split(icmp.yes, slotVal(FIELD_SLOT.icmptype), this.model.ct.icmpError);
    return [...rel.no, ...error.yes, ...[...est.yes, ...icmp.no, ...error.no].map(own)];
  }

  private freshConnection(p: Piece): Piece[] {
    const s = p.sym;
    const changes: Partial<Record<NumericField, Val>> = { ctstate: slotVal(FIELD_SLOT.ctstate) };
    const ports = present(p, 'sport') !== false;
    if (!ports && this.usesCtPorts && present(p, 'icmptype') === true) {
      // An ICMP query's tuple "ports" (interp.ts tuplePorts): its identifier, and type << 8 | code
      // — with the type known (one piece per query type), the code's slot plus an offset.
      const type = getVal(s, 'icmptype');
      if (type.k === 'slot' && this.known(p, type) === undefined) return this.pointwise(p, type, 'icmptype', () => ({})).flatMap((q) => this.freshConnection(q));
      const t = this.known(p, type)!;
      const answer = BigInt(icmpInverseType(Number(icmpProto(this.model.family)), Number(t)) ?? 0);
      const code = getVal(s, 'icmpcode');
      const id = slotVal(this.space.extra({ kind: 'choice', key: CHOICE.icmpId, doc: 'ICMP query identifier', domain: [[0n, 0xffffn]] }));
      Object.assign(changes, this.tupleFields(s, { origSrc: id, origDst: addTo(code, t << 8n), replSrc: id, replDst: addTo(code, answer << 8n) }));
      return [{ ...p, sym: setVals({ ...s, ctDone: true }, changes) }];
    }
    const sport = ports ? getVal(s, 'sport') : constVal(0);
    const dport = ports ? getVal(s, 'dport') : constVal(0);
    Object.assign(changes, this.tupleFields(s, { origSrc: sport, origDst: dport, replSrc: dport, replDst: sport }));
    return [{ ...p, sym: setVals({ ...s, ctDone: true }, changes) }];
  }

  /** A new connection's fields: its tuple from the packet's header, no mark, no status yet. */
  private tupleFields(s: Sym, ports: { origSrc: Val; origDst: Val; replSrc: Val; replDst: Val }): Partial<Record<NumericField, Val>> {
    return {
      ctdir: constVal(0),
      ctmark: constVal(0),
      ctstatus: constVal(0),
      ctproto: getVal(s, 'proto'),
      ctorigsrc: getVal(s, 'saddr'),
      ctorigdst: getVal(s, 'daddr'),
      ctreplsrc: getVal(s, 'daddr'),
      ctrepldst: getVal(s, 'saddr'),
      ctorigsrcport: ports.origSrc,
      ctorigdstport: ports.origDst,
      ctreplsrcport: ports.replSrc,
      ctrepldstport: ports.replDst,
    };
  }

  /**
   * The state conntrack gives packets whose input declares one (model/ct-validity.ts
   * effectiveState): a non-first fragment is INVALID; TCP flags that no connection accepts are
   * INVALID, and only some open a connection; ICMP errors are RELATED or INVALID, requests
   * that cannot open one are INVALID, neighbour discovery is UNTRACKED.
   */
  private effectiveState(p: Piece): { piece: Piece; state: number | 'declared' }[] {
    const v = this.model.ct;
    const out: { piece: Piece; state: number | 'declared' }[] = [];
    const declared = slotVal(FIELD_SLOT.ctstate);
    const one = (x: number): IntervalSet => [[BigInt(x), BigInt(x)]];
    const frag = this.routing.split([p], slotVal(FIELD_SLOT.fragment), [[1n, 1n]]);
    for (const q of frag.yes) out.push({ piece: q, state: CT_STATE.INVALID });
    // ICMP of the other family (ICMPv4 in IPv6…): its tracker refuses the packet.
    const foreign = this.routing.split(frag.no, slotVal(FIELD_SLOT.proto), one(icmpProto(this.model.family) === 1 ? 58 : 1));
    for (const q of foreign.yes) out.push({ piece: q, state: CT_STATE.INVALID });
    const byProto = this.routing.split(foreign.no, slotVal(FIELD_SLOT.proto), protosWith(this.model.family, 'tcp'));
    // TCP
    let s = this.routing.split(byProto.yes, slotVal(FIELD_SLOT.tcpflags), v.tcpValid);
    for (const q of s.no) out.push({ piece: q, state: CT_STATE.INVALID });
    const isNew = this.routing.split(s.yes, declared, one(CT_STATE.NEW));
    s = this.routing.split(isNew.yes, slotVal(FIELD_SLOT.tcpflags), v.tcpNew);
    for (const q of s.no) out.push({ piece: q, state: CT_STATE.INVALID });
    for (const q of [...s.yes, ...isNew.no]) out.push({ piece: q, state: 'declared' });
    // ICMP / ICMPv6
    const icmp = this.routing.split(byProto.no, slotVal(FIELD_SLOT.proto), protosWith(this.model.family, 'icmp'));
    for (const q of icmp.no) out.push({ piece: q, state: 'declared' });
    const t = slotVal(FIELD_SLOT.icmptype);
    const untracked = this.routing.split(icmp.yes, t, v.icmpUntracked);
    for (const q of untracked.yes) out.push({ piece: q, state: CT_STATE.UNTRACKED });
    const err = this.routing.split(untracked.no, t, v.icmpError);
    const rel = this.routing.split(err.yes, declared, one(CT_STATE.RELATED));
    for (const q of rel.yes) out.push({ piece: q, state: 'declared' });
    for (const q of rel.no) out.push({ piece: q, state: CT_STATE.INVALID });
    const req = this.routing.split(err.no, declared, one(CT_STATE.NEW));
    const opens = this.routing.split(req.yes, t, v.icmpNew);
    for (const q of opens.no) out.push({ piece: q, state: CT_STATE.INVALID });
    for (const q of [...opens.yes, ...req.no]) out.push({ piece: q, state: 'declared' });
    return out.filter((e) => this.keep([e.piece]).length);
  }

  /** ct status |= bits: a constant, or the connection's own status with those bits set. */
  private setStatusBits(p: Piece, bits: number): Piece[] {
    const cur = getVal(p.sym, 'ctstatus');
    const grown = statusWith(cur, bits);
    if (!grown) throw new Inexact('a status bit on a status not known here', cur.k === 'const' ? undefined : cur.slot);
    return [{ ...p, sym: setVals(p.sym, { ctstatus: grown }) }];
  }

  /** Splits a piece by protocol class (which layer-4 fields its packets have). */
  private splitL4(p: Piece): Piece[] {
    if (p.cls.l4 !== undefined) return [p];
    const fam = this.model.family;
    const protoV = slotVal(FIELD_SLOT.proto);
    const fragV = slotVal(FIELD_SLOT.fragment);
    const frag = this.routing.split([p], fragV, [[1n, 1n]]);
    const out: Piece[] = frag.yes.map((q) => ({ ...q, cls: { ...q.cls, l4: 'fragment' as const } }));
    let rest = frag.no;
    const tcp = protosWith(fam, 'tcp');
    const classes: [L4Class, IntervalSet][] = [
      ['tcp', tcp],
      ['ports', subtract(protosWith(fam, 'ports'), tcp, 255n)],
      ['icmp', protosWith(fam, 'icmp')],
    ];
    for (const [l4, set] of classes) {
      const s = this.routing.split(rest, protoV, set);
      out.push(...s.yes.map((q) => ({ ...q, cls: { ...q.cls, l4 } })));
      rest = s.no;
    }
    out.push(...rest.map((q) => ({ ...q, cls: { ...q.cls, l4: 'other' as const } })));
    return this.keep(out);
  }

  /** Splits a piece by whether its packets are tracked (established/related vs invalid). */
  private splitTracked(p: Piece): { yes: Piece[]; no: Piece[] } {
    const t = tracked(p);
    if (t !== undefined) return t ? { yes: [p], no: [] } : { yes: [], no: [p] };
    const s = this.routing.split([p], getVal(p.sym, 'ctstate'), [[BigInt(CT_STATE.ESTABLISHED), BigInt(CT_STATE.ESTABLISHED)], [BigInt(CT_STATE.RELATED), BigInt(CT_STATE.RELATED)]]);
    return { yes: s.yes, no: s.no };
  }

  private stageResult(stage: Stage, r: ChainResult): Piece[] {
    this.dropAll(r);
    const out = coalesce([...r.acc, ...r.nat.map((n) => n.piece)], this.space);
    const policy = stage.chain.policy ?? 'ACCEPT';
    const policyChanged = this.changes?.policies.has(chainKey(stage.table, stage.chain.name)) ?? false;
    for (const p0 of r.ret) {
      const p = policyChanged ? { ...p0, touched: true } : p0;
      const q = withStep(p, { t: 'policy', hook: p.sym.hook, table: stage.table, chain: stage.chain.name, policy });
      if (policy === 'DROP') this.leaf(q, 'dropped', { dropReason: 'policy', decidedBy: { policy: `${stage.table}/${stage.chain.name}` } });
      else out.push(q);
    }
    return out;
  }

  private dropAll(r: ChainResult): void {
    const byRule = new Map<number, ChainResult['drop']>();
    for (const d of r.drop) byRule.set(d.ruleId, [...(byRule.get(d.ruleId) ?? []), d]);
    for (const ds of byRule.values()) {
      for (const piece of coalesce(ds.map((d) => d.piece), this.space)) {
        const d = ds[0];
        this.leaf(piece, 'dropped', { dropReason: d.reason, decidedBy: { ruleId: d.ruleId }, deny: d.deny });
      }
    }
  }

  /** The nat table: consulted for a connection's first packet only, once per manip type. */
  private natStage(stage: Stage, pieces: readonly Piece[], natHook: 'dst' | 'src', contAhead: Cont): Piece[] {
    const out: Piece[] = [];
    const doneBit = natHook === 'dst' ? CT_STATUS.DST_NAT_DONE : CT_STATUS.SRC_NAT_DONE;
    const done = (p: Piece): Piece => (this.usesCtstatus ? { ...p, sym: orStatus(p.sym, doneBit) } : p);
    for (const p0 of pieces) {
      if (natHook === 'dst' ? p0.sym.natDoneDst : p0.sym.natDoneSrc) {
        out.push(p0);
        continue;
      }
      const p = { ...p0, sym: { ...p0.sym, ...(natHook === 'dst' ? { natDoneDst: true } : { natDoneSrc: true }) } };
      if (p.cls.ct !== 'new' || p.sym.notrack) {
        out.push(p);
        continue;
      }
      const r = this.walk(stage.chain, [p], [stage.chain], contAhead);
      this.dropAll(r);
      out.push(...r.acc.map(done));
      const policy = stage.chain.policy ?? 'ACCEPT';
      const policyChanged = this.changes?.policies.has(chainKey('nat', stage.chain.name)) ?? false;
      for (const q0 of r.ret) {
        const q = policyChanged ? { ...q0, touched: true } : q0;
        if (policy === 'DROP') {
          const d = withStep(q, { t: 'policy', hook: q.sym.hook, table: 'nat', chain: stage.chain.name, policy });
          this.leaf(d, 'dropped', { dropReason: 'policy', decidedBy: { policy: `nat/${stage.chain.name}` } });
        } else out.push(done(q));
      }
      for (const n of r.nat) {
        const res = this.exactPiece(n.piece, (x) => this.applyNat(n.rule, n.nat, x, natHook));
        for (const f of res.failed) this.leaf(f, 'dropped', { dropReason: 'nat-failed', decidedBy: { ruleId: n.rule.id } });
        out.push(...res.ok.map(done));
      }
    }
    return out;
  }

  // ---- chains ----------------------------------------------------------------------

  /** Can some packet of the box, in this state, match the rule? (a cheap, sound pre-test) */
  private mayMatch(rule: ModelRule, sym: Sym, box: Box): boolean {
    return this.mayMatchHull(this.hulls[rule.id], sym, box);
  }

  /**
   * The hull's conditions on the slots that still hold the arriving packet's value, as a box of
   * arriving packets (undefined when there are none): a packet outside it cannot match the hull.
   */
  private hullCut(hull: Box, sym: Sym): Box | undefined {
    const cut: Slot[] = Array.from({ length: hull.length }, () => undefined);
    let any = false;
    for (let i = 0; i < hull.length; i++) {
      const h = hull[i];
      if (h === undefined) continue;
      if (i < FIELDS.length) {
        const f = FIELDS[i];
        if (f === 'srctype' || f === 'dsttype' || f === 'dscp' || f === 'pkttype') continue;
      }
      const v: Val = i < FIELDS.length ? sym.vals[i] : i === IIF_SLOT ? sym.iif : sym.oif;
      if (v.k === 'slot' && v.off === 0n && v.slot === i) {
        cut[i] = h;
        any = true;
      }
    }
    return any ? cut : undefined;
  }

  private mayMatchHull(hull: Box | undefined, sym: Sym, box: Box): boolean {
    if (!hull) return false;
    for (let i = 0; i < hull.length; i++) {
      const h = hull[i];
      if (h === undefined) continue;
      let v: Val;
      if (i < FIELDS.length) {
        const f = FIELDS[i];
        if (f === 'srctype' || f === 'dsttype' || f === 'dscp' || f === 'pkttype') continue;
        v = sym.vals[i];
      } else if (i === IIF_SLOT) v = sym.iif;
      else v = sym.oif;
      if (v.k === 'const') {
        if (!contains(h, v.v)) return false;
      } else if (v.k === 'slot' && v.off === 0n && v.slot === i) {
        const s = box[i];
        if (s !== undefined && !setsOverlap(s, h)) return false;
      }
    }
    return true;
  }

  private walk(chain: ModelChain, pieces: readonly Piece[], stack: readonly ModelChain[], contAhead: Cont): ChainResult {
    const res: ChainResult = { acc: [], drop: [], ret: [], nat: [], pruned: [] };
    let live: Piece[] = [...pieces];
    const gw = this.prune ? this.gatewaysOf(chain) : undefined;
    const gaps = this.prune ? this.changes!.gaps.get(chainKey(chain.table, chain.name)) : undefined;
    let checked: GatewayList | undefined | null = null;
    for (let ri = 0; ri < chain.rules.length; ri++) {
      const rule = chain.rules[ri];
      if (gw) {
        live = this.touchAtGap(live, gaps?.get(ri));
        // Prune again only when a gateway has been passed (the list ahead changed).
        if (gw[ri] !== checked) {
          live = this.pruneAt(live, gw[ri], contAhead, res.pruned);
          checked = gw[ri];
        }
      }
      if (live.length === 0) break;
      const next: Piece[] = [];
      const opaque = this.opaqueRules.get(rule.id);
      for (const p of live) {
        // Packets whose walks have parted and that evaluate a stateful unmodelled test carry a
        // step in their trail: the two sides must evaluate the same such tests (compare.ts).
        const marked = opaque && this.prune && p.touched ? withStep(p, { t: 'opaque', hook: p.sym.hook, ruleId: rule.id, keys: opaque }) : undefined;
        const matched: Term[] = [];
        const rest: Term[] = [];
        const markedMatched: Term[] = [];
        const markedRest: Term[] = [];
        // Splits a term by a region of its box: the parts inside (narrowed terms), the rest as the
        // same box with the region as holes.
        const cut = (t: Term, box: Box, m: readonly Box[], inside: Term[], outside: Term[]) => {
          const base = box === t.box ? t : narrow(this.space, t, box);
          if (!base) return;
          if (m.length === 0) {
            outside.push(base);
            return;
          }
          for (const b of m) {
            const nt = narrow(this.space, base, b);
            if (nt) inside.push(nt);
          }
          if (!(m.length === 1 && m[0] === base.box)) outside.push(term(base.box, addHoles(base.holes, m), base.tag));
          this.count(m.length + 1);
        };
        for (const t0 of p.terms) {
          if (!this.mayMatch(rule, p.sym, t0.box)) {
            rest.push(t0);
            continue;
          }
          let parts: Term[] = [t0];
          if (marked) {
            const x = this.exact(t0.box, (b) => this.matcher.region(this.sureParts(rule), p, b));
            parts = [];
            cut(t0, x.box, x.r, parts, rest);
          }
          for (const t1 of parts) {
            const { box, r: m } = this.exact(t1.box, (b) => this.matcher.region(rule.constraint, p, b));
            cut(t1, box, m, marked ? markedMatched : matched, marked ? markedRest : rest);
          }
        }
        if (rest.length) next.push(withTerms(p, rest));
        if (markedRest.length) next.push(withTerms(marked!, markedRest));
        // After a jump returns, the rest of this chain (or what follows it) may still change.
        const contAfter: Cont = gw ? concat(gw[ri + 1], contAhead) : true;
        for (const [terms, base] of [
          [matched, p],
          [markedMatched, marked],
        ] as const) {
          if (!terms.length || !base) continue;
          for (const q of this.keep([withTerms(base, terms)])) this.fire(chain, rule, q, stack, res, next, rule.effect.type === 'goto' ? contAhead : contAfter);
        }
      }
      live = this.keep(next.length > 4 ? coalesce(next, this.space) : next);
    }
    if (gw) live = this.touchAtGap(live, gaps?.get(chain.rules.length));
    res.ret.push(...live);
    res.acc = coalesce(res.acc, this.space);
    res.ret = coalesce(res.ret, this.space, true);
    return res;
  }

  /**
   * The packets a user chain hands back, when it changed nothing about them: the packets that
   * went in minus those it ended (accepted, dropped, NATed) or let go (pruned), as the entering
   * terms with more holes — one term per entering term instead of one per rule that returned
   * packets. An anti-spoofing chain (a RETURN and a DROP per host and MAC address) would
   * otherwise hand back a term per host, and every later rule would split each of them.
   * Exact: every point that went in either ended, was let go, or came back. Undefined when the
   * short form does not apply (the chain rewrote something or marked a step, the packets
   * parted, too much to subtract, a focused walk that pinned slots).
   */
  private unchangedReturn(q: Piece, sub: ChainResult): Piece[] | undefined {
    // Worth it only when the chain hands back more terms than went in.
    if (this.focus || sub.ret.reduce((n, r) => n + r.terms.length, 0) <= q.terms.length) return undefined;
    const key = symKey(q.sym);
    const trail = trailKey(q.trail);
    const same = (r: Piece) => symKey(r.sym) === key && trailKey(r.trail) === trail && !!r.touched === !!q.touched && r.cls.local === q.cls.local && r.cls.lo === q.cls.lo && r.cls.ct === q.cls.ct;
    // Packets that come back changed (touched by a changed rule, marked, rewritten) stay as they are.
    const other = sub.ret.filter((r) => !same(r));
    const ended = [...sub.acc, ...sub.drop.map((d) => d.piece), ...sub.nat.map((n) => n.piece), ...sub.pruned, ...other];
    const holes: Box[] = [];
    for (const p of ended) {
      for (const t of p.terms) {
        for (const b of materialize(this.space, t)) holes.push(b);
        if (holes.length > MAX_RETURN_HOLES) return undefined;
      }
    }
    const terms: Term[] = [];
    for (const t of q.terms) {
      const mine = holes.filter((h) => this.space.overlaps(h, t.box));
      if (mine.some((h) => this.space.contains(h, t.box))) continue;
      terms.push(mine.length ? term(t.box, addHoles(t.holes, mine), t.tag) : t);
    }
    return terms.length ? [withTerms(q, terms), ...other] : other;
  }

  private fire(chain: ModelChain, rule: ModelRule, q0: Piece, stack: readonly ModelChain[], res: ChainResult, next: Piece[], contAfter: Cont): void {
    const e: TargetEffect = rule.effect;
    const q = this.prune && !q0.touched && this.changes!.changed.has(rule.id) ? { ...q0, touched: true } : q0;
    const step = (action: string): Piece => withStep(q, { t: 'rule', hook: q.sym.hook, ruleId: rule.id, action });
    switch (e.type) {
      case 'accept':
        res.acc.push(step('ACCEPT'));
        return;
      case 'drop':
        res.drop.push({ piece: step('DROP'), ruleId: rule.id, deny: 'drop', reason: 'rule' });
        return;
      case 'reject':
        res.drop.push({ piece: step('REJECT'), ruleId: rule.id, deny: describeReject(e.reply), reason: 'rule' });
        return;
      case 'return':
        res.ret.push(q);
        return;
      case 'jump':
      case 'goto': {
        const target = lookupChain(this.model, chain.table, e.chain);
        if (!target || stack.includes(target)) {
          next.push(q);
          return;
        }
        const sub = this.walk(target, [q], [...stack, target], contAfter);
        res.acc.push(...sub.acc);
        res.drop.push(...sub.drop);
        res.nat.push(...sub.nat);
        res.pruned.push(...sub.pruned);
        const back = this.unchangedReturn(q, sub) ?? sub.ret;
        if (e.type === 'jump') next.push(...back);
        else res.ret.push(...back);
        return;
      }
      case 'continue': {
        let ps: Piece[] = [q];
        for (const a of e.actions) ps = this.keep(ps.flatMap((p) => this.exactPiece(p, (x) => this.sideEffect(a, x))));
        next.push(...ps);
        return;
      }
      case 'nat':
        if (chain.table !== 'nat') res.acc.push(step(e.nat.type.toUpperCase()));
        else res.nat.push({ piece: step(e.nat.type.toUpperCase()), rule, nat: e.nat });
        return;
      case 'opaque': {
        if (e.terminates === 'no') {
          next.push(q);
          return;
        }
        const slot = this.space.extra({ kind: 'choice', key: `target:${this.targetKey(rule)}`, doc: `what ${e.name} does (0 continue, 1 accept, 2 drop)`, domain: [[0n, 2n]] });
        const q1 = this.routing.restrict(q, slot, e.terminates === 'yes' ? [[1n, 2n]] : [[0n, 2n]]);
        if (!q1) return;
        const sv = slotVal(slot);
        const goOn = this.routing.split([q1], sv, [[0n, 0n]]);
        next.push(...this.keep(goOn.yes));
        const acc = this.routing.split(goOn.no, sv, [[1n, 1n]]);
        for (const y of this.keep(acc.yes)) res.acc.push(withStep(y, { t: 'rule', hook: q.sym.hook, ruleId: rule.id, action: `${e.name} (accepts)` }));
        for (const y of this.keep(acc.no)) res.drop.push({ piece: withStep(y, { t: 'rule', hook: q.sym.hook, ruleId: rule.id, action: `${e.name} (drops)` }), ruleId: rule.id, deny: 'drop', reason: 'unmodelled' });
        return;
      }
      default: {
        const never: never = e;
        throw new Error(`unhandled effect ${JSON.stringify(never)}`);
      }
    }
  }

  /** The rule's constraint with its unmodelled parts taken as true (where they are evaluated). */
  private sureParts(rule: ModelRule): Constraint {
    let c = this.sure.get(rule.id);
    if (!c) {
      c = withoutOpaque(rule.constraint);
      this.sure.set(rule.id, c);
    }
    return c;
  }

  // ---- side effects ----------------------------------------------------------------

  private sideEffect(a: SideEffect, p: Piece): Piece[] {
    switch (a.type) {
      case 'xmark': {
        const apply = (q: Piece) => this.masked(q, a.field, a.mask, a.xor, M32);
        if (a.field !== 'ctmark') return apply(p);
        // The connection mark exists only on tracked packets.
        const t = this.splitTracked(p);
        return [...t.no, ...t.yes.flatMap(apply)];
      }
      case 'copy-mark': {
        const t = tracked(p);
        if (t === false) return [p];
        if (t === undefined) {
          const s = this.splitTracked(p);
          return [...s.no, ...s.yes.flatMap((q) => this.copyMark(a, q))];
        }
        return this.copyMark(a, p);
      }
      case 'notrack':
        // The first CT or NOTRACK target gives the packet its conntrack (xt_CT: "previously
        // seen"), and one that has its connection already (an answer of this host's) keeps it;
        // the rest of raw reads UNTRACKED at once (interp.ts sideEffect).
        if (p.sym.ctDone || p.sym.notrack || p.sym.templated) return [p];
        return [{ ...p, sym: setVals({ ...p.sym, notrack: true }, { ctstate: constVal(CT_STATE.UNTRACKED) }) }];
      case 'rewrite-tos':
        return this.masked(p, 'tos', BigInt(a.mask), BigInt(a.xor), 0xffn);
      case 'rewrite-ttl': {
        const v = BigInt(a.value);
        const cur = getVal(p.sym, 'ttl');
        if (a.op === 'set') return [{ ...p, sym: setVals(p.sym, { ttl: constVal(v) }) }];
        if (cur.k === 'const') {
          const n = a.op === 'inc' ? (cur.v + v > 255n ? 255n : cur.v + v) : cur.v < v ? 0n : cur.v - v;
          return [{ ...p, sym: setVals(p.sym, { ttl: constVal(n) }) }];
        }
        // Saturation splits the piece: inc stops at 255, dec at 0.
        const limit = a.op === 'inc' ? 255n - v : v - 1n;
        const s = this.routing.split([p], cur, a.op === 'inc' ? [[limit + 1n, 255n]] : limit < 0n ? [] : [[0n, limit]]);
        const sat = s.yes.map((q) => ({ ...q, sym: setVals(q.sym, { ttl: constVal(a.op === 'inc' ? 255n : 0n) }) }));
        const moved = s.no.map((q) => ({ ...q, sym: setVals(q.sym, { ttl: addTo(cur, a.op === 'inc' ? v : -v) }) }));
        return [...sat, ...moved];
      }
      case 'ct-template': {
        // The template reads as a new, confirmed connection with empty tuples until conntrack
        // replaces it with the packet's own (interp.ts setTemplateView).
        if (p.sym.ctDone || p.sym.notrack || p.sym.templated) return [p];
        const view = Object.fromEntries(Object.entries(TEMPLATE_VIEW).map(([f, v]) => [f, constVal(v)])) as Partial<Record<NumericField, Val>>;
        return [{ ...p, sym: setVals({ ...p.sym, templated: true }, view) }];
      }
      case 'log':
      case 'unmodelled':
        return [p];
      default: {
        const never: never = a;
        throw new Error(`unhandled side effect ${JSON.stringify(never)}`);
      }
    }
  }


  /** CONNMARK save/restore on tracked packets: to = (to & ~toMask) ^ (from & fromMask). */
  private copyMark(a: Extract<SideEffect, { type: 'copy-mark' }>, p: Piece): Piece[] {
    const from = getVal(p.sym, a.from);
    const to = getVal(p.sym, a.to);
    const part = maskedVal(from, a.fromMask & M32, M32);
    const next = part && mergeBits(to, a.toMask & M32, part, M32);
    if (next) return [{ ...p, sym: setVals(p.sym, { [a.to]: next }) }];
    // The two marks are bits of different slots: one piece per value of the source.
    if (from.k === 'const') throw new Inexact(`CONNMARK with masks 0x${a.fromMask.toString(16)}/0x${a.toMask.toString(16)} on marks not known here`, to.k === 'const' ? undefined : to.slot);
    return this.pointwise(p, from, a.from, (x) => {
      const v = mergeBits(to, a.toMask & M32, constVal(x & a.fromMask & M32), M32);
      if (!v) throw new Inexact(`CONNMARK with masks 0x${a.fromMask.toString(16)}/0x${a.toMask.toString(16)} on marks not known here`, from.slot);
      return { [a.to]: v };
    });
  }

  /** field := (field & ~mask) ^ xor (MARK, CONNMARK, DSCP/TOS): exact on constants, slots and their bits. */
  private masked(p: Piece, field: NumericField, mask: bigint, xor: bigint, width: bigint): Piece[] {
    const cur = getVal(p.sym, field);
    const next = xorMasked(cur, mask, xor, width);
    if (next) return [{ ...p, sym: setVals(p.sym, { [field]: next }) }];
    return this.pointwise(p, cur, field, (x) => ({ [field]: constVal(((x & ~mask & width) ^ xor) & width) }));
  }

  /** Splits a piece into one piece per value of `v` (few values only), with changes per value. */
  private pointwise(p: Piece, v: Val, field: NumericField, change: (x: bigint) => Partial<Record<NumericField, Val>>): Piece[] {
    if (v.k === 'const') return [{ ...p, sym: setVals(p.sym, change(v.v)) }];
    // Few distinct values (an 8-bit field, or a slot narrowed to a few): one piece per value.
    const all = p.terms.reduce<IntervalSet>((acc, t) => union(acc, this.space.values(t.box, v.slot)), []);
    if (all.reduce((n, [lo, hi]) => n + (hi - lo + 1n), 0n) > 256n) throw new Inexact(`a partial rewrite of ${field} on values not known here`, v.slot);
    for (const t of p.terms) this.count(this.space.values(t.box, v.slot).reduce((n, [lo, hi]) => n + Number(hi - lo + 1n), 0));
    const out = [...termsByValue(this.space, p.terms, v.slot)].map(([x, terms]) => ({ ...p, terms, sym: setVals(p.sym, change(evalVal(v, x))) }));
    this.count(out.length);
    return out;
  }

  // ---- NAT -------------------------------------------------------------------------

  private choice(key: string, doc: string, domain: IntervalSet): number {
    return this.space.extra({ kind: 'choice', key, doc, domain });
  }

  /** The piece with the slots of `vals` pinned to the focus point's values. */
  private pin(p: Piece, vals: readonly Val[]): Piece {
    if (!this.focus) return p;
    const f = this.focusNow();
    let terms = p.terms;
    for (const v of vals) {
      if (v.k !== 'slot') continue;
      const x = f[v.slot] ?? 0n;
      terms = terms.flatMap((t) => {
        // Intersected, not replaced: a box that does not hold the point's value is not kept.
        const b = this.space.restrict(t.box, v.slot, [[x, x]]);
        const nt = b && narrow(this.space, t, b);
        return nt ? [nt] : [];
      });
    }
    return withTerms(p, terms);
  }

  /** The value of `v` when every box of the piece leaves it one choice. */
  private known(p: Piece, v: Val): bigint | undefined {
    if (v.k === 'const') return v.v;
    let value: bigint | undefined;
    for (const t of p.terms) {
      const set = this.space.values(t.box, v.slot);
      if (set.length !== 1 || set[0][0] !== set[0][1]) return undefined;
      if (value !== undefined && value !== set[0][0]) return undefined;
      value = set[0][0];
    }
    return value === undefined ? undefined : evalVal(v, value);
  }

  /**
   * MASQUERADE's IPv4 source over lo (inet_select_addr skips the host-scoped 127.0.0.1): the
   * first address declared on lo whose subnet holds the destination, or its first, or else
   * the host's first address — Host.selectSource and the Z3 encoding's loopbackSource.
   */
  private loopbackSource4(p0: Piece, give: (q: Piece, a: bigint | undefined) => void): void {
    const routing = this.model.routing;
    // 127/8 is host-scoped: never a source of universe scope (Host.selectSource).
    const declared = routing.addresses.filter((a) => a.device === 'lo' && a.addr >> 24n !== 0x7fn);
    if (declared.length === 0) {
      give(p0, routing.sim.selectSource('ipv4', 'lo', 0x7f000001n));
      return;
    }
    let rest: Piece[] = [p0];
    const daddr = getVal(p0.sym, 'daddr');
    for (const a of declared) {
      const net = prefixMask('ipv4', a.prefixLen);
      const s = this.routing.split(rest, daddr, [[a.addr & net, a.addr | (~net & 0xffffffffn)]]);
      for (const q of s.yes) give(q, a.addr);
      rest = s.no;
    }
    for (const q of rest) give(q, declared[0].addr);
  }

  /** MASQUERADE's IPv6 source over lo: the destination, but for an anycast one (RoutingView.loopbackSources6). */
  private loopbackSource6(p0: Piece, give: (q: Piece, a: bigint | undefined) => void, withAddr: { p: Piece; addr: Val }[]): void {
    let rest: Piece[] = [p0];
    const daddr = getVal(p0.sym, 'daddr');
    for (const { dst, src } of this.model.routing.loopbackSources6()) {
      const s = this.routing.split(rest, daddr, [[dst, dst]]);
      for (const q of s.yes) give(q, src);
      rest = s.no;
    }
    for (const q of rest) withAddr.push({ p: q, addr: daddr });
  }

  private applyNat(rule: ModelRule, nat: NatAction, p0: Piece, natHook: 'dst' | 'src'): { ok: Piece[]; failed: Piece[] } {
    if (present(p0, natHook === 'dst' ? 'dport' : 'sport') === undefined) {
      // Ports are rewritten only on packets that have them: tell the protocols apart first.
      const ok: Piece[] = [];
      const failed: Piece[] = [];
      for (const q of this.splitL4(p0)) {
        const r = this.applyNat(rule, nat, q, natHook);
        ok.push(...r.ok);
        failed.push(...r.failed);
      }
      return { ok, failed };
    }
    const fam = this.model.family;
    const routing = this.model.routing;
    const addrF = natHook === 'dst' ? 'daddr' : 'saddr';
    const portF = natHook === 'dst' ? 'dport' : 'sport';
    const desc = natDescriptor(nat, natHook);
    const failed: Piece[] = [];
    const withAddr: { p: Piece; addr: Val }[] = [];
    const give = (q: Piece, a: bigint | undefined) => (a === undefined ? failed.push(q) : withAddr.push({ p: q, addr: constVal(a) }));
    const before = getVal(p0.sym, addrF);
    // 1. the address, possibly per part of the piece
    switch (nat.type) {
      case 'snat':
      case 'dnat': {
        if (!nat.addr) withAddr.push({ p: p0, addr: before });
        else if (nat.addr[0] === nat.addr[1]) withAddr.push({ p: p0, addr: constVal(nat.addr[0]) });
        else {
          const slot = this.choice(`nat.addr ${desc}`, `address ${nat.type.toUpperCase()} picks in ${nat.addr[0]}-${nat.addr[1]}`, [nat.addr]);
          const q = this.routing.restrict(p0, slot, [nat.addr]);
          if (q) withAddr.push({ p: q, addr: slotVal(slot) });
        }
        break;
      }
      case 'netmap': {
        if (!nat.addr) withAddr.push({ p: p0, addr: before });
        else {
          const max = fieldMax('saddr', fam);
          const netmask = ~(nat.addr[0] ^ nat.addr[1]) & max;
          const map = (x: bigint) => (x & ~netmask & max) | (nat.addr![0] & netmask);
          const known = this.known(p0, before);
          if (known !== undefined) withAddr.push({ p: p0, addr: constVal(map(known)) });
          else if (netmask === max) withAddr.push({ p: p0, addr: constVal(nat.addr[0]) });
          else {
            // The host bits stay, the network bits are the mapping's: (x & ~netmask) ^ (net & netmask).
            // (A focused walk pins the address instead: routing cannot always split a rewritten one.)
            const mapped = this.focus ? undefined : xorMasked(before, netmask, nat.addr[0] & netmask, max);
            if (!mapped) throw new Inexact('NETMAP of addresses not known here', before.k === 'slot' ? before.slot : undefined);
            withAddr.push({ p: p0, addr: mapped });
          }
        }
        break;
      }
      case 'masquerade': {
        const oifSym = p0.sym.oif;
        const oif = this.known(p0, oifSym);
        if (!routing.hasHost) {
          // Over lo an IPv6 packet takes its (local) destination as source, host model or
          // not (interp masqueradeSource); elsewhere the address is the made-up one.
          const take = (q: Piece, dev: bigint | undefined) =>
            withAddr.push({ p: q, addr: fam === 'ipv6' && dev !== undefined && this.space.ifaces.nameOf(Number(dev)) === 'lo' ? getVal(q.sym, 'daddr') : constVal(UNKNOWN_ADDR[fam]) });
          if (fam === 'ipv4' || oif !== undefined || oifSym.k !== 'slot') take(p0, oif);
          else for (const [dev, terms] of termsByValue(this.space, p0.terms, oifSym.slot)) take(withTerms(p0, terms), dev);
          break;
        }
        const oifName = oif === undefined ? undefined : this.space.ifaces.nameOf(Number(oif));
        if (oifName === undefined) throw new Inexact('MASQUERADE out of an interface not known here', p0.sym.oif.k === 'slot' ? p0.sym.oif.slot : undefined);
        if (oifName === 'lo') {
          if (fam === 'ipv6') this.loopbackSource6(p0, give, withAddr);
          else this.loopbackSource4(p0, give);
          break;
        }
        const fallback = routing.addresses.find((a) => a.device === oifName)?.addr;
        let rest: Piece[] = [p0];
        const daddr = getVal(p0.sym, 'daddr');
        for (const route of routing.routes) {
          if (rest.length === 0) break;
          const s = this.routing.split(rest, daddr, route.region);
          rest = s.no;
          if (route.device !== oifName) {
            for (const q of s.yes) give(q, fallback);
            continue;
          }
          let inRoute = s.yes;
          for (const part of route.sources) {
            const t = this.routing.split(inRoute, daddr, part.region);
            for (const q of t.yes) give(q, part.addr);
            inRoute = t.no;
          }
          for (const q of inRoute) give(q, undefined);
        }
        for (const q of rest) give(q, fallback);
        break;
      }
      case 'redirect': {
        // lo always has the loopback address; other devices need the host model to know theirs.
        const loAddr = routing.primaryAddress('lo')!;
        const addrOf = (name: string) => (name === 'lo' ? loAddr : routing.hasHost ? routing.primaryAddress(name) : UNKNOWN_ADDR[fam]);
        const iif = p0.sym.iif;
        if (p0.sym.hook === 'OUTPUT') give(p0, loAddr);
        else if (iif.k === 'const') give(p0, addrOf(this.space.ifaces.nameOf(Number(iif.v))));
        else for (const [i, terms] of termsByValue(this.space, p0.terms, iif.slot)) give(withTerms(p0, terms), addrOf(this.space.ifaces.nameOf(Number(i))));
        break;
      }
    }
    // 2. the port
    const ok: Piece[] = [];
    const hasPorts = present(p0, portF);
    const beforePort = getVal(p0.sym, portF);
    const random = nat.random || nat.fullyRandom;
    for (const { p, addr } of withAddr) {
      let withPort: { p: Piece; port?: Val }[] = [{ p, ...(hasPorts ? { port: beforePort } : {}) }];
      if (hasPorts) {
        if (nat.ports) {
          const [lo, hi] = nat.ports;
          const pick = (q: Piece): { p: Piece; port: Val } | undefined => {
            if (lo === hi) return { p: q, port: constVal(lo) };
            const slot = this.choice(`nat.port ${desc}`, `port ${nat.type.toUpperCase()} picks in ${lo}-${hi}`, [[lo, hi]]);
            const r = this.routing.restrict(q, slot, [[lo, hi]]);
            return r ? { p: r, port: slotVal(slot) } : undefined;
          };
          const s = this.routing.split([p], beforePort, [[lo, hi]]);
          withPort = [];
          for (const q of s.yes) {
            const r = random && lo !== hi ? pick(q) : { p: q, port: beforePort };
            if (r) withPort.push(r);
          }
          for (const q of s.no) {
            const r = pick(q);
            if (r) withPort.push(r);
          }
        } else if (random && natHook === 'src') {
          const slot = this.choice(`nat.port ${desc}`, `port ${nat.type.toUpperCase()} picks at random`, [[0n, 0xffffn]]);
          withPort = [{ p, port: slotVal(slot) }];
        }
      }
      for (const { p: q0, port } of withPort) {
        // A focused walk pins what NAT compared, so that ct status stays a known value.
        const q = this.focus && this.usesCtstatus ? this.pin(q0, [addr, before, ...(port ? [port, beforePort] : [])]) : q0;
        const changes: Partial<Record<NumericField, Val>> = { [addrF]: addr };
        if (port) changes[portF] = port;
        if (natHook === 'dst') {
          changes.ctreplsrc = addr;
          if (port) changes.ctreplsrcport = port;
        } else {
          changes.ctrepldst = addr;
          if (port) changes.ctrepldstport = port;
        }
        const sym: Sym = { ...setVals(q.sym, changes), ...(nat.type === 'redirect' && natHook === 'dst' ? { redirected: true } : {}) };
        if (!this.usesCtstatus) {
          ok.push({ ...q, sym });
          continue;
        }
        // The connection is marked NATed (ct status snat/dnat) where the mapping changed the
        // address or the port: the piece splits by whether they stayed equal.
        const natBit = natHook === 'dst' ? CT_STATUS.DST_NAT : CT_STATUS.SRC_NAT;
        let same: Piece[] = [{ ...q, sym }];
        const changed: Piece[] = [];
        for (const [x, y] of [[addr, before], ...(port ? [[port, beforePort] as const] : [])] as const) {
          if (sameVal(x, y)) continue;
          const s = this.routing.splitEqual(same, () => x, () => y);
          changed.push(...s.ne);
          same = s.eq;
        }
        ok.push(...same, ...changed.map((c) => ({ ...c, sym: orStatus(c.sym, natBit) })));
      }
    }
    this.count(ok.length + failed.length);
    return { ok, failed };
  }
}

/** The least room a focused walk gets (see runFocused). */
const FOCUSED_MIN_BUDGET = 20_000;

/** Holes a chain's ended packets may add to the term it hands back (see unchangedReturn). */
const MAX_RETURN_HOLES = 4096;


export function addTo(v: Val, by: bigint): Val {
  if (v.k === 'bits') throw new Inexact('an offset on a partly rewritten value', v.slot);
  return v.k === 'const' ? constVal(v.v + by) : slotVal(v.slot, v.off + by);
}

/**
 * ct status | bits: a constant, or the status's other bits as they were with these set
 * (x | bits = (x & ~bits) ^ bits); undefined for a status shifted by an offset.
 */
function statusWith(cur: Val, bits: number): Val | undefined {
  const mask = BigInt(bits);
  if (cur.k === 'const') return constVal(cur.v | mask);
  return cur.k === 'bits' || cur.off === 0n ? xorMasked(cur, mask, mask, 0xffffn) : undefined;
}

/** NAT's status bits (SRC_NAT, DST_NAT, *_DONE); a status it cannot tell is marked unknown. */
function orStatus(sym: Sym, bit: number): Sym {
  const grown = statusWith(getVal(sym, 'ctstatus'), bit);
  return grown ? setVals(sym, { ctstatus: grown }) : { ...sym, ctstatusUnknown: true };
}

/**
 * Drops the kernel makes itself, told apart from a rule's silent drop as a REJECT is: an
 * expired TTL (ip_forward / ip6_forward answer with an ICMP time exceeded) and no route for a
 * packet from a device (ip_error / ip6_pkt_drop answer with an ICMP unreachable on a host that
 * forwards).
 */
export const ANSWERED_DROP = {
  unreachable: 'no route',
  ttl: 'TTL expired (an ICMP time exceeded goes back)',
} as const;

export function describeReject(r: RejectReply): string {
  return r.type === 'tcp-reset' ? 'reject with tcp-reset' : `reject with ${r.type} type ${r.icmpType} code ${r.code}`;
}

/** A NAT mapping as a key: equal mappings pick the same way on both sides (same slot). */
export function natDescriptor(nat: NatAction, natHook: 'dst' | 'src'): string {
  const iv = (x?: readonly [bigint, bigint]) => (x ? `${x[0]}-${x[1]}` : '-');
  return `${natHook} ${nat.type} ${iv(nat.addr)} ${iv(nat.ports)}${nat.random ? ' random' : ''}${nat.fullyRandom ? ' fully-random' : ''}${nat.persistent ? ' persistent' : ''}`;
}

function withoutOpaque(c: Constraint): Constraint {
  switch (c.op) {
    case 'opaque':
      return TRUE;
    case 'and':
      return and(...c.of.map(withoutOpaque));
    case 'or':
      return or(...c.of.map(withoutOpaque));
    case 'not':
      // Under a negation "evaluated" is not "true": take the whole test as evaluated.
      return opaqueParts(c).length ? TRUE : c;
    default:
      return c;
  }
}

function mentions(c: Constraint, field: NumericField): boolean {
  switch (c.op) {
    case 'and':
    case 'or':
      return c.of.some((x) => mentions(x, field));
    case 'not':
      return mentions(c.of, field);
    case 'in':
    case 'masked':
    case 'present':
      return c.field === field;
    default:
      return false;
  }
}

/** Keys of the choices each rule of a model reads (for turning a point into a PacketInput). */
export function choiceKeysOf(model: FamilyModel, rule: ModelRule): { addr?: string; port?: string } {
  const e = rule.effect;
  if (e.type !== 'nat') return {};
  const natHook = natHookOf(model, rule);
  if (!natHook) return {};
  const desc = natDescriptor(e.nat, natHook);
  return { addr: `nat.addr ${desc}`, port: `nat.port ${desc}` };
}

/** Whether a NAT rule changes destinations or sources (the hooks its chain is reached from). */
export function natHookOf(model: FamilyModel, rule: ModelRule): 'dst' | 'src' | undefined {
  const chain = lookupChain(model, rule.table, rule.chain);
  if (!chain) return undefined;
  const hooks = [...chain.hooks];
  if (hooks.some((h) => h === 'PREROUTING' || h === 'OUTPUT')) return 'dst';
  if (hooks.some((h) => h === 'INPUT' || h === 'POSTROUTING')) return 'src';
  return undefined;
}

