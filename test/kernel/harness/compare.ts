import { CT_STATUS, type CtStatusName } from '../../../src/ir/fields.js';
import type { ChainCounters, CtEntrySnapshot, CtTuple, SimInput, SimOutcome } from '../../../src/netfilter/api.js';
import type { Policy } from '../../../src/ir/policy.js';
import type { Packet } from '../../../src/netfilter/packet.js';
import { normalizePacket } from '../../../src/netfilter/wire.js';
import { type Family, formatAddress } from '../../../src/util/ip.js';
import { formatFileLine } from '../../../src/util/span.js';
import { formatEntry, formatPacket, formatTuple } from './format.js';
import { OBSERVABLE_STATUS, type SavedChain, natBits } from './observe.js';
import type { KernelStep } from './run.js';

/**
 * Simulator versus kernel: per packet (what left, by which device, with which headers; what
 * was delivered locally), and at the end (conntrack entries, count, rule counters). Every
 * difference becomes a Disagreement with a readable explanation.
 *
 * Where the kernel chooses at random, we compare modulo that choice, explicitly: when SNAT/
 * MASQUERADE gives a connection a new source port (or ICMP id) in both the simulator and the
 * kernel — a clash, or --random — the two ports are recorded as the same binding (PortMap),
 * later inputs addressed to the simulator's port are sent to the kernel's, and kernel output is
 * read back through the map. A port kept in one and changed in the other is a disagreement.
 */
export interface Disagreement {
  readonly kind: 'packet' | 'entry' | 'count' | 'counter';
  /** Where: `packet 3`, `entry tcp src=…`, `filter FORWARD rule 2`. */
  readonly where: string;
  readonly detail: string;
}

// ------------------------------------------------------------------------------------------------
// Port bindings the kernel chose at random

export class PortMap {
  private readonly toKernelMap = new Map<string, number>();
  private readonly toSimMap = new Map<string, number>();

  /**
   * A binding is one connection's: the translated address and port, and the far end it talks
   * to. Two connections may share a translated port toward different far ends, and each side
   * picks its ports on its own, so one simulator port can stand for different kernel ports.
   */
  private static key(family: Family, proto: number, addr: bigint, port: number, peer: bigint, peerPort: number | undefined): string {
    return `${family}|${proto}|${addr}|${port}|${peer}|${peerPort ?? ''}`;
  }

  /**
   * Records that, toward `peer`:`peerPort`, the simulator's `simPort` on `addr` is now the
   * kernel's `kernelPort`. The latest observation wins: a connection that ends and starts again
   * with the same endpoints (a SYN reopening a TIME_WAIT entry) is translated afresh, by both
   * sides, so an earlier binding of either port toward that far end is replaced.
   */
  learn(family: Family, proto: number, addr: bigint, simPort: number, kernelPort: number, peer: bigint, peerPort: number | undefined): void {
    const ks = PortMap.key(family, proto, addr, simPort, peer, peerPort);
    const kk = PortMap.key(family, proto, addr, kernelPort, peer, peerPort);
    const oldKernel = this.toKernelMap.get(ks);
    if (oldKernel !== undefined) this.toSimMap.delete(PortMap.key(family, proto, addr, oldKernel, peer, peerPort));
    const oldSim = this.toSimMap.get(kk);
    if (oldSim !== undefined) this.toKernelMap.delete(PortMap.key(family, proto, addr, oldSim, peer, peerPort));
    this.toKernelMap.set(ks, kernelPort);
    this.toSimMap.set(kk, simPort);
  }

  get size(): number {
    return this.toKernelMap.size;
  }

  /** The other side's number for `port` on `addr` toward `peer`:`peerPort` (unchanged when nothing was learned). */
  port(dir: 'toKernel' | 'toSim', family: Family, proto: number, addr: bigint, port: number | undefined, peer: bigint, peerPort: number | undefined): number | undefined {
    if (port === undefined) return undefined;
    const m = dir === 'toKernel' ? this.toKernelMap : this.toSimMap;
    return m.get(PortMap.key(family, proto, addr, port, peer, peerPort)) ?? port;
  }

  /** A packet with both endpoints (and a quoted packet's) mapped. */
  packet(dir: 'toKernel' | 'toSim', p: Packet): Packet {
    if (this.size === 0) return p;
    const out: Packet = { ...p };
    if (p.sport !== undefined) out.sport = this.port(dir, p.family, p.proto, p.src, p.sport, p.dst, p.dport);
    if (p.dport !== undefined) out.dport = this.port(dir, p.family, p.proto, p.dst, p.dport, p.src, p.sport);
    if (p.icmp) {
      out.icmp = { ...p.icmp };
      // An echo's id plays the port's role on both ends of the binding (no far-end port).
      if (p.icmp.id !== undefined) {
        const viaSrc = this.port(dir, p.family, p.proto, p.src, p.icmp.id, p.dst, undefined);
        out.icmp.id = viaSrc !== p.icmp.id ? viaSrc : this.port(dir, p.family, p.proto, p.dst, p.icmp.id, p.src, undefined);
      }
      if (p.icmp.inner) out.icmp.inner = this.packet(dir, p.icmp.inner);
    }
    return out;
  }

  tuple(dir: 'toKernel' | 'toSim', family: Family, t: CtTuple): CtTuple {
    if (this.size === 0) return t;
    const id = (addr: bigint, peer: bigint) => this.port(dir, family, t.proto, addr, t.icmpId, peer, undefined);
    return {
      ...t,
      ...(t.sport !== undefined ? { sport: this.port(dir, family, t.proto, t.src, t.sport, t.dst, t.dport) } : {}),
      ...(t.dport !== undefined ? { dport: this.port(dir, family, t.proto, t.dst, t.dport, t.src, t.sport) } : {}),
      ...(t.icmpId !== undefined ? { icmpId: id(t.src, t.dst) !== t.icmpId ? id(t.src, t.dst) : id(t.dst, t.src) } : {}),
    };
  }
}

/** The input as the kernel must get it: addressed to the kernel's port where it chose another. */
export function inputForKernel(input: SimInput, map: PortMap): SimInput {
  return map.size === 0 ? input : { ...input, packet: map.packet('toKernel', input.packet) };
}

// ------------------------------------------------------------------------------------------------
// Packets

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

/** Field-by-field differences between two normalized packets (`ttl: sim 64, kernel 63`). */
export function packetDifferences(sim: Packet, kernel: Packet, opts: { ignoreIpId?: boolean } = {}, prefix = ''): string[] {
  const out: string[] = [];
  const cmp = (name: string, a: unknown, b: unknown) => {
    if (a !== b) out.push(`${prefix}${name}: sim ${String(a)}, kernel ${String(b)}`);
  };
  const addr = (name: string, a: bigint, b: bigint) => {
    if (a !== b) out.push(`${prefix}${name}: sim ${formatAddress(sim.family, a)}, kernel ${formatAddress(kernel.family, b)}`);
  };
  cmp('family', sim.family, kernel.family);
  addr('src', sim.src, kernel.src);
  addr('dst', sim.dst, kernel.dst);
  cmp('proto', sim.proto, kernel.proto);
  cmp('ttl', sim.ttl, kernel.ttl);
  cmp('tos', sim.tos, kernel.tos);
  if (!opts.ignoreIpId) cmp('ip id', sim.ipId, kernel.ipId);
  cmp('sport', sim.sport, kernel.sport);
  cmp('dport', sim.dport, kernel.dport);
  cmp('fragment', sim.fragment ?? false, kernel.fragment ?? false);
  if (sim.tcp || kernel.tcp) {
    const a = sim.tcp;
    const b = kernel.tcp;
    if (!a || !b) out.push(`${prefix}tcp header: sim ${a ? 'present' : 'absent'}, kernel ${b ? 'present' : 'absent'}`);
    else {
      cmp('tcp flags', a.flags, b.flags);
      cmp('tcp seq', a.seq, b.seq);
      cmp('tcp ack', a.ack, b.ack);
      cmp('tcp window', a.window, b.window);
      cmp('tcp mss', a.mss, b.mss);
      cmp('tcp wscale', a.wscale, b.wscale);
      cmp('tcp sack-permitted', a.sackPerm ?? false, b.sackPerm ?? false);
    }
  }
  if (sim.icmp || kernel.icmp) {
    const a = sim.icmp;
    const b = kernel.icmp;
    if (!a || !b) out.push(`${prefix}icmp header: sim ${a ? 'present' : 'absent'}, kernel ${b ? 'present' : 'absent'}`);
    else {
      cmp('icmp type', a.type, b.type);
      cmp('icmp code', a.code, b.code);
      cmp('icmp id', a.id, b.id);
      cmp('icmp seq', a.seq, b.seq);
      cmp('icmp mtu', a.mtu, b.mtu);
      if (a.inner && b.inner) out.push(...packetDifferences(a.inner, b.inner, { ignoreIpId: opts.ignoreIpId }, `${prefix}quoted `));
      else if (a.inner || b.inner) out.push(`${prefix}quoted packet: sim ${a.inner ? 'present' : 'absent'}, kernel ${b.inner ? 'present' : 'absent'}`);
    }
  }
  if (hex(sim.payload) !== hex(kernel.payload)) {
    out.push(`${prefix}payload: sim ${sim.payload.length} bytes ${JSON.stringify(Buffer.from(sim.payload).toString('latin1').slice(0, 60))}, kernel ${kernel.payload.length} bytes ${JSON.stringify(Buffer.from(kernel.payload).toString('latin1').slice(0, 60))}`);
  }
  return out;
}

interface Sent {
  readonly device: string;
  readonly packet: Packet;
  /** An answer the host made (REJECT, ICMP error): its IP id is the kernel's choice. */
  readonly answer: boolean;
}

/** What the kernel did with a packet, in the simulator's words (for the report). */
export function kernelVerdict(input: SimInput, k: KernelStep): string {
  if (k.sendError) return `dropped (the socket refused it: ${k.sendError})`;
  if (k.delivered.some((d) => d.indev !== 'lo' || input.ingress.kind !== 'local')) return 'local';
  const out = k.emitted.filter((e) => !isAnswerTo(input.packet, e.packet));
  if (input.ingress.kind === 'local' && (out.length || k.delivered.length)) return `sent (${[...out.map((e) => e.device), ...k.delivered.map(() => 'lo')].join(', ')})`;
  if (out.length) return `forwarded (${out.map((e) => e.device).join(', ')})`;
  return 'dropped';
}

/** A packet that answers `p` rather than carrying it on: an ICMP error quoting it, or a TCP reset sent back. */
function isAnswerTo(p: Packet, q: Packet): boolean {
  if (q.icmp?.inner) return true;
  return !!(q.tcp && q.tcp.flags & 0x04 && !(p.tcp && p.tcp.flags & 0x04));
}

export function compareStep(index: number, sim: SimOutcome, k: KernelStep, map: PortMap): Disagreement[] {
  const where = `packet ${index + 1}${sim.input.line ? ` (line ${sim.input.line})` : ''}`;
  const problems: string[] = [];
  const simSent: Sent[] = [];
  let simLoopback: Packet | undefined;
  if (sim.egress) {
    if (sim.egress.device === 'lo') simLoopback = sim.egress.packet;
    else simSent.push({ device: sim.egress.device, packet: normalizePacket(sim.egress.packet), answer: false });
  }
  for (const r of sim.responses) if (!r.local) simSent.push({ device: r.device, packet: normalizePacket(r.packet), answer: true });
  // Answers to the host itself (REJECT of a locally generated packet) loop back through lo.
  const simLocalAnswers = sim.responses.filter((r) => r.local).map((r) => normalizePacket(r.packet));

  // Learn the kernel's random port choices from the packet this input became.
  if (sim.egress && sim.egress.device !== 'lo') {
    const s = normalizePacket(sim.egress.packet);
    for (const e of k.emitted) {
      if (e.device !== sim.egress.device) continue;
      learnBinding(sim.input.packet, s, e.packet, map);
    }
  }

  if (sim.verdict === 'local' && sim.delivered) {
    for (const d of k.delivered) learnBinding(sim.input.packet, normalizePacket(sim.delivered), d.packet, map);
  }
  // A local packet that loops back through lo (SNAT with a random port on its way to ourselves).
  if (simLoopback) {
    for (const d of k.delivered) if (d.indev === 'lo') learnBinding(sim.input.packet, normalizePacket(simLoopback), d.packet, map);
  }

  const kernelSent = k.emitted.map((e) => ({ device: e.device, packet: map.packet('toSim', e.packet), checksumOk: e.checksumOk }));
  const unmatched = [...kernelSent];
  // A locally generated IPv4 packet with identification 0 gets one from the kernel (raw
  // sockets fill it in): that id is the kernel's choice, not compared.
  const kernelPicksId = sim.input.ingress.kind === 'local' && !sim.input.packet.ipId;
  for (const s of simSent) {
    const candidates = unmatched.filter((x) => x.device === s.device);
    const scored = candidates.map((c) => ({ c, diffs: packetDifferences(s.packet, c.packet, { ignoreIpId: s.answer || kernelPicksId }) })).sort((a, b) => a.diffs.length - b.diffs.length);
    const best = scored[0];
    if (best && best.diffs.length === 0) {
      unmatched.splice(unmatched.indexOf(best.c), 1);
      continue;
    }
    if (best && best.diffs.length <= 3) {
      unmatched.splice(unmatched.indexOf(best.c), 1);
      problems.push(`out of ${s.device}: ${formatPacket(s.packet)}\n    differs from the kernel's: ${best.diffs.join('; ')}`);
      continue;
    }
    problems.push(`the simulator sends out of ${s.device}: ${formatPacket(s.packet)}; the kernel sends no such packet`);
  }
  for (const u of unmatched) problems.push(`the kernel sends out of ${u.device}: ${formatPacket(u.packet)}; the simulator does not`);
  for (const e of k.emitted) if (!e.checksumOk) problems.push(`the kernel's packet out of ${e.device} has a bad checksum (a wire.ts encoding or decoding bug?)`);

  // Local delivery (and locally generated traffic that loops back through lo).
  const kernelLocal = k.delivered.filter((d) => d.indev !== 'lo').map((d) => map.packet('toSim', d.packet));
  const kernelLoop = k.delivered.filter((d) => d.indev === 'lo').map((d) => map.packet('toSim', d.packet));
  const simLocal = sim.verdict === 'local' ? [normalizePacket(sim.delivered ?? sim.input.packet)] : [];
  comparePlain('delivered locally', simLocal, kernelLocal, problems, kernelPicksId);
  comparePlain('looped back through lo and delivered', [...(simLoopback ? [normalizePacket(simLoopback)] : []), ...simLocalAnswers], kernelLoop, problems, kernelPicksId || simLocalAnswers.length > 0);

  if (problems.length === 0) return [];
  const head = `${formatPacket(sim.input.packet)} in ${sim.input.ingress.kind === 'local' ? 'local' : sim.input.ingress.device}: simulator ${sim.verdict}${sim.dropReason ? ` (${sim.dropReason})` : ''}, kernel ${kernelVerdict(sim.input, k)}`;
  const trace = sim.trace.map((t) => `${t.hook}/${t.table}/${t.chain}${t.rule !== undefined ? ` rule ${t.rule + 1}` : ''}: ${t.action}`).join(' → ');
  return [{ kind: 'packet', where, detail: [head, ...problems.map((p) => `  - ${p}`), ...(trace ? [`  simulator path: ${trace}`] : [])].join('\n') }];
}

function comparePlain(what: string, sim: readonly Packet[], kernel: readonly Packet[], problems: string[], ignoreIpId: boolean): void {
  if (sim.length === 0 && kernel.length === 0) return;
  if (sim.length && !kernel.length) {
    problems.push(`the simulator has it ${what}: ${formatPacket(sim[0])}; the kernel does not`);
    return;
  }
  if (!sim.length) {
    problems.push(`the kernel has it ${what}: ${formatPacket(kernel[0])}; the simulator does not`);
    return;
  }
  const d = packetDifferences(sim[0], kernel[0], { ignoreIpId });
  if (d.length) problems.push(`${what}, but differently: ${d.join('; ')}`);
}

/**
 * When both sides rewrote the source port (or echo id) of the same packet to different values,
 * on the same address, that is the kernel's random choice: remember the pair.
 */
function learnBinding(input: Packet, sim: Packet, kernel: Packet, map: PortMap): void {
  if (sim.family !== kernel.family || sim.proto !== kernel.proto || sim.src !== kernel.src || sim.dst !== kernel.dst) return;
  if (sim.sport !== undefined && kernel.sport !== undefined && sim.sport !== kernel.sport && sim.sport !== input.sport && kernel.sport !== input.sport) {
    map.learn(sim.family, sim.proto, sim.src, sim.sport, kernel.sport, sim.dst, sim.dport);
  }
  const si = sim.icmp?.id;
  const ki = kernel.icmp?.id;
  if (si !== undefined && ki !== undefined && si !== ki && si !== input.icmp?.id && ki !== input.icmp?.id) {
    map.learn(sim.family, sim.proto, sim.src, si, ki, sim.dst, undefined);
  }
}

// ------------------------------------------------------------------------------------------------
// Conntrack entries

export function statusNames(status: number): string[] {
  const names: string[] = [];
  if (!(status & CT_STATUS.SEEN_REPLY)) names.push('UNREPLIED');
  if (status & CT_STATUS.ASSURED) names.push('ASSURED');
  for (const n of ['SRC_NAT', 'DST_NAT'] as CtStatusName[]) if (status & CT_STATUS[n]) names.push(n);
  return names;
}

function tupleKey(family: Family, t: CtTuple): string {
  return `${family} ${formatTuple(t, family)} proto=${t.proto}`;
}

export interface EntryCompareOptions {
  /** Allowed difference of `timeout` in seconds (the kernel's clock runs on while we read). Default 2. */
  readonly timeoutTolerance?: number;
}

export function compareEntries(sim: readonly CtEntrySnapshot[], kernel: readonly CtEntrySnapshot[], map: PortMap, opts: EntryCompareOptions = {}): Disagreement[] {
  const tol = opts.timeoutTolerance ?? 2;
  const out: Disagreement[] = [];
  const kernelByKey = new Map<string, CtEntrySnapshot>();
  for (const k of kernel) {
    const mapped = { ...k, original: map.tuple('toSim', k.family, k.original), reply: map.tuple('toSim', k.family, k.reply) };
    kernelByKey.set(tupleKey(k.family, mapped.original), mapped);
  }
  for (const s of sim) {
    const key = tupleKey(s.family, s.original);
    const k = kernelByKey.get(key);
    const where = `entry ${formatTuple(s.original, s.family)}`;
    if (!k) {
      out.push({ kind: 'entry', where, detail: `the simulator has ${formatEntry(s, statusNames)}; the kernel has no entry with this original tuple` });
      continue;
    }
    kernelByKey.delete(key);
    const diffs: string[] = [];
    // Fields the simulator marks as the kernel's random choice compare as "any value".
    const wild = (t: CtTuple): CtTuple => ({
      ...t,
      ...(s.randomized?.includes('sport') ? { sport: 0 } : {}),
      ...(s.randomized?.includes('dport') ? { dport: 0 } : {}),
      ...(s.randomized?.includes('icmpId') ? { icmpId: 0 } : {}),
    });
    if (tupleKey(s.family, wild(s.reply)) !== tupleKey(k.family, wild(k.reply))) diffs.push(`reply tuple: sim ${formatTuple(s.reply, s.family)}, kernel ${formatTuple(k.reply, k.family)}`);
    if ((s.tcpState ?? '') !== (k.tcpState ?? '')) diffs.push(`state: sim ${s.tcpState ?? '-'}, kernel ${k.tcpState ?? '-'}`);
    // A listing shows no NAT flags: both sides' SRC_NAT/DST_NAT are read off the tuples the
    // same way (an ICMP id moved by DNAT --random reads as SRC_NAT in either; the simulator's
    // real bits are checked through --ctstate SNAT/DNAT matches and their counters).
    const NAT = CT_STATUS.SRC_NAT | CT_STATUS.DST_NAT;
    const ms = ((s.status & ~NAT) | natBits(s.original, s.reply)) & OBSERVABLE_STATUS & ~CT_STATUS.CONFIRMED;
    const mk = k.status & OBSERVABLE_STATUS & ~CT_STATUS.CONFIRMED;
    if (ms !== mk) diffs.push(`status: sim [${statusNames(ms).join(',')}], kernel [${statusNames(mk).join(',')}]`);
    if (s.mark !== k.mark) diffs.push(`mark: sim ${s.mark}, kernel ${k.mark}`);
    if (s.zone !== k.zone) diffs.push(`zone: sim ${s.zone}, kernel ${k.zone}`);
    if ((s.helper ?? '') !== (k.helper ?? '')) diffs.push(`helper: sim ${s.helper ?? '-'}, kernel ${k.helper ?? '-'}`);
    if (Math.abs(s.timeout - k.timeout) > tol) diffs.push(`timeout: sim ${s.timeout}s, kernel ${k.timeout}s (tolerance ${tol}s)`);
    if (diffs.length) out.push({ kind: 'entry', where, detail: diffs.join('; ') });
  }
  for (const k of kernelByKey.values()) {
    out.push({ kind: 'entry', where: `entry ${formatTuple(k.original, k.family)}`, detail: `the kernel has ${formatEntry(k, statusNames)}; the simulator has no entry with this original tuple` });
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// Rule counters

/**
 * Compares the simulator's per-rule counters with iptables-save's.
 *
 * With the policy at hand and every emitted rule tagged with its source `file:line` (the
 * emitter's `-m comment`), each policy rule is matched to the iptables rules carrying its tag
 * and its real target — not the jumps into the auxiliary chains the emitter builds for
 * multi-valued matches, which count every packet that enters the test — and their counters are
 * added up: a cross-product split, or the final rule of an auxiliary chain, counts exactly the
 * packets the policy rule matched. Without usable tags (rules written by hand, or two rules on
 * one source line) counters compare by position, one iptables rule per policy rule.
 */
export function compareCounters(sim: readonly ChainCounters[], kernel: readonly SavedChain[], notes: string[] = [], policy?: Policy): Disagreement[] {
  const out: Disagreement[] = [];
  const simByKey = new Map(sim.map((c) => [`${c.family}/${c.table}/${c.chain}`, c]));
  const tagged = policy ? tagTotals(policy, kernel, sim) : new Map<string, { packets: number; bytes: number }[]>();
  for (const k of kernel) {
    const key = `${k.family}/${k.table}/${k.chain}`;
    const s = simByKey.get(key);
    const where = `${k.family === 'ipv6' ? 'ip6tables' : 'iptables'} ${k.table} ${k.chain}`;
    if (!s) {
      if (!tagged.has(`${k.family}/${k.table}`) && (k.rules.some((r) => r.packets > 0) || (k.policy?.packets ?? 0) > 0)) {
        notes.push(`${where}: no simulator counters (a chain the emitter added?)`);
      }
      continue;
    }
    if (k.policy && s.policy && (k.policy.packets !== s.policy[0] || k.policy.bytes !== s.policy[1])) {
      out.push({ kind: 'counter', where: `${where} policy`, detail: `sim ${s.policy[0]} packets ${s.policy[1]} bytes, kernel ${k.policy.packets} packets ${k.policy.bytes} bytes` });
    }
    const byTag = tagged.get(key);
    const groups = byTag ?? groupRules(k, s.rules.length);
    if (!groups) {
      notes.push(`${where}: ${k.rules.length} iptables rules for ${s.rules.length} policy rules, not compared`);
      continue;
    }
    groups.forEach((g, i) => {
      const [sp, sb] = s.rules[i];
      if (g.packets !== sp || g.bytes !== sb) {
        const text = 'text' in g ? ` (${(g as { text: string }).text})` : byTag ? ` (rules tagged ${ruleTag(policy!, k, i)})` : '';
        out.push({ kind: 'counter', where: `${where} rule ${i + 1}`, detail: `sim ${sp} packets ${sb} bytes, kernel ${g.packets} packets ${g.bytes} bytes${text}` });
      }
    });
  }
  return out;
}

function ruleTag(policy: Policy, k: { family: Family; table: string; chain: string }, i: number): string | undefined {
  const rule = policy.rulesets[k.family].tables.find((t) => t.name === k.table)?.chains.find((c) => c.name === k.chain)?.rules[i];
  return rule ? formatFileLine(rule.span) : undefined;
}

/**
 * Per policy chain, the kernel counters of each of its rules, found by source tag — or nothing
 * for a table where the tags cannot tell rules apart.
 */
function tagTotals(policy: Policy, kernel: readonly SavedChain[], sim: readonly ChainCounters[]): Map<string, { packets: number; bytes: number }[]> {
  const out = new Map<string, { packets: number; bytes: number }[]>();
  for (const family of ['ipv4', 'ipv6'] as const) {
    for (const table of policy.rulesets[family].tables) {
      const tags = table.chains.flatMap((c) => c.rules.map((r) => formatFileLine(r.span)));
      const kernelChains = kernel.filter((k) => k.family === family && k.table === table.name);
      const kernelRules = kernelChains.flatMap((c) => c.rules);
      // Tags must name one policy rule each, and every kernel rule must carry one.
      if (new Set(tags).size !== tags.length || kernelRules.some((r) => r.comment === undefined)) continue;
      const ownChains = new Set(sim.filter((c) => c.family === family && c.table === table.name).map((c) => c.chain));
      const aux = new Set(kernelChains.map((c) => c.chain).filter((c) => !ownChains.has(c)));
      const totals = new Map<string, { packets: number; bytes: number }>();
      for (const r of kernelRules) {
        // The target is the last -j/-g (a quoted comment before it may contain anything).
        const target = [...r.text.matchAll(/\s-[jg]\s+(\S+)/g)].at(-1)?.[1];
        if (target !== undefined && aux.has(target)) continue;
        const tag = tags.find((t) => r.comment === t || r.comment!.startsWith(`${t}: `));
        if (tag === undefined) continue;
        const sum = totals.get(tag) ?? { packets: 0, bytes: 0 };
        sum.packets += r.packets;
        sum.bytes += r.bytes;
        totals.set(tag, sum);
      }
      out.set(`${family}/${table.name}`, []);
      for (const c of table.chains) {
        out.set(
          `${family}/${table.name}/${c.name}`,
          c.rules.map((r) => totals.get(formatFileLine(r.span)) ?? { packets: 0, bytes: 0 }),
        );
      }
    }
  }
  return out;
}

function groupRules(k: SavedChain, wanted: number): { packets: number; bytes: number; text: string }[] | undefined {
  if (k.rules.length === wanted) return k.rules.map((r) => ({ packets: r.packets, bytes: r.bytes, text: r.text }));
  const groups: { packets: number; bytes: number; text: string; tag?: string }[] = [];
  for (const r of k.rules) {
    const tag = r.comment?.split(' ')[0];
    const last = groups.at(-1);
    if (last && tag !== undefined && last.tag === tag) {
      last.packets += r.packets;
      last.bytes += r.bytes;
    } else groups.push({ packets: r.packets, bytes: r.bytes, text: r.text, ...(tag !== undefined ? { tag } : {}) });
  }
  return groups.length === wanted ? groups : undefined;
}

// ------------------------------------------------------------------------------------------------
// Report

export function formatDisagreements(ds: readonly Disagreement[]): string {
  if (ds.length === 0) return 'simulator and kernel agree';
  return ds.map((d) => `✗ ${d.where}: ${d.detail}`).join('\n');
}
