import { CT_HELPER, CT_STATE, CT_STATUS, type NumericField, PROTO, TCP_FLAG } from '../../ir/fields.js';
import { ADDRTYPE } from '../../kinds/match/addrtype.js';
import { protoName } from '../../kinds/match/proto.js';
import { type IntervalSet, complement, size, subtract, union } from '../../util/intervals.js';
import { type Family, formatAddress, familyMax, intervalToPrefixes } from '../../util/ip.js';
import { FIELDS, IIF_SLOT, OIF_SLOT, SLOT_COUNT, absentValue, fieldMax } from '../model/fields.js';
import { type Box, type Space, classPinned, type PacketClass } from './space.js';

/**
 * A cube as the user reads it: in the DSL's flow syntax where the syntax has a word for the
 * field (`tcp saddr 10.0.0.0/8 daddr 192.0.2.10 dport { 22, 443 } iif eth0 ct state new`),
 * then, in brackets, what is not a header: the environment's choices, the answers of
 * unmodelled tests, relations between fields. Slots that span their whole domain (or that the
 * packet class pins, such as ports of ICMP) are left out.
 */
/**
 * How to say common sets briefly: values that cannot occur anyway (addresses the kernel drops
 * as martian before any rule would matter) are "don't care" when printing an address set, and
 * some sets have names (this host's addresses, what routes out of a device, the TCP flags
 * conntrack accepts).
 */
export interface CubeNames {
  readonly dontCare?: Partial<Record<'saddr' | 'daddr', IntervalSet>>;
  /** Sets that say nothing for these fields (every connection the rulesets can make): not printed. */
  readonly uninformative?: Partial<Record<NumericField, IntervalSet>>;
  readonly daddr?: readonly { readonly set: IntervalSet; readonly text: string }[];
  readonly flags?: readonly { readonly set: IntervalSet; readonly text: string }[];
}

export interface CubeText {
  /** The header part, parseable as a flow when it uses flow words only. */
  readonly flow: string;
  /** Conditions beyond headers (`when recent "ssh" (update) matches`, `saddr = daddr`). */
  readonly conditions: readonly string[];
  /** Field → printed value, for JSON. */
  readonly fields: Readonly<Record<string, string>>;
}

const STATE_NAMES = Object.entries(CT_STATE) as [string, number][];
const FLAG_NAMES = Object.entries(TCP_FLAG) as [string, number][];

function isFull(space: Space, slot: number, s: IntervalSet): boolean {
  return s.length === 1 && s[0][0] === 0n && s[0][1] >= space.top(slot);
}

/** A set printed as `x`, `{ x, y }` or `!= …` when the complement is shorter. */
function setText(items: string[], complementItems: string[] | undefined, keyword: string): string {
  const one = (xs: string[]) => (xs.length === 1 ? xs[0] : `{ ${xs.join(', ')} }`);
  if (complementItems && complementItems.length > 0 && complementItems.length < items.length) return `${keyword} != ${one(complementItems)}`;
  return `${keyword} ${one(items)}`;
}

function addrItems(family: Family, set: IntervalSet): string[] {
  const out: string[] = [];
  for (const iv of set) {
    const ps = intervalToPrefixes(family, iv);
    if (ps.length <= 2) out.push(...ps.map((p) => (p.len === (family === 'ipv4' ? 32 : 128) ? formatAddress(family, p.addr) : `${formatAddress(family, p.addr)}/${p.len}`)));
    else out.push(`${formatAddress(family, iv[0])}-${formatAddress(family, iv[1])}`);
  }
  return out;
}

function numItems(set: IntervalSet): string[] {
  return set.map(([lo, hi]) => (lo === hi ? String(lo) : `${lo}-${hi}`));
}

function flagsName(v: bigint): string {
  const names = FLAG_NAMES.filter(([, bit]) => (Number(v) & bit) !== 0).map(([n]) => n.toLowerCase());
  return names.length ? names.join(',') : 'none';
}

/** An 8-bit set as `flags VALUE / MASK` when it is exactly the values with some bits fixed. */
function flagsText(set: IntervalSet): string {
  const values: bigint[] = [];
  for (const [lo, hi] of set) for (let v = lo; v <= hi && values.length <= 256; v++) values.push(v);
  let fixed = 0xffn;
  for (const v of values) fixed &= ~(v ^ values[0]) & 0xffn;
  const value = values[0] & fixed;
  const free = 8 - fixed.toString(2).replace(/0/g, '').length;
  if (BigInt(values.length) === 1n << BigInt(free)) return `flags ${flagsName(value)} / ${flagsName(fixed)}`;
  return `flags { ${values.map(flagsName).join(', ')} }`;
}

const FIELD_WORD: Partial<Record<NumericField, string>> = {
  ttl: 'ttl',
  length: 'length',
  tos: 'tos',
  macsrc: 'ether saddr',
  ctmark: 'ct mark',
  ctstatus: 'ct status',
  ctdir: 'ct direction',
  ctproto: 'ct proto',
  ctorigsrc: 'ct original saddr',
  ctorigdst: 'ct original daddr',
  ctreplsrc: 'ct reply saddr',
  ctrepldst: 'ct reply daddr',
  ctorigsrcport: 'ct original sport',
  ctorigdstport: 'ct original dport',
  ctreplsrcport: 'ct reply sport',
  ctrepldstport: 'ct reply dport',
  cthelper: 'ct helper',
  uid: 'meta skuid',
  gid: 'meta skgid',
  srctype: 'saddr type',
  dsttype: 'daddr type',
  icmpcode: 'code',
};

/** Names of interface classes: exact names as they are, a wildcard class as `eth+`, the rest as `*`. */
function ifaceName(space: Space, index: bigint, wildcards: readonly string[]): string {
  const n = space.ifaces.nameOf(Number(index));
  if (n === '') return '""';
  const w = wildcards.filter((p) => n.startsWith(p)).sort((a, b) => b.length - a.length)[0];
  if (w !== undefined && !space.ifaces.indicesOf([n]).length) return `${w}+`;
  return n;
}

export function cubeText(
  space: Space,
  box: Box,
  cls: PacketClass | undefined,
  wildcards: readonly string[],
  describeExtra: (slot: number, set: IntervalSet) => string | undefined,
  names: CubeNames = {},
): CubeText {
  const fam = space.family;
  const words: string[] = [];
  const fields: Record<string, string> = {};
  const conditions: string[] = [];
  const put = (name: string, text: string) => {
    words.push(text);
    fields[name] = text;
  };
  const get = (slot: number): IntervalSet | undefined => {
    const s = box[slot];
    if (!s || isFull(space, slot, s)) return undefined;
    if (cls && classPinned(space, cls, slot, s)) return undefined;
    const plain = slot < FIELDS.length ? names.uninformative?.[FIELDS[slot]] : undefined;
    if (plain && sameSet(withoutAbsent(s, absentValue(FIELDS[slot], fam)), withoutAbsent(plain, absentValue(FIELDS[slot], fam)))) return undefined;
    return s;
  };
  // Protocol first, as flows read.
  const proto = get(FIELDS.indexOf('proto'));
  if (proto) {
    const names = proto.flatMap(([lo, hi]) => (hi - lo < 8n ? Array.from({ length: Number(hi - lo + 1n) }, (_, i) => protoName(Number(lo) + i)) : [`${lo}-${hi}`]));
    const single = names.length === 1 && ['tcp', 'udp', 'icmp', 'icmpv6', 'sctp', 'udplite', 'dccp', 'esp', 'ah', 'gre'].includes(names[0]);
    if (single) put('proto', names[0]);
    else {
      const comp = complement(proto, 255n);
      const compNames = comp.length <= 3 && size(comp) <= 4n ? comp.flatMap(([lo, hi]) => Array.from({ length: Number(hi - lo + 1n) }, (_, i) => protoName(Number(lo) + i))) : undefined;
      put('proto', setText(names, compNames, 'proto'));
    }
  }
  for (let slot = 0; slot < FIELDS.length; slot++) {
    const f = FIELDS[slot];
    if (f === 'proto' || f === 'dscp' || f === 'mark' || f === 'pkttype' || f === 'fragment') continue;
    const s = get(slot);
    if (!s) continue;
    const abs = absentValue(f, fam);
    const real = s.filter(([lo]) => lo < abs).map(([lo, hi]) => [lo, hi >= abs ? abs - 1n : hi] as const);
    if (real.length === 0) continue;
    switch (f) {
      case 'saddr':
      case 'daddr': {
        // Values that cannot occur widen the set if that makes it simpler.
        const care = names.dontCare?.[f];
        const wide = care ? union(real, care) : real;
        const max = familyMax(fam);
        if (wide.length === 1 && wide[0][0] === 0n && wide[0][1] === max) break;
        const named = f === 'daddr' ? names.daddr?.filter((n) => equalsMod(n.set, real, care ?? [])) : undefined;
        if (named?.length) {
          conditions.push(named[0].text);
          fields[f] = named[0].text;
          break;
        }
        const shown = care ? fillGaps(real, care) : real;
        const comp = care ? fillGaps(subtract(complement(real, max), care, max), care) : complement(real, max);
        put(f, setText(addrItems(fam, shown), addrItems(fam, comp.length ? comp : complement(real, max)), f));
        break;
      }
      case 'sport':
      case 'dport':
        put(f, setText(numItems(real), numItems(complement(real, 0xffffn)), f));
        break;
      case 'ctstate': {
        const names = STATE_NAMES.filter(([, v]) => real.some(([lo, hi]) => BigInt(v) >= lo && BigInt(v) <= hi)).map(([n]) => n.toLowerCase());
        put('ct state', `ct state ${names.join(',')}`);
        break;
      }
      case 'tcpflags': {
        const named = names.flags?.find((n) => n.set.length === real.length && n.set.every(([lo, hi], i) => lo === real[i][0] && hi === real[i][1]));
        if (named) {
          conditions.push(named.text);
          fields.flags = named.text;
        } else put('flags', flagsText(real));
        break;
      }
      case 'ttl':
        // Forwarding needs a TTL above 1 on both sides alike: not worth saying.
        if (real.length === 1 && real[0][0] === 2n && real[0][1] === 255n) break;
        put(f, setText(numItems(real), numItems(complement(real, 255n)), 'ttl'));
        break;
      case 'srctype':
      case 'dsttype':
        put(f, addrTypeText(real, f === 'srctype' ? 'saddr type' : 'daddr type'));
        break;
      case 'ctstatus':
        put(f, statusText(real));
        break;
      case 'cthelper': {
        const byId = new Map(Object.entries(CT_HELPER).map(([n, id]) => [BigInt(id), n]));
        put(f, setText(real.flatMap(([lo, hi]) => Array.from({ length: Number(hi - lo + 1n) }, (_, i) => `"${byId.get(lo + BigInt(i)) ?? lo + BigInt(i)}"`)), undefined, 'ct helper'));
        break;
      }
      case 'macsrc': {
        const mac = (v: bigint) => v.toString(16).padStart(12, '0').replace(/(..)(?!$)/g, '$1:');
        const items = (set: IntervalSet) => set.map(([lo, hi]) => (lo === hi ? mac(lo) : `${mac(lo)}-${mac(hi)}`));
        put(f, setText(items(real), items(complement(real, fieldMax(f, fam))), 'ether saddr'));
        break;
      }
      case 'icmptype':
        put('type', setText(numItems(real), numItems(complement(real, 255n)), proto && proto[0][0] === BigInt(PROTO.icmpv6) ? 'icmpv6 type' : 'type'));
        break;
      default: {
        const word = FIELD_WORD[f] ?? f;
        put(f, setText(numItems(real), numItems(complement(real, fieldMax(f, fam))), word));
      }
    }
  }
  const iif = box[IIF_SLOT];
  if (cls?.local) put('iif', 'from a local process');
  else if (iif && !isFull(space, IIF_SLOT, iif)) {
    const all: IntervalSet = space.ifaces.nonEmpty();
    const names = (set: IntervalSet) => set.flatMap(([lo, hi]) => Array.from({ length: Number(hi - lo + 1n) }, (_, i) => ifaceName(space, lo + BigInt(i), wildcards)));
    const inSet = names(iif.filter(([, hi]) => hi > 0n).map(([lo, hi]) => [lo === 0n ? 1n : lo, hi] as const));
    const rest = names(complement(iif, space.top(IIF_SLOT)).filter(([, hi]) => hi > 0n).map(([lo, hi]) => [lo === 0n ? 1n : lo, hi] as const));
    if (inSet.length && (rest.length === 0 || all.length === 0)) {
      // every device
    } else put('iif', setText(inSet, rest.includes('*') ? undefined : rest, 'iif'));
  }
  void OIF_SLOT;
  for (let slot = SLOT_COUNT; slot < space.size; slot++) {
    const s = box[slot];
    if (!s || isFull(space, slot, s)) continue;
    const d = describeExtra(slot, s);
    if (d) conditions.push(d);
  }
  const frag = box[FIELDS.indexOf('fragment')];
  if (frag && frag.length === 1 && frag[0][0] === 1n) {
    conditions.push('non-first fragments');
    fields.fragment = 'non-first fragments';
  }
  return { flow: words.join(' ') || 'any packet', conditions, fields };
}

/** a and b are the same set once the don't-care values are ignored. */
function equalsMod(a: IntervalSet, b: IntervalSet, care: IntervalSet): boolean {
  const x = union(a, care);
  const y = union(b, care);
  return x.length === y.length && x.every(([lo, hi], i) => lo === y[i][0] && hi === y[i][1]);
}

/** A set with the gaps between its intervals filled where the gap is all don't-care values. */
function fillGaps(set: IntervalSet, care: IntervalSet): IntervalSet {
  const out: [bigint, bigint][] = [];
  for (const [lo, hi] of set) {
    const last = out[out.length - 1];
    if (last && lo > last[1] + 1n) {
      const gap: IntervalSet = [[last[1] + 1n, lo - 1n]];
      if (subtract(gap, care, lo).length === 0) {
        last[1] = hi;
        continue;
      }
    }
    if (last && lo <= last[1] + 1n) last[1] = hi > last[1] ? hi : last[1];
    else out.push([lo, hi]);
  }
  return out;
}

function sameSet(a: IntervalSet, b: IntervalSet): boolean {
  return a.length === b.length && a.every(([lo, hi], i) => lo === b[i][0] && hi === b[i][1]);
}

function withoutAbsent(set: IntervalSet, abs: bigint): IntervalSet {
  return subtract(set, [[abs, abs]], abs);
}

/** Address types by name: the types whose bit value lies in the set (`daddr type { local, broadcast }`). */
function addrTypeText(set: IntervalSet, word: string): string {
  const all = Object.entries(ADDRTYPE) as [string, number][];
  const has = (bit: number) => set.some(([lo, hi]) => BigInt(bit) >= lo && BigInt(bit) <= hi);
  const yes = all.filter(([, bit]) => has(bit)).map(([n]) => n.toLowerCase());
  const no = all.filter(([, bit]) => !has(bit)).map(([n]) => n.toLowerCase());
  return setText(yes, no, word);
}

/**
 * ct status as the bits it insists on (`ct status seen-reply`, any of them set as iptables
 * reads it; `ct status != assured`, none set) when the set is exactly that, else the values.
 */
function statusText(set: IntervalSet): string {
  const values: bigint[] = [];
  for (const [lo, hi] of set) for (let v = lo; v <= hi && values.length <= 2048; v++) values.push(v);
  const width = 0x3ffn;
  let fixed = width;
  for (const v of values) fixed &= ~(v ^ values[0]) & width;
  const free = (width & ~fixed).toString(2).replace(/0/g, '').length;
  const names = (bits: bigint) => (Object.entries(CT_STATUS) as [string, number][]).filter(([, b]) => (bits & BigInt(b)) !== 0n).map(([n]) => n.toLowerCase().replace('_', '-'));
  if (values.length <= 2048 && BigInt(values.length) === 1n << BigInt(free) && values.every((v) => v <= width)) {
    const on = values[0] & fixed;
    const off = fixed & ~on & width;
    const parts = [...names(on).map((n) => `ct status ${n}`), ...(off ? [`ct status != ${names(off).join(',')}`] : [])];
    if (parts.length) return parts.join(' ');
  }
  return setText(numItems(set), undefined, 'ct status');
}
