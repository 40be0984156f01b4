import type { Constraint } from '../../ir/constraint.js';
import type { NatAction, SideEffect } from '../../ir/effect.js';
import { CT_STATE, CT_STATUS, type NumericField, PORT_PROTOS, PROTO } from '../../ir/fields.js';
import { CONNTRACK_PRIORITY, type Hook, TABLE_PRIORITY, type TableName } from '../../ir/netfilter.js';
import { type IntervalSet, subtract } from '../../util/intervals.js';
import { familyMax, prefixMask } from '../../util/ip.js';
import { CHOICE, TEMPLATE_VIEW, UNKNOWN_ADDR } from '../concrete/interp.js';
import { icmpInverseType } from '../../netfilter/conntrack/tuple.js';
import { type FamilyModel, type ModelChain, type ModelRule, type Stage, chainKey, lookupChain } from '../model/build.js';
import { FIELDS, bitsOf, fieldMax, icmpProto, presenceOf } from '../model/fields.js';
import { ANSWER_TCP_FLAGS, ESTABLISHED_STATUS } from '../model/ct-validity.js';
import { V6_GROUPS_SCOPE_0_1 } from '../model/routing.js';
import type { Z3BV, Z3Bool, Z3Context } from './context.js';

/**
 * The policy of one family as Z3 terms over one packet: the same walk as the concrete
 * interpreter (concrete/interp.ts) — tables per hook in priority order, first-match chains,
 * jump/goto/return, policies, marks, NOTRACK, NAT on the first packet, routing — with every
 * decision an if-then-else over the packet's variables. A property test runs random packets
 * through both and requires the same outcome.
 *
 * `relevant` slices the policy: a rule it rejects is encoded as never matching. The caller
 * must then restrict the packet to a region where that is true (see prepass/slicing).
 */
export interface EncodeOptions {
  /** Prefix of every variable name (separates the packets of one query). */
  readonly prefix: string;
  readonly ingress: 'iface' | 'local';
  readonly relevant?: (r: ModelRule) => boolean;
  /** Stop after this hook (the rest of the walk is not needed). */
  readonly stopAfterHook?: Hook;
  /** A reply: its header comes from the original's final header, its connection's NAT is undone. */
  readonly reply?: ReplySetup;
}

export interface ReplySetup {
  readonly fields: Partial<Record<NumericField, Z3BV>>;
  /** Fixed ingress device index (iface replies), or a local reply. */
  readonly iif?: Z3BV;
  readonly binding: SymBinding;
}

export interface SymNat {
  readonly applied: Z3Bool;
  readonly fromAddr: Z3BV;
  readonly toAddr: Z3BV;
  readonly fromPort: Z3BV;
  readonly toPort: Z3BV;
}
export interface SymBinding {
  readonly dnat: SymNat;
  readonly snat: SymNat;
}

/** The initial packet's free variables, so a Z3 model can be read back into a PacketInput. */
export interface PacketVars {
  readonly fields: Map<NumericField, Z3BV>;
  iif?: Z3BV;
  ctstate?: Z3BV;
  helperPresent?: Z3Bool;
  readonly opaque: Map<string, Z3Bool>;
  readonly choices: Map<string, Z3BV>;
}

export interface SymOutcome {
  readonly vars: PacketVars;
  /** Domain constraints of the variables; every query must assert them. */
  readonly assumptions: Z3Bool[];
  readonly local: Z3Bool;
  readonly forwarded: Z3Bool;
  readonly sent: Z3Bool;
  readonly dropped: Z3Bool;
  /** Dropped where the kernel answers with an ICMP error of its own: TTL expired, no route (from a device). */
  readonly ttlDrop: Z3Bool;
  readonly noRouteDrop: Z3Bool;
  /** Delivered: local, forwarded or sent. */
  readonly delivered: Z3Bool;
  readonly fire: Map<number, Z3Bool>;
  readonly reach: Map<number, Z3Bool>;
  /** The packet entered the chain, and the rule's match evaluated where it stands. */
  readonly entered: Map<string, Z3Bool>;
  readonly matchAt: Map<number, Z3Bool>;
  /** The packet reached each hook. */
  readonly atHook: Map<Hook, Z3Bool>;
  readonly final: SymState;
  readonly egress: Z3BV;
  readonly binding: SymBinding;
  readonly ctNew: Z3Bool;
}

export class SymState {
  constructor(
    readonly vals: Map<NumericField, Z3BV>,
    public iif: Z3BV,
    public oif: Z3BV,
    public hook: Hook,
    public notrack: Z3Bool,
    public helperPresent: Z3Bool,
    /** A raw-table CT or NOTRACK target already gave the packet its conntrack (first one wins). */
    public ctAttached: Z3Bool,
  ) {}

  clone(): SymState {
    return new SymState(new Map(this.vals), this.iif, this.oif, this.hook, this.notrack, this.helperPresent, this.ctAttached);
  }
}

interface WalkResult {
  acc: Z3Bool[];
  drop: Z3Bool[];
  ret: Z3Bool[];
  nats: { rule: ModelRule; nat: NatAction; fire: Z3Bool }[];
  st: SymState;
}

const TRACKED = [CT_STATE.NEW, CT_STATE.ESTABLISHED, CT_STATE.RELATED];

export class Encoder {
  private readonly ifBits: number;
  readonly vars: PacketVars = { fields: new Map(), opaque: new Map(), choices: new Map() };
  readonly assumptions: Z3Bool[] = [];
  readonly fire = new Map<number, Z3Bool>();
  readonly reach = new Map<number, Z3Bool>();
  readonly entered = new Map<string, Z3Bool>();
  readonly matchAt = new Map<number, Z3Bool>();
  readonly atHook = new Map<Hook, Z3Bool>();
  private ctNewTerm: Z3Bool;
  /**
   * IPv6 with a host model: the packet's destination taken as the ingress interface's own
   * link-local address (interp.ts CHOICE.ownLinkLocal), and the address type it then has.
   */
  private ownLinkLocal?: { readonly on: Z3Bool; readonly addr: Z3BV; readonly type: number };
  /** A REDIRECT fired before routing (its address is the incoming device's own). */
  private redirected: Z3Bool;
  private ctStateAfter?: Z3BV;
  /** The packet is this host's own answer to another, its connection attached before raw (canBeAnswer). */
  private answer?: Z3Bool;

  constructor(
    readonly ctx: Z3Context,
    readonly model: FamilyModel,
    readonly opts: EncodeOptions,
  ) {
    this.ifBits = Math.max(1, Math.ceil(Math.log2(model.ifaces.size)));
    this.T = ctx.Bool.val(true);
    this.F = ctx.Bool.val(false);
    this.ctNewTerm = this.F;
    this.redirected = this.F;
  }

  // ---- terms -------------------------------------------------------------------------

  private readonly lits = new Map<string, Z3BV>();

  /** Bit-vector literals, made once per value and width (each is a round trip into WASM). */
  lit(v: bigint | number, bits: number): Z3BV {
    const key = `${bits}:${v}`;
    let x = this.lits.get(key);
    if (!x) {
      x = this.ctx.BitVec.val(BigInt(v), bits) as Z3BV;
      this.lits.set(key, x);
    }
    return x;
  }

  // Singletons, so trivially true/false terms are recognised by identity (no WASM call).
  private readonly T: Z3Bool;
  private readonly F: Z3Bool;

  private t(): Z3Bool {
    return this.T;
  }

  private f(): Z3Bool {
    return this.F;
  }

  private isTrue(x: Z3Bool): boolean {
    return x === this.T;
  }

  private isFalse(x: Z3Bool): boolean {
    return x === this.F;
  }

  or(xs: readonly Z3Bool[]): Z3Bool {
    if (xs.some((x) => this.isTrue(x))) return this.t();
    const ys = xs.filter((x) => !this.isFalse(x));
    if (ys.length === 0) return this.f();
    if (ys.length === 1) return ys[0];
    return this.ctx.Or(...ys);
  }

  and(xs: readonly Z3Bool[]): Z3Bool {
    const ys = xs.filter((x) => !this.isTrue(x));
    if (ys.some((y) => this.isFalse(y))) return this.f();
    if (ys.length === 0) return this.t();
    if (ys.length === 1) return ys[0];
    return this.ctx.And(...ys);
  }

  not(x: Z3Bool): Z3Bool {
    if (this.isTrue(x)) return this.f();
    if (this.isFalse(x)) return this.t();
    return this.ctx.Not(x);
  }

  ite(c: Z3Bool, a: Z3BV, b: Z3BV): Z3BV {
    if (this.isTrue(c)) return a;
    if (this.isFalse(c)) return b;
    return this.ctx.If(c, a, b) as unknown as Z3BV;
  }

  inSet(term: Z3BV, set: IntervalSet, bits: number): Z3Bool {
    const max = (1n << BigInt(bits)) - 1n;
    const parts: Z3Bool[] = [];
    for (const [lo, hi] of set) {
      if (lo > max) continue;
      const h = hi > max ? max : hi;
      if (lo === 0n && h === max) return this.t();
      if (lo === h) parts.push(term.eq(this.lit(lo, bits)));
      else if (lo === 0n) parts.push(this.ctx.ULE(term, this.lit(h, bits)));
      else if (h === max) parts.push(this.ctx.UGE(term, this.lit(lo, bits)));
      else parts.push(this.and([this.ctx.UGE(term, this.lit(lo, bits)), this.ctx.ULE(term, this.lit(h, bits))]));
    }
    return this.or(parts);
  }

  bits(f: NumericField): number {
    return bitsOf(f, this.model.family);
  }

  /** The initial variable of a field (created on first use). */
  fieldVar(f: NumericField): Z3BV {
    let v = this.vars.fields.get(f);
    if (!v) {
      v = this.ctx.BitVec.const(`${this.opts.prefix}${f}`, this.bits(f)) as Z3BV;
      this.vars.fields.set(f, v);
    }
    return v;
  }

  choiceVar(key: string, bits: number): Z3BV {
    let v = this.vars.choices.get(key);
    if (!v) {
      v = this.ctx.BitVec.const(`${this.opts.prefix}choice.${key}`, bits) as Z3BV;
      this.vars.choices.set(key, v);
    }
    return v;
  }

  ifaceIndex(name: string): Z3BV {
    return this.lit(this.model.ifaces.classOf(name), this.ifBits);
  }

  ifaceIn(term: Z3BV, set: IntervalSet): Z3Bool {
    return this.inSet(term, set, this.ifBits);
  }

  // ---- presence and constraints ------------------------------------------------------

  private val(st: SymState, f: NumericField): Z3BV {
    if (f === 'dscp') return this.ctx.Extract(7, 2, this.val(st, 'tos')) as Z3BV;
    if ((f === 'srctype' || f === 'dsttype') && this.model.routing.hasHost) {
      // The simulator's Host.addrTypeField, as a step function over the address: constant
      // between the boundaries of every range it tests.
      const addr = this.val(st, f === 'srctype' ? 'saddr' : 'daddr');
      const bits = this.bits('saddr');
      let t: Z3BV = this.lit(0, 12);
      for (const [set, value] of [...this.model.routing.addrTypeSteps()].reverse()) t = this.ite(this.inSet(addr, set, bits), this.lit(value, 12), t);
      const own = this.ownLinkLocal;
      if (own) t = this.ite(this.and([own.on, addr.eq(own.addr)]), this.lit(own.type, 12), t);
      return t;
    }
    const v = st.vals.get(f);
    if (v) return v;
    const fresh = this.fieldVar(f);
    st.vals.set(f, fresh);
    return fresh;
  }

  /** Presence terms depend only on proto, fragment, ctstate and the helper flag: cache by those terms. */
  private readonly presenceCache = new WeakMap<object, Map<string, Z3Bool>>();

  present(st: SymState, f: NumericField): Z3Bool {
    const kind = presenceKind(f);
    if (kind === 'always') return this.t();
    if (kind === 'mac' || kind === 'socket') return this.presentUncached(st, f);
    const anchor = (kind === 'ct' || kind === 'helper' || kind === 'ctports' ? this.val(st, 'ctstate') : this.val(st, 'proto')) as unknown as object;
    const key: string = kind;
    let m = this.presenceCache.get(anchor);
    if (!m) {
      m = new Map();
      this.presenceCache.set(anchor, m);
    }
    // The fragment term and helper flag are part of the key through their identity.
    const frag = this.val(st, 'fragment') as unknown as object;
    const full = `${key}:${this.termId(frag)}:${this.termId(st.helperPresent as unknown as object)}`;
    let x = m.get(full);
    if (!x) {
      x = this.presentUncached(st, f);
      m.set(full, x);
    }
    return x;
  }

  private readonly ids = new WeakMap<object, number>();
  private nextId = 0;
  private termId(o: object): number {
    let i = this.ids.get(o);
    if (i === undefined) {
      i = this.nextId++;
      this.ids.set(o, i);
    }
    return i;
  }

  private presentUncached(st: SymState, f: NumericField): Z3Bool {
    const proto = () => this.val(st, 'proto');
    const unfragmented = () => this.val(st, 'fragment').eq(this.lit(0, 1));
    const protoIs = (ps: readonly number[]) => this.or(ps.map((p) => proto().eq(this.lit(p, 8))));
    const state = () => this.val(st, 'ctstate');
    switch (presenceKind(f)) {
      case 'always':
        return this.t();
      case 'ports':
        return this.and([unfragmented(), protoIs(PORT_PROTOS)]);
      case 'tcp':
        return this.and([unfragmented(), protoIs([PROTO.tcp])]);
      case 'icmp':
        return this.and([unfragmented(), protoIs([icmpProto(this.model.family)])]);
      case 'ct':
      case 'ctports':
        return this.or(TRACKED.map((s) => state().eq(this.lit(s, 8))));
      case 'helper':
        return this.and([this.or([CT_STATE.ESTABLISHED, CT_STATE.RELATED].map((s) => state().eq(this.lit(s, 8)))), st.helperPresent]);
      case 'mac': {
        if (!(st.hook === 'PREROUTING' || st.hook === 'INPUT' || st.hook === 'FORWARD')) return this.f();
        return this.and([this.not(st.iif.eq(this.ifaceIndex(''))), this.not(st.iif.eq(this.ifaceIndex('lo')))]);
      }
      case 'socket':
        return this.opts.ingress === 'local' && (st.hook === 'OUTPUT' || st.hook === 'POSTROUTING') ? this.t() : this.f();
    }
  }

  constraint(c: Constraint, st: SymState): Z3Bool {
    switch (c.op) {
      case 'true':
        return this.t();
      case 'false':
        return this.f();
      case 'and':
        return this.and(c.of.map((x) => this.constraint(x, st)));
      case 'or':
        return this.or(c.of.map((x) => this.constraint(x, st)));
      case 'not':
        return this.not(this.constraint(c.of, st));
      case 'in':
        return this.and([this.present(st, c.field), this.inSet(this.val(st, c.field), c.set, this.bits(c.field))]);
      case 'masked': {
        const b = this.bits(c.field);
        const v = this.val(st, c.field);
        return this.and([this.present(st, c.field), v.and(this.lit(c.mask & fieldMax(c.field, this.model.family), b)).eq(this.lit(c.value, b))]);
      }
      case 'present':
        return this.present(st, c.field);
      case 'iface': {
        const term = c.field === 'iif' ? st.iif : st.oif;
        return this.ifaceIn(term, this.model.ifaces.matching(c.name, c.wildcard));
      }
      case 'opaque': {
        let v = this.vars.opaque.get(c.key);
        if (!v) {
          v = this.ctx.Bool.const(`${this.opts.prefix}opaque.${c.key}`) as Z3Bool;
          this.vars.opaque.set(c.key, v);
        }
        return v;
      }
      default: {
        const never: never = c;
        throw new Error(`unhandled constraint ${JSON.stringify(never)}`);
      }
    }
  }

  // ---- chains ------------------------------------------------------------------------

  private orInto(map: Map<number, Z3Bool>, id: number, x: Z3Bool): void {
    const prev = map.get(id);
    map.set(id, prev ? this.or([prev, x]) : x);
  }

  walk(chain: ModelChain, st0: SymState, live0: Z3Bool, stack: ModelChain[]): WalkResult {
    let st = st0;
    let live = live0;
    const res: WalkResult = { acc: [], drop: [], ret: [], nats: [], st };
    const key = chainKey(chain.table, chain.name);
    const prevEntered = this.entered.get(key);
    this.entered.set(key, prevEntered ? this.or([prevEntered, live0]) : live0);
    for (const rule of chain.rules) {
      if (this.isFalse(live)) break;
      if (this.opts.relevant && !this.opts.relevant(rule)) continue;
      const m = this.constraint(rule.constraint, st);
      this.orInto(this.matchAt, rule.id, this.and([live0, m]));
      this.orInto(this.reach, rule.id, live);
      const fire = this.and([live, m]);
      this.orInto(this.fire, rule.id, fire);
      const e = rule.effect;
      switch (e.type) {
        case 'accept':
          res.acc.push(fire);
          live = this.and([live, this.not(m)]);
          break;
        case 'drop':
        case 'reject':
          res.drop.push(fire);
          live = this.and([live, this.not(m)]);
          break;
        case 'return':
          res.ret.push(fire);
          live = this.and([live, this.not(m)]);
          break;
        case 'jump':
        case 'goto': {
          const target = lookupChain(this.model, chain.table, e.chain);
          if (!target || stack.includes(target)) break;
          const sub = this.walk(target, st, fire, [...stack, target]);
          res.acc.push(...sub.acc);
          res.drop.push(...sub.drop);
          res.nats.push(...sub.nats);
          st = sub.st;
          const back = this.or(sub.ret);
          if (e.type === 'jump') live = this.or([this.and([live, this.not(m)]), back]);
          else {
            res.ret.push(back);
            live = this.and([live, this.not(m)]);
          }
          break;
        }
        case 'continue':
          st = this.sideEffects(e.actions, st, fire);
          break;
        case 'nat':
          if (chain.table === 'nat') res.nats.push({ rule, nat: e.nat, fire });
          else res.acc.push(fire);
          live = this.and([live, this.not(m)]);
          break;
        case 'opaque': {
          if (e.terminates === 'no') break;
          const c = this.choiceVar(CHOICE.target(rule.id), 2);
          this.assumptions.push(e.terminates === 'yes' ? this.inSet(c, [[1n, 2n]], 2) : this.ctx.ULE(c, this.lit(2, 2)));
          res.acc.push(this.and([fire, c.eq(this.lit(1, 2))]));
          res.drop.push(this.and([fire, c.eq(this.lit(2, 2))]));
          live = this.and([live, this.not(this.and([m, this.not(c.eq(this.lit(0, 2)))]))]);
          break;
        }
        default: {
          const never: never = e;
          throw new Error(`unhandled effect ${JSON.stringify(never)}`);
        }
      }
    }
    res.ret.push(live);
    res.st = st;
    return res;
  }

  private sideEffects(actions: readonly SideEffect[], st0: SymState, fire: Z3Bool): SymState {
    let st = st0;
    for (const a of actions) {
      switch (a.type) {
        case 'xmark': {
          st = st.clone();
          const cur = this.val(st, a.field);
          const next = cur.and(this.lit(~a.mask & 0xffffffffn, 32)).xor(this.lit(a.xor & 0xffffffffn, 32)) as Z3BV;
          const guard = a.field === 'ctmark' ? this.and([fire, this.present(st, 'ctmark')]) : fire;
          st.vals.set(a.field, this.ite(guard, next, cur));
          break;
        }
        case 'copy-mark': {
          st = st.clone();
          const to = this.val(st, a.to);
          const from = this.val(st, a.from);
          const next = to.and(this.lit(~a.toMask & 0xffffffffn, 32)).xor(from.and(this.lit(a.fromMask & 0xffffffffn, 32))) as Z3BV;
          st.vals.set(a.to, this.ite(this.and([fire, this.present(st, 'ctmark')]), next, to));
          break;
        }
        case 'notrack': {
          // Ignored when a CT target already attached a template (xt_CT: "previously seen");
          // the rest of raw sees UNTRACKED at once (interp.ts sideEffect).
          st = st.clone();
          const takes = this.and([fire, this.not(st.ctAttached)]);
          st.notrack = this.or([st.notrack, takes]);
          st.ctAttached = this.or([st.ctAttached, fire]);
          st.vals.set('ctstate', this.ite(takes, this.lit(CT_STATE.UNTRACKED, 8), this.val(st, 'ctstate')));
          break;
        }
        case 'rewrite-tos': {
          st = st.clone();
          const cur = this.val(st, 'tos');
          const next = cur.and(this.lit(~a.mask & 0xff, 8)).xor(this.lit(a.xor & 0xff, 8)) as Z3BV;
          st.vals.set('tos', this.ite(fire, next, cur));
          break;
        }
        case 'rewrite-ttl': {
          st = st.clone();
          const cur = this.val(st, 'ttl');
          const v = this.lit(a.value, 8);
          let next: Z3BV;
          if (a.op === 'set') next = v;
          else if (a.op === 'inc') next = this.ite(this.ctx.UGT(cur, this.lit(255 - a.value, 8)), this.lit(255, 8), cur.add(v) as Z3BV);
          else next = this.ite(this.ctx.ULT(cur, v), this.lit(0, 8), cur.sub(v) as Z3BV);
          st.vals.set('ttl', this.ite(fire, next, cur));
          break;
        }
        case 'ct-template': {
          st = st.clone();
          const takes = this.and([fire, this.not(st.ctAttached)]);
          st.ctAttached = this.or([st.ctAttached, fire]);
          for (const [f, v] of Object.entries(TEMPLATE_VIEW) as [NumericField, bigint][]) {
            st.vals.set(f, this.ite(takes, this.lit(v, this.bits(f)), this.val(st, f)));
          }
          break;
        }
        case 'log':
        case 'unmodelled':
          break;
        default: {
          const never: never = a;
          throw new Error(`unhandled side effect ${JSON.stringify(never)}`);
        }
      }
    }
    return st;
  }

  // ---- hooks -------------------------------------------------------------------------

  private stageResult(stage: Stage, r: WalkResult): { pass: Z3Bool } {
    const fellOff = this.or(r.ret);
    const policyAccepts = (stage.chain.policy ?? 'ACCEPT') === 'ACCEPT';
    return { pass: this.or([...r.acc, ...r.nats.map((n) => n.fire), ...(policyAccepts ? [fellOff] : [])]) };
  }

  /** Conntrack (-200): the state later tables see, and a new connection's tuple fields. */
  private conntrack(st: SymState): SymState {
    if (this.ctStateAfter) {
      st.vals.set('ctstate', this.ctStateAfter);
      return st;
    }
    const out = st.clone();
    // From here on the packet has its conntrack: CT/NOTRACK targets are ignored.
    out.ctAttached = this.t();
    const declared = this.ctStateVar();
    const state0 = this.effectiveState(st, declared);
    const after = this.ite(this.answer ?? this.f(), this.lit(CT_STATE.RELATED, 8), this.ite(st.notrack, this.lit(CT_STATE.UNTRACKED, 8), state0));
    this.ctStateAfter = after;
    out.vals.set('ctstate', after);
    const isNew = this.and([this.not(st.notrack), state0.eq(this.lit(CT_STATE.NEW, 8))]);
    this.ctNewTerm = isNew;
    const derived: Partial<Record<NumericField, Z3BV>> = {
      ctdir: this.lit(0, 1),
      ctmark: this.lit(0, 32),
      ctstatus: this.lit(0, 16),
      ctproto: this.val(st, 'proto'),
      ctorigsrc: this.val(st, 'saddr'),
      ctorigdst: this.val(st, 'daddr'),
      ctreplsrc: this.val(st, 'daddr'),
      ctrepldst: this.val(st, 'saddr'),
    };
    // Tuple "ports" (u.all): ports, an ICMP query's identifier and type << 8 | code (the reply
    // tuple with the answer's type), 0 for other protocols (interp.ts tuplePorts).
    const ports = this.present(st, 'sport');
    const icmp = this.present(st, 'icmptype');
    const id = this.choiceVar(CHOICE.icmpId, 16);
    const type = this.val(st, 'icmptype');
    const code = this.val(st, 'icmpcode');
    const tuplePort = (port: Z3BV, icmpValue: Z3BV) => this.ite(ports, port, this.ite(icmp, icmpValue, this.lit(0, 16)));
    derived.ctorigsrcport = tuplePort(this.val(st, 'sport'), id);
    derived.ctorigdstport = tuplePort(this.val(st, 'dport'), this.ctx.Concat(type, code) as Z3BV);
    derived.ctreplsrcport = tuplePort(this.val(st, 'dport'), id);
    derived.ctrepldstport = tuplePort(this.val(st, 'sport'), this.ctx.Concat(this.icmpAnswerType(type), code) as Z3BV);
    for (const [f, v] of Object.entries(derived) as [NumericField, Z3BV][]) {
      out.vals.set(f, this.ite(isNew, v, this.fieldVar(f)));
    }
    // An existing connection found by the packet's own tuple has its protocol (ctProtoIsOwn).
    out.vals.set('ctproto', this.ite(this.ownProto(st, after), this.val(st, 'proto'), this.val(out, 'ctproto')));
    // An ESTABLISHED packet's connection is confirmed and has seen a reply (ESTABLISHED_STATUS).
    const status = this.val(out, 'ctstatus');
    out.vals.set('ctstatus', this.ite(after.eq(this.lit(CT_STATE.ESTABLISHED, 8)), status.or(this.lit(ESTABLISHED_STATUS, 16)) as Z3BV, status));
    out.helperPresent = this.and([this.not(isNew), st.helperPresent]);
    return out;
  }

  /** ctProtoIsOwn as a term: ESTABLISHED, or RELATED but not an ICMP error. */
  private ownProto(st: SymState, state: Z3BV): Z3Bool {
    const icmpError = this.isIcmpError(this.val(st, 'proto'), this.val(st, 'icmptype'));
    return this.or([state.eq(this.lit(CT_STATE.ESTABLISHED, 8)), this.and([state.eq(this.lit(CT_STATE.RELATED, 8)), this.not(icmpError)])]);
  }

  /** ct-validity.ts isIcmpError as a term. */
  private isIcmpError(proto: Z3BV, icmptype: Z3BV): Z3Bool {
    return this.and([proto.eq(this.lit(icmpProto(this.model.family), 8)), this.inSet(icmptype, this.model.ct.icmpError, 8)]);
  }

  /** The answer type of an ICMP query type (0 for types without one, which never open a connection). */
  private icmpAnswerType(type: Z3BV): Z3BV {
    const proto = icmpProto(this.model.family);
    let out: Z3BV = this.lit(0, 8);
    for (let t = 0; t < 256; t++) {
      const answer = icmpInverseType(proto, t);
      if (answer !== undefined && answer !== 0) out = this.ite(type.eq(this.lit(t, 8)), this.lit(answer, 8), out);
    }
    return out;
  }

  /** The state the trackers give a packet declared NEW/ESTABLISHED/RELATED/INVALID (model/ct-validity.ts). */
  private effectiveState(st: SymState, declared: Z3BV): Z3BV {
    const v = this.model.ct;
    const unfragmented = this.val(st, 'fragment').eq(this.lit(0, 1));
    const isTcp = this.and([unfragmented, this.val(st, 'proto').eq(this.lit(PROTO.tcp, 8))]);
    const isIcmp = this.and([unfragmented, this.val(st, 'proto').eq(this.lit(icmpProto(this.model.family), 8))]);
    const flags = this.val(st, 'tcpflags');
    const type = this.val(st, 'icmptype');
    const is = (s: number) => declared.eq(this.lit(s, 8));
    const invalid = this.lit(CT_STATE.INVALID, 8);
    const tcp = this.ite(
      this.not(this.inSet(flags, v.tcpValid, 8)),
      invalid,
      this.ite(this.and([is(CT_STATE.NEW), this.not(this.inSet(flags, v.tcpNew, 8))]), invalid, declared),
    );
    const icmp = this.ite(
      this.inSet(type, v.icmpUntracked, 8),
      this.lit(CT_STATE.UNTRACKED, 8),
      this.ite(
        this.inSet(type, v.icmpError, 8),
        this.ite(is(CT_STATE.RELATED), declared, invalid),
        this.ite(this.and([is(CT_STATE.NEW), this.not(this.inSet(type, v.icmpNew, 8))]), invalid, declared),
      ),
    );
    const fragment = this.val(st, 'fragment').eq(this.lit(1, 1));
    // ICMP of the other family: its tracker refuses the packet (model/ct-validity.ts).
    const otherIcmp = this.val(st, 'proto').eq(this.lit(icmpProto(this.model.family) === 1 ? 58 : 1, 8));
    return this.ite(this.or([fragment, otherIcmp]), invalid, this.ite(isTcp, tcp, this.ite(isIcmp, icmp, declared)));
  }

  ctStateVar(): Z3BV {
    if (!this.vars.ctstate) {
      const v = this.ctx.BitVec.const(`${this.opts.prefix}ctstate`, 8) as Z3BV;
      this.vars.ctstate = v;
      if (this.opts.reply) this.assumptions.push(v.eq(this.lit(CT_STATE.ESTABLISHED, 8)));
      else this.assumptions.push(this.inSet(v, [CT_STATE.NEW, CT_STATE.ESTABLISHED, CT_STATE.RELATED, CT_STATE.INVALID].map((s) => [BigInt(s), BigInt(s)] as const).sort((a, b) => Number(a[0] - b[0])), 8));
    }
    return this.vars.ctstate;
  }

  get ctNew(): Z3Bool {
    return this.ctNewTerm;
  }

  /** Runs the tables of one hook. Returns the packet's survival and the state after. */
  private hook(
    hook: Hook,
    st0: SymState,
    alive0: Z3Bool,
    natHook: 'dst' | 'src',
    binding: { dnat?: SymNat; snat?: SymNat },
    afterTable?: (t: TableName, st: SymState) => { st: SymState; ok: Z3Bool },
    /** A looped-back packet: its connection's NAT is already set up, the nat chains are skipped. */
    skipNat = false,
  ): { alive: Z3Bool; st: SymState } {
    let st = st0.clone();
    st.hook = hook;
    let alive = alive0;
    const prevAt = this.atHook.get(hook);
    this.atHook.set(hook, prevAt ? this.or([prevAt, alive0]) : alive0);
    const natPriority = TABLE_PRIORITY.nat[hook];
    let natDone = natPriority === undefined;
    let ctDone = false;
    for (const stage of this.model.stages[hook]) {
      const prio = TABLE_PRIORITY[stage.table][hook] ?? 0;
      if (!ctDone && prio > CONNTRACK_PRIORITY && (hook === 'PREROUTING' || hook === 'OUTPUT')) {
        st = this.conntrack(st);
        ctDone = true;
      }
      if (!natDone && natPriority !== undefined && prio > natPriority) {
        natDone = true;
        if (!skipNat) st = this.undoNat(st, natHook);
      }
      if (stage.table === 'nat') {
        natDone = true;
        if (skipNat) continue;
        const r = this.natStage(stage, st, alive, natHook, binding);
        alive = r.alive;
        st = r.st;
      } else {
        const r = this.walk(stage.chain, st, alive, [stage.chain]);
        st = r.st;
        alive = this.stageResult(stage, r).pass;
      }
      if (afterTable) {
        const a = afterTable(stage.table, st);
        st = a.st;
        alive = this.and([alive, a.ok]);
      }
    }
    if (!ctDone && (hook === 'PREROUTING' || hook === 'OUTPUT')) st = this.conntrack(st);
    if (!natDone && !skipNat) st = this.undoNat(st, natHook);
    return { alive, st };
  }

  private natStage(
    stage: Stage,
    st0: SymState,
    alive: Z3Bool,
    natHook: 'dst' | 'src',
    binding: { dnat?: SymNat; snat?: SymNat },
  ): { alive: Z3Bool; st: SymState } {
    const isNew = this.ctNew;
    const r = this.walk(stage.chain, st0, this.and([alive, isNew]), [stage.chain]);
    const policyDrops = (stage.chain.policy ?? 'ACCEPT') === 'DROP';
    // Not new: the chain is not consulted; a reply has its connection's NAT undone instead.
    const notNew = this.and([alive, this.not(isNew)]);
    const passNew = this.or([...r.acc, ...r.nats.map((n) => n.fire), ...(policyDrops ? [] : r.ret)]);
    let st = r.st.clone();
    const addrF = natHook === 'dst' ? 'daddr' : 'saddr';
    const portF = natHook === 'dst' ? 'dport' : 'sport';
    const fromAddr = this.val(st, addrF);
    const hasPorts = this.present(st, portF);
    const fromPort = this.val(st, portF);
    let addr = fromAddr;
    let port = fromPort;
    const failed: Z3Bool[] = [];
    for (const n of [...r.nats].reverse()) {
      const a = this.natAddress(n.rule, n.nat, st, fromAddr, natHook);
      if (a.fails) failed.push(this.and([n.fire, a.fails]));
      addr = this.ite(n.fire, a.addr, addr);
      // (A MASQUERADE of an IPv4 connection from 0.0.0.0 changes nothing, ports included.)
      const keep = n.nat.type === 'masquerade' && this.model.family === 'ipv4' ? this.val(st, 'ctorigsrc').eq(this.lit(0, this.bits('saddr'))) : this.f();
      port = this.ite(n.fire, this.ite(keep, fromPort, this.natPort(n.rule, n.nat, fromPort, hasPorts, natHook)), port);
    }
    // An ICMP query's identifier is its "port" for NAT on either side; conntrack set the reply
    // tuple's source "port" to it, and the mapping changes it there (interp.ts natIdentifier).
    const isIcmp = this.present(st, 'icmptype');
    const fromId = this.val(st, 'ctreplsrcport');
    let id = fromId;
    for (const n of [...r.nats].reverse()) {
      const keep = n.nat.type === 'masquerade' && this.model.family === 'ipv4' ? this.val(st, 'ctorigsrc').eq(this.lit(0, this.bits('saddr'))) : this.f();
      id = this.ite(n.fire, this.ite(keep, fromId, this.natIdentifier(n.rule, n.nat, fromId)), id);
    }
    const applied = this.or(r.nats.map((n) => n.fire));
    if (natHook === 'dst') this.redirected = this.or(r.nats.filter((n) => n.nat.type === 'redirect').map((n) => n.fire));
    st.vals.set(addrF, addr);
    st.vals.set(portF, this.ite(hasPorts, port, fromPort));
    const idChanged = this.and([isIcmp, this.not(id.eq(fromId))]);
    const changed = this.and([applied, this.or([this.not(addr.eq(fromAddr)), this.and([hasPorts, this.not(port.eq(fromPort))]), idChanged])]);
    st.vals.set('ctreplsrcport', this.ite(this.and([applied, isIcmp]), id, this.val(st, 'ctreplsrcport')));
    const status = this.val(st, 'ctstatus');
    const natBit = natHook === 'dst' ? CT_STATUS.DST_NAT : CT_STATUS.SRC_NAT;
    const doneBit = natHook === 'dst' ? CT_STATUS.DST_NAT_DONE : CT_STATUS.SRC_NAT_DONE;
    let newStatus = status.or(this.lit(doneBit, 16)) as Z3BV;
    newStatus = this.ite(changed, newStatus.or(this.lit(natBit, 16)) as Z3BV, newStatus);
    st.vals.set('ctstatus', this.ite(isNew, newStatus, status));
    if (natHook === 'dst') {
      st.vals.set('ctreplsrc', this.ite(applied, addr, this.val(st, 'ctreplsrc')));
      st.vals.set('ctreplsrcport', this.ite(this.and([applied, hasPorts]), port, this.val(st, 'ctreplsrcport')));
    } else {
      st.vals.set('ctrepldst', this.ite(applied, addr, this.val(st, 'ctrepldst')));
      st.vals.set('ctrepldstport', this.ite(this.and([applied, hasPorts]), port, this.val(st, 'ctrepldstport')));
    }
    const nat: SymNat = { applied, fromAddr, toAddr: addr, fromPort, toPort: this.ite(hasPorts, port, fromPort) };
    if (natHook === 'dst') binding.dnat = nat;
    else binding.snat = nat;
    // A reply (not new) gets its binding undone here instead.
    const undone = this.undoNat(r.st, natHook);
    const merged = st.clone();
    for (const f of [addrF, portF] as const) merged.vals.set(f, this.ite(isNew, this.val(st, f), this.val(undone, f)));
    const aliveOut = this.or([this.and([passNew, this.not(this.or(failed))]), notNew]);
    return { alive: aliveOut, st: merged };
  }

  private natAddress(rule: ModelRule, nat: NatAction, st: SymState, from: Z3BV, natHook: 'dst' | 'src'): { addr: Z3BV; fails?: Z3Bool } {
    const fam = this.model.family;
    const bits = this.bits('saddr');
    const routing = this.model.routing;
    switch (nat.type) {
      case 'snat':
      case 'dnat': {
        if (!nat.addr) return { addr: from };
        if (nat.addr[0] === nat.addr[1]) return { addr: this.lit(nat.addr[0], bits) };
        const c = this.choiceVar(CHOICE.natAddr(rule.id), bits);
        this.assumptions.push(this.inSet(c, [nat.addr], bits));
        return { addr: c };
      }
      case 'netmap': {
        if (!nat.addr) return { addr: from };
        const max = familyMax(fam);
        const netmask = ~(nat.addr[0] ^ nat.addr[1]) & max;
        return { addr: from.and(this.lit(~netmask & max, bits)).or(this.lit(nat.addr[0] & netmask, bits)) as Z3BV };
      }
      case 'masquerade': {
        if (!routing.hasHost) {
          const c = this.choiceVar(CHOICE.natAddr(rule.id), bits);
          this.assumptions.push(c.eq(this.lit(UNKNOWN_ADDR[fam], bits)));
          // IPv6 over lo takes the destination itself, host model or not (loopbackSource).
          if (fam === 'ipv6') return { addr: this.ite(st.oif.eq(this.ifaceIndex('lo')), this.val(st, 'daddr'), c) };
          return { addr: this.ite(this.val(st, 'ctorigsrc').eq(this.lit(0, bits)), from, c) };
        }
        // As the concrete interpreter: lo gives loopbackSource; a route toward daddr on the egress
        // device gives its source address; otherwise the first address of the egress device.
        const daddr = this.val(st, 'daddr');
        const onOif = (dev: string) => st.oif.eq(this.ifaceIndex(dev));
        let addr: Z3BV = this.lit(0, bits);
        const fallbackOk: Z3Bool[] = [];
        for (const dev of routing.devices) {
          const a = routing.addresses.find((x) => x.device === dev)?.addr;
          if (dev === 'lo' || a === undefined) continue;
          addr = this.ite(onOif(dev), this.lit(a, bits), addr);
          fallbackOk.push(onOif(dev));
        }
        const routeOnOif: Z3Bool[] = [];
        const routeOk: Z3Bool[] = [];
        for (const r of routing.routes) {
          if (r.device === 'lo') continue;
          routeOnOif.push(this.and([onOif(r.device), this.inSet(daddr, r.region, bits)]));
          for (const part of r.sources) {
            if (part.addr === undefined) continue;
            const cond = this.and([onOif(r.device), this.inSet(daddr, part.region, bits)]);
            addr = this.ite(cond, this.lit(part.addr, bits), addr);
            routeOk.push(cond);
          }
        }
        const isLo = onOif('lo');
        const lo = this.loopbackSource(daddr);
        addr = this.ite(isLo, lo.addr, addr);
        const viaRoute = this.or(routeOnOif);
        const ok = this.or([this.and([isLo, lo.ok]), this.and([viaRoute, this.or(routeOk)]), this.and([this.not(viaRoute), this.or(fallbackOk)])]);
        if (fam === 'ipv6') return { addr, fails: this.not(ok) };
        // nf_nat_masquerade_ipv4 leaves a connection from 0.0.0.0 alone (interp.ts applyNat).
        const unspecified = this.val(st, 'ctorigsrc').eq(this.lit(0, bits));
        return { addr: this.ite(unspecified, from, addr), fails: this.and([this.not(unspecified), this.not(ok)]) };
      }
      case 'redirect': {
        if (natHook === 'dst' && st.hook === 'OUTPUT') return { addr: this.lit(routing.primaryAddress('lo')!, bits) };
        if (!routing.hasHost) {
          // lo always has the loopback address; other devices' addresses are unknown.
          const c = this.choiceVar(CHOICE.natAddr(rule.id), bits);
          this.assumptions.push(c.eq(this.lit(UNKNOWN_ADDR[fam], bits)));
          return { addr: this.ite(st.iif.eq(this.ifaceIndex('lo')), this.lit(routing.primaryAddress('lo')!, bits), c) };
        }
        let addr: Z3BV = this.lit(0, bits);
        const have: Z3Bool[] = [];
        // A packet to its ingress device's own link-local address (the ownll choice) is
        // redirected to a link-local address of that device (RoutingView.redirectAddress).
        const own = this.ownLinkLocal;
        for (const dev of routing.devices) {
          const a = routing.primaryAddress(dev);
          const on = st.iif.eq(this.ifaceIndex(dev));
          if (a !== undefined) {
            addr = this.ite(on, this.lit(a, bits), addr);
            have.push(on);
          }
          if (own && dev !== 'lo') {
            const toOwn = this.and([on, own.on]);
            const declared = routing.declaredLinkLocal(dev);
            addr = this.ite(toOwn, declared === undefined ? own.addr : this.lit(declared, bits), addr);
            have.push(toOwn);
          }
        }
        return { addr, fails: this.not(this.or(have)) };
      }
    }
  }

  private natPort(rule: ModelRule, nat: NatAction, from: Z3BV, hasPorts: Z3Bool, natHook: 'dst' | 'src'): Z3BV {
    const random = nat.random || nat.fullyRandom;
    if (nat.ports) {
      const [lo, hi] = nat.ports;
      if (lo === hi) return this.ite(hasPorts, this.lit(lo, 16), from);
      const inRange = this.inSet(from, [[lo, hi]], 16);
      const c = this.choiceVar(CHOICE.natPort(rule.id), 16);
      this.assumptions.push(this.inSet(c, [[lo, hi]], 16));
      return random ? c : this.ite(inRange, from, c);
    }
    if (random && natHook === 'src') return this.choiceVar(CHOICE.natPort(rule.id), 16);
    return from;
  }

  /**
   * MASQUERADE's source on lo, as the simulator's Host.selectSource picks it for a local
   * destination: IPv6 the destination itself (an anycast one excepted); IPv4 the first
   * universe-scope address declared on lo whose subnet holds the destination, or its first,
   * or else the host's first address.
   */
  private loopbackSource(daddr: Z3BV): { addr: Z3BV; ok: Z3Bool } {
    const routing = this.model.routing;
    const bits = this.bits('daddr');
    if (this.model.family === 'ipv6') {
      // The destination itself, but for an anycast address (RoutingView.loopbackSources6).
      let addr: Z3BV = daddr;
      const fails: Z3Bool[] = [];
      for (const { dst, src } of routing.loopbackSources6()) {
        const is = daddr.eq(this.lit(dst, bits));
        if (src === undefined) fails.push(is);
        else addr = this.ite(is, this.lit(src, bits), addr);
      }
      return { addr, ok: this.not(this.or(fails)) };
    }
    // 127/8 is host-scoped: never a source of universe scope (Host.selectSource).
    const declared = routing.addresses.filter((a) => a.device === 'lo' && a.addr >> 24n !== 0x7fn);
    if (declared.length === 0) {
      const a = routing.sim.selectSource('ipv4', 'lo', 0x7f000001n);
      return a === undefined ? { addr: this.lit(0, bits), ok: this.f() } : { addr: this.lit(a, bits), ok: this.t() };
    }
    let addr: Z3BV = this.lit(declared[0].addr, bits);
    for (const a of [...declared].reverse()) {
      const net = prefixMask('ipv4', a.prefixLen);
      addr = this.ite(daddr.and(this.lit(net, bits)).eq(this.lit(a.addr & net, bits)), this.lit(a.addr, bits), addr);
    }
    return { addr, ok: this.t() };
  }

  private natIdentifier(rule: ModelRule, nat: NatAction, from: Z3BV): Z3BV {
    const random = nat.random || nat.fullyRandom;
    if (nat.ports) {
      const [lo, hi] = nat.ports;
      if (lo === hi) return this.lit(lo, 16);
      const c = this.choiceVar(CHOICE.natPort(rule.id), 16);
      this.assumptions.push(this.inSet(c, [[lo, hi]], 16));
      return random ? c : this.ite(this.inSet(from, [[lo, hi]], 16), from, c);
    }
    return random ? this.choiceVar(CHOICE.natPort(rule.id), 16) : from;
  }

  private undoNat(st0: SymState, natHook: 'dst' | 'src'): SymState {
    const b = this.opts.reply?.binding;
    if (!b) return st0;
    const st = st0.clone();
    if (natHook === 'dst') {
      st.vals.set('daddr', this.ite(b.snat.applied, b.snat.fromAddr, this.val(st, 'daddr')));
      st.vals.set('dport', this.ite(this.and([b.snat.applied, this.present(st, 'dport')]), b.snat.fromPort, this.val(st, 'dport')));
    } else {
      st.vals.set('saddr', this.ite(b.dnat.applied, b.dnat.fromAddr, this.val(st, 'saddr')));
      st.vals.set('sport', this.ite(this.and([b.dnat.applied, this.present(st, 'sport')]), b.dnat.fromPort, this.val(st, 'sport')));
    }
    return st;
  }

  // ---- the walk ----------------------------------------------------------------------

  private initialState(): SymState {
    const vals = new Map<NumericField, Z3BV>();
    const reply = this.opts.reply;
    for (const f of FIELDS) {
      if (f === 'dscp') continue;
      const given = reply?.fields[f];
      if (given) vals.set(f, given);
    }
    vals.set('mark', this.lit(0, 32));
    vals.set('ctstate', this.lit(CT_STATE.INVALID, 8));
    const local = this.opts.ingress === 'local';
    // Packet type from the destination the packet arrives with (broadcast, multicast, else
    // unicast); a socket's packet is unicast whatever its destination (Engine.outputPath).
    {
      const dst = vals.get('daddr') ?? this.fieldVar('daddr');
      vals.set('daddr', dst);
      const bits = this.bits('daddr');
      const r = this.model.routing;
      const bcast = this.model.family === 'ipv4' ? r.broadcast : [];
      vals.set('pkttype', local ? this.lit(0, 2) : this.ite(this.inSet(dst, bcast, bits), this.lit(1, 2), this.ite(this.inSet(dst, r.multicast, bits), this.lit(2, 2), this.lit(0, 2))));
    }
    let iif: Z3BV;
    if (local) iif = this.ifaceIndex('');
    else if (reply?.iif) iif = reply.iif;
    else {
      iif = this.ctx.BitVec.const(`${this.opts.prefix}iif`, this.ifBits) as Z3BV;
      this.vars.iif = iif;
      const routing = this.model.routing;
      this.assumptions.push(this.ifaceIn(iif, routing.hasHost ? this.model.ifaces.indicesOf(routing.devices) : this.model.ifaces.nonEmpty()));
    }
    const helper = this.ctx.Bool.const(`${this.opts.prefix}helperPresent`) as Z3Bool;
    this.vars.helperPresent = helper;
    const routing = this.model.routing;
    if (!local && routing.linkLocalGuess.length) {
      // The destination as it arrives may be the ingress interface's own link-local address.
      const dst = vals.get('daddr')!;
      const bits = this.bits('daddr');
      const devices = (routing.sim.model?.interfaces ?? []).map((i) => i.device).filter((d) => d !== 'lo');
      const sample = 0xfe80n << 112n | 1n;
      this.ownLinkLocal = {
        on: this.and([
          this.ifaceIn(iif, this.model.ifaces.indicesOf(devices)),
          this.inSet(dst, routing.linkLocalGuess, bits),
          this.not(this.inSet(dst, routing.local, bits)),
          this.choiceVar(CHOICE.ownLinkLocal, 1).eq(this.lit(0, 1)),
        ]),
        addr: dst,
        type: devices.length ? routing.hostWithLinkLocal(devices[0], sample).addrTypeField('ipv6', sample) : 0,
      };
    }
    const answer = local && !reply ? this.answerTerm() : this.f();
    this.answer = answer;
    if (local && !reply) {
      vals.set('ctstate', this.ite(answer, this.lit(CT_STATE.RELATED, 8), this.lit(CT_STATE.INVALID, 8)));
      // A TCP reset answers on the TCP connection it resets (ctProtoIsOwn).
      const proto = this.fieldVar('proto');
      vals.set('ctproto', this.ite(this.and([answer, proto.eq(this.lit(PROTO.tcp, 8))]), proto, this.fieldVar('ctproto')));
    }
    return new SymState(vals, iif, this.ifaceIndex(''), local ? 'OUTPUT' : 'PREROUTING', this.f(), reply ? this.f() : helper, answer);
  }

  /**
   * A local packet declared RELATED that the answer choice makes this host's own ICMP error or
   * TCP reset (interp.ts attachAnswer): raw already sees its connection.
   */
  private answerTerm(): Z3Bool {
    const proto = this.fieldVar('proto');
    return this.and([
      this.choiceVar(CHOICE.answer, 1).eq(this.lit(1, 1)),
      this.ctStateVar().eq(this.lit(CT_STATE.RELATED, 8)),
      this.fieldVar('fragment').eq(this.lit(0, 1)),
      this.or([this.and([proto.eq(this.lit(PROTO.tcp, 8)), this.inSet(this.fieldVar('tcpflags'), ANSWER_TCP_FLAGS, 8)]), this.isIcmpError(proto, this.fieldVar('icmptype'))]),
    ]);
  }

  /**
   * Per-field domain limits that every packet satisfies. A packet is at least as long as its headers: the IP header and, unless it is a non-first
   * fragment, the transport header (TCP 20, other port protocols and ICMP 8), as the replay
   * builds it (replay.ts toSimPacket, concrete/interp.ts minimumLength).
   */
  private fieldAssumptions(): void {
    // Always: a query may mention the length after the walk (a region from the pre-pass).
    const len = this.opts.reply?.fields.length ?? this.fieldVar('length');
    const at = (f: NumericField) => this.initial?.vals.get(f) ?? this.fieldVar(f);
    const proto = at('proto');
    const whole = at('fragment').eq(this.lit(0, 1));
    const is = (ps: readonly number[]) => this.or(ps.map((p) => proto.eq(this.lit(p, 8))));
    const base = this.model.family === 'ipv4' ? 20 : 40;
    const l4 = this.ite(
      this.and([whole, is([PROTO.tcp])]),
      this.lit(20, 16),
      this.ite(this.and([whole, is([...PORT_PROTOS, icmpProto(this.model.family)])]), this.lit(8, 16), this.lit(0, 16)),
    );
    this.assumptions.push(this.ctx.UGE(len, this.lit(base, 16).add(l4) as Z3BV));
  }

  private initial?: SymState;

  /**
   * A flow's tests on this packet: header fields as the packet arrives, the state conntrack
   * gives it, the ingress interface, and the egress interface it finally leaves by.
   */
  flowMatches(c: Constraint, out: SymOutcome): Z3Bool {
    const init = this.initial!;
    const st = init.clone();
    st.vals.set('ctstate', this.ctStateVar());
    st.oif = out.egress;
    st.hook = this.opts.ingress === 'local' ? 'OUTPUT' : 'PREROUTING';
    return this.constraint(c, st);
  }

  /** The device a packet from `saddr` comes in by (the route back to it), for realistic ingress. */
  reversePath(): Z3Bool {
    const routing = this.model.routing;
    const iif = this.initial?.iif;
    if (!routing.hasHost || !iif || !this.vars.iif) return this.t();
    const src = this.fieldVar('saddr');
    const parts: Z3Bool[] = [];
    for (const r of routing.routes) {
      parts.push(this.and([this.inSet(src, r.region, this.bits('saddr')), iif.eq(this.ifaceIndex(r.device))]));
    }
    const routed = this.or(routing.routes.map((r) => this.inSet(src, r.region, this.bits('saddr'))));
    return this.or([this.or(parts), this.not(routed)]);
  }

  encode(): SymOutcome {
    const bits = this.bits('saddr');
    const binding: { dnat?: SymNat; snat?: SymNat } = {};
    let st = this.initialState();
    this.initial = st;
    let local: Z3Bool = this.f();
    let forwarded: Z3Bool = this.f();
    let sent: Z3Bool = this.f();
    let egress: Z3BV = this.ifaceIndex('');
    let ttlDrop: Z3Bool = this.f();
    let noRouteDrop: Z3Bool = this.f();
    const stop = this.opts.stopAfterHook;

    if (this.opts.ingress === 'iface') {
      const pre = this.hook('PREROUTING', st, this.headerOk(st), 'dst', binding);
      st = pre.st;
      const d = this.inputRouting(st);
      if (stop !== 'PREROUTING') {
        const stIn = st.clone();
        // The two branches after routing NAT separately (SNAT at INPUT or at POSTROUTING).
        const inBinding: { dnat?: SymNat; snat?: SymNat } = { ...binding };
        const fwdBinding: { dnat?: SymNat; snat?: SymNat } = { ...binding };
        const input = this.hook('INPUT', stIn, this.and([pre.alive, d.local]), 'src', inBinding);
        local = input.alive;
        let stFwd = st.clone();
        stFwd.oif = d.oif;
        const ttl = this.val(stFwd, 'ttl');
        const ttlOk = this.ctx.UGE(ttl, this.lit(2, 8));
        // Only a frame addressed to this host is forwarded (interp.ts: not-unicast).
        const unicast = this.val(stFwd, 'pkttype').eq(this.lit(0, 2));
        stFwd.vals.set('ttl', ttl.sub(this.lit(1, 8)) as Z3BV);
        ttlDrop = this.and([pre.alive, d.forward, unicast, this.not(ttlOk)]);
        noRouteDrop = this.and([pre.alive, d.sane, this.not(d.local), this.not(d.forward)]);
        if (stop !== 'INPUT') {
          const fwd = this.hook('FORWARD', stFwd, this.and([pre.alive, d.forward, unicast, ttlOk]), 'src', fwdBinding);
          stFwd = fwd.st;
          const post = stop === 'FORWARD' ? fwd : this.hook('POSTROUTING', stFwd, fwd.alive, 'src', fwdBinding);
          forwarded = post.alive;
          st = this.mergeStates(d.local, input.st, post.st);
        } else st = input.st;
        binding.snat = this.mergeNat(d.local, inBinding.snat, fwdBinding.snat);
        egress = this.ite(forwarded, d.oif, this.ifaceIndex(''));
      }
    } else {
      const first = ((s: SymState) => {
        const out = s.clone();
        const r = this.outputRouting(this.val(out, 'daddr'));
        out.oif = r.oif;
        return { st: out, ok: r.ok };
      })(st);
      // Routed again once nat changed the destination (Host.rerouteOutput, from the first device).
      const firstDst = this.val(st, 'daddr');
      const reroute = (s: SymState): { st: SymState; ok: Z3Bool } => {
        const out = s.clone();
        const dst = this.val(out, 'daddr');
        const changed = this.not(dst.eq(firstDst));
        const r = this.rerouteOutput(this.val(out, 'saddr'), dst, first.st.oif);
        out.oif = this.ite(changed, r.oif, first.st.oif);
        return { st: out, ok: this.or([this.not(changed), r.ok]) };
      };
      st = first.st;
      let routeOk = first.ok;
      // OUTPUT's rules see the first route's device all through the hook (__ip_local_out fixes
      // it); the packet leaves by the route of the destination OUTPUT leaves it with, which
      // POSTROUTING sees.
      const out = this.hook('OUTPUT', st, first.ok, 'dst', binding, (t, s) => {
        if (t !== 'mangle' && t !== 'nat') return { st: s, ok: this.t() };
        // Rerouted after mangle and nat; no route stops the packet there.
        const r = reroute(s);
        routeOk = this.and([routeOk, r.ok]);
        return { st: s, ok: r.ok };
      });
      const last = reroute(out.st);
      routeOk = this.and([routeOk, last.ok]);
      st = last.st;
      if (stop !== 'OUTPUT') {
        const post = this.hook('POSTROUTING', st, this.and([out.alive, routeOk]), 'src', binding);
        // Sent over lo: in again through PREROUTING and INPUT, NAT already set up.
        const isLo = post.st.oif.eq(this.ifaceIndex('lo'));
        const back = post.st.clone();
        back.iif = this.ifaceIndex('lo');
        back.oif = this.ifaceIndex('');
        // The connection was confirmed when the packet left POSTROUTING.
        const status = this.val(back, 'ctstatus');
        back.vals.set('ctstatus', this.ite(this.present(back, 'ctstatus'), status.or(this.lit(CT_STATUS.CONFIRMED, 16)) as Z3BV, status));
        // ip6_rcv_core checks the header on lo too (a source SNATed to a group address dies there).
        const pre = this.hook('PREROUTING', back, this.and([post.alive, isLo, this.headerOk(back)]), 'dst', binding, undefined, true);
        const inp = this.hook('INPUT', pre.st, pre.alive, 'src', binding, undefined, true);
        // ip6_finish_output2 discards a group of scope 0 or 1 out of any device but lo.
        const badScope = this.model.family === 'ipv6' ? this.inSet(this.val(post.st, 'daddr'), V6_GROUPS_SCOPE_0_1, bits) : this.f();
        sent = this.or([this.and([post.alive, this.not(isLo), this.not(badScope)]), inp.alive]);
        const merged = this.mergeStates(isLo, inp.st, post.st);
        merged.oif = post.st.oif;
        merged.iif = post.st.iif;
        st = merged;
      } else sent = this.and([out.alive, routeOk]);
      egress = st.oif;
    }
    this.fieldAssumptions();
    const none = (): SymNat => ({ applied: this.f(), fromAddr: this.lit(0, bits), toAddr: this.lit(0, bits), fromPort: this.lit(0, 16), toPort: this.lit(0, 16) });
    const delivered = this.or([local, forwarded, sent]);
    return {
      vars: this.vars,
      assumptions: this.assumptions,
      local,
      forwarded,
      sent,
      dropped: this.not(delivered),
      ttlDrop,
      noRouteDrop,
      delivered,
      fire: this.fire,
      reach: this.reach,
      entered: this.entered,
      matchAt: this.matchAt,
      atHook: this.atHook,
      final: st,
      egress,
      binding: { dnat: binding.dnat ?? none(), snat: binding.snat ?? none() },
      ctNew: this.ctNew,
    };
  }

  /** Field by field: the state of the branch the packet took. */
  private mergeStates(cond: Z3Bool, a: SymState, b: SymState): SymState {
    const out = b.clone();
    for (const f of new Set([...a.vals.keys(), ...b.vals.keys()])) {
      out.vals.set(f, this.ite(cond, this.val(a, f), this.val(b, f)));
    }
    out.oif = this.ite(cond, a.oif, b.oif);
    return out;
  }

  private mergeNat(cond: Z3Bool, a: SymNat | undefined, b: SymNat | undefined): SymNat | undefined {
    if (!a) return b && { ...b, applied: this.and([this.not(cond), b.applied]) };
    if (!b) return { ...a, applied: this.and([cond, a.applied]) };
    return {
      applied: this.or([this.and([cond, a.applied]), this.and([this.not(cond), b.applied])]),
      fromAddr: this.ite(cond, a.fromAddr, b.fromAddr),
      toAddr: this.ite(cond, a.toAddr, b.toAddr),
      fromPort: this.ite(cond, a.fromPort, b.fromPort),
      toPort: this.ite(cond, a.toPort, b.toPort),
    };
  }

  /** Without a host model, the devices a route may go out of: any but lo (lo carries only local traffic). */
  private routedDevices(): IntervalSet {
    return subtract(this.model.ifaces.nonEmpty(), this.model.ifaces.indicesOf(['lo']), BigInt(this.model.ifaces.size));
  }

  /** IPv6 packets ip6_rcv_core drops before PREROUTING (Host.ipv6HeaderDrop); IPv4: none. */
  private headerOk(st: SymState): Z3Bool {
    if (this.model.family !== 'ipv6') return this.t();
    const src = this.val(st, 'saddr');
    const dst = this.val(st, 'daddr');
    const notLo = this.not(st.iif.eq(this.ifaceIndex('lo')));
    const one = this.lit(1, 128);
    const scope = (n: bigint): IntervalSet =>
      Array.from({ length: 16 }, (_, flags) => {
        const top = (0xffn << 8n) | (BigInt(flags) << 4n) | n;
        return [top << 112n, (top << 112n) | ((1n << 112n) - 1n)] as const;
      });
    const mc: IntervalSet = [[0xffn << 120n, familyMax('ipv6')]];
    const drop = this.or([
      this.and([notLo, this.or([src.eq(one), dst.eq(one)])]),
      this.and([notLo, this.inSet(dst, scope(1n), 128)]),
      this.inSet(dst, scope(0n), 128),
      this.inSet(src, mc, 128),
    ]);
    return this.not(drop);
  }

  /** ip_route_input as terms: martians, local delivery, the route (and its device) otherwise. */
  private inputRouting(st: SymState): { local: Z3Bool; forward: Z3Bool; oif: Z3BV; sane: Z3Bool } {
    const routing = this.model.routing;
    const fam = this.model.family;
    const bits = this.bits('saddr');
    const src = this.val(st, 'saddr');
    const dst = this.val(st, 'daddr');
    const notLo = this.not(st.iif.eq(this.ifaceIndex('lo')));
    const inS = (t: Z3BV, s: IntervalSet) => this.inSet(t, s, bits);
    // The cascade of the simulator's Host.routeInput, in its order (ip_route_input_slow).
    let martian: Z3Bool;
    let castLocal: Z3Bool;
    const joined = (): Z3Bool => {
      // With a host model a multicast packet is delivered only to groups its device joined.
      if (!routing.hasHost) return this.t();
      return this.or(routing.devices.map((d) => this.and([st.iif.eq(this.ifaceIndex(d)), inS(dst, routing.joinedGroups(d))])));
    };
    if (fam === 'ipv4') {
      const mc: IntervalSet = [[0xe0000000n, 0xefffffffn]];
      const loop: IntervalSet = [[0x7f000000n, 0x7fffffffn]];
      const bc = this.lit(0xffffffffn, 32);
      const zero = this.lit(0, 32);
      const mSrc = this.or([inS(src, mc), src.eq(bc)]);
      const lBcast = this.or([dst.eq(bc), this.and([src.eq(zero), dst.eq(zero)])]);
      const lMcast = inS(dst, mc);
      const mid = this.or([src.eq(zero), dst.eq(zero), this.and([notLo, inS(dst, loop)]), this.and([notLo, inS(src, loop)])]);
      const sBcast = inS(dst, routing.broadcast);
      const ownSrc = routing.hasHost ? this.and([notLo, inS(src, routing.local)]) : this.f();
      const mcastDrop = this.and([lMcast, this.not(joined())]);
      martian = this.or([mSrc, this.and([this.not(lBcast), this.or([mcastDrop, this.and([this.not(lMcast), this.or([mid, this.and([this.not(sBcast), ownSrc])])])])])]);
      castLocal = this.or([lBcast, lMcast, this.and([this.not(mid), sBcast])]);
    } else {
      const mc: IntervalSet = [[0xffn << 120n, familyMax('ipv6')]];
      const early = this.or([inS(src, mc), this.and([notLo, this.or([src.eq(this.lit(1, 128)), dst.eq(this.lit(1, 128))])])]);
      const lMcast = inS(dst, mc);
      martian = this.or([early, this.and([lMcast, this.not(joined())])]);
      castLocal = lMcast;
    }
    const sane = this.not(martian);
    if (!routing.hasHost) {
      // A destination DNAT changed has its own pick (CHOICE.routeNat).
      const arrived = this.initial?.vals.get('daddr') ?? this.fieldVar('daddr');
      const route = this.ite(dst.eq(arrived), this.choiceVar(CHOICE.route, 1), this.choiceVar(CHOICE.routeNat, 1));
      const oif = this.choiceVar(CHOICE.oif, this.ifBits);
      this.assumptions.push(this.ifaceIn(oif, this.routedDevices()));
      // Loopback destinations are this host's whatever the host model says, and so is the
      // address REDIRECT took from the incoming device.
      const toLocal = this.or([castLocal, inS(dst, routing.loopback), this.redirected, route.eq(this.lit(0, 1))]);
      // Delivered here means the destination is ours; a source equal to it is then ours too.
      const selfSource = fam === 'ipv4' ? this.and([this.not(castLocal), route.eq(this.lit(0, 1)), notLo, src.eq(dst)]) : this.f();
      const ok = this.and([sane, this.not(selfSource)]);
      return { local: this.and([ok, toLocal]), forward: this.and([ok, this.not(toLocal)]), oif, sane: ok };
    }
    const own = this.ownLinkLocal;
    const ownLL = own ? this.and([own.on, dst.eq(own.addr)]) : this.f();
    // Subnet-router anycast addresses are delivered here too (RoutingView.localDestinations).
    const isLocal = this.or([castLocal, inS(dst, routing.localDestinations), ownLL]);
    let oif: Z3BV = this.ifaceIndex('');
    const routed: Z3Bool[] = [];
    for (const r of [...routing.routes].reverse()) {
      const inR = inS(dst, r.region);
      oif = this.ite(inR, this.ifaceIndex(r.device), oif);
      routed.push(inR);
    }
    if (fam === 'ipv6') {
      // ::1 and link-local destinations from a device: lookups bound to it (RoutingView.strictOn).
      const strict = this.and([notLo, inS(dst, routing.strictDestinations), this.not(castLocal)]);
      const sLocal: Z3Bool[] = [ownLL];
      const sRouted: Z3Bool[] = [];
      for (const dev of routing.devices) {
        if (dev === 'lo') continue;
        const on = st.iif.eq(this.ifaceIndex(dev));
        const { routes, own: mine } = routing.strictOn(dev);
        sLocal.push(this.and([on, this.or(mine.map((a) => dst.eq(this.lit(a, bits))))]));
        sRouted.push(this.and([on, this.or(routes.map((r) => inS(dst, r)))]));
      }
      const strictLocal = this.or(sLocal);
      const either = (c: Z3Bool, a: Z3Bool, b: Z3Bool) => this.or([this.and([c, a]), this.and([this.not(c), b])]);
      return {
        local: this.and([sane, either(strict, strictLocal, isLocal)]),
        forward: this.and([sane, either(strict, this.and([this.not(strictLocal), this.or(sRouted)]), this.and([this.not(isLocal), this.or(routed)]))]),
        oif: this.ite(strict, st.iif, oif),
        sane,
      };
    }
    return { local: this.and([sane, isLocal]), forward: this.and([sane, this.not(isLocal), this.or(routed)]), oif, sane };
  }

  /**
   * ip_route_me_harder after nat changed a local packet's destination, as the simulator's
   * Host.rerouteOutput: an IPv6 group stays on the device routed to before (none if that was
   * lo), an IPv6 link-local destination takes that device's own routes; an IPv4 group or
   * limited broadcast leaves by the device owning a source that is ours (127.0.0.1: lo; a
   * source not ours: no route), unless the source is zero, broadcast or a group; anything
   * else is routed afresh. Without a host model, as ip_route_output.
   */
  private rerouteOutput(src: Z3BV, dst: Z3BV, dev: Z3BV): { oif: Z3BV; ok: Z3Bool } {
    const routing = this.model.routing;
    const plain = this.outputRouting(dst);
    if (!routing.hasHost) return plain;
    const bits = this.bits('daddr');
    const either = (c: Z3Bool, a: Z3Bool, b: Z3Bool) => this.or([this.and([c, a]), this.and([this.not(c), b])]);
    if (this.model.family === 'ipv6') {
      const group = this.inSet(dst, routing.multicast, bits);
      const linkLocal = this.inSet(dst, [[0xfe80n << 112n, (0xfe80n << 112n) | ((1n << 118n) - 1n)]], bits);
      const onDev: Z3Bool[] = [];
      for (const d of routing.devices) {
        const { routes } = routing.strictOn(d);
        if (routes.length) onDev.push(this.and([dev.eq(this.ifaceIndex(d)), this.or(routes.map((r) => this.inSet(dst, r, bits)))]));
      }
      const keep = this.or([group, linkLocal]);
      const keepOk = either(group, this.not(dev.eq(this.ifaceIndex('lo'))), this.or(onDev));
      return { oif: this.ite(keep, dev, plain.oif), ok: either(keep, keepOk, plain.ok) };
    }
    const bcast = this.lit(0xffffffffn, 32);
    const mc: IntervalSet = [[0xe0000000n, 0xefffffffn]];
    const special = this.or([dst.eq(bcast), this.inSet(dst, mc, bits)]);
    const plainSrc = this.or([src.eq(this.lit(0, 32)), src.eq(bcast), this.inSet(src, mc, bits), this.inSet(src, routing.broadcast, bits)]);
    const byOwner = this.and([special, this.not(plainSrc)]);
    let owner: Z3BV = this.ifaceIndex('');
    const owned: Z3Bool[] = [src.eq(this.lit(0x7f000001n, 32))];
    for (const a of [...routing.addresses].reverse()) owner = this.ite(src.eq(this.lit(a.addr, 32)), this.ifaceIndex(a.device), owner);
    for (const a of routing.addresses) owned.push(src.eq(this.lit(a.addr, 32)));
    owner = this.ite(src.eq(this.lit(0x7f000001n, 32)), this.ifaceIndex('lo'), owner);
    return { oif: this.ite(byOwner, owner, plain.oif), ok: either(byOwner, this.or(owned), plain.ok) };
  }

  /** ip_route_output: local destinations over lo, the main table otherwise. */
  private outputRouting(dst: Z3BV): { oif: Z3BV; ok: Z3Bool } {
    const routing = this.model.routing;
    const bits = this.bits('daddr');
    if (!routing.hasHost) {
      const oif = this.choiceVar(CHOICE.oif, this.ifBits);
      this.assumptions.push(this.ifaceIn(oif, this.routedDevices()));
      // Loopback destinations (and IPv4 0.0.0.0) always leave by lo.
      return { oif: this.ite(this.inSet(dst, routing.outputLocal, bits), this.ifaceIndex('lo'), oif), ok: this.t() };
    }
    let oif: Z3BV = this.ifaceIndex('');
    const ok: Z3Bool[] = [];
    for (const r of [...routing.routes].reverse()) {
      const inR = this.inSet(dst, r.region, bits);
      oif = this.ite(inR, this.ifaceIndex(r.device), oif);
      ok.push(inR);
    }
    if (routing.broadcast.length) {
      for (const a of [...routing.addresses].reverse()) {
        if (a.prefixLen >= 31) continue;
        const mask = ((1n << BigInt(a.prefixLen)) - 1n) << BigInt(32 - a.prefixLen);
        const b = (a.addr & mask) | (~mask & 0xffffffffn);
        const isB = dst.eq(this.lit(b, bits));
        oif = this.ite(isB, this.ifaceIndex(a.device), oif);
        ok.push(isB);
      }
    }
    let routed = this.or(ok);
    if (this.model.family === 'ipv6') {
      // A group destination takes the ff00::/8 route of the first interface, and no route when
      // that interface has no IPv6 address (Host.routeOutput: source selection fails there).
      const first = routing.sim.model?.interfaces[0];
      const usable = first !== undefined && first.addresses.some((a) => a.family === 'ipv6');
      const group = this.inSet(dst, routing.multicast, bits);
      if (usable) oif = this.ite(group, this.ifaceIndex(first.device), oif);
      routed = usable ? this.or([group, routed]) : this.and([this.not(group), routed]);
    }
    const isLocal = this.inSet(dst, routing.outputLocal, bits);
    oif = this.ite(isLocal, this.ifaceIndex('lo'), oif);
    return { oif, ok: this.or([isLocal, routed]) };
  }
}

function presenceKind(f: NumericField) {
  return PRESENCE_OF[f];
}

const PRESENCE_OF = Object.fromEntries(FIELDS.map((f) => [f, presenceOf(f)])) as Record<NumericField, ReturnType<typeof presenceOf>>;
