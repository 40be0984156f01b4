import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { kernelAvailable, requirement } from '../support/env.js';
import { Netns } from '../support/netns.js';
import { DEFAULT_ENDPOINTS, type Endpoints, payloadOf, type Seg } from '../netfilter/proto/tcp-script.js';

/**
 * A three-namespace lab for the trackers' kernel tests: client — firewall — server, IPv4
 * (10.0.1.0/24, 10.0.2.0/24) and IPv6 (fd00:1::/64, fd00:2::/64), joined by veth pairs. The firewall forwards and tracks; its mangle FORWARD chain has one
 * counting rule per conntrack state, so after each injected packet we know which state the
 * kernel gave it. Client and server drop everything but neighbour discovery in their own INPUT chain, so
 * their stacks never answer the crafted packets: every packet on the wire is one the test wrote.
 * Packets are crafted by a small scapy agent per peer (tcp-lab-agent.py); all decisions stay
 * here. Everything is removed by dispose(), which the tests call in afterAll.
 *
 * (test/kernel/harness/ is the general differential harness; this lab is deliberately small
 * and specific to per-packet conntrack state.)
 */

const AGENT = join(dirname(fileURLToPath(import.meta.url)), 'tcp-lab-agent.py');
const PYTHON = '/usr/bin/python3';

/**
 * The lab needs what the kernel tests need (root, ip, iptables, conntrack) plus scapy for the
 * Debian python (python3-scapy). Missing pieces skip loudly, or fail under CI=true.
 */
export function labAvailable(): { run: boolean; reason: string } {
  const kernel = kernelAvailable();
  if (!kernel.run) return kernel;
  const scapy = spawnSync(PYTHON, ['-c', 'import scapy.all'], { stdio: 'ignore' }).status === 0;
  return requirement('trackers kernel lab', scapy, `${PYTHON} cannot import scapy (apt-get install python3-scapy)`);
}

export const CT_STATES = ['INVALID', 'NEW', 'ESTABLISHED', 'RELATED', 'UNTRACKED'] as const;
export type KernelCtState = (typeof CT_STATES)[number];

/** One line of `conntrack -L -o extended`, the fields the tests compare. */
export interface KernelEntry {
  readonly proto: string;
  readonly timeout: number;
  readonly state?: string;
  readonly src: string;
  readonly dst: string;
  readonly sport?: number;
  readonly dport?: number;
  readonly replySrc: string;
  readonly replyDst: string;
  readonly replySport?: number;
  readonly replyDport?: number;
  readonly assured: boolean;
  readonly unreplied: boolean;
  readonly helper?: string;
  /** ICMP identifier and type (original tuple). */
  readonly id?: number;
  readonly type?: number;
  readonly line: string;
}

export function parseConntrackLine(line: string): KernelEntry | undefined {
  // e.g. "ipv4     2 tcp      6 119 SYN_SENT src=10.0.1.2 dst=10.0.2.2 sport=40000 dport=80 [UNREPLIED] src=… mark=0 use=1"
  const m = /^(?:ipv[46]\s+\d+\s+)?(\S+)\s+\d+\s+(\d+)\s+(?:([A-Z_]+[A-Z0-9_]*)\s+)?(src=.*)$/.exec(line.trim());
  if (!m) return undefined;
  const rest = m[4];
  const srcs = [...rest.matchAll(/\bsrc=(\S+)/g)].map((x) => x[1]);
  const dsts = [...rest.matchAll(/\bdst=(\S+)/g)].map((x) => x[1]);
  const sports = [...rest.matchAll(/\bsport=(\d+)/g)].map((x) => Number(x[1]));
  const dports = [...rest.matchAll(/\bdport=(\d+)/g)].map((x) => Number(x[1]));
  const helper = /\bhelper=(\S+)/.exec(rest)?.[1];
  const id = /\bid=(\d+)/.exec(rest)?.[1];
  const type = /\btype=(\d+)/.exec(rest)?.[1];
  return {
    proto: m[1],
    timeout: Number(m[2]),
    ...(m[3] ? { state: m[3] } : {}),
    src: srcs[0],
    dst: dsts[0],
    sport: sports[0],
    dport: dports[0],
    replySrc: srcs[1],
    replyDst: dsts[1],
    replySport: sports[1],
    replyDport: dports[1],
    assured: rest.includes('[ASSURED]'),
    unreplied: rest.includes('[UNREPLIED]'),
    ...(helper ? { helper } : {}),
    ...(id !== undefined ? { id: Number(id) } : {}),
    ...(type !== undefined ? { type: Number(type) } : {}),
    line: line.trim(),
  };
}

/** A long-running scapy agent in one namespace, answering one JSON line per command. */
class Agent {
  private readonly replies: ((line: string) => void)[] = [];
  private readonly proc: ChildProcessWithoutNullStreams;
  private stderr = '';

  constructor(ns: Netns) {
    this.proc = spawn('ip', ['netns', 'exec', ns.name, PYTHON, AGENT], { stdio: 'pipe' });
    this.proc.stderr.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    createInterface({ input: this.proc.stdout }).on('line', (line) => this.replies.shift()?.(line));
    liveAgents.add(this.proc);
    this.proc.on('exit', () => liveAgents.delete(this.proc));
  }

  async call(cmd: Record<string, unknown>, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`agent timed out on ${JSON.stringify(cmd)}\n${this.stderr}`)), timeoutMs);
      this.replies.push((l) => {
        clearTimeout(timer);
        resolve(l);
      });
      this.proc.stdin.write(`${JSON.stringify(cmd)}\n`);
    });
    const reply = JSON.parse(line) as Record<string, unknown>;
    if (reply.ok !== true) throw new Error(`agent: ${String(reply.error)}\n${this.stderr}`);
    return reply;
  }

  stop(): void {
    this.proc.stdin.end();
    this.proc.kill('SIGKILL');
  }
}

const liveAgents = new Set<ChildProcessWithoutNullStreams>();
process.once('exit', () => {
  for (const p of liveAgents) p.kill('SIGKILL');
});

/** Counting rules, one per state, in this order (mangle FORWARD). */
const COUNTING_RULES = CT_STATES.map((s) => `-A FORWARD -m conntrack --ctstate ${s}`).join('\n');

export interface CapturedPacket {
  readonly src: string;
  readonly dst: string;
  readonly proto: number;
  readonly sport?: number;
  readonly dport?: number;
  readonly flags?: string;
  readonly seq?: number;
  readonly ack?: number;
  readonly payload?: string;
}

export class TcpLab {
  readonly ep: Endpoints = DEFAULT_ENDPOINTS;
  private readonly agents: { client: Agent; server: Agent };

  private constructor(
    readonly client: Netns,
    readonly fw: Netns,
    readonly server: Netns,
  ) {
    this.agents = { client: new Agent(client), server: new Agent(server) };
  }

  /**
   * Builds the namespaces. `extraRules` is iptables-restore text for the firewall loaded after
   * the counting rules (e.g. raw CT --helper ftp, nat rules), `extraRules6` the same for
   * ip6tables; `extraFwAddresses` are more [cidr, device] addresses for the firewall (NAT
   * addresses its neighbours must reach).
   */
  static create(extraRules = '', extraFwAddresses: readonly (readonly [string, string])[] = [], extraRules6 = ''): TcpLab {
    const client = Netns.create('cli');
    const fw = Netns.create('fw');
    const server = Netns.create('srv');
    try {
      fw.run('ip', ['link', 'add', 'f0', 'type', 'veth', 'peer', 'name', 'c0', 'netns', client.name]);
      fw.run('ip', ['link', 'add', 'f1', 'type', 'veth', 'peer', 'name', 's0', 'netns', server.name]);
      fw.run('ip', ['addr', 'add', '10.0.1.1/24', 'dev', 'f0']);
      fw.run('ip', ['addr', 'add', '10.0.2.1/24', 'dev', 'f1']);
      for (const [cidr, dev] of extraFwAddresses) fw.run('ip', ['addr', 'add', cidr, 'dev', dev]);
      fw.run('ip', ['link', 'set', 'f0', 'up']);
      fw.run('ip', ['link', 'set', 'f1', 'up']);
      client.run('ip', ['addr', 'add', '10.0.1.2/24', 'dev', 'c0']);
      client.run('ip', ['link', 'set', 'c0', 'up']);
      client.run('ip', ['route', 'add', 'default', 'via', '10.0.1.1']);
      server.run('ip', ['addr', 'add', '10.0.2.2/24', 'dev', 's0']);
      server.run('ip', ['link', 'set', 's0', 'up']);
      server.run('ip', ['route', 'add', 'default', 'via', '10.0.2.1']);
      // IPv6 beside IPv4 (no duplicate address detection: addresses are usable at once).
      fw.run('ip', ['-6', 'addr', 'add', 'fd00:1::1/64', 'dev', 'f0', 'nodad']);
      fw.run('ip', ['-6', 'addr', 'add', 'fd00:2::1/64', 'dev', 'f1', 'nodad']);
      client.run('ip', ['-6', 'addr', 'add', 'fd00:1::2/64', 'dev', 'c0', 'nodad']);
      client.run('ip', ['-6', 'route', 'add', 'default', 'via', 'fd00:1::1']);
      server.run('ip', ['-6', 'addr', 'add', 'fd00:2::2/64', 'dev', 's0', 'nodad']);
      server.run('ip', ['-6', 'route', 'add', 'default', 'via', 'fd00:2::1']);
      if (!fw.sysctl('net.ipv4.ip_forward', '1')) throw new Error('cannot enable forwarding in the firewall namespace');
      if (!fw.sysctl('net.ipv6.conf.all.forwarding', '1')) throw new Error('cannot enable IPv6 forwarding in the firewall namespace');
      // The peers' own stacks must stay silent: no RST, no port unreachable, no echo reply for
      // crafted packets (neighbour discovery stays allowed).
      for (const peer of [client, server]) {
        // IPv4: nothing reaches the stack (ARP is not filtered here). IPv6: only neighbour discovery.
        peer.run('iptables-restore', [], '*filter\n:INPUT DROP\nCOMMIT\n');
        peer.run(
          'ip6tables-restore',
          [],
          '*filter\n:INPUT DROP\n' + [133, 134, 135, 136].map((t) => `-A INPUT -p ipv6-icmp --icmpv6-type ${t} -j ACCEPT\n`).join('') + 'COMMIT\n',
        );
      }
      fw.run('iptables-restore', [], `*mangle\n:FORWARD ACCEPT\n${COUNTING_RULES}\nCOMMIT\n${extraRules}`);
      fw.run('ip6tables-restore', [], `*mangle\n:FORWARD ACCEPT\n${COUNTING_RULES}\nCOMMIT\n${extraRules6}`);
      return new TcpLab(client, fw, server);
    } catch (e) {
      for (const ns of [client, fw, server]) ns.dispose();
      throw e;
    }
  }

  dispose(): void {
    this.agents.client.stop();
    this.agents.server.stop();
    for (const ns of [this.client, this.fw, this.server]) ns.dispose();
  }

  /** Sets a firewall sysctl and checks it took. */
  sysctl(name: string, value: string): void {
    if (!this.fw.sysctl(name, value)) throw new Error(`sysctl ${name}=${value} did not take in the firewall namespace`);
  }

  /** Forgets all connections and zeroes the counters. */
  reset(): void {
    this.fw.exec('conntrack', ['-F']);
    this.fw.run('iptables', ['-t', 'mangle', '-Z']);
    this.fw.run('ip6tables', ['-t', 'mangle', '-Z']);
  }

  /** Packet counts of the per-state rules (IPv4 and IPv6 together). */
  stateCounters(): Record<KernelCtState, number> {
    const out = this.fw.run('iptables-save', ['-c', '-t', 'mangle']) + this.fw.run('ip6tables-save', ['-c', '-t', 'mangle']);
    const counts = Object.fromEntries(CT_STATES.map((s) => [s, 0])) as Record<KernelCtState, number>;
    for (const line of out.split('\n')) {
      const m = /^\[(\d+):\d+\] -A FORWARD -m conntrack --ctstate (\w+)$/.exec(line.trim());
      if (m && (CT_STATES as readonly string[]).includes(m[2])) counts[m[2] as KernelCtState] += Number(m[1]);
    }
    return counts;
  }

  /** `conntrack -L` in the firewall. */
  conntrack(): KernelEntry[] {
    const r = this.fw.exec('conntrack', ['-L', '-o', 'extended']);
    return r.stdout
      .split('\n')
      .map(parseConntrackLine)
      .filter((e): e is KernelEntry => e !== undefined);
  }

  /**
   * `conntrack -L expect` in the firewall: the expected connections (first tuple only). Without
   * `-f` conntrack-tools lists IPv4 expectations only, so both families are asked for.
   */
  expectations(): { readonly src: string; readonly dst: string; readonly dport: number; readonly line: string }[] {
    const out = ['ipv4', 'ipv6'].map((f) => this.fw.exec('conntrack', ['-L', 'expect', '-f', f]).stdout).join('\n');
    return out
      .split('\n')
      .map((line) => /^\d+\s+proto=\d+\s+src=(\S+)\s+dst=(\S+)\s+sport=\d+\s+dport=(\d+)/.exec(line.trim()))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => ({ src: m[1], dst: m[2], dport: Number(m[3]), line: m[0] }));
  }

  /** Sends an already described packet from one side (agent command fields). */
  async sendRaw(side: 'client' | 'server', cmd: Record<string, unknown>): Promise<void> {
    await this.agents[side].call({ op: 'send', ...cmd });
  }

  /** Puts a scripted TCP segment on the wire from its side. */
  async sendSeg(seg: Seg, ep: Endpoints = this.ep): Promise<void> {
    const fromClient = seg.from === 'c';
    await this.sendRaw(fromClient ? 'client' : 'server', {
      proto: 'tcp',
      src: fromClient ? ep.client : ep.server,
      dst: fromClient ? (ep.serverSeenByClient ?? ep.server) : (ep.clientSeenByServer ?? ep.client),
      sport: fromClient ? ep.cport : ep.sport,
      dport: fromClient ? ep.sport : ep.cport,
      flags: seg.flags,
      seq: seg.seq >>> 0,
      ack: seg.ack >>> 0,
      win: seg.win,
      payload: Buffer.from(payloadOf(seg)).toString('hex'),
      ...(seg.mss !== undefined ? { mss: seg.mss } : {}),
      ...(seg.wscale !== undefined ? { wscale: seg.wscale } : {}),
      ...(seg.sackok ? { sackok: true } : {}),
      ...(seg.sack ? { sack: seg.sack } : {}),
    });
  }

  /**
   * Sends a packet and waits until the firewall has classified it (one of the counting rules
   * moved); returns the state the rules saw. Bounded wait, polling the counters.
   */
  async inject(send: () => Promise<void>, timeoutMs = 3000): Promise<KernelCtState> {
    const before = this.stateCounters();
    await send();
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const now = this.stateCounters();
      const moved = CT_STATES.filter((s) => now[s] !== before[s]);
      if (moved.length === 1 && now[moved[0]] === before[moved[0]] + 1) return moved[0];
      if (moved.length > 1) throw new Error(`several counters moved for one packet: ${moved.join(', ')}`);
      if (Date.now() > deadline) throw new Error('the firewall did not see the packet in time');
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async startCapture(side: 'client' | 'server'): Promise<void> {
    await this.agents[side].call({ op: 'sniff_start', iface: side === 'client' ? 'c0' : 's0' });
  }

  async stopCapture(side: 'client' | 'server'): Promise<CapturedPacket[]> {
    const r = await this.agents[side].call({ op: 'sniff_stop' });
    return r.packets as CapturedPacket[];
  }
}
