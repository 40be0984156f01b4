import { type Constraint, TRUE, and, opaqueParts, or } from '../../ir/constraint.js';
import type { NatAction, RejectReply, SideEffect, TargetEffect } from '../../ir/effect.js';
import { CT_STATE, CT_STATUS, type NumericField } from '../../ir/fields.js';
import { CONNTRACK_PRIORITY, type Hook, TABLE_PRIORITY, type TableName } from '../../ir/netfilter.js';
import { type IntervalSet, union } from '../../util/intervals.js';
import { type DropReason, UNKNOWN_ADDR, type Verdict } from '../concrete/interp.js';
import { type FamilyModel, type ModelChain, type ModelRule, type Stage, lookupChain } from '../model/build.js';
import { FIELD_SLOT, IIF_SLOT, fieldMax } from '../model/fields.js';
import type { Matcher } from './region.js';
import { BoxRouting } from './routing.js';
import { Inexact, OverBudget, type Point, type Space, boxHas } from './space.js';
import { type Piece, type Sym, type Val, constVal, getVal, present, setVals, slotVal, tracked, withBox, withStep } from './sym.js';

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
}

const M32 = 0xffffffffn;

export interface WalkLimits {
  /** Most pieces one run may create before it gives up (OverBudget). */
  readonly maxPieces: number;
}

export class SideWalker {
  private readonly routing: BoxRouting;
  private readonly usesCtstatus: boolean;
  private readonly opaqueRules: ReadonlyMap<number, readonly string[]>;
  private pieces = 0;
  /** A focused walk follows one point: only pieces holding it go on (see runFocused). */
  private focus?: Point;
  private readonly sure = new Map<number, Constraint>();
  private leaves: Leaf[] = [];

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
    this.usesCtstatus = model.rules.some((r) => mentions(r.constraint, 'ctstatus'));
    const opaque = new Map<number, string[]>();
    for (const r of model.rules) {
      const keys = opaqueParts(r.constraint).map((o) => opaqueKey(o.key));
      if (r.effect.type === 'opaque') keys.push(`target:${targetKey(r)}`);
      if (keys.length) opaque.set(r.id, keys);
    }
    this.opaqueRules = opaque;
  }

  /** Walks pieces of arriving packets to their outcomes. */
  run(start: readonly Piece[]): Leaf[] {
    this.pieces = 0;
    this.leaves = [];
    this.focus = undefined;
    for (const p0 of start) {
      for (const p of this.arrive(p0)) {
        if (p.cls.local) this.fromSocket(p);
        else this.fromDevice(p);
      }
    }
    return this.leaves;
  }

  /** The receive/send path sets the packet type from the destination the packet arrives with. */
  private arrive(p: Piece): Piece[] {
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

  /**
   * Follows one point from a start piece: at every split only the part holding the point goes
   * on, and a test with no exact box form over the piece is made exact by pinning the slot it
   * needs to the point's value. The leaf is a box around the point whose packets all get the
   * same symbolic outcome — never too big, maybe smaller than the largest such box.
   */
  runFocused(start: Piece, point: Point): Leaf | undefined {
    this.pieces = 0;
    this.leaves = [];
    this.focus = point;
    try {
      if (!boxHas(this.space, start.box, point)) return undefined;
      for (const p of this.arrive(start)) {
        if (p.cls.local) this.fromSocket(p);
        else this.fromDevice(p);
      }
      return this.leaves.find((l) => boxHas(this.space, l.piece.box, point));
    } finally {
      this.focus = undefined;
    }
  }

  private keep(ps: Piece[]): Piece[] {
    const f = this.focus;
    return f ? ps.filter((p) => boxHas(this.space, p.box, f)) : ps;
  }

  /**
   * Runs fn on the piece; in a focused walk an Inexact is answered by pinning its slot to the
   * point's value and trying again.
   */
  private exact<T>(p0: Piece, fn: (p: Piece) => T): { p: Piece; r: T } {
    let p = p0;
    for (let tries = 0; ; tries++) {
      try {
        return { p, r: fn(p) };
      } catch (e) {
        const f = this.focus;
        if (!(e instanceof Inexact) || !f || e.slot === undefined || tries > 8) throw e;
        const v = f[e.slot] ?? 0n;
        p = withBox(p, this.space.with(p.box, e.slot, [[v, v]]));
      }
    }
  }

  private count(n: number): void {
    this.pieces += n;
    if (this.pieces > this.limits.maxPieces) throw new OverBudget(`more than ${this.limits.maxPieces} pieces`);
  }

  private leaf(piece: Piece, verdict: Verdict, extra: { dropReason?: DropReason; decidedBy?: SideOutcome['decidedBy']; deny?: string } = {}): void {
    if (this.focus && !boxHas(this.space, piece.box, this.focus)) return;
    const sym = piece.sym;
    const ports = present(piece, 'sport');
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

  private fromDevice(p: Piece): void {
    const pre = this.hook('PREROUTING', [p], 'dst');
    for (const d of this.routing.input(pre)) {
      if (this.focus && !boxHas(this.space, d.piece.box, this.focus)) continue;
      if (d.kind === 'martian' || d.kind === 'unreachable') {
        this.leaf(d.piece, 'dropped', { dropReason: d.kind });
        continue;
      }
      if (d.kind === 'local') {
        for (const q of this.hook('INPUT', [d.piece], 'src')) this.leaf(q, 'local');
        continue;
      }
      if (d.kind !== 'forward') continue;
      // Forwarded: TTL must allow one more hop; it is decremented before FORWARD.
      const ttl = getVal(d.piece.sym, 'ttl');
      const s = this.routing.split([d.piece], ttl, [[0n, 1n]]);
      for (const q of s.yes) this.leaf(q, 'dropped', { dropReason: 'ttl' });
      const fwd = s.no.map((q) => ({ ...q, sym: setVals({ ...q.sym, oif: d.oif }, { ttl: addTo(getVal(q.sym, 'ttl'), -1n) }) }));
      const passed = this.hook('FORWARD', fwd, 'src');
      for (const q of this.hook('POSTROUTING', passed, 'src')) this.leaf(q, 'forwarded');
    }
  }

  private fromSocket(p: Piece): void {
    const first = this.routing.output([p]);
    for (const q of first.unreachable) this.leaf(q, 'dropped', { dropReason: 'unreachable' });
    const routed = first.routed.map(({ piece, oif }) => ({ ...piece, sym: { ...piece.sym, oif } }));
    const out = this.hook('OUTPUT', routed, 'dst', (table, ps) => {
      if (table !== 'mangle' && table !== 'nat') return ps;
      const r = this.routing.output(ps);
      for (const q of r.unreachable) this.leaf(q, 'dropped', { dropReason: 'unreachable' });
      return r.routed.map(({ piece, oif }) => ({ ...piece, sym: { ...piece.sym, oif } }));
    });
    const sent = this.hook('POSTROUTING', out, 'src');
    // Looped back (out by lo): in again by lo, through PREROUTING and INPUT; conntrack and NAT are done.
    const lo = [[BigInt(this.space.ifaces.classOf('lo')), BigInt(this.space.ifaces.classOf('lo'))]] as IntervalSet;
    const s = this.routing.split(sent, { k: 'slot', slot: -1, off: 0n }, lo, (q) => q.sym.oif);
    for (const q of s.no) this.leaf(q, 'sent');
    const back = s.yes.map((q) => ({ ...q, sym: { ...q.sym, iif: q.sym.oif, oif: constVal(0) } }));
    const passed = this.hook('INPUT', this.hook('PREROUTING', back, 'dst'), 'src');
    for (const q of passed) this.leaf({ ...q, sym: { ...q.sym, oif: q.sym.iif } }, 'sent');
  }

  // ---- hooks -----------------------------------------------------------------------

  private hook(hook: Hook, pieces0: readonly Piece[], natHook: 'dst' | 'src', afterTable?: (t: TableName, ps: Piece[]) => Piece[]): Piece[] {
    let pieces: Piece[] = pieces0.map((p) => ({ ...p, sym: { ...p.sym, hook } }));
    for (const stage of this.model.stages[hook]) {
      if (pieces.length === 0) break;
      const prio = TABLE_PRIORITY[stage.table][hook] ?? 0;
      if (prio > CONNTRACK_PRIORITY) pieces = pieces.map((p) => this.conntrack(p));
      if (stage.table === 'nat') pieces = this.natStage(stage, pieces, natHook);
      else pieces = this.stageResult(stage, this.walk(stage.chain, pieces, [stage.chain]));
      if (afterTable) pieces = afterTable(stage.table, pieces);
      pieces = this.keep(pieces);
    }
    return pieces.map((p) => this.conntrack(p));
  }

  /** Conntrack lookup (priority -200): the state later tables see; a new connection's tuple. */
  private conntrack(p: Piece): Piece {
    const s = p.sym;
    if (s.ctDone) return p;
    if (s.notrack) return { ...p, sym: setVals({ ...s, ctDone: true }, { ctstate: constVal(CT_STATE.UNTRACKED) }) };
    const changes: Partial<Record<NumericField, Val>> = { ctstate: slotVal(FIELD_SLOT.ctstate) };
    if (p.cls.ct === 'new') {
      const ports = present(p, 'sport');
      const sport = ports ? getVal(s, 'sport') : constVal(0);
      const dport = ports ? getVal(s, 'dport') : constVal(0);
      Object.assign(changes, {
        ctdir: constVal(0),
        ctmark: constVal(0),
        ctstatus: constVal(0),
        ctproto: getVal(s, 'proto'),
        ctorigsrc: getVal(s, 'saddr'),
        ctorigdst: getVal(s, 'daddr'),
        ctreplsrc: getVal(s, 'daddr'),
        ctrepldst: getVal(s, 'saddr'),
        ctorigsrcport: sport,
        ctorigdstport: dport,
        ctreplsrcport: dport,
        ctrepldstport: sport,
      });
    }
    return { ...p, sym: setVals({ ...s, ctDone: true }, changes) };
  }

  private stageResult(stage: Stage, r: ChainResult): Piece[] {
    this.dropAll(r);
    const out = [...r.acc, ...r.nat.map((n) => n.piece)];
    const policy = stage.chain.policy ?? 'ACCEPT';
    for (const p of r.ret) {
      const q = withStep(p, { t: 'policy', hook: p.sym.hook, table: stage.table, chain: stage.chain.name, policy });
      if (policy === 'DROP') this.leaf(q, 'dropped', { dropReason: 'policy', decidedBy: { policy: `${stage.table}/${stage.chain.name}` } });
      else out.push(q);
    }
    return out;
  }

  private dropAll(r: ChainResult): void {
    for (const d of r.drop) this.leaf(d.piece, 'dropped', { dropReason: d.reason, decidedBy: { ruleId: d.ruleId }, deny: d.deny });
  }

  /** The nat table: consulted for a connection's first packet only. */
  private natStage(stage: Stage, pieces: readonly Piece[], natHook: 'dst' | 'src'): Piece[] {
    const out: Piece[] = [];
    const doneBit = natHook === 'dst' ? CT_STATUS.DST_NAT_DONE : CT_STATUS.SRC_NAT_DONE;
    const done = (p: Piece): Piece => (this.usesCtstatus ? { ...p, sym: orStatus(p.sym, doneBit) } : p);
    for (const p0 of pieces) {
      if (natHook === 'dst' ? p0.sym.natDoneDst : p0.sym.natDoneSrc) {
        out.push(p0);
        continue;
      }
      const p = { ...p0, sym: { ...p0.sym, ...(natHook === 'dst' ? { natDoneDst: true } : { natDoneSrc: true }) } };
      const isNew = p.cls.ct === 'new' && !p.sym.notrack;
      if (!isNew) {
        out.push(p);
        continue;
      }
      const r = this.walk(stage.chain, [p], [stage.chain]);
      this.dropAll(r);
      out.push(...r.acc.map(done));
      const policy = stage.chain.policy ?? 'ACCEPT';
      for (const q of r.ret) {
        if (policy === 'DROP') {
          const d = withStep(q, { t: 'policy', hook: q.sym.hook, table: 'nat', chain: stage.chain.name, policy });
          this.leaf(d, 'dropped', { dropReason: 'policy', decidedBy: { policy: `nat/${stage.chain.name}` } });
        } else out.push(done(q));
      }
      for (const n of r.nat) {
        const res = this.exact(n.piece, (x) => this.applyNat(n.rule, n.nat, x, natHook)).r;
        for (const f of res.failed) this.leaf(f, 'dropped', { dropReason: 'nat-failed', decidedBy: { ruleId: n.rule.id } });
        out.push(...res.ok.map(done));
      }
    }
    return out;
  }

  // ---- chains ----------------------------------------------------------------------

  private walk(chain: ModelChain, pieces: readonly Piece[], stack: readonly ModelChain[]): ChainResult {
    const res: ChainResult = { acc: [], drop: [], ret: [], nat: [] };
    let live: Piece[] = [...pieces];
    for (const rule of chain.rules) {
      if (live.length === 0) break;
      const next: Piece[] = [];
      const opaque = this.opaqueRules.get(rule.id);
      for (const p00 of live) {
        let parts: Piece[];
        let p0 = p00;
        if (opaque) {
          // Packets for which the unmodelled part is evaluated (the rest of the rule holds) are
          // marked: where its state changes, the two sides must agree (see compare.ts).
          const x = this.exact(p00, (q) => this.matcher.region(this.sureParts(rule), q));
          p0 = x.p;
          const consulted = x.r;
          if (consulted.length === 0) {
            next.push(p0);
            continue;
          }
          const marked = withStep(p0, { t: 'opaque', hook: p0.sym.hook, ruleId: rule.id, keys: opaque });
          for (const b of this.space.minus([p0.box], consulted)) next.push(withBox(p0, b));
          parts = this.keep(consulted.map((b) => withBox(marked, b)));
        } else parts = [p0];
        for (const p1 of parts) {
          const { p, r: m } = this.exact(p1, (q) => this.matcher.region(rule.constraint, q));
          if (m.length === 0) {
            next.push(p);
            continue;
          }
          const rest = this.space.minus([p.box], m);
          this.count(m.length + rest.length);
          for (const b of rest) next.push(withBox(p, b));
          for (const b of m) {
            const q = withBox(p, b);
            if (!this.focus || boxHas(this.space, b, this.focus)) this.fire(chain, rule, q, stack, res, next);
          }
        }
      }
      live = this.keep(next);
    }
    res.ret.push(...live);
    return res;
  }

  private fire(chain: ModelChain, rule: ModelRule, q: Piece, stack: readonly ModelChain[], res: ChainResult, next: Piece[]): void {
    const e: TargetEffect = rule.effect;
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
        const sub = this.walk(target, [q], [...stack, target]);
        res.acc.push(...sub.acc);
        res.drop.push(...sub.drop);
        res.nat.push(...sub.nat);
        if (e.type === 'jump') next.push(...sub.ret);
        else res.ret.push(...sub.ret);
        return;
      }
      case 'continue': {
        let ps: Piece[] = [q];
        for (const a of e.actions) ps = this.keep(ps.flatMap((p) => this.exact(p, (x) => this.sideEffect(a, x)).r));
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
        const domain: IntervalSet = e.terminates === 'yes' ? [[1n, 2n]] : [[0n, 2n]];
        const b = this.space.restrict(q.box, slot, domain);
        if (!b) return;
        const goOn = this.space.split(b, slot, [[0n, 0n]]);
        next.push(...goOn.yes.map((x) => withBox(q, x)));
        for (const x of goOn.no) {
          const acc = this.space.split(x, slot, [[1n, 1n]]);
          for (const y of acc.yes) res.acc.push(withStep(withBox(q, y), { t: 'rule', hook: q.sym.hook, ruleId: rule.id, action: `${e.name} (accepts)` }));
          for (const y of acc.no) res.drop.push({ piece: withStep(withBox(q, y), { t: 'rule', hook: q.sym.hook, ruleId: rule.id, action: `${e.name} (drops)` }), ruleId: rule.id, deny: 'drop', reason: 'unmodelled' });
        }
        return;
      }
      default: {
        const never: never = e;
        throw new Error(`unhandled effect ${JSON.stringify(never)}`);
      }
    }
  }

  // ---- side effects ----------------------------------------------------------------

  private sideEffect(a: SideEffect, p: Piece): Piece[] {
    switch (a.type) {
      case 'xmark': {
        if (a.field === 'ctmark' && !tracked(p)) return [p];
        return this.rewrite(p, a.field, (v) => ((v & ~a.mask & M32) ^ a.xor) & M32, (a.mask & M32) === M32 ? constVal(a.xor & M32) : a.mask === 0n && a.xor === 0n ? 'same' : undefined);
      }
      case 'copy-mark': {
        if (!tracked(p)) return [p];
        const from = getVal(p.sym, a.from);
        const to = getVal(p.sym, a.to);
        if ((a.toMask & M32) === M32 && (a.fromMask & M32) === M32) return [{ ...p, sym: setVals(p.sym, { [a.to]: from }) }];
        if (from.k === 'const') {
          const part = from.v & a.fromMask;
          return this.rewrite(p, a.to, (v) => ((v & ~a.toMask & M32) ^ part) & M32, (a.toMask & M32) === M32 ? constVal(part & M32) : undefined);
        }
        if (to.k === 'const') {
          return this.pointwise(p, from, a.from, (x) => ({ [a.to]: constVal(((to.v & ~a.toMask & M32) ^ (x & a.fromMask)) & M32) }));
        }
        throw new Inexact(`CONNMARK with masks 0x${a.fromMask.toString(16)}/0x${a.toMask.toString(16)} on marks not known here`, from.slot);
      }
      case 'notrack':
        return [{ ...p, sym: { ...p.sym, notrack: true } }];
      case 'rewrite-tos':
        return this.rewrite(p, 'tos', (v) => ((v & ~BigInt(a.mask) & 0xffn) ^ BigInt(a.xor)) & 0xffn, (a.mask & 0xff) === 0xff ? constVal(a.xor & 0xff) : undefined);
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
        const s = this.routing.split([p], cur, a.op === 'inc' ? [[limit + 1n, 255n]] : [[0n, limit < 0n ? -1n : limit]]);
        const sat = s.yes.map((q) => ({ ...q, sym: setVals(q.sym, { ttl: constVal(a.op === 'inc' ? 255n : 0n) }) }));
        const moved = s.no.map((q) => ({ ...q, sym: setVals(q.sym, { ttl: addTo(cur, a.op === 'inc' ? v : -v) }) }));
        return [...sat, ...moved];
      }
      case 'log':
      case 'ct-template':
      case 'unmodelled':
        return [p];
      default: {
        const never: never = a;
        throw new Error(`unhandled side effect ${JSON.stringify(never)}`);
      }
    }
  }

  /** The piece with the slots of `vals` pinned to the focus point's values. */
  private pin(p: Piece, vals: readonly Val[]): Piece {
    const f = this.focus;
    if (!f) return p;
    let box = p.box;
    for (const v of vals) if (v.k === 'slot') box = this.space.with(box, v.slot, [[f[v.slot] ?? 0n, f[v.slot] ?? 0n]]);
    return withBox(p, box);
  }

  /** The value of `v` when the piece leaves it one choice. */
  private known(p: Piece, v: Val): bigint | undefined {
    if (v.k === 'const') return v.v;
    const set = this.space.values(p.box, v.slot);
    return set.length === 1 && set[0][0] === set[0][1] ? set[0][0] + v.off : undefined;
  }

  /** field := fn(field); `known` is the result when it does not depend on the old value. */
  private rewrite(p: Piece, field: NumericField, fn: (v: bigint) => bigint, known: Val | 'same' | undefined): Piece[] {
    if (known === 'same') return [p];
    if (known) return [{ ...p, sym: setVals(p.sym, { [field]: known }) }];
    const cur = getVal(p.sym, field);
    if (cur.k === 'const') return [{ ...p, sym: setVals(p.sym, { [field]: constVal(fn(cur.v)) }) }];
    return this.pointwise(p, cur, field, (x) => ({ [field]: constVal(fn(x)) }));
  }

  /** Splits a piece into one piece per value of `v` (few values only), with changes per value. */
  private pointwise(p: Piece, v: Val, field: NumericField, change: (x: bigint) => Partial<Record<NumericField, Val>>): Piece[] {
    if (v.k === 'const') return [{ ...p, sym: setVals(p.sym, change(v.v)) }];
    const here = this.space.values(p.box, v.slot);
    const count = here.reduce((n, [lo, hi]) => n + (hi - lo + 1n), 0n);
    if (count > 256n) throw new Inexact(`a partial rewrite of ${field} on values not known here`, v.slot);
    const out: Piece[] = [];
    for (const [lo, hi] of here) {
      for (let x = lo; x <= hi; x++) {
        const b = this.space.with(p.box, v.slot, [[x, x]]);
        out.push({ ...p, box: b, sym: setVals(p.sym, change(x + v.off)) });
      }
    }
    this.count(out.length);
    return out;
  }

  // ---- NAT -------------------------------------------------------------------------

  /** The rule's constraint with its unmodelled parts taken as true (where they are evaluated). */
  private sureParts(rule: ModelRule): Constraint {
    let c = this.sure.get(rule.id);
    if (!c) {
      c = withoutOpaque(rule.constraint);
      this.sure.set(rule.id, c);
    }
    return c;
  }

  private choice(key: string, doc: string, domain: IntervalSet): number {
    return this.space.extra({ kind: 'choice', key, doc, domain });
  }

  private applyNat(rule: ModelRule, nat: NatAction, p0: Piece, natHook: 'dst' | 'src'): { ok: Piece[]; failed: Piece[] } {
    const fam = this.model.family;
    const routing = this.model.routing;
    const addrF = natHook === 'dst' ? 'daddr' : 'saddr';
    const portF = natHook === 'dst' ? 'dport' : 'sport';
    const desc = natDescriptor(nat, natHook);
    const failed: Piece[] = [];
    // 1. the address, possibly per part of the piece
    let withAddr: { p: Piece; addr: Val }[] = [];
    const before = getVal(p0.sym, addrF);
    switch (nat.type) {
      case 'snat':
      case 'dnat': {
        if (!nat.addr) withAddr = [{ p: p0, addr: before }];
        else if (nat.addr[0] === nat.addr[1]) withAddr = [{ p: p0, addr: constVal(nat.addr[0]) }];
        else {
          const slot = this.choice(`nat.addr ${desc}`, `address ${nat.type.toUpperCase()} picks in ${nat.addr[0]}-${nat.addr[1]}`, [nat.addr]);
          const b = this.space.restrict(p0.box, slot, [nat.addr]);
          if (b) withAddr = [{ p: withBox(p0, b), addr: slotVal(slot) }];
        }
        break;
      }
      case 'netmap': {
        if (!nat.addr) withAddr = [{ p: p0, addr: before }];
        else {
          const max = fieldMax('saddr', fam);
          const netmask = ~(nat.addr[0] ^ nat.addr[1]) & max;
          const map = (x: bigint) => (x & ~netmask & max) | (nat.addr![0] & netmask);
          const known = this.known(p0, before);
          if (known !== undefined) withAddr = [{ p: p0, addr: constVal(map(known)) }];
          else if (netmask === max) withAddr = [{ p: p0, addr: constVal(nat.addr[0]) }];
          else throw new Inexact('NETMAP of addresses not known here', before.k === 'slot' ? before.slot : undefined);
        }
        break;
      }
      case 'masquerade': {
        if (!routing.hasHost) {
          withAddr = [{ p: p0, addr: constVal(UNKNOWN_ADDR[fam]) }];
          break;
        }
        const oif = this.known(p0, p0.sym.oif);
        if (oif === undefined) throw new Inexact('MASQUERADE out of an interface not known here', p0.sym.oif.k === 'slot' ? p0.sym.oif.slot : undefined);
        const oifName = this.space.ifaces.nameOf(Number(oif));
        if (oifName === 'lo') {
          withAddr = [{ p: p0, addr: constVal(routing.primaryAddress('lo')!) }];
          break;
        }
        const fallback = routing.addresses.find((a) => a.device === oifName)?.addr;
        let rest: Piece[] = [p0];
        const daddr = getVal(p0.sym, 'daddr');
        const give = (ps: Piece[], a: bigint | undefined) => {
          for (const q of ps) {
            if (a === undefined) failed.push(q);
            else withAddr.push({ p: q, addr: constVal(a) });
          }
        };
        for (const route of routing.routes) {
          if (rest.length === 0) break;
          const s = this.routing.split(rest, daddr, route.region);
          rest = s.no;
          if (route.device !== oifName) {
            give(s.yes, fallback);
            continue;
          }
          let inRoute = s.yes;
          for (const part of route.sources) {
            const t = this.routing.split(inRoute, daddr, part.region);
            give(t.yes, part.addr);
            inRoute = t.no;
          }
          give(inRoute, undefined);
        }
        give(rest, fallback);
        break;
      }
      case 'redirect': {
        // lo always has the loopback address; other devices need the host model to know theirs.
        const loAddr = routing.primaryAddress('lo')!;
        const give = (q: Piece, a: bigint | undefined) => (a === undefined ? failed.push(q) : withAddr.push({ p: q, addr: constVal(a) }));
        const addrOf = (name: string) => (name === 'lo' ? loAddr : routing.hasHost ? routing.primaryAddress(name) : UNKNOWN_ADDR[fam]);
        const iif = p0.sym.iif;
        if (p0.sym.hook === 'OUTPUT') give(p0, loAddr);
        else if (iif.k === 'const') give(p0, addrOf(this.space.ifaces.nameOf(Number(iif.v))));
        else {
          for (const [lo, hi] of this.space.values(p0.box, iif.slot)) {
            for (let i = lo; i <= hi; i++) give(withBox(p0, this.space.with(p0.box, iif.slot, [[i, i]])), addrOf(this.space.ifaces.nameOf(Number(i))));
          }
        }
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
            const b = this.space.restrict(q.box, slot, [[lo, hi]]);
            return b ? { p: withBox(q, b), port: slotVal(slot) } : undefined;
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
        let sym: Sym = setVals(q.sym, changes);
        if (this.usesCtstatus) {
          const natBit = natHook === 'dst' ? CT_STATUS.DST_NAT : CT_STATUS.SRC_NAT;
          const same = (a: Val, b: Val | undefined) => b === undefined || (a.k === 'const' && b.k === 'const' ? a.v === b.v : a.k === 'slot' && b.k === 'slot' && a.slot === b.slot && a.off === b.off);
          const surelySame = same(addr, before) && (port === undefined || same(port, beforePort));
          const surelyChanged = (addr.k === 'const' && before.k === 'const' && addr.v !== before.v) || (port !== undefined && port.k === 'const' && beforePort.k === 'const' && port.v !== beforePort.v);
          const knownSame = (a: Val, b: Val | undefined) => {
            if (b === undefined) return true;
            const x = this.known(q, a);
            const y = this.known(q, b);
            return x !== undefined && y !== undefined ? x === y : undefined;
          };
          const addrSame = knownSame(addr, before);
          const portSame = port === undefined ? true : knownSame(port, beforePort);
          if (surelyChanged || addrSame === false || portSame === false) sym = orStatus(sym, natBit);
          else if (!surelySame && !(addrSame === true && portSame === true)) sym = { ...sym, ctstatusUnknown: true };
        }
        ok.push({ ...q, sym });
      }
    }
    this.count(ok.length + failed.length);
    return { ok, failed };
  }
}

export function addTo(v: Val, by: bigint): Val {
  return v.k === 'const' ? constVal(v.v + by) : slotVal(v.slot, v.off + by);
}

function orStatus(sym: Sym, bit: number): Sym {
  const cur = getVal(sym, 'ctstatus');
  if (cur.k !== 'const') return { ...sym, ctstatusUnknown: true };
  return setVals(sym, { ctstatus: constVal(cur.v | BigInt(bit)) });
}

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

