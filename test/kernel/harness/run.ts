import type { SimInput } from '../../../src/netfilter/api.js';
import type { Packet } from '../../../src/netfilter/packet.js';
import { type Decoded, decodeEthernet, decodeIp, encodeFrame, encodeIp, fromHex, toHex } from '../../../src/netfilter/wire.js';
import { type Family, formatAddress } from '../../../src/util/ip.js';
import type { AgentEvent } from './agent.js';
import { type ParsedEntry, type SavedChain, parseConntrackList, parseSave } from './observe.js';
import { NFLOG_PREFIX, type Topology, fwTap, peerTap } from './topology.js';

/**
 * Replays simulator inputs on the kernel and records what happened to each one.
 *
 * Each input is sent at its time `t` (seconds after the first send; the replay waits for real,
 * so scenarios keep their spans short and use shortened timeouts to see expiry), then the
 * agent's marker stages guarantee that everything the packet caused has been captured before
 * the next one goes: no sleeping in place of synchronisation.
 */
export interface Emitted {
  /** Firewall device the packet left by. */
  readonly device: string;
  readonly packet: Packet;
  readonly checksumOk: boolean;
  readonly notes: readonly string[];
}

export interface Delivered {
  /** The packet as the local socket would get it (after every INPUT hook and conntrack confirm). */
  readonly packet: Packet;
  /** Device it came in by (`lo` for locally generated traffic to a local address). */
  readonly indev?: string;
}

export interface KernelStep {
  readonly input: SimInput;
  /** Everything that left the firewall while this input was processed: the input itself (forwarded/sent) and any answer (REJECT, ICMP error). */
  readonly emitted: readonly Emitted[];
  readonly delivered: readonly Delivered[];
  /** Captures that were not IP or could not be decoded, described. */
  readonly other: readonly string[];
  /** A locally generated packet the socket refused before any hook (errno name, e.g. ENETUNREACH). */
  readonly sendError?: string;
}

export interface KernelFinal {
  readonly entries: readonly ParsedEntry[];
  readonly count: number;
  readonly expectations: readonly string[];
  readonly chains: readonly SavedChain[];
  /** Raw `iptables-save -c` text per family that had rules loaded. */
  readonly saved: Partial<Record<Family, string>>;
}

export interface KernelRun {
  readonly steps: readonly KernelStep[];
  readonly final: KernelFinal;
  /** Captures between steps: must be empty, or something sent traffic we did not cause. */
  readonly stray: readonly string[];
}

/**
 * What a scenario sends: a fixed input, or one built from what earlier inputs became (a reply
 * to a port the NAT chose). `out(i)` is the packet input i left the host as — the simulator's
 * in a differential run, the kernel's otherwise — so a reply is written once for both.
 */
export type InputSpec = SimInput | ((ctx: InputContext) => SimInput);

export interface InputContext {
  /** The packet input `i` (0-based) left the host as, if it left. */
  out(i: number): Packet | undefined;
  /** Where it went: the device it left by, `local` when it was delivered to the host itself. */
  outDevice(i: number): string | undefined;
}

export function resolveInput(spec: InputSpec, ctx: InputContext): SimInput {
  return typeof spec === 'function' ? spec(ctx) : spec;
}

/**
 * The packet an input became on the wire, and where: of what left during its step, the one that
 * carries the input on (same protocol and payload; not an ICMP message the host made about it,
 * nor a reset it answered with), or its local delivery.
 */
export function carriedOnWith(step: KernelStep): { packet: Packet; device: string } | undefined {
  const p = step.input.packet;
  // TCP payloads may be rewritten on the way (FTP PORT behind NAT): TCP is told by its flags.
  const same = (q: Packet) =>
    q.proto === p.proto &&
    (p.tcp && q.tcp
      ? q.tcp.flags === p.tcp.flags
      : p.icmp && q.icmp
        ? q.icmp.type === p.icmp.type && !q.icmp.inner === !p.icmp.inner
        : Buffer.compare(Buffer.from(q.payload), Buffer.from(p.payload)) === 0);
  const fwd = step.emitted.find((e) => same(e.packet));
  if (fwd) return { packet: fwd.packet, device: fwd.device };
  // Delivered locally, it must be the input too: a REJECT of a local packet delivers the
  // host's own ICMP error through lo, which carries nothing on.
  const d = step.delivered.find((x) => same(x.packet));
  return d ? { packet: d.packet, device: 'local' } : undefined;
}

export function carriedOn(step: KernelStep): Packet | undefined {
  return carriedOnWith(step)?.packet;
}

export interface ReplayOptions {
  /** Refuse scenarios whose inputs span more real time than this (seconds). Default 20. */
  readonly maxSpan?: number;
  /** Families whose counters to read (those with rules loaded). Default both. */
  readonly families?: readonly Family[];
  /** Per-step marker timeout in ms. */
  readonly stepTimeoutMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `input.t` (seconds after `t0`) on a real clock that started at `startMs`. */
export async function waitUntilDue(input: SimInput, t0: number, startMs: number): Promise<void> {
  const wait = startMs + (input.t - t0) * 1000 - performance.now();
  if (wait > 0) await sleep(wait);
}

/** Time of the first input (a computed input is only resolved at its turn: its time must not come first). */
export function firstTime(specs: readonly InputSpec[]): number {
  const first = specs[0];
  return first === undefined || typeof first === 'function' ? 0 : first.t;
}

export function checkSpan(specs: readonly InputSpec[], maxSpan = 20): void {
  const fixed = specs.filter((s): s is SimInput => typeof s !== 'function');
  const t0 = firstTime(specs);
  const span = Math.max(t0, ...fixed.map((s) => s.t)) - t0;
  if (span > maxSpan) throw new Error(`inputs span ${span}s of real time; the kernel replay allows ${maxSpan}s (shorten the timeouts with sysctls instead)`);
}

export async function replay(topo: Topology, specs: readonly InputSpec[], opts: ReplayOptions = {}): Promise<KernelRun> {
  checkSpan(specs, opts.maxSpan);
  const steps: KernelStep[] = [];
  const ctx: InputContext = {
    out: (i) => (steps[i] ? carriedOn(steps[i]) : undefined),
    outDevice: (i) => (steps[i] ? carriedOnWith(steps[i])?.device : undefined),
  };
  const t0 = firstTime(specs);
  const stray: string[] = [];
  const noise = await topo.agent.drain();
  stray.push(...noise.map((e) => describeEvent(topo, e)));
  const start = performance.now();
  for (const spec of specs) {
    const input = resolveInput(spec, ctx);
    await waitUntilDue(input, t0, start);
    steps.push(await stepOnKernel(topo, input, opts.stepTimeoutMs));
  }
  stray.push(...(await topo.agent.drain()).map((e) => describeEvent(topo, e)));
  return { steps, final: snapshot(topo, opts.families), stray };
}

/** Sends one input and returns what it caused, decoded. */
export async function stepOnKernel(topo: Topology, input: SimInput, timeoutMs = 2000): Promise<KernelStep> {
  const r = await sendOne(topo, input, timeoutMs);
  const step = classify(topo, input, r.events);
  return r.sendError ? { ...step, sendError: r.sendError } : step;
}

/**
 * The Ethernet destination a sender on the link uses for a broadcast or multicast IP
 * destination (ip_eth_mc_map / ipv6_eth_mc_map, the all-ones address for broadcasts): the
 * kernel then sees the packet as PACKET_BROADCAST / PACKET_MULTICAST, as the simulator
 * assumes from the IP destination. Undefined for unicast (the firewall's own MAC).
 */
function frameDestination(topo: Topology, p: Packet): Uint8Array | undefined {
  if (p.family === 'ipv4') {
    const d = Number(p.dst);
    const broadcast =
      d === 0xffffffff ||
      topo.host.interfaces.some((i) =>
        i.addresses.some((a) => a.family === 'ipv4' && a.prefixLen < 31 && (Number(a.addr) | (0xffffffff >>> a.prefixLen)) >>> 0 === d),
      );
    if (broadcast) return Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
    if (d >>> 28 === 0xe) return Uint8Array.of(0x01, 0x00, 0x5e, (d >>> 16) & 0x7f, (d >>> 8) & 0xff, d & 0xff);
    return undefined;
  }
  if (p.dst >> 120n !== 0xffn) return undefined;
  const low = Number(p.dst & 0xffffffffn);
  return Uint8Array.of(0x33, 0x33, low >>> 24, (low >>> 16) & 0xff, (low >>> 8) & 0xff, low & 0xff);
}

/** Sends one input the way it enters the host and waits until its effects are captured. */
export async function sendOne(topo: Topology, input: SimInput, timeoutMs = 2000): Promise<{ events: AgentEvent[]; sendError?: string }> {
  const outward: [string, string][] = [...topo.links.values()].map((l) => [fwTap(l.device), peerTap(l.device)]);
  outward.push([fwTap('lo'), fwTap('lo')]);
  const p = input.packet;
  if (input.ingress.kind === 'local') {
    const via = p.family === 'ipv4' ? 'local4' : 'local6';
    return topo.agent.step({ via, hex: toHex(encodeIp(p)), dst: formatAddress(p.family, p.dst) }, [outward], timeoutMs);
  }
  const link = topo.link(input.ingress.device);
  const frame = encodeFrame(p, frameDestination(topo, p) ?? link.fwMac, link.peerMac);
  return topo.agent.step({ via: peerTap(link.device), hex: toHex(frame) }, [[[peerTap(link.device), fwTap(link.device)]], outward], timeoutMs);
}

function classify(topo: Topology, input: SimInput, events: readonly AgentEvent[]): KernelStep {
  const emitted: Emitted[] = [];
  const delivered: Delivered[] = [];
  const other: string[] = [];
  for (const e of events) {
    if ('tap' in e) {
      const device = e.tap.replace(/^peer:/, '');
      const eth = decodeEthernet(fromHex(e.hex));
      const d = eth && (eth.ethertype === 0x0800 || eth.ethertype === 0x86dd) ? decodeIp(eth.payload) : undefined;
      if (d?.ok) emitted.push({ device, packet: d.packet, checksumOk: d.checksumOk, notes: d.notes });
      else other.push(describeEvent(topo, e));
    } else {
      // Only our own delivery hook's copies: a policy's NFLOG rule may use a group too.
      if (e.prefix !== NFLOG_PREFIX) {
        other.push(`NFLOG copy with prefix ${JSON.stringify(e.prefix ?? '')} (not the harness's)`);
        continue;
      }
      const d = decodeIp(fromHex(e.hex));
      const indev = e.indev !== undefined ? topo.deviceOfIndex(e.indev) : undefined;
      if (d.ok) delivered.push({ packet: d.packet, ...(indev ? { indev } : {}) });
      else other.push(describeEvent(topo, e));
    }
  }
  return { input, emitted, delivered, other };
}

export function describeEvent(topo: Topology, e: AgentEvent): string {
  if ('tap' in e) {
    const eth = decodeEthernet(fromHex(e.hex));
    if (!eth) return `${e.tap}: runt frame ${e.hex}`;
    if (eth.ethertype !== 0x0800 && eth.ethertype !== 0x86dd) return `${e.tap}: ethertype 0x${eth.ethertype.toString(16)} ${e.hex.slice(28, 92)}`;
    const d = decodeIp(eth.payload);
    return `${e.tap}: ${d.ok ? summarize(d) : d.error}`;
  }
  const d = decodeIp(fromHex(e.hex));
  const indev = e.indev !== undefined ? topo.deviceOfIndex(e.indev) : '?';
  return `delivered (in ${indev}): ${d.ok ? summarize(d) : d.error}`;
}

function summarize(d: Decoded): string {
  const p = d.packet;
  const ports = p.sport !== undefined ? ` ${p.sport} > ${p.dport}` : '';
  return `${formatAddress(p.family, p.src)} > ${formatAddress(p.family, p.dst)} proto ${p.proto}${ports}`;
}

/**
 * Conntrack table, count, expectations and counters of the firewall right now. One shell in
 * the namespace runs every command (spawning `ip netns exec` per command dominated the time
 * of short sequences); sections are split on marker lines.
 */
export function snapshot(topo: Topology, families: readonly Family[] = ['ipv4', 'ipv6']): KernelFinal {
  const MARK = '@@nfproof-section@@';
  const commands = [
    'conntrack -L -f ipv4 -o extended',
    'conntrack -L -f ipv6 -o extended',
    'cat /proc/sys/net/netfilter/nf_conntrack_count',
    'conntrack -L expect -f ipv4',
    'conntrack -L expect -f ipv6',
    ...families.map((f) => `${topo.tool(f, 'save')} -c`),
  ];
  // `2>/dev/null` drops conntrack's "N flow entries have been shown" summary; a failing command
  // shows as its exit status at the end of its section.
  const script = commands.map((c) => `${c} 2>/dev/null; echo "${MARK} $?"`).join('\n');
  const out = topo.fw.run('sh', ['-c', script]);
  const sections = out.split(new RegExp(`^${MARK} (\\d+)$`, 'm'));
  // split() with a capture group interleaves the texts and the statuses.
  const text = (i: number): string => {
    const status = sections[2 * i + 1];
    if (status !== '0') throw new Error(`${commands[i]} failed in the firewall namespace (status ${status}):\n${sections[2 * i]}`);
    return sections[2 * i].replace(/^\n/, '');
  };
  const entries = [...parseConntrackList(text(0)), ...parseConntrackList(text(1))];
  const count = Number(text(2).trim());
  const expectations = [...text(3).split('\n'), ...text(4).split('\n')].filter((l) => l.trim() !== '');
  const saved: Partial<Record<Family, string>> = {};
  const chains: SavedChain[] = [];
  families.forEach((f, k) => {
    saved[f] = text(5 + k);
    chains.push(...parseSave(saved[f] as string, f));
  });
  return { entries, count, expectations, chains, saved };
}
