import { type Compiled, compileConstraint } from './compile.js';
import { type ChainIndex, buildIndex, positions } from './dispatch.js';
import type { NatAction, SideEffect } from '../../ir/effect.js';
import { CT_STATE, CT_STATUS, type CtStateName, type NumericField, PORT_PROTOS, PROTO } from '../../ir/fields.js';
import { CONNTRACK_PRIORITY, type Hook, TABLE_PRIORITY, type TableName } from '../../ir/netfilter.js';
import { contains, maxOf } from '../../util/intervals.js';
import { FIELDS, FIELD_SLOT, absentValue, fieldMax, icmpProto } from '../model/fields.js';
import { icmpInverseType } from '../../netfilter/conntrack/tuple.js';
import type { Family } from '../../util/ip.js';
import { ESTABLISHED_STATUS, canBeAnswer, ctProtoIsOwn, effectiveState } from '../model/ct-validity.js';
import { DEFAULT_FIELDS } from '../box/candidates.js';
import { type FamilyModel, type ModelChain, type ModelRule, type Stage, lookupChain } from '../model/build.js';
import type { NatBinding, PacketInput } from './input.js';
import { PacketState } from './state.js';

/**
 * The analyzer's reference semantics: runs one concrete packet through the compiled policy the
 * way the kernel does — tables of each hook in priority order, first-match chains with
 * jump/goto/return and policies, marks, NOTRACK, NAT on a connection's first packet (DNAT
 * before routing, SNAT after), routing from the host model — and reports what happened.
 *
 * The box pre-pass uses it to confirm candidate witnesses; every Z3 model is run through it
 * to check the encoding; the replay then compares it with the real simulator.
 */

const COMPILED = new WeakMap<ModelRule, Compiled>();
const INDEXES = new WeakMap<ModelChain, ChainIndex | null>();

function indexOf(c: ModelChain): ChainIndex | undefined {
  let x = INDEXES.get(c);
  if (x === undefined) {
    x = buildIndex(c) ?? null;
    INDEXES.set(c, x);
  }
  return x ?? undefined;
}

/** Each rule's constraint compiled once (rules are immutable, so a weak cache is safe). */
function compiledOf(r: ModelRule): Compiled {
  let c = COMPILED.get(r);
  if (!c) {
    c = compileConstraint(r.constraint);
    COMPILED.set(r, c);
  }
  return c;
}

/** Keys of the values PacketInput.choices supplies. */
export const CHOICE = {
  /** Without a host model: 0 = the packet is for this host, 1 = it is forwarded. */
  route: 'route',
  /**
   * The same for a packet whose destination DNAT changed before routing: the host that routes
   * one destination to itself may forward the other, so the two sides of a diff that NAT a
   * packet differently get independent picks.
   */
  routeNat: 'route.dnat',
  /** Without a host model: interface class index of the egress device. */
  oif: 'oif',
  natAddr: (ruleId: number) => `nat${ruleId}.addr`,
  natPort: (ruleId: number) => `nat${ruleId}.port`,
  /** An unmodelled target: 0 = goes on with the next rule, 1 = accepts, 2 = drops. */
  target: (ruleId: number) => `target${ruleId}`,
  /**
   * IPv6 with a host model, a packet to fe80::/64 from a device: 0 = its destination is that
   * interface's own link-local address (which the host model does not know), 1 = it is not.
   */
  ownLinkLocal: 'ownll',
  /** The ICMP echo (query) identifier: no rule reads it, but conntrack keeps it as the tuple's "port". */
  icmpId: 'icmpid',
  /**
   * A local RELATED ICMP error or TCP reset: 1 = this host's kernel sends it in answer to another
   * packet, whose connection it carries from the start (raw/OUTPUT sees it: canBeAnswer), 0 = a
   * socket sends it (raw sees no connection yet).
   */
  answer: 'answer',
} as const;

/** The echo identifier a witness carries when nothing asks for another (the replay sends it too). */
export const DEFAULT_ICMP_ID = 4242n;

/** The unknown behind address-type tests when there is no host model. */
export const ADDRTYPE_UNKNOWN = 'addrtype:no-host-model';

/** Address MASQUERADE takes on a device when there is no host model to tell (TEST-NET-1/3849). */
export const UNKNOWN_ADDR = { ipv4: 0xc0000201n, ipv6: 0x20010db8000000000000000000000001n } as const;

export type Verdict = 'local' | 'forwarded' | 'sent' | 'dropped';
export type DropReason = 'rule' | 'policy' | 'martian' | 'unreachable' | 'not-unicast' | 'ttl' | 'nat-failed' | 'invalid-scope' | 'unmodelled';

export interface PathStep {
  readonly hook: Hook;
  readonly table: TableName;
  readonly chain: string;
  /** The rule that matched; absent for a chain policy. */
  readonly ruleId?: number;
  readonly action: string;
}

export interface ConcreteOutcome {
  readonly verdict: Verdict;
  readonly dropReason?: DropReason;
  /** The rule that dropped the packet (DROP/REJECT), or the built-in chain whose policy did. */
  readonly decidedBy?: { readonly ruleId: number } | { readonly policy: string };
  readonly egress?: string;
  /** Field values as the packet leaves (or as it was when dropped). */
  readonly final: Readonly<Record<NumericField, bigint>>;
  /** Rules that matched, in order. */
  readonly fired: readonly number[];
  readonly path: readonly PathStep[];
  /** Chains entered (table/name). */
  readonly chains: ReadonlySet<string>;
  readonly hooks: readonly Hook[];
  readonly binding: NatBinding;
  /** Unmodelled matches and targets consulted (their values came from the input). */
  readonly opaqueUsed: readonly string[];
  /** The state the filter rules saw. */
  readonly ctState: CtStateName;
  readonly iif: string;
  readonly oif: string;
  /** The routing decision taken (also when the packet was then dropped). */
  readonly routeChoice?: 'local' | 'forward';
  /** A locally generated packet's first route (before NAT rerouted it). */
  readonly firstOif?: string;
  /** An ICMP query's identifier as the packet leaves (NAT with a port range can change it). */
  readonly icmpId?: bigint;
  /** IPv6: the destination was taken as the ingress interface's own link-local address. */
  readonly ownLinkLocal?: { readonly device: string; readonly addr: bigint };
}

type ChainResult =
  | { readonly kind: 'accept' | 'drop' | 'return' }
  | { readonly kind: 'nat'; readonly rule: ModelRule; readonly nat: NatAction };

const STATE_NAME: Readonly<Record<number, CtStateName>> = Object.fromEntries(
  Object.entries(CT_STATE).map(([k, v]) => [v, k as CtStateName]),
);

class Run {
  readonly fired: number[] = [];
  readonly path: PathStep[] = [];
  readonly chains = new Set<string>();
  readonly hooks: Hook[] = [];
  readonly opaqueUsed: string[] = [];
  binding: { snat?: NatBinding['snat']; dnat?: NatBinding['dnat'] } = {};
  /** Why and by what the packet was dropped, once it is. */
  drop?: { readonly reason: DropReason; readonly ruleId?: number; readonly policy?: string };
  notracked = false;
  /** A CT or NOTRACK target already gave the packet its conntrack (see sideEffect). */
  private ctAttached = false;
  /** A REDIRECT fired before routing. */
  redirected = false;
  /** That was a CT target's template (its view lasts until conntrack). */
  private templated = false;
  private ctDone = false;
  /** NAT of each manip type is set up once per connection (a looped-back packet skips it). */
  private readonly natDone = { dst: false, src: false };
  /** The routing decision, and the device chosen first (for replay hosts). */
  routeChoice?: 'local' | 'forward';
  firstOif?: string;
  /** The ICMP query identifier (conntrack's "port" of an ICMP tuple); NAT may rewrite it. */
  icmpId: bigint;
  /** The packet's destination taken as the ingress interface's own link-local address. */
  ownLinkLocal?: { readonly device: string; readonly addr: bigint };

  constructor(
    readonly model: FamilyModel,
    readonly input: PacketInput,
  ) {
    this.icmpId = input.choices?.[CHOICE.icmpId] ?? DEFAULT_ICMP_ID;
  }

  choice(key: string, fallback: bigint): bigint {
    return this.input.choices?.[key] ?? fallback;
  }

  /**
   * A local RELATED packet the input makes this host's own answer (CHOICE.answer, canBeAnswer)
   * has its connection before raw: raw sees it RELATED, CT and NOTRACK leave it alone, and
   * conntrack has nothing left to do.
   */
  attachAnswer(st: PacketState): void {
    if (!isAnswer(this.model, this.input)) return;
    this.ctDone = true;
    this.ctAttached = true;
    st.set('ctstate', BigInt(CT_STATE.RELATED));
    this.existingConnection(st, CT_STATE.RELATED);
  }

  /**
   * What an existing connection is known to be like: found by the packet's own tuple it has the
   * packet's protocol (ctProtoIsOwn), and an ESTABLISHED one is confirmed and has seen a reply.
   */
  private existingConnection(st: PacketState, state: number): void {
    const type = st.has('icmptype') ? Number(st.get('icmptype')) : undefined;
    if (ctProtoIsOwn(this.model.ct, state, Number(st.get('proto')), type, icmpProto(this.model.family))) st.set('ctproto', st.get('proto'));
    if (state === CT_STATE.ESTABLISHED) st.set('ctstatus', st.get('ctstatus') | BigInt(ESTABLISHED_STATUS));
  }

  private readonly decideOpaque = (key: string): boolean => {
    if (!this.opaqueUsed.includes(key)) this.opaqueUsed.push(key);
    return this.input.opaque?.[key] ?? false;
  };

  matches(rule: ModelRule, st: PacketState): boolean {
    return compiledOf(rule)(st, this.decideOpaque);
  }

  walk(chain: ModelChain, st: PacketState, stack: ModelChain[]): ChainResult {
    this.chains.add(`${chain.table}/${chain.name}`);
    const index = indexOf(chain);
    const order: Iterable<number> = index ? positions(index, st.values[index.slot]) : chain.rules.keys();
    for (const pos of order) {
      const rule = chain.rules[pos];
      if (!this.matches(rule, st)) continue;
      this.fired.push(rule.id);
      const step = (action: string) => this.path.push({ hook: st.hook, table: chain.table, chain: chain.name, ruleId: rule.id, action });
      const e = rule.effect;
      switch (e.type) {
        case 'accept':
          step('ACCEPT');
          return { kind: 'accept' };
        case 'drop':
          step('DROP');
          this.drop = { reason: 'rule', ruleId: rule.id };
          return { kind: 'drop' };
        case 'reject':
          step('REJECT');
          this.drop = { reason: 'rule', ruleId: rule.id };
          return { kind: 'drop' };
        case 'return':
          step('RETURN');
          return { kind: 'return' };
        case 'jump':
        case 'goto': {
          const target = lookupChain(this.model, chain.table, e.chain);
          if (!target || stack.includes(target)) continue;
          step(`${e.type} ${e.chain}`);
          const r = this.walk(target, st, [...stack, target]);
          if (r.kind !== 'return') return r;
          if (e.type === 'goto') return r;
          continue;
        }
        case 'continue':
          step(e.actions.map(describeSideEffect).join(', ') || 'continue');
          for (const a of e.actions) this.sideEffect(a, st);
          continue;
        case 'nat':
          step(e.nat.type.toUpperCase());
          if (chain.table !== 'nat') return { kind: 'accept' };
          return { kind: 'nat', rule, nat: e.nat };
        case 'opaque': {
          const key = CHOICE.target(rule.id);
          if (!this.opaqueUsed.includes(key)) this.opaqueUsed.push(key);
          const c = e.terminates === 'no' ? 0n : this.choice(key, e.terminates === 'yes' ? 1n : 0n);
          step(`${e.name} (unmodelled: ${c === 0n ? 'continues' : c === 1n ? 'accepts' : 'drops'})`);
          if (c === 0n) continue;
          if (c === 2n) this.drop = { reason: 'unmodelled', ruleId: rule.id };
          return { kind: c === 1n ? 'accept' : 'drop' };
        }
        default: {
          const never: never = e;
          throw new Error(`unhandled effect ${JSON.stringify(never)}`);
        }
      }
    }
    return { kind: 'return' };
  }

  sideEffect(a: SideEffect, st: PacketState): void {
    switch (a.type) {
      case 'xmark': {
        if (a.field === 'ctmark' && !st.tracked) return;
        const mask32 = maxOf(32);
        st.set(a.field, ((st.get(a.field) & ~a.mask & mask32) ^ a.xor) & mask32);
        return;
      }
      case 'copy-mark': {
        if (!st.tracked) return;
        const mask32 = maxOf(32);
        st.set(a.to, ((st.get(a.to) & ~a.toMask & mask32) ^ (st.get(a.from) & a.fromMask)) & mask32);
        return;
      }
      case 'notrack':
      case 'ct-template':
        // The first CT or NOTRACK target gives the packet its conntrack; later ones (and any
        // on a packet conntrack has seen) are ignored (xt_CT: "previously seen"), so NOTRACK
        // after `CT --zone` does not untrack. The rest of raw sees the result at once.
        if (this.ctAttached) return;
        this.ctAttached = true;
        if (a.type === 'notrack') {
          this.notracked = true;
          st.set('ctstate', BigInt(CT_STATE.UNTRACKED));
        } else {
          this.templated = true;
          setTemplateView(st);
        }
        return;
      case 'rewrite-tos': {
        const tos = ((st.get('tos') & ~BigInt(a.mask) & 0xffn) ^ BigInt(a.xor)) & 0xffn;
        st.set('tos', tos);
        st.set('dscp', tos >> 2n);
        return;
      }
      case 'rewrite-ttl': {
        const ttl = st.get('ttl');
        const v = BigInt(a.value);
        st.set('ttl', a.op === 'set' ? v : a.op === 'inc' ? (ttl + v > 255n ? 255n : ttl + v) : ttl < v ? 0n : ttl - v);
        return;
      }
      case 'log':
      case 'unmodelled':
        return;
      default: {
        const never: never = a;
        throw new Error(`unhandled side effect ${JSON.stringify(never)}`);
      }
    }
  }

  /** Runs the tables of one hook; returns false when the packet was dropped. */
  hook(hook: Hook, st: PacketState, natHook: 'dst' | 'src', afterTable?: (t: TableName) => boolean): boolean {
    st.hook = hook;
    this.hooks.push(hook);
    const natPriority = TABLE_PRIORITY.nat[hook];
    let natDone = natPriority === undefined;
    for (const stage of this.model.stages[hook]) {
      const prio = TABLE_PRIORITY[stage.table][hook] ?? 0;
      if (prio > CONNTRACK_PRIORITY) this.conntrack(st);
      if (!natDone && natPriority !== undefined && prio > natPriority) {
        // No nat chain here, but a reply still has its connection's NAT undone at this point.
        natDone = true;
        this.undoNat(st, natHook);
      }
      if (stage.table === 'nat') {
        natDone = true;
        if (!this.natStage(stage, st, natHook)) return false;
      } else {
        const r = this.walk(stage.chain, st, [stage.chain]);
        if (!this.applyStageResult(stage, r, st)) return false;
      }
      if (afterTable && !afterTable(stage.table)) return false;
    }
    this.conntrack(st);
    if (!natDone) this.undoNat(st, natHook);
    return true;
  }

  /** Conntrack lookup (priority -200): the state the later tables see. */
  conntrack(st: PacketState): void {
    if (this.ctDone) return;
    this.ctDone = true;
    this.ctAttached = true;
    if (this.notracked) {
      st.set('ctstate', BigInt(CT_STATE.UNTRACKED));
      return;
    }
    const fragment = st.get('fragment') === 1n;
    const state = effectiveState(
      this.model.ct,
      CT_STATE[this.input.ctState],
      Number(st.get('proto')),
      fragment,
      Number(st.get('tcpflags')),
      Number(st.get('icmptype')),
      this.model.family === 'ipv4' ? 1 : 58,
    );
    st.set('ctstate', BigInt(state));
    if (state !== CT_STATE.NEW && this.templated) {
      // The template gives way to the packet's own connection, as the input describes it.
      const given = initialValues(this.model, this.input);
      for (const f of Object.keys(TEMPLATE_VIEW) as NumericField[]) if (f !== 'ctstate') st.set(f, given[FIELD_SLOT[f]]);
    }
    this.existingConnection(st, state);
    if (state === CT_STATE.NEW) {
      // A new connection: the tuples are this packet's, no NAT yet, no mark.
      st.set('ctdir', 0n);
      st.set('ctmark', 0n);
      st.set('ctstatus', 0n);
      st.set('ctproto', st.get('proto'));
      st.set('ctorigsrc', st.get('saddr'));
      st.set('ctorigdst', st.get('daddr'));
      st.set('ctreplsrc', st.get('daddr'));
      st.set('ctrepldst', st.get('saddr'));
      // Tuple "ports" are the tuple's u.all (xt_conntrack reads them for every protocol): the
      // ports, for an ICMP query the identifier and type << 8 | code (the reply tuple has the
      // answer's type), 0 for protocols without ports.
      const t = tuplePorts(st, this.icmpId, this.model.family);
      st.set('ctorigsrcport', t.origSrc);
      st.set('ctorigdstport', t.origDst);
      st.set('ctreplsrcport', t.replSrc);
      st.set('ctrepldstport', t.replDst);
    }
  }

  applyStageResult(stage: Stage, r: ChainResult, st: PacketState): boolean {
    if (r.kind === 'accept' || r.kind === 'nat') return true;
    if (r.kind === 'drop') return false;
    // Fell off the end (or RETURN from the built-in chain): the policy decides.
    const policy = stage.chain.policy ?? 'ACCEPT';
    this.path.push({ hook: st.hook, table: stage.table, chain: stage.chain.name, action: `policy ${policy}` });
    if (policy === 'DROP') {
      this.drop = { reason: 'policy', policy: `${stage.table}/${stage.chain.name}` };
      return false;
    }
    return true;
  }

  /** The nat table: consulted for a connection's first packet; replies get the binding undone. */
  natStage(stage: Stage, st: PacketState, natHook: 'dst' | 'src'): boolean {
    const state = Number(st.get('ctstate'));
    if (this.natDone[natHook]) return true;
    this.natDone[natHook] = true;
    if (state === CT_STATE.NEW) {
      const r = this.walk(stage.chain, st, [stage.chain]);
      if (r.kind === 'drop') return false;
      if (r.kind === 'return') {
        const policy = stage.chain.policy ?? 'ACCEPT';
        if (policy === 'DROP') {
          this.path.push({ hook: st.hook, table: 'nat', chain: stage.chain.name, action: 'policy DROP' });
          this.drop = { reason: 'policy', policy: `nat/${stage.chain.name}` };
          return false;
        }
      }
      if (r.kind === 'nat') {
        if (!this.applyNat(r.rule, r.nat, st, natHook)) {
          this.drop = { reason: 'nat-failed', ruleId: r.rule.id };
          return false;
        }
      }
      // The binding for this manip type is now set up (a null binding when nothing matched).
      st.set('ctstatus', st.get('ctstatus') | BigInt(natHook === 'dst' ? CT_STATUS.DST_NAT_DONE : CT_STATUS.SRC_NAT_DONE));
      return true;
    }
    if (this.input.binding) this.undoNat(st, natHook);
    return true;
  }

  applyNat(rule: ModelRule, nat: NatAction, st: PacketState, natHook: 'dst' | 'src'): boolean {
    const family = this.model.family;
    const addrField = natHook === 'dst' ? 'daddr' : 'saddr';
    const portField = natHook === 'dst' ? 'dport' : 'sport';
    const before = st.get(addrField);
    const hasPorts = st.has(portField);
    const beforePort = hasPorts ? st.get(portField) : undefined;
    let addr = before;
    switch (nat.type) {
      case 'snat':
      case 'dnat':
        if (nat.addr) addr = nat.addr[0] === nat.addr[1] ? nat.addr[0] : this.choice(CHOICE.natAddr(rule.id), nat.addr[0]);
        break;
      case 'netmap': {
        if (nat.addr) {
          const netmask = ~(nat.addr[0] ^ nat.addr[1]) & fieldMax('saddr', family);
          addr = (before & ~netmask & fieldMax('saddr', family)) | (nat.addr[0] & netmask);
        }
        break;
      }
      case 'masquerade': {
        // nf_nat_masquerade_ipv4 leaves a connection from 0.0.0.0 alone (a null binding).
        if (family === 'ipv4' && st.get('ctorigsrc') === 0n) return true;
        const a = this.masqueradeSource(rule, st);
        if (a === undefined) return false;
        addr = a;
        break;
      }
      case 'redirect': {
        if (natHook === 'dst') this.redirected = true;
        // lo always has the loopback address; other devices need the host model to know theirs.
        const a =
          st.hook === 'OUTPUT' || st.iif === 'lo'
            ? this.model.routing.primaryAddress('lo')
            : this.model.routing.hasHost
              ? this.model.routing.redirectAddress(st.iif, this.ownLinkLocal?.device === st.iif ? this.ownLinkLocal.addr : undefined)
              : this.choice(CHOICE.natAddr(rule.id), UNKNOWN_ADDR[family]);
        if (a === undefined) return false;
        addr = a;
        break;
      }
    }
    let port = beforePort;
    if (hasPorts && beforePort !== undefined) {
      const random = nat.random || nat.fullyRandom;
      if (nat.ports) {
        const [lo, hi] = nat.ports;
        const inRange = beforePort >= lo && beforePort <= hi;
        if (!inRange || (random && lo !== hi)) port = lo === hi ? lo : this.choice(CHOICE.natPort(rule.id), lo);
      } else if (random && natHook === 'src') {
        port = this.choice(CHOICE.natPort(rule.id), beforePort);
      }
    }
    // An ICMP query's identifier is its "port" for NAT, whichever side is mapped
    // (nf_nat_l4proto_unique_tuple keys ICMP on src.u.icmp.id for SNAT and DNAT alike).
    const icmpBefore = this.icmpId;
    if (st.has('icmptype')) this.icmpId = natIdentifier(nat, icmpBefore, (fallback) => this.choice(CHOICE.natPort(rule.id), fallback));
    st.set(addrField, addr);
    if (port !== undefined) st.set(portField, port);
    const changed = addr !== before || port !== beforePort || this.icmpId !== icmpBefore;
    const part = { fromAddr: before, toAddr: addr, ...(beforePort !== undefined ? { fromPort: beforePort, toPort: port } : {}) };
    // The reply tuple carries the (new) identifier as its source "port".
    if (this.icmpId !== icmpBefore) st.set('ctreplsrcport', this.icmpId);
    if (natHook === 'dst') {
      this.binding.dnat = part;
      st.set('ctreplsrc', addr);
      if (port !== undefined) st.set('ctreplsrcport', port);
      if (changed) st.set('ctstatus', st.get('ctstatus') | BigInt(CT_STATUS.DST_NAT));
    } else {
      this.binding.snat = part;
      st.set('ctrepldst', addr);
      if (port !== undefined) st.set('ctrepldstport', port);
      if (changed) st.set('ctstatus', st.get('ctstatus') | BigInt(CT_STATUS.SRC_NAT));
    }
    return true;
  }

  masqueradeSource(rule: ModelRule, st: PacketState): bigint | undefined {
    const routing = this.model.routing;
    // Over lo: the source the kernel would pick for the (local) destination — IPv6 the
    // destination itself when it is one of ours (::1 without a host model; the anycast
    // addresses are not: RoutingView.loopbackSources6), IPv4 the first address of universe
    // scope (127.0.0.1 is host-scoped), which only a host model knows.
    if (st.oif === 'lo' && this.model.family === 'ipv6' && !routing.hasHost) return st.get('daddr');
    if (!routing.hasHost) return this.choice(CHOICE.natAddr(rule.id), UNKNOWN_ADDR[this.model.family]);
    if (st.oif === 'lo') return routing.sim.selectSource(this.model.family, 'lo', st.get('daddr'));
    const route = routing.lookup(st.get('daddr'));
    if (!route || route.device !== st.oif) {
      return routing.addresses.find((a) => a.device === st.oif)?.addr;
    }
    return routing.sourceFor(route, st.get('daddr'));
  }

  /** A reply: at the dst-manip hooks undo SNAT, at the src-manip hooks undo DNAT. */
  undoNat(st: PacketState, natHook: 'dst' | 'src'): void {
    const b = this.input.binding;
    if (!b) return;
    if (natHook === 'dst' && b.snat) {
      st.set('daddr', b.snat.fromAddr);
      if (b.snat.fromPort !== undefined && st.has('dport')) st.set('dport', b.snat.fromPort);
    }
    if (natHook === 'src' && b.dnat) {
      st.set('saddr', b.dnat.fromAddr);
      if (b.dnat.fromPort !== undefined && st.has('sport')) st.set('sport', b.dnat.fromPort);
    }
  }
}

function describeSideEffect(a: SideEffect): string {
  switch (a.type) {
    case 'log':
      return `LOG${a.prefix ? ` "${a.prefix}"` : ''}`;
    case 'xmark':
      return `set ${a.field} 0x${a.xor.toString(16)}/0x${a.mask.toString(16)}`;
    case 'copy-mark':
      return `copy ${a.from} to ${a.to}`;
    case 'notrack':
      return 'NOTRACK';
    case 'rewrite-tos':
      return `set tos 0x${a.xor.toString(16)}/0x${a.mask.toString(16)}`;
    case 'rewrite-ttl':
      return `ttl ${a.op} ${a.value}`;
    case 'ct-template':
      return `CT${a.helper ? ` helper ${a.helper}` : ''}${a.zone !== undefined ? ` zone ${a.zone}` : ''}`;
    case 'unmodelled':
      return a.name;
  }
}

/**
 * What rules after a CT target in raw see before conntrack runs: the template is a connection
 * in state NEW, original direction, with zeroed tuples (protocol 0, addresses and ports 0),
 * mark 0 (checked on the kernel: test/analyze/kernel-cases.test.ts), and status IPS_TEMPLATE
 * with IPS_CONFIRMED (nf_ct_tmpl_alloc, xt_ct_tg_check), so `ct status confirmed` matches it
 * as in the simulator (kernel check in test/kernel/conntrack-match.test.ts).
 */
export const TEMPLATE_VIEW: Readonly<Partial<Record<NumericField, bigint>>> = {
  ctstate: BigInt(CT_STATE.NEW),
  ctdir: 0n,
  ctproto: 0n,
  ctmark: 0n,
  ctstatus: BigInt(CT_STATUS.CONFIRMED | (1 << 11)),
  ctorigsrc: 0n,
  ctorigdst: 0n,
  ctreplsrc: 0n,
  ctrepldst: 0n,
  ctorigsrcport: 0n,
  ctorigdstport: 0n,
  ctreplsrcport: 0n,
  ctrepldstport: 0n,
};

function setTemplateView(st: PacketState): void {
  for (const [f, v] of Object.entries(TEMPLATE_VIEW) as [NumericField, bigint][]) st.set(f, v);
}

/** The four tuple "ports" of a new connection, as conntrack fills them (see conntrack above). */
export function tuplePorts(st: PacketState, icmpId: bigint, family: Family): { origSrc: bigint; origDst: bigint; replSrc: bigint; replDst: bigint } {
  if (st.has('sport')) return { origSrc: st.get('sport'), origDst: st.get('dport'), replSrc: st.get('dport'), replDst: st.get('sport') };
  if (st.has('icmptype')) {
    const type = st.get('icmptype');
    const code = st.get('icmpcode');
    // Only query types open a connection, and each has an answer type; 0 stands for "none".
    const answer = BigInt(icmpInverseType(Number(icmpProto(family)), Number(type)) ?? 0);
    return { origSrc: icmpId, origDst: (type << 8n) | code, replSrc: icmpId, replDst: (answer << 8n) | code };
  }
  return { origSrc: 0n, origDst: 0n, replSrc: 0n, replDst: 0n };
}

/**
 * The identifier NAT gives an ICMP query (get_unique_tuple for a single connection): a given
 * range keeps one inside it and moves one outside it, random mapping always picks, and
 * without a range it stays.
 */
export function natIdentifier(nat: NatAction, id: bigint, pickFrom: (fallback: bigint) => bigint): bigint {
  const random = nat.random || nat.fullyRandom;
  if (nat.ports) {
    const [lo, hi] = nat.ports;
    const inRange = id >= lo && id <= hi;
    if (!inRange || (random && lo !== hi)) return lo === hi ? lo : pickFrom(lo);
    return id;
  }
  return random ? pickFrom(id) : id;
}

/** Whether the input is this host's own answer to another packet (CHOICE.answer, canBeAnswer). */
export function isAnswer(model: FamilyModel, input: PacketInput): boolean {
  if (input.ingress.kind !== 'local' || input.ctState !== 'RELATED' || input.choices?.[CHOICE.answer] !== 1n) return false;
  // As initialValues reads them: fields left out take their ordinary values.
  const f = { ...DEFAULT_FIELDS[model.family], ...input.fields };
  const num = (v: bigint | undefined) => (v === undefined ? undefined : Number(v));
  return canBeAnswer(model.ct, Number(f.proto ?? 0n), f.fragment === 1n, num(f.tcpflags), num(f.icmptype), icmpProto(model.family));
}

/** Without a host model, packets leave by the first real device unless the input says otherwise. */
function defaultOif(model: FamilyModel): bigint {
  const i = model.ifaces.names.findIndex((n) => n !== '' && n !== 'lo');
  return BigInt(i > 0 ? i : 1);
}

/** Field values of an input at ingress, with the conntrack view not yet applied. */
export function initialValues(model: FamilyModel, input: PacketInput): bigint[] {
  const f = input.fields;
  const tos = f.tos ?? (f.dscp ?? 0n) << 2n;
  return FIELDS.map((name) => {
    switch (name) {
      case 'ctstate':
        return BigInt(CT_STATE.INVALID); // raw runs before conntrack
      case 'mark':
        // Packets arrive unmarked (an assumption every report states); rules may mark them.
        return 0n;
      case 'tos':
        return tos;
      case 'dscp':
        return tos >> 2n;
      case 'cthelper':
        // No master connection unless the input says which helper expected it.
        return f.cthelper ?? absentValue('cthelper', model.family);
      case 'length': {
        // A packet is at least as long as its headers (the replay could not send it shorter).
        const given = f.length ?? DEFAULT_FIELDS[model.family].length ?? 0n;
        const min = minimumLength(model.family, f.proto ?? DEFAULT_FIELDS[model.family].proto ?? 0n, f.fragment ?? 0n);
        return given < min ? min : given;
      }
      default:
        // Fields the input leaves out take the same ordinary values the replay gives them.
        return f[name] ?? DEFAULT_FIELDS[model.family][name] ?? 0n;
    }
  });
}

/** IP header plus transport header (none on a non-first fragment), as replay.ts builds packets. */
export function minimumLength(family: Family, proto: bigint, fragment: bigint): bigint {
  const ip = family === 'ipv4' ? 20n : 40n;
  if (fragment === 1n) return ip;
  if (proto === BigInt(PROTO.tcp)) return ip + 20n;
  return PORT_PROTOS.includes(Number(proto)) || proto === BigInt(icmpProto(family)) ? ip + 8n : ip;
}

/** Runs one packet through the model. */
export function runPacket(model: FamilyModel, input: PacketInput): ConcreteOutcome {
  const run = new Run(model, input);
  const routing = model.routing;
  const local = input.ingress.kind === 'local';
  const iif = input.ingress.kind === 'iface' ? input.ingress.device : '';
  const st = new PacketState(model.family, initialValues(model, input), iif, '', local ? 'OUTPUT' : 'PREROUTING', local);
  run.attachAnswer(st);
  // IPv6: the destination may be the ingress interface's own (unknown) link-local address; the
  // host then has that address for everything this packet meets (address types, routing).
  let host = routing.sim;
  if (!local && routing.ownLinkLocalPossible(iif, st.get('daddr')) && run.choice(CHOICE.ownLinkLocal, 0n) === 0n) {
    run.ownLinkLocal = { device: iif, addr: st.get('daddr') };
    host = routing.hostWithLinkLocal(iif, st.get('daddr'));
  }
  // The receive path sets the packet type from the destination the packet arrives with; a
  // socket's packet is unicast (PACKET_HOST) whatever its destination (Engine.outputPath).
  const cast = local ? 0 : routing.sim.isBroadcast(model.family, st.get('daddr')) ? 1 : routing.sim.isMulticast(model.family, st.get('daddr')) ? 2 : 0;
  st.set('pkttype', BigInt(cast));
  st.derive = (f, s) => {
    if (f !== 'srctype' && f !== 'dsttype') return undefined;
    if (!routing.hasHost) {
      // Which addresses are this host's is unknown without a host model: the input's value
      // stands, and the outcome is marked as depending on it.
      if (!run.opaqueUsed.includes(ADDRTYPE_UNKNOWN)) run.opaqueUsed.push(ADDRTYPE_UNKNOWN);
      return undefined;
    }
    return BigInt(host.addrTypeField(model.family, s.get(f === 'srctype' ? 'saddr' : 'daddr')));
  };
  // ct fields other than for NEW come from the input as given.
  let snap: Record<NumericField, bigint> | undefined;
  const done = (verdict: Verdict, extra: { dropReason?: DropReason; egress?: string } = {}): ConcreteOutcome => {
    const d = run.drop;
    const dropReason = verdict === 'dropped' ? (extra.dropReason ?? d?.reason ?? 'policy') : undefined;
    const decidedBy =
      verdict === 'dropped' && extra.dropReason === undefined && d
        ? d.ruleId !== undefined
          ? { ruleId: d.ruleId }
          : d.policy !== undefined
            ? { policy: d.policy }
            : undefined
        : undefined;
    return {
      verdict,
      ...(dropReason ? { dropReason } : {}),
      ...(decidedBy ? { decidedBy } : {}),
      ...(extra.egress !== undefined ? { egress: extra.egress } : {}),
      // Built on first read: most runs (confirming a candidate) never look at it.
      get final() {
        const v = snap ?? (snap = st.snapshot());
        return v;
      },
      fired: run.fired,
      path: run.path,
      chains: run.chains,
      hooks: run.hooks,
      binding: run.binding,
      opaqueUsed: run.opaqueUsed,
      ctState: STATE_NAME[Number(st.get('ctstate'))] ?? 'INVALID',
      iif: st.iif,
      oif: st.oif,
      ...(run.routeChoice ? { routeChoice: run.routeChoice } : {}),
      ...(run.firstOif !== undefined ? { firstOif: run.firstOif } : {}),
      ...(st.has('icmptype') ? { icmpId: run.icmpId } : {}),
      ...(run.ownLinkLocal ? { ownLinkLocal: run.ownLinkLocal } : {}),
    };
  };
  const dropped = (): ConcreteOutcome => done('dropped');

  if (!local) {
    // ip6_rcv_core drops some addresses before PREROUTING: no rule sees them.
    if (model.family === 'ipv6' && routing.sim.ipv6HeaderDrop(iif, st.get('saddr'), st.get('daddr')) !== undefined) {
      return done('dropped', { dropReason: 'martian' });
    }
    const arrivalDst = st.get('daddr');
    if (!run.hook('PREROUTING', st, 'dst')) return dropped();
    const decision = routing.inputDecision(iif, st.get('saddr'), st.get('daddr'), host);
    let toLocal: boolean;
    let oif = '';
    if (decision === undefined) {
      // REDIRECT took an address of the incoming device: that one is this host's.
      toLocal = run.redirected || run.choice(st.get('daddr') === arrivalDst ? CHOICE.route : CHOICE.routeNat, 0n) === 0n;
      run.routeChoice = toLocal ? 'local' : 'forward';
      // Delivered here means the destination is ours; a source equal to it is then ours too.
      if (model.family === 'ipv4' && toLocal && iif !== 'lo' && st.get('saddr') === st.get('daddr')) return done('dropped', { dropReason: 'martian' });
      oif = toLocal ? '' : model.ifaces.nameOf(Number(run.choice(CHOICE.oif, defaultOif(model))));
    } else if (decision.kind === 'martian') {
      return done('dropped', { dropReason: 'martian' });
    } else if (decision.kind === 'unreachable') {
      return done('dropped', { dropReason: 'unreachable' });
    } else {
      toLocal = decision.kind === 'local';
      run.routeChoice = toLocal ? 'local' : 'forward';
      if (decision.kind === 'forward') oif = decision.route.device;
    }
    if (toLocal) {
      if (!run.hook('INPUT', st, 'src')) return dropped();
      return done('local');
    }
    // ip_forward / ip6_forward: only a frame addressed to this host is forwarded; one that
    // came as a link-layer broadcast or multicast is not, even when DNAT made it unicast.
    if (st.get('pkttype') !== 0n) return done('dropped', { dropReason: 'not-unicast' });
    if (st.get('ttl') <= 1n) return done('dropped', { dropReason: 'ttl' });
    st.set('ttl', st.get('ttl') - 1n);
    st.oif = oif;
    if (!run.hook('FORWARD', st, 'src')) return dropped();
    // POSTROUTING still sees the input device of a forwarded packet (ip_output passes skb->dev).
    if (!run.hook('POSTROUTING', st, 'src')) return dropped();
    return done('forwarded', { egress: st.oif });
  }

  // Locally generated: routed before OUTPUT, and again once nat changed the destination, as
  // ip_route_me_harder does (Host.rerouteOutput: a group or link-local destination keeps to
  // the device routed to before, an IPv4 group or broadcast one leaves by the device owning
  // the source); no route stops it there. The rules of OUTPUT see the first route's device all
  // through the hook (__ip_local_out fixes it); the packet leaves by the last route, which
  // POSTROUTING sees.
  const firstDst = st.get('daddr');
  let first: string | undefined;
  const route = (): string | undefined => {
    if (!routing.hasHost) {
      // Loopback destinations (and IPv4 0.0.0.0) always leave by lo; anything else by the device the input chose.
      return contains(routing.outputLocal, st.get('daddr')) ? 'lo' : model.ifaces.nameOf(Number(run.choice(CHOICE.oif, defaultOif(model))));
    }
    if (first === undefined) return routing.sim.routeOutput(model.family, firstDst)?.device;
    if (st.get('daddr') === firstDst) return first;
    return routing.sim.rerouteOutput(model.family, st.get('saddr'), st.get('daddr'), first)?.device;
  };
  first = route();
  if (first === undefined) return done('dropped', { dropReason: 'unreachable' });
  st.oif = first;
  run.firstOif = first;
  let unroutable = false;
  const ok = run.hook('OUTPUT', st, 'dst', (t) => {
    if ((t === 'mangle' || t === 'nat') && route() === undefined) {
      unroutable = true;
      return false;
    }
    return true;
  });
  if (unroutable) return done('dropped', { dropReason: 'unreachable' });
  if (!ok) return dropped();
  const leaveBy = route();
  if (leaveBy === undefined) return done('dropped', { dropReason: 'unreachable' });
  st.oif = leaveBy;
  if (!run.hook('POSTROUTING', st, 'src')) return dropped();
  // ip6_finish_output2: a group of scope 0 or 1 leaves by lo only (Host.ipv6OutputScopeDrop).
  if (model.family === 'ipv6' && routing.sim.ipv6OutputScopeDrop(st.oif, st.get('daddr')) !== undefined) return done('dropped', { dropReason: 'invalid-scope' });
  if (st.oif === 'lo') {
    // Looped back: in again by lo, through PREROUTING and INPUT (conntrack and NAT are done).
    const egress = st.oif;
    // ip6_rcv_core checks the header on lo too (Host.ipv6HeaderDrop): a source POSTROUTING
    // turned into a group address dies before PREROUTING, after conntrack confirmed it.
    if (model.family === 'ipv6' && routing.sim.ipv6HeaderDrop('lo', st.get('saddr'), st.get('daddr')) !== undefined) {
      return done('dropped', { dropReason: 'martian' });
    }
    st.iif = 'lo';
    st.oif = '';
    // The connection was confirmed when the packet left POSTROUTING.
    if (st.tracked) st.set('ctstatus', st.get('ctstatus') | BigInt(CT_STATUS.CONFIRMED));
    if (!run.hook('PREROUTING', st, 'dst') || !run.hook('INPUT', st, 'src')) return dropped();
    st.oif = egress;
  }
  return done('sent', { egress: st.oif });
}
