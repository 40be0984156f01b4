import type { Flow, Policy } from '../../ir/policy.js';
import type { Family } from '../../util/ip.js';
import { formatFileLine } from '../../util/span.js';
import { Prepass } from '../box/prepass.js';
import { CHOICE, type ConcreteOutcome, runPacket } from '../concrete/interp.js';
import type { PacketInput } from '../concrete/input.js';
import { FIELDS, FIELD_SLOT } from '../model/fields.js';
import { headerSummary, inputSummary, makeWitness, ruleRef } from '../witness.js';
import { z3 } from '../z3/context.js';
import { newZ3Stats } from '../z3/session.js';
import { isStatefulOpaque } from './align.js';
import { type AllowEntry, type AllowList, splitByAllowList } from './allow.js';
import { changeRegion } from './change-region.js';
import { type DiffKind, type RawDiff, type StatefulNote, compareTagged, decisiveSteps, differences, meetTerms } from './compare.js';
import { type DiffContext, type Side, buildContext } from './context.js';
import { type CubeNames, cubeText } from './cube-text.js';
import { type IntervalSet, complement, contains, subtract, union } from '../../util/intervals.js';
import { CT_STATE } from '../../ir/fields.js';
import { familyMax } from '../../util/ip.js';
import { mergeBoxes } from './merge.js';
import { inputFor, naturalPoint, oddAddress } from './point.js';
import { replayPair } from './replay.js';
import { type Box, Inexact, OverBudget, type PacketClass, type Point, boxHas, extendPoint, freeClassSlots, holesList, materialize, narrow, term, termHas } from './space.js';
import { startPieces } from './start.js';
import { type Piece, type Step, initialSym, withTerms } from './sym.js';
import type { DiffClass, DiffCube, DiffDecision, DiffInternalError, DiffSide, DiffUnknown, FamilyDiff } from './types.js';
import type { Leaf } from './walk.js';
import { ANSWERED_DROP, describeReject } from './walk.js';
import { Z3Pair } from './z3pair.js';

export interface DiffOptions {
  /** Time limit of one solver question, in milliseconds (default 5000). */
  readonly timeoutMs?: number;
  /** Pieces one box walk may create before Z3 takes over its region (default 200000). */
  readonly maxPieces?: number;
  /** Replay every witness in the simulator (default true). */
  readonly replay?: boolean;
  /** Flows whose interface names must be told apart (the --allow file). */
  readonly flows?: readonly Flow[];
  /** Differences Z3 reports per region the box walk left (default 48). */
  readonly maxZ3Rounds?: number;
  /**
   * Time for Z3 on the regions the box walk left, per family, in milliseconds (default
   * 120000): past it, the regions not yet settled are reported as open questions.
   */
  readonly z3BudgetMs?: number;
  /** Expected differences (reported apart, in FamilyDiff.allowed). */
  readonly allow?: AllowList;
  /** Filled with the allow entries that matched something. */
  readonly allowUsed?: Set<AllowEntry>;
}

interface Found {
  readonly raw: RawDiff;
  readonly by: 'boxes' | 'z3';
}

/** A raw difference subtracted out into disjoint boxes. */
interface Materialized {
  readonly raw: RawDiff;
  readonly by: 'boxes' | 'z3';
  readonly boxes: readonly Box[];
}

const delivered = (v: string) => v !== 'dropped';

/** Which kind of difference two concrete outcomes show (undefined: the same). */
export function concreteKind(ctx: DiffContext, a: ConcreteOutcome, b: ConcreteOutcome): DiffKind | undefined {
  if (delivered(a.verdict) !== delivered(b.verdict)) return delivered(b.verdict) ? 'allowed' : 'denied';
  if (!delivered(a.verdict)) return denyOf(ctx.a, a) !== denyOf(ctx.b, b) ? 'deny-changed' : undefined;
  if (a.final.saddr !== b.final.saddr || a.final.daddr !== b.final.daddr) return 'nat';
  if (hasPorts(ctx, a) && (a.final.sport !== b.final.sport || a.final.dport !== b.final.dport)) return 'nat';
  if (a.verdict !== b.verdict || (a.verdict !== 'local' && a.egress !== b.egress)) return 'rerouted';
  return undefined;
}

function hasPorts(ctx: DiffContext, o: ConcreteOutcome): boolean {
  void ctx;
  return o.final.fragment === 0n && [6n, 17n, 33n, 132n, 136n].includes(o.final.proto);
}

function denyOf(side: Side, o: ConcreteOutcome): string {
  if (o.dropReason === 'ttl') return ANSWERED_DROP.ttl;
  // No route for a packet from a device (a local one gets the error from its socket instead).
  if (o.dropReason === 'unreachable' && o.iif !== '') return ANSWERED_DROP.unreachable;
  const d = o.decidedBy;
  if (d && 'ruleId' in d) {
    const e = side.model.rules[d.ruleId]?.effect;
    if (e?.type === 'reject') return describeReject(e.reply);
  }
  return 'drop';
}

function decision(side: Side, step: Step | undefined, out: Leaf['out']): DiffDecision | undefined {
  if (step?.t === 'rule') {
    const r = side.model.rules[step.ruleId];
    return { rule: ruleRef(side.model, r), action: step.action, span: r.span };
  }
  if (step?.t === 'policy') {
    const c = side.model.chains.get(`${step.table}/${step.chain}`);
    return { action: `policy ${step.policy} of ${step.table}/${step.chain}`, ...(c ? { span: c.span } : {}) };
  }
  if (out.verdict === 'dropped' && out.dropReason && out.dropReason !== 'rule' && out.dropReason !== 'policy') return { action: out.dropReason };
  return undefined;
}

function sideSummary(side: Side, conc: ConcreteOutcome, d: DiffDecision | undefined): string {
  const where = d?.rule ? ` (${formatFileLine(d.rule.span)})` : d?.span ? ` (${formatFileLine(d.span)})` : '';
  if (conc.verdict === 'dropped') {
    const how = denyOf(side, conc);
    const by = d?.rule ? `${d.rule.table}/${d.rule.chain} rule ${d.rule.index + 1} \`${d.rule.text}\`` : d?.action ?? conc.dropReason ?? 'dropped';
    return `${how === 'drop' ? 'dropped' : `dropped (${how})`} by ${by}${where}`;
  }
  const head = headerSummary(side.model, conc.final);
  const verb = conc.verdict === 'local' ? 'delivered to this host' : conc.verdict === 'forwarded' ? `forwarded out of ${conc.egress}` : `sent out of ${conc.egress}`;
  const by = d?.rule ? ` by ${d.rule.table}/${d.rule.chain} rule ${d.rule.index + 1} \`${d.rule.text}\`` : d ? ` (${d.action})` : '';
  return `${verb} as ${head}${by}${where}`;
}

export async function diffFamily(oldPolicy: Policy, newPolicy: Policy, family: Family, opts: DiffOptions = {}): Promise<FamilyDiff> {
  const t0 = performance.now();
  const ctx = buildContext(oldPolicy, newPolicy, family, { ...(opts.flows ? { flows: opts.flows } : {}), limits: { maxPieces: opts.maxPieces ?? 200_000 } });
  const { space, alignment } = ctx;
  const unknown: DiffUnknown[] = [];
  const internalErrors: DiffInternalError[] = [];
  const found: Found[] = [];
  const stateful: StatefulNote[] = [];
  const z3stats = newZ3Stats();
  let leavesA = 0;
  let leavesB = 0;

  const region = changeRegion(ctx);
  const start = region.boxes && region.boxes.length === 0 ? [] : startPieces(ctx, region.boxes);
  const residual: { piece: Piece; why: string }[] = [];
  const phase = { setup: performance.now() - t0, walk: 0, compare: 0, classes: 0, z3: 0 };
  const attempt = (s: Piece, maxPieces?: number): string | undefined => {
    let t = performance.now();
    try {
      const budget = maxPieces === undefined ? {} : { maxPieces };
      const la = ctx.a.walker.run([s], { prune: true, ...budget });
      // The new side walks the old side's leaves, each term tagged with its leaf: every new leaf
      // then compares against one old outcome (no pairing of the two partitions). A leaf whose
      // packets met no change on their way (no changed rule fired, no rule of the other side
      // could have caught them, no changed policy) ends alike on the new side: not walked again.
      const starts = new Map<string, Piece>();
      la.forEach((l, k) => {
        if (!l.piece.touched) return;
        const cls = { local: l.piece.cls.local, lo: l.piece.cls.lo };
        const key = `${+cls.local}${+cls.lo}`;
        const terms = l.piece.terms.map((x) => term(x.box, x.holes, k));
        const known = starts.get(key);
        starts.set(key, known ? withTerms(known, [...known.terms, ...terms]) : { terms, sym: initialSym(cls), cls });
      });
      const lb = ctx.b.walker.run([...starts.values()], { prune: true, ...budget });
      phase.walk += performance.now() - t;
      t = performance.now();
      leavesA += la.length;
      leavesB += lb.length;
      const c = compareTagged(space, la, lb);
      for (const raw of c.diffs) found.push({ raw, by: 'boxes' });
      stateful.push(...c.stateful);
      phase.compare += performance.now() - t;
      return undefined;
    } catch (e) {
      if (!(e instanceof Inexact || e instanceof OverBudget)) throw e;
      phase.walk += performance.now() - t;
      return e.message;
    }
  };
  for (const s of start) {
    // All terms at once share the walk of their common path; when that grows large, one term
    // at a time (each with the whole budget) is cheaper than finishing the large walk.
    const res = attempt(s, s.terms.length > 1 ? Math.max(20_000, Math.floor((opts.maxPieces ?? 200_000) / 8)) : undefined);
    if (res === undefined) continue;
    // One term at a time; what still fails goes to Z3.
    for (const t of s.terms) {
      const one = withTerms(s, [t]);
      const why = attempt(one);
      if (why !== undefined) residual.push({ piece: one, why });
    }
  }

  let t1 = performance.now();
  if (residual.length) await solveResidual(ctx, residual, opts, found, unknown, internalErrors, z3stats);
  phase.z3 = performance.now() - t1;
  t1 = performance.now();

  const expectedFound: Materialized[] = [];
  const unexpectedFound: Materialized[] = [];
  for (const f of found) {
    const boxes = materialize(space, f.raw.term);
    if (!opts.allow) {
      if (boxes.length) unexpectedFound.push({ ...f, boxes });
      continue;
    }
    const ok: Box[] = [];
    const rest: Box[] = [];
    for (const b of boxes) {
      const s = splitByAllowList(ctx, opts.allow, f.raw, b, opts.allowUsed ?? new Set());
      ok.push(...s.expected);
      rest.push(...s.unexpected);
    }
    if (ok.length) expectedFound.push({ ...f, boxes: ok });
    if (rest.length) unexpectedFound.push({ ...f, boxes: rest });
  }
  const classes = await buildClasses(ctx, unexpectedFound, opts, internalErrors);
  const allowed = await buildClasses(ctx, expectedFound, opts, internalErrors);
  for (const n of mergeStateful(ctx, stateful)) unknown.push(n);
  phase.classes = performance.now() - t1;
  const status = classes.length || allowed.length ? 'different' : unknown.length ? 'unknown' : 'equivalent';
  return {
    family,
    status,
    classes,
    allowed,
    unknown,
    internalErrors,
    stats: {
      changedRules: { old: alignment.changedA.length, new: alignment.changedB.length },
      regionBoxes: region.boxes?.length ?? -1,
      leaves: { old: leavesA, new: leavesB },
      rawCubes: found.length,
      z3Queries: z3stats.queries,
      z3Ms: Math.round(z3stats.ms),
      phases: { setup: Math.round(phase.setup), walk: Math.round(phase.walk), compare: Math.round(phase.compare), z3: Math.round(phase.z3), classes: Math.round(phase.classes) },
      ms: Math.round(performance.now() - t0),
    },
  };
}

/** Z3 for the regions the box walk could not split exactly: differences one by one, each widened by a focused walk. */
async function solveResidual(
  ctx: DiffContext,
  residual: readonly { piece: Piece; why: string }[],
  opts: DiffOptions,
  found: Found[],
  unknown: DiffUnknown[],
  internalErrors: DiffInternalError[],
  stats: ReturnType<typeof newZ3Stats>,
): Promise<void> {
  const { ctx: zctx } = await z3();
  const prepasses = { a: new Prepass(ctx.a.model), b: new Prepass(ctx.b.model) };
  const rounds = opts.maxZ3Rounds ?? 48;
  const deadline = performance.now() + (opts.z3BudgetMs ?? 120_000);
  for (const ingress of ['iface', 'local'] as const) {
    const mine = residual.filter((r) => (r.piece.cls.local ? 'local' : 'iface') === ingress);
    if (mine.length === 0) continue;
    const pair = new Z3Pair(zctx, ctx, ingress, mine.flatMap((r) => r.piece.terms.map((t) => t.box)), opts.timeoutMs ?? 5000, stats, prepasses);
    try {
      for (const { piece, why } of mine) {
        const region = piece.terms[0].box;
        const blocked: Box[] = holesList(piece.terms[0]);
        let round = 0;
        for (; round < rounds; round++) {
          if (performance.now() > deadline) {
            const more = round > 0 ? 'more differences may exist here: ' : '';
            unknown.push({ family: ctx.family, reason: `${more}the time for the solver ran out (the box walk gave up here: ${why})`, region: regionText(ctx, region, piece.cls) });
            break;
          }
          // z3-solver frees its terms from finalizers, which only run when the event loop turns;
          // a long run of synchronous checks would otherwise keep every term of every round.
          await turnEventLoop();
          const ans = await pair.ask(region, blocked);
          if (ans.kind === 'unsat') break;
          if (ans.kind === 'unknown') {
            unknown.push({ family: ctx.family, reason: `${ans.reason} (the box walk gave up here: ${why})`, region: regionText(ctx, region, piece.cls) });
            break;
          }
          const pt = pair.readPoint(ans.model, region);
          if (!pt) {
            internalErrors.push({ family: ctx.family, message: 'Z3 found a difference at a point outside the region it was asked about' });
            break;
          }
          const cube = widenPoint(ctx, piece, pt);
          if (!cube) {
            internalErrors.push({ family: ctx.family, message: 'Z3 finds a difference that the focused box walk does not see', witness: inputSummary(ctx.a.model, inputFor(ctx.space, ctx.a, pt)) });
            blocked.push(pt.map((v) => [[v, v]] as const));
            continue;
          }
          found.push({ raw: cube, by: 'z3' });
          blocked.push(...materialize(ctx.space, cube.term));
        }
        if (round === rounds) {
          unknown.push({ family: ctx.family, reason: `more differences may exist: only the first ${rounds} found by Z3 are listed (the box walk gave up here: ${why})`, region: regionText(ctx, region, piece.cls) });
        }
      }
    } finally {
      pair.release();
    }
  }
}

function turnEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The difference cube around one point: both sides walked focused on it, then compared. */
function widenPoint(ctx: DiffContext, piece: Piece, pt0: Point): RawDiff | undefined {
  const la = ctx.a.walker.runFocused(piece, pt0);
  if (!la) return undefined;
  // The walks may have made slots the point did not have yet.
  let pt = extendPoint(ctx.space, pt0);
  const ta = la.piece.terms.find((t) => termHas(ctx.space, t, pt));
  if (!ta) return undefined;
  const lb = ctx.b.walker.runFocused({ terms: [ta], sym: initialSym(piece.cls), cls: piece.cls }, pt);
  pt = extendPoint(ctx.space, pt);
  const tb = lb?.piece.terms.find((t) => termHas(ctx.space, t, pt));
  if (!lb || !tb) return undefined;
  const x = ctx.space.intersect(ta.box, tb.box);
  const tx = x && meetTerms(ctx.space, ta, tb, x);
  if (!x || !tx) return undefined;
  const part = differences(ctx.space, x, la.out, lb.out).find((d) => boxHas(ctx.space, d.box, pt));
  const nt = part && narrow(ctx.space, tx, part.box);
  return part && nt ? { term: nt, kind: part.kind, a: la, b: lb } : undefined;
}

function regionText(ctx: DiffContext, box: Box, cls: PacketClass | undefined): string {
  const t = cubeText(ctx.space, box, cls, wildcardsOf(ctx), (slot, set) => extraText(ctx, slot, set), cubeNames(ctx, cls));
  return [t.flow, ...t.conditions.map((c) => `[${c}]`)].join(' ');
}

const NAMES = new WeakMap<DiffContext, Map<string, CubeNames>>();

/** Brief names for cubes (see cube-text.ts CubeNames), per family and ingress. */
export function cubeNames(ctx: DiffContext, cls: PacketClass | undefined): CubeNames {
  const key = `${cls?.local}${cls?.lo}`;
  let byCls = NAMES.get(ctx);
  if (!byCls) NAMES.set(ctx, (byCls = new Map()));
  const known = byCls.get(key);
  if (known) return known;
  const r = ctx.a.model.routing;
  const v4 = ctx.family === 'ipv4';
  const max = familyMax(ctx.family);
  const one = (x: bigint): IntervalSet => [[x, x]];
  const loopback: IntervalSet = v4 ? [[0x7f000000n, 0x7fffffffn]] : one(1n);
  const fromDevice = cls !== undefined && !cls.local && !cls.lo;
  // What the kernel drops as martian from a device before any verdict could differ.
  const dontCare = fromDevice
    ? {
        saddr: v4 ? union(union(union(one(0n), loopback), [[0xe0000000n, 0xefffffffn], [0xffffffffn, 0xffffffffn]]), r.hasHost ? subtract(r.local, loopback, max) : []) : union(loopback, [[0xffn << 120n, max]]),
        daddr: v4 ? union(one(0n), loopback) : loopback,
      }
    : undefined;
  const here = union(union(r.localDestinations, r.broadcast), v4 ? one(0xe0000001n) : []);
  const daddr: { set: IntervalSet; text: string }[] = [];
  if (r.hasHost) {
    daddr.push({ set: here, text: 'to this host' });
    const byDevice = new Map<string, IntervalSet>();
    for (const route of r.routes) byDevice.set(route.device, union(byDevice.get(route.device) ?? [], route.region));
    const label = (dev: string) => {
      const itf = ctx.a.model.policy.host?.interfaces.find((i) => i.device === dev);
      return itf && itf.name !== dev ? `${dev} (${itf.name})` : dev;
    };
    // Multicast is never forwarded: not part of what routes out of a device.
    const mcast: IntervalSet = v4 ? [[0xe0000000n, 0xefffffffn]] : [[0xffn << 120n, max]];
    for (const [dev, region] of byDevice) daddr.push({ set: subtract(subtract(region, here, max), mcast, max), text: `to anywhere routed out of ${label(dev)}` });
  }
  const ct = ctx.a.model.ct;
  const invalid = complement(ct.tcpValid, 255n);
  const flags = [
    { set: ct.tcpNew, text: 'TCP flags that open a connection' },
    { set: ct.tcpValid, text: 'TCP flags conntrack accepts' },
    { set: subtract(ct.tcpValid, ct.tcpNew, 255n), text: 'TCP flags conntrack accepts but that do not open a connection' },
    { set: invalid, text: 'TCP flag combinations conntrack finds invalid' },
    { set: union(ct.tcpNew, invalid), text: 'TCP flags that open a connection, or invalid ones' },
  ];
  const conn = ctx.connections;
  const uninformative = { ...(conn.ctmark ? { ctmark: conn.ctmark } : {}), ctstatus: conn.ctstatus, cthelper: conn.cthelper };
  const names: CubeNames = { ...(dontCare ? { dontCare } : {}), daddr, flags, uninformative };
  byCls.set(key, names);
  return names;
}

export function wildcardsOf(ctx: DiffContext): string[] {
  const out = new Set<string>();
  const walk = (c: import('../../ir/constraint.js').Constraint): void => {
    if (c.op === 'iface' && c.wildcard) out.add(c.name);
    else if (c.op === 'and' || c.op === 'or') c.of.forEach(walk);
    else if (c.op === 'not') walk(c.of);
  };
  for (const r of [...ctx.a.model.rules, ...ctx.b.model.rules]) walk(r.constraint);
  return [...out];
}

/** How an extra slot's values read in a cube. */
export function extraText(ctx: DiffContext, slot: number, set: readonly (readonly [bigint, bigint])[]): string | undefined {
  const x = ctx.space.extraAt(slot);
  if (!x) return undefined;
  const one = set.length === 1 && set[0][0] === set[0][1] ? set[0][0] : undefined;
  if (x.kind === 'opaque') {
    if (one === undefined) return undefined;
    // A test with state belongs to its rule: say which side's when the other has its own.
    const whose = x.key.startsWith('new:') ? ' (new rule)' : isStatefulOpaque(x.key) ? ' (old rule)' : '';
    return `when ${x.reason.replace(/:.*$/, '')}${whose} ${one === 1n ? 'matches' : 'does not match'}`;
  }
  if (x.kind === 'relation') {
    const name = (s: number) => (s < FIELDS.length ? FIELDS[s] : (ctx.space.extraAt(s)?.key ?? `slot ${s}`));
    return one === undefined ? undefined : `${name(x.a)} ${one === 1n ? '=' : '≠'} ${name(x.b)}`;
  }
  if (x.key === CHOICE.route || x.key === CHOICE.routeNat) {
    const which = x.key === CHOICE.routeNat ? ' (the destination DNAT gave it)' : '';
    return one === undefined ? undefined : `no host model: routed ${one === 0n ? 'to this host' : 'onward'}${which}`;
  }
  if (x.key === CHOICE.answer) return one === undefined ? undefined : one === 1n ? 'sent by this host in answer to another packet (ICMP error, TCP reset)' : 'sent by a socket';
  if (x.key === 'oif') return `no host model: leaves by ${set.map(([lo, hi]) => Array.from({ length: Number(hi - lo + 1n) }, (_, i) => ctx.space.ifaces.nameOf(Number(lo) + i)).join(', ')).join(', ')}`;
  return `${x.doc}: ${set.map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}-${hi}`)).join(', ')}`;
}

/** How ordinary a witness is (0 best): fragments, odd addresses and old connections cost. */
function plainness(ctx: DiffContext, pt: Point): number {
  const odd = (a: bigint) => oddAddress(ctx.family, a);
  let s = 0;
  if (pt[FIELDS.indexOf('fragment')] === 1n) s -= 10;
  if (odd(pt[FIELDS.indexOf('daddr')]) || odd(pt[FIELDS.indexOf('saddr')])) s -= 5;
  if (pt[FIELDS.indexOf('ctstate')] !== 8n) s -= 3;
  return s;
}

/** Parts of a cube looked at for its witness (each a raw cube's share of it). */
const MAX_WITNESS_PARTS = 256;

/** Witnesses tried in the simulator per class before it is reported as not replayed. */
const MAX_REPLAYS = 4;

interface Candidate {
  readonly a: { readonly input: PacketInput; readonly out: ConcreteOutcome };
  readonly b: { readonly input: PacketInput; readonly out: ConcreteOutcome };
  readonly holder: Materialized;
  readonly score: number;
}

/** Raw cubes → merged classes with a replayed witness each. */
async function buildClasses(ctx: DiffContext, found: readonly Materialized[], opts: DiffOptions, internalErrors: DiffInternalError[]): Promise<DiffClass[]> {
  const groups = new Map<string, { items: Materialized[] }>();
  const stepsOf = new Map<Materialized, ReturnType<typeof decisiveSteps>>();
  const changed = { a: new Set(ctx.alignment.changedA.map((r) => r.id)), b: new Set(ctx.alignment.changedB.map((r) => r.id)) };
  // A step of the edit itself: a changed rule, or the policy of a chain whose policy changed.
  const isEdit = (side: 'a' | 'b', s: Step | undefined) =>
    s?.t === 'rule' ? changed[side].has(s.ruleId) : s?.t === 'policy' ? ctx.alignment.policyChanged.some((c) => c.table === s.table && c.name === s.chain) : false;
  for (const f of found) {
    const steps = decisiveSteps(ctx.alignment, f.raw.a, f.raw.b, (side, id) => (side === 'a' ? ctx.a : ctx.b).model.rules[id].table);
    stepsOf.set(f, steps);
    const stepKey = (s: Step | undefined) => (s ? JSON.stringify(s) : '-');
    // One class per edit that decides: packets a widened or new rule now lets in form one class
    // whichever old rule dropped them (each class's witness names its own rules on both sides).
    // When no edit decides (the edit lies upstream, a rule moved), the rule that now drops
    // (newly denied) or dropped before (newly allowed) keys the class, whichever rule lets the
    // packets through on the other side; otherwise the deciding rules of both sides.
    const ea = isEdit('a', steps.a);
    const eb = isEdit('b', steps.b);
    const byA = ea || (!eb && f.raw.kind !== 'denied');
    const byB = eb || (!ea && f.raw.kind !== 'allowed');
    const ka = byA ? stepKey(steps.a) : '*';
    const kb = byB ? stepKey(steps.b) : '*';
    const key = [f.raw.kind, f.by, f.raw.a.piece.cls.local, f.raw.a.piece.cls.l4 === 'fragment', f.raw.a.out.verdict, f.raw.b.out.verdict, f.raw.a.out.deny, f.raw.b.out.deny, ka, kb].join('|');
    const g = groups.get(key);
    if (g) g.items.push(f);
    else groups.set(key, { items: [f] });
  }
  const wildcards = wildcardsOf(ctx);
  const out: DiffClass[] = [];
  for (const { items } of groups.values()) {
    const first = items[0];
    const boxes = mergeBoxes(ctx.space, items.flatMap((f) => f.boxes.map((b) => freeClassSlots(ctx.space, b))));
    const printClass = { local: first.raw.a.piece.cls.local, lo: first.raw.a.piece.cls.lo };
    const names = cubeNames(ctx, printClass);
    const cubes: DiffCube[] = [];
    /** Witness candidates: the natural point of each cube (and of established ones, the other direction too). */
    const candidates: Candidate[] = [];
    const candidate = (pt: Point, holder: Materialized, score: number): Candidate | undefined => {
      // Every candidate is checked on one packet by the concrete interpreter.
      const inA = inputFor(ctx.space, ctx.a, pt);
      const inB = inputFor(ctx.space, ctx.b, pt);
      const concA = runPacket(ctx.a.model, inA);
      const concB = runPacket(ctx.b.model, inB);
      const kind = concreteKind(ctx, concA, concB);
      if (kind !== first.raw.kind) {
        internalErrors.push({
          family: ctx.family,
          message: `the box walk says ${first.raw.kind} here, the concrete interpreter says ${kind ?? 'no difference'} (old: ${concA.verdict}, new: ${concB.verdict})`,
          witness: inputSummary(ctx.a.model, inA),
        });
        return undefined;
      }
      // A new connection replays most easily; a packet from a device reads better than one from a socket.
      return { a: { input: inA, out: concA }, b: { input: inB, out: concB }, holder, score: score - (inA.ingress.kind === 'local' ? 1 : 0) };
    };
    for (const box of boxes) {
      // A natural point of the cube, taken inside one of the raw cubes it came from: a few
      // candidates, the plainest wins (a first fragment, a new connection, ordinary addresses).
      // Parts that hold a new connection's packet (the plainest to replay) are tried first.
      let best: { pt: Point; inter: Box; holder: Materialized; score: number } | undefined;
      const parts: { x: Box; f: Materialized; fresh: boolean }[] = [];
      for (const f of items) {
        for (const b of f.boxes) {
          const x = ctx.space.intersect(b, box);
          if (x) parts.push({ x, f, fresh: contains(ctx.space.values(x, FIELD_SLOT.ctstate), BigInt(CT_STATE.NEW)) });
          if (parts.length >= MAX_WITNESS_PARTS) break;
        }
        if (parts.length >= MAX_WITNESS_PARTS) break;
      }
      parts.sort((u, v) => +v.fresh - +u.fresh);
      let tried = 0;
      for (const { x, f } of parts) {
        const pt = naturalPoint(ctx.space, x);
        if (!boxHas(ctx.space, x, pt)) continue; // a relation left no point here
        const score = plainness(ctx, pt);
        if (!best || score > best.score) best = { pt, inter: x, holder: f, score };
        if (++tried >= 12 || score === 0) break;
      }
      if (!best) continue;
      const c = candidate(best.pt, best.holder, best.score);
      if (!c) continue;
      const text = cubeText(ctx.space, box, printClass, wildcards, (slot, set) => extraText(ctx, slot, set), names);
      cubes.push({ flow: text.flow, conditions: text.conditions, fields: text.fields });
      candidates.push(c);
      // A packet of an existing connection may replay only one way round (whose rules let its connection start).
      if (c.a.input.ctState === 'ESTABLISHED' && candidates.length < MAX_REPLAYS) {
        const other = naturalPoint(ctx.space, best.inter, best.pt[FIELD_SLOT.ctdir] === 0n ? 1n : 0n);
        if (other[FIELD_SLOT.ctdir] !== best.pt[FIELD_SLOT.ctdir] && boxHas(ctx.space, best.inter, other)) {
          const o = candidate(other, best.holder, best.score);
          if (o) candidates.push(o);
        }
      }
    }
    if (candidates.length === 0 || cubes.length === 0) continue;
    candidates.sort((x, y) => y.score - x.score);
    const dependsOnOf = (c: Candidate) => [...new Set([...makeWitness(ctx.a.model, c.a.input, c.a.out).dependsOn, ...makeWitness(ctx.b.model, c.b.input, c.b.out).dependsOn])];
    // The witness: the plainest candidate that replays (a few are tried), else the plainest.
    let chosen = candidates[0];
    let replay: DiffClass['replay'] = { status: 'not-replayed', detail: 'replay turned off' };
    if (opts.replay ?? true) {
      let firstDetail: string | undefined;
      let disagreed = false;
      for (const c of candidates.slice(0, MAX_REPLAYS)) {
        const r = replayPair(ctx, first.raw.kind, c.a, c.b, dependsOnOf(c), (x, y) => concreteKind(ctx, x, y));
        if (r.status === 'disagrees') {
          internalErrors.push({ family: ctx.family, message: `replay in the simulator: ${r.detail}`, witness: inputSummary(ctx.a.model, c.a.input) });
          disagreed = true;
          break;
        }
        firstDetail ??= r.detail;
        if (r.status === 'agrees') {
          chosen = c;
          replay = { status: r.status, detail: r.detail };
          break;
        }
      }
      if (disagreed) continue;
      if (replay.status !== 'agrees') replay = { status: 'not-replayed', detail: firstDetail ?? 'no witness to replay' };
    }
    const { a: ra, b: rb, holder } = chosen;
    const steps = stepsOf.get(holder)!;
    const dA = decision(ctx.a, steps.a, holder.raw.a.out);
    const dB = decision(ctx.b, steps.b, holder.raw.b.out);
    const side = (s: Side, input: PacketInput, conc: ConcreteOutcome, d: DiffDecision | undefined): DiffSide => ({
      verdict: conc.verdict,
      summary: sideSummary(s, conc, d),
      ...(d ? { decision: d } : {}),
      witness: makeWitness(s.model, input, conc),
    });
    const oldSide = side(ctx.a, ra.input, ra.out, dA);
    const newSide = side(ctx.b, rb.input, rb.out, dB);
    const dependsOn = dependsOnOf(chosen);
    const inA = ra.input;
    out.push({
      family: ctx.family,
      kind: first.raw.kind,
      cubes,
      witness: { summary: inputSummary(ctx.a.model, inA) + (inA.ctState === 'ESTABLISHED' && inA.fields.ctdir === 1n ? ' (reply direction)' : ''), input: inA },
      old: oldSide,
      new: newSide,
      replay,
      decidedBy: first.by,
      dependsOn,
    });
  }
  const order: Record<DiffKind, number> = { allowed: 0, denied: 1, nat: 2, rerouted: 3, 'deny-changed': 4 };
  return out.sort((x, y) => order[x.kind] - order[y.kind]);
}

function mergeStateful(ctx: DiffContext, notes: readonly StatefulNote[]): DiffUnknown[] {
  if (notes.length === 0) return [];
  // Only a sample is shown: the note says where, not every packet.
  const boxes = mergeBoxes(ctx.space, notes.slice(0, 200).flatMap((n) => materialize(ctx.space, n.term).slice(0, 20).map((b) => freeClassSlots(ctx.space, b))));
  const shown = boxes.slice(0, 5).map((b) => regionText(ctx, b, undefined));
  return [
    {
      family: ctx.family,
      reason: `both sides give these packets the same outcome, but evaluate different unmodelled tests with state (rate limits, recent lists…), so later packets may be treated differently${boxes.length > 5 ? ` (${notes.length} parts; 5 shown)` : ''}`,
      region: shown.join('; '),
    },
  ];
}
