import type { TargetEffect } from '../ir/effect.js';
import { type Box } from './box/box.js';
import { type IntervalSet, contains, subtract } from '../util/intervals.js';
import { FIELD_SLOT, IIF_SLOT } from './model/fields.js';
import { candidates } from './box/candidates.js';
import { type Prepass } from './box/prepass.js';
import { anomalies, isVerdict, removableBecause, sameEffect } from './box/relations.js';
import { universe } from './box/universe.js';
import { runPacket } from './concrete/interp.js';
import type { PacketInput } from './concrete/input.js';
import { type FamilyModel, type ModelChain, type ModelRule, chainKey, lookupChain } from './model/build.js';
import type { RuleDecision } from './z3/rules.js';
import type { Finding, InternalError } from './types.js';
import { fieldsOf, preferDevice, readable } from './polish.js';
import { makeWitness, ruleRef } from './witness.js';

/**
 * From per-rule liveness to findings: unused chains, unreachable / shadowed / redundant rules,
 * NAT rules that never fire, removable rules, generalization and correlation anomalies. Every
 * finding about a rule carries a witness packet where one exists.
 */
export type RuleStatus =
  | { readonly kind: 'fires'; readonly input: PacketInput; readonly via: 'prepass' | 'z3' }
  | { readonly kind: 'dead'; readonly cause: 'no-entry' | 'decided-earlier'; readonly blame: readonly number[]; readonly via: 'prepass' | 'z3'; readonly witness?: PacketInput }
  | { readonly kind: 'unknown'; readonly reason: string };

export function statusFromDecision(d: RuleDecision): RuleStatus | { kind: 'internal-error'; message: string; input: PacketInput } {
  switch (d.kind) {
    case 'fires':
      return { kind: 'fires', input: d.input, via: 'z3' };
    case 'dead':
      return { kind: 'dead', cause: d.cause, blame: d.blame, via: 'z3', ...(d.witness ? { witness: d.witness } : {}) };
    case 'unknown':
      return { kind: 'unknown', reason: d.reason };
    case 'internal-error':
      return d;
  }
}

export function describeEffect(e: TargetEffect): string {
  switch (e.type) {
    case 'accept':
      return 'accepts';
    case 'drop':
      return 'drops';
    case 'reject':
      return 'rejects';
    case 'return':
      return 'returns';
    case 'jump':
      return `jumps to ${e.chain}`;
    case 'goto':
      return `goes to ${e.chain}`;
    case 'continue':
      return 'marks/logs and goes on';
    case 'nat':
      return `${e.nat.type.toUpperCase()}s`;
    case 'opaque':
      return `runs ${e.name}`;
  }
}

const SEVERITY = {
  unreachable: 'error',
  shadowed: 'error',
  redundant: 'warning',
  // Order-dependent overlaps are how firewalls are written (a block list before the service
  // accepts, exceptions before a closing rule): worth a look on request, never a failure.
  generalization: 'info',
  correlation: 'info',
  'unused-chain': 'warning',
  'nat-never-fires': 'error',
  undecided: 'info',
} as const;

function finding(f: Omit<Finding, 'severity' | 'code'>): Finding {
  return { ...f, severity: SEVERITY[f.kind], code: `nfproof/${f.kind}` };
}

function chainLabel(c: { table: string; name: string }): string {
  return `${c.table}/${c.name}`;
}

export interface FamilyFindings {
  readonly findings: Finding[];
  readonly internalErrors: InternalError[];
}

export function buildFindings(model: FamilyModel, prepass: Prepass, status: readonly RuleStatus[], opts: { anomalies: boolean }): FamilyFindings {
  const findings: Finding[] = [];
  const internalErrors: InternalError[] = [];
  const dead = new Set(status.flatMap((s, i) => (s.kind === 'dead' ? [i] : [])));
  const live = new Set(status.flatMap((s, i) => (s.kind === 'fires' ? [i] : [])));
  const suppressed = new Set<number>();
  const ref = (id: number) => ruleRef(model, model.rules[id]);

  // Chains no packet enters: one finding for the chain instead of one per rule.
  for (const c of model.chains.values()) {
    if (c.hook) continue;
    const callers = c.callers;
    const neverCalled = callers.length === 0;
    const deadCallers = callers.length > 0 && callers.every((r) => dead.has(r.id));
    if (!neverCalled && !deadCallers) continue;
    for (const r of c.rules) suppressed.add(r.id);
    markNested(model, c, suppressed, dead);
    findings.push(
      finding({
        kind: 'unused-chain',
        message: neverCalled
          ? `chain ${chainLabel(c)} is never used: no rule jumps to it`
          : `chain ${chainLabel(c)} is never entered: every rule that jumps to it is unreachable`,
        chain: { family: model.family, table: c.table, name: c.name, span: c.span },
        related: callers.map((r) => ({ rule: ref(r.id), note: 'jumps here but never fires' })),
        hint: neverCalled ? 'delete the chain, or add the jump that was meant to reach it' : 'fix the rules that jump here (see their findings)',
        decidedBy: 'structure',
      }),
    );
  }

  for (const r of model.rules) {
    const s = status[r.id];
    if (!s || suppressed.has(r.id)) continue;
    if (s.kind === 'unknown') {
      findings.push(
        finding({
          kind: 'undecided',
          message: `could not decide whether any packet reaches this rule: ${s.reason}`,
          rule: ref(r.id),
          related: [],
          hint: 'raise --timeout, or simplify the rules around it',
          decidedBy: 'z3',
        }),
      );
      continue;
    }
    if (s.kind !== 'dead') continue;
    findings.push(deadRuleFinding(model, prepass, r, s, internalErrors));
  }

  // Live rules that could go: the rest of the chain gives their packets the same verdict.
  for (const r of model.rules) {
    if (!live.has(r.id) || suppressed.has(r.id) || !isVerdict(r.effect)) continue;
    const chain = lookupChain(model, r.table, r.chain)!;
    const because = removableBecause(prepass, chain, r, dead);
    if (!because) continue;
    const s = status[r.id] as Extract<RuleStatus, { kind: 'fires' }>;
    const input = readable(model, s.input, (o) => o.fired.includes(r.id));
    const takers = because.by.map((id) => ({ rule: ref(id), note: `${describeEffect(model.rules[id].effect)} the same packets` }));
    const tail = because.policy ? `${takers.length ? ' and ' : ''}the chain policy (${chain.policy ?? 'ACCEPT'})` : '';
    findings.push(
      finding({
        kind: 'redundant',
        message: `rule is redundant: removing it changes no verdict; the packets it ${describeEffect(r.effect)} get the same verdict from ${takers.length ? listRules(because.by.map((id) => model.rules[id])) : ''}${tail}`,
        rule: ref(r.id),
        related: takers,
        witness: makeWitness(model, input),
        hint: 'delete it, or keep it on purpose with a comment',
        decidedBy: 'prepass',
      }),
    );
  }

  if (opts.anomalies) {
    for (const c of model.chains.values()) {
      const byLater = new Map<number, { kind: 'generalization' | 'correlation'; earlier: number }[]>();
      for (const a of anomalies(prepass, c, live)) {
        if (suppressed.has(a.later)) continue;
        byLater.set(a.later, [...(byLater.get(a.later) ?? []), a]);
      }
      for (const [later, list] of byLater) {
        for (const kind of ['generalization', 'correlation'] as const) {
          const mine = list.filter((a) => a.kind === kind);
          if (!mine.length) continue;
          const rl = model.rules[later];
          const earlier = mine.map((a) => model.rules[a.earlier]);
          const witness = overlapWitness(model, prepass, earlier[0], rl);
          findings.push(
            finding({
              kind,
              message:
                kind === 'generalization'
                  ? `rule generalizes ${listRules(earlier)}, which ${describeEffect(earlier[0].effect)} part of the same packets first (an exception to this rule)`
                  : `rule overlaps ${listRules(earlier)} with a different verdict; for the overlap the earlier rule wins`,
              rule: ref(later),
              related: earlier.map((e) => ({ rule: ref(e.id), note: `${describeEffect(e.effect)} the overlapping packets first` })),
              ...(witness ? { witness } : {}),
              hint: kind === 'generalization' ? 'intended exceptions are fine; check that the order is what you meant' : 'make the rules disjoint, or confirm that the order is intended',
              decidedBy: 'prepass',
            }),
          );
        }
      }
    }
  }
  return { findings, internalErrors };
}

/** Marks the rules of chains only reachable through an unused chain. */
function markNested(model: FamilyModel, c: ModelChain, suppressed: Set<number>, dead: ReadonlySet<number>): void {
  for (const r of c.rules) {
    if (r.effect.type !== 'jump' && r.effect.type !== 'goto') continue;
    const t = lookupChain(model, c.table, r.effect.chain);
    if (!t || t.hook) continue;
    if (t.callers.every((x) => suppressed.has(x.id) || dead.has(x.id)) && !t.rules.every((x) => suppressed.has(x.id))) {
      for (const x of t.rules) suppressed.add(x.id);
      markNested(model, t, suppressed, dead);
    }
  }
}

function deadRuleFinding(
  model: FamilyModel,
  prepass: Prepass,
  r: ModelRule,
  s: Extract<RuleStatus, { kind: 'dead' }>,
  internalErrors: InternalError[],
): Finding {
  const ref = (id: number) => ruleRef(model, model.rules[id]);
  const chain = lookupChain(model, r.table, r.chain)!;
  const isNat = r.effect.type === 'nat';
  const blamed = s.blame.map((id) => model.rules[id]);
  const martian = martians(model, prepass, r);
  if ((s.cause === 'no-entry' || blamed.length === 0) && martian && !isNat) {
    // A rule written to drop what the kernel drops anyway (`-d 127.0.0.0/8 ! -i lo -j REJECT`):
    // it never fires, but it does no harm either.
    const witness = isolationWitness(model, prepass, r);
    return finding({
      kind: 'redundant',
      message: `rule is redundant: the kernel drops every packet it matches before ${chainLabel(chain)}: ${martian.what} is a martian (${model.family === 'ipv4' ? 'ip_route_input' : 'ip6_rcv_core'})${martian.loToo ? `, and none of its packets from lo reaches the chain${entryNote(chain)}` : ''}`,
      rule: ref(r.id),
      related: [],
      ...(witness ? { witness } : {}),
      hint: 'delete it, or keep it as documentation',
      decidedBy: s.via,
    });
  }
  if (s.cause === 'no-entry' || blamed.length === 0) {
    const contradicts = prepass.boxes[r.id].over.every((b) => prepass.dom.isEmpty(b));
    const why = contradicts
      ? 'its tests contradict each other: no packet matches it'
      : isNat
        ? `no new connection's first packet that matches it reaches chain ${chainLabel(chain)}${entryNote(chain)}`
        : `no packet that matches it reaches chain ${chainLabel(chain)}${entryNote(chain)}`;
    const witness = contradicts ? undefined : isolationWitness(model, prepass, r);
    return finding({
      kind: isNat ? 'nat-never-fires' : 'unreachable',
      message: `${isNat ? 'NAT rule never fires' : 'rule is unreachable'}: ${why}${contextNote(model, r)}`,
      rule: ref(r.id),
      related: [],
      ...(witness ? { witness } : {}),
      hint: contradicts ? 'remove the contradicting tests' : 'check the chain it is in and the tests upstream of it',
      decidedBy: s.via,
    });
  }
  const twin = chain.rules.slice(0, r.index).find((e) => e.text === r.text);
  if (twin) {
    // An exact copy further up: whatever decides this rule's packets decided the copy's first.
    const twinInput = decidedWitness(model, prepass, r, twin);
    const witness = twinInput ? makeWitness(model, readable(model, twinInput, (o) => o.fired.includes(twin.id), r.constraint)) : undefined;
    return finding({
      kind: 'redundant',
      message: `rule is redundant: it repeats ${listRules([twin])} exactly, so it never fires`,
      rule: ref(r.id),
      related: [{ rule: ref(twin.id), note: 'is the same rule' }],
      ...(witness ? { witness } : {}),
      hint: 'delete the copy',
      decidedBy: s.via,
    });
  }
  // One earlier rule of the chain that matches all of this rule's packets is the clearest
  // thing to blame (`drop` above `iif eth0 drop`); otherwise every rule that took a share.
  const cover = coveringRule(prepass, chain, r);
  const blame = cover ? [cover] : blamed;
  const different = blame.filter((b) => !sameEffect(b.effect, r.effect) && !sameNat(b.effect, r.effect));
  // A NAT rule whose first packets all get the same mapping earlier (a repeated MASQUERADE
  // line) changes nothing: redundant, not a NAT that was meant to happen and does not.
  let kind: 'shadowed' | 'redundant' | 'nat-never-fires' = isNat ? (different.length ? 'nat-never-fires' : 'redundant') : different.length ? 'shadowed' : 'redundant';
  // The closest rule to blame is usually the one the author should look at.
  const main = different[different.length - 1] ?? blame[blame.length - 1];
  let witnessInput = s.witness;
  if (!witnessInput || !runPacket(model, witnessInput).fired.includes(main.id)) witnessInput = decidedWitness(model, prepass, r, main);
  if (witnessInput) witnessInput = readable(model, witnessInput, (o) => o.fired.includes(main.id), r.constraint);
  const witness = witnessInput ? makeWitness(model, witnessInput) : undefined;
  if (witness && runPacket(model, witnessInput!).fired.includes(r.id)) {
    internalErrors.push({ message: `rule ${r.id} was found dead but its witness fires it`, witness, rule: ref(r.id) });
  }
  const ordered = [main, ...blame.filter((b) => b !== main)];
  const list = listRules(ordered);
  let message =
    kind === 'shadowed'
      ? `rule is shadowed: every packet it matches is decided earlier by ${list} (${decision(model, main, witnessInput)}; this rule ${describeEffect(r.effect)}); it never fires`
      : kind === 'redundant'
        ? isNat
          ? `rule is redundant: every first packet it matches already gets the same ${r.effect.type === 'nat' ? r.effect.nat.type.toUpperCase() : describeEffect(r.effect)} from ${list}`
          : `rule is redundant: every packet it matches is already handled by ${list} with the same action (${describeEffect(r.effect)})`
        : `NAT rule never fires: every first packet it matches is decided earlier by ${list}`;
  if (martian && kind === 'shadowed') {
    // Packets from other devices never get here (martians); lo's are taken by the rules above,
    // which is what such a rule (`-d 127.0.0.0/8 -j DROP` after `-i lo -j ACCEPT`) wants.
    kind = 'redundant';
    message = `rule is redundant: it never fires: ${list} ${ordered.length === 1 ? 'takes' : 'take'} its packets from lo, and from any other device the kernel drops them first (${martian.what} is a martian)`;
  }
  return finding({
    kind,
    message: message + contextNote(model, r, ordered),
    rule: ref(r.id),
    related: ordered.map((b) => ({ rule: ref(b.id), note: `${firstNote(b.effect)} first` })),
    ...(witness ? { witness } : {}),
    hint: kind === 'shadowed' ? 'move it above the rules that decide its packets, or narrow them' : 'delete it, or move it before the rules that cover it',
    decidedBy: s.via,
  });
}

/** The nearest earlier rule of the chain that decides every packet `r` matches, if one does. */
function coveringRule(prepass: Prepass, chain: ModelChain, r: ModelRule): ModelRule | undefined {
  const dom = prepass.dom;
  const mine = prepass.boxes[r.id].over.filter((b) => !dom.isEmpty(b));
  if (mine.length === 0) return undefined;
  // Bounded: a long chain of dead rules must not make this quadratic.
  for (let i = r.index - 1, seen = 0; i >= 0 && seen < 64; i--, seen++) {
    const e = chain.rules[i];
    const t = e.effect.type;
    // Past a rule that may change the packet (a mark, a jump) the packet e saw is another one.
    const rewrites = t === 'jump' || t === 'goto' || t === 'opaque' || (e.effect.type === 'continue' && e.effect.actions.some((a) => a.type !== 'log' && a.type !== 'unmodelled'));
    if (rewrites) return undefined;
    if (!(t === 'accept' || t === 'drop' || t === 'reject' || t === 'return' || t === 'nat')) continue;
    let rest: Box[] = mine;
    for (const u of prepass.boxes[e.id].under) rest = rest.flatMap((x) => dom.subtract(x, u));
    if (rest.every((x) => dom.isEmpty(x))) return e;
  }
  return undefined;
}

/** `which drops them` — or, for a jump, what the chain it jumps to does with the witness. */
function decision(model: FamilyModel, main: ModelRule, witness: PacketInput | undefined): string {
  const e = main.effect;
  if (e.type !== 'jump' && e.type !== 'goto') return `which ${describeEffect(e)} them`;
  const out = witness ? runPacket(model, witness) : undefined;
  const last = out ? [...out.path].reverse().find((p) => p.ruleId !== undefined && (p.action === 'ACCEPT' || p.action === 'DROP' || p.action === 'REJECT')) : undefined;
  const by = last ? ` \`${model.rules[last.ruleId!].text}\` (line ${model.rules[last.ruleId!].span.start.line}) ${describeEffect(model.rules[last.ruleId!].effect)} them` : ' they are decided';
  return `which sends them to chain ${e.chain}, where${by}`;
}

/** How a blamed rule handles the packets first, for the related notes. */
function firstNote(e: TargetEffect): string {
  switch (e.type) {
    case 'jump':
    case 'goto':
      return `sends these packets to chain ${e.chain}`;
    case 'nat':
      return `maps these packets (${e.nat.type.toUpperCase()})`;
    default:
      return `${describeEffect(e)} these packets`;
  }
}

/** `` `tcp dport 22 accept` (line 9)`` for up to three rules. */
export function listRules(rules: readonly ModelRule[]): string {
  const shown = rules.slice(0, 3).map((b) => `\`${b.text}\` (line ${b.span.start.line})`);
  const more = rules.length > 3 ? ` and ${rules.length - 3} more` : '';
  return shown.join(', ') + more;
}

/**
 * Why the kernel drops, before INPUT and FORWARD, every packet the rule matches that comes in
 * by a device other than lo (ip_route_input's martian checks), if it does: `what` names the
 * check; `loToo` says whether packets from lo can match the rule at all.
 */
function martians(model: FamilyModel, prepass: Prepass, r: ModelRule): { what: string; loToo: boolean } | undefined {
  const chain = lookupChain(model, r.table, r.chain)!;
  const hooks = chain.hooks.size ? [...chain.hooks] : [];
  if (hooks.length === 0 || !hooks.every((h) => h === 'INPUT' || h === 'FORWARD')) return undefined;
  const dom = prepass.dom;
  const routing = model.routing;
  const lo = BigInt(model.ifaces.classOf('lo'));
  let what: string | undefined;
  let loToo = false;
  for (const b of prepass.boxes[r.id].over) {
    if (dom.isEmpty(b)) continue;
    const iifs = dom.values(b, IIF_SLOT);
    if (contains(iifs, lo)) loToo = true;
    if (subtract(iifs, [[lo, lo]], dom.top(IIF_SLOT)).length === 0) continue;
    const src = dom.values(b, FIELD_SLOT.saddr);
    const dst = dom.values(b, FIELD_SLOT.daddr);
    // Only the checks ip_route_input (ip6_rcv_core) makes whatever the rest of the packet is:
    // a loopback destination, a multicast (or limited broadcast) source, an IPv6 loopback
    // source. A source of 0.0.0.0 or one of our own is fine toward some destinations.
    const within = (set: IntervalSet, outer: IntervalSet, slot: number) => subtract(set, outer, dom.top(slot)).length === 0;
    const limited: IntervalSet = model.family === 'ipv4' ? [[0xffffffffn, 0xffffffffn]] : routing.loopback;
    const badDst = within(dst, routing.loopback, FIELD_SLOT.daddr);
    const badSrc = within(src, [...routing.multicast, ...limited].sort((x, y) => (x[0] < y[0] ? -1 : 1)), FIELD_SLOT.saddr);
    if (!badDst && !badSrc) return undefined;
    what ??= badDst
      ? 'a loopback destination on the wire'
      : within(src, routing.multicast, FIELD_SLOT.saddr)
        ? 'a multicast source'
        : model.family === 'ipv4'
          ? 'the broadcast address as source'
          : 'a loopback source on the wire';
  }
  return what ? { what, loToo } : undefined;
}

/** Does the rule match only ICMP error messages (destination unreachable, time exceeded…)? */
function isIcmpErrorRule(model: FamilyModel, r: ModelRule): boolean {
  const errors = model.ct.icmpError;
  const types = icmpTypesOf(r.constraint);
  return types !== undefined && types.length > 0 && subtract(types, errors, 255n).length === 0;
}

function icmpTypesOf(c: ModelRule['constraint']): IntervalSet | undefined {
  if (c.op === 'in' && c.field === 'icmptype') return c.set;
  if (c.op === 'and') {
    for (const x of c.of) {
      const t = icmpTypesOf(x);
      if (t) return t;
    }
  }
  return undefined;
}

/** Two NAT effects that give a connection the same mapping. */
function sameNat(a: TargetEffect, b: TargetEffect): boolean {
  return a.type === 'nat' && b.type === 'nat' && JSON.stringify(a.nat, bigintText) === JSON.stringify(b.nat, bigintText);
}

function bigintText(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}

/** ` (the chain is entered only from lines 163, 164)` for a user chain with callers. */
function entryNote(chain: ModelChain): string {
  if (chain.hook || chain.callers.length === 0) return '';
  const lines = [...new Set(chain.callers.map((c) => c.span.start.line))].filter((l) => l > 0).sort((a, b) => a - b);
  if (lines.length === 0) return '';
  const shown = lines.slice(0, 4).join(', ') + (lines.length > 4 ? ` and ${lines.length - 4} more` : '');
  return ` (it is entered only from line${lines.length > 1 ? 's' : ''} ${shown})`;
}

function contextNote(model: FamilyModel, r: ModelRule, blamed: readonly ModelRule[] = []): string {
  if (r.table === 'raw' && r.source.matches.some((m) => m.kind === 'ct-state')) return ' (conntrack has not run yet in the raw table: every packet from a device is INVALID there)';
  // ICMP errors never start a connection: conntrack makes them RELATED or INVALID.
  const byState = blamed.length > 0 && blamed.some((b) => b.source.matches.some((m) => m.kind === 'ct-state'));
  if (byState && isIcmpErrorRule(model, r)) return ' (conntrack makes every ICMP error RELATED to a connection, or INVALID)';
  if (r.table === 'nat' && !model.features.tracking) {
    return ` (no ${model.family === 'ipv4' ? 'IPv4' : 'IPv6'} rule asks for connection tracking, so the kernel does not track connections and never consults the nat table)`;
  }
  if (r.table === 'nat' && blamed.length === 0) return ' (the nat table sees only the first packet of a connection)';
  return '';
}

/** A packet matching the rule's own tests, showing where it goes instead. */
function isolationWitness(model: FamilyModel, prepass: Prepass, r: ModelRule) {
  const chain = lookupChain(model, r.table, r.chain)!;
  const hooks = chain.hooks.size ? [...chain.hooks] : (['PREROUTING', 'OUTPUT'] as const);
  for (const hook of hooks) {
    for (const u of universe(model, prepass.dom, hook, chain.table)) {
      for (const m of prepass.boxes[r.id].over) {
        const b = prepass.dom.intersect(u, m);
        if (!b || prepass.dom.isEmpty(b)) continue;
        const [found] = candidates(model, prepass.dom, b, hook, 1, r.id + 7);
        if (!found) continue;
        const first = runPacket(model, found);
        // Only the state and the device change: the header must keep matching the rule's tests.
        const input = preferDevice(model, found, (o) => o.verdict === first.verdict && o.dropReason === first.dropReason, fieldsOf(r.constraint, new Set()));
        return makeWitness(model, input);
      }
    }
  }
  return undefined;
}

/** A packet that matches `r` where it stands but is decided by `by` first. */
function decidedWitness(model: FamilyModel, prepass: Prepass, r: ModelRule, by: ModelRule): PacketInput | undefined {
  const dom = prepass.dom;
  const chain = lookupChain(model, r.table, r.chain)!;
  const hook = [...chain.hooks][0] ?? 'PREROUTING';
  const region: Box[] = [];
  for (const e of prepass.reachMatch[r.id] ?? []) {
    for (const m of prepass.boxes[by.id].over) {
      const x = dom.intersect(e, m);
      if (x && !dom.isEmpty(x)) region.push(x);
    }
  }
  let seed = r.id * 31 + by.id;
  for (const b of region.slice(0, 6)) {
    for (const input of candidates(model, dom, b, hook, 3, seed++)) {
      if (runPacket(model, input).fired.includes(by.id)) return input;
    }
  }
  return undefined;
}

function overlapWitness(model: FamilyModel, prepass: Prepass, earlier: ModelRule, later: ModelRule) {
  const input = decidedWitness(model, prepass, later, earlier);
  return input ? makeWitness(model, input) : undefined;
}

export { chainKey };
