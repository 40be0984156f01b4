import { PROTO, TCP_FLAG } from '../src/ir/fields.js';
import type { Chain, Policy, Rule, Table } from '../src/ir/policy.js';
import type { Match, Target } from '../src/kinds/index.js';
import type { SimInput } from '../src/netfilter/api.js';
import type { Packet } from '../src/netfilter/packet.js';
import { createSimulator } from '../src/netfilter/simulator.js';
import { parsePrefix } from '../src/util/ip.js';
import { NO_SPAN } from '../src/util/span.js';
import { type Benchmark, heapUsedAfterGc } from './harness.js';

/**
 * Simulator figures from issue 4: established fast path with 100,000 live entries, new
 * connections through NAT and a 100-rule filter, bytes per conntrack entry with 1,000,000
 * entries, and a 5,000-rule chain with and without the dispatch index.
 */

const span = NO_SPAN;
const ip = (s: string) => parsePrefix(s)!.addr;

function prefix(dir: 'src' | 'dst', text: string): Match {
  const p = parsePrefix(text)!;
  return { kind: 'addr', dir, negated: false, value: { items: [{ type: 'prefix', family: 'ipv4', addr: p.addr, len: p.len }], excluded: [] }, span };
}
const tcpProto: Match = { kind: 'proto', negated: false, protos: [PROTO.tcp], span };
const dport = (p: number): Match => ({ kind: 'port', dir: 'dst', negated: false, value: { items: [[p, p]] }, span });
const oif = (d: string): Match => ({ kind: 'iface', dir: 'out', negated: false, device: d, wildcard: false, span });
const iif = (d: string): Match => ({ kind: 'iface', dir: 'in', negated: false, device: d, wildcard: false, span });
const established: Match = { kind: 'ct-state', negated: false, states: ['ESTABLISHED', 'RELATED'], span };
const accept: Target = { kind: 'verdict', verdict: 'accept', span };
const drop: Target = { kind: 'verdict', verdict: 'drop', span };
const rule = (matches: Match[], target: Target): Rule => ({ matches, target, span });
const chain = (name: string, rules: Rule[], policy?: 'ACCEPT' | 'DROP'): Chain => ({
  name,
  ...(policy ? { hook: name as Chain['hook'] & string, policy } : {}),
  rules,
  span,
}) as Chain;

/** Gateway: lan eth0 10.0.0.0/8 behind SNAT to 192.168.20.1, FORWARD with `filterRules` rules before the accept. */
function gatewayPolicy(filterRules: number, established_first: boolean): Policy {
  const filler: Rule[] = [];
  for (let i = 0; i < filterRules; i++) filler.push(rule([tcpProto, prefix('dst', `172.16.${(i >> 8) & 255}.${i & 255}/32`), dport(1000 + i)], drop));
  const forward = [
    ...(established_first ? [rule([established], accept)] : []),
    ...filler,
    rule([iif('eth0'), oif('eth1')], accept),
    ...(established_first ? [] : [rule([established], accept)]),
  ];
  const tables: Table[] = [
    {
      name: 'nat',
      chains: [
        chain('PREROUTING', [], 'ACCEPT'),
        chain('INPUT', [], 'ACCEPT'),
        chain('OUTPUT', [], 'ACCEPT'),
        chain('POSTROUTING', [rule([oif('eth1'), prefix('src', '10.0.0.0/8')], { kind: 'snat', to: { family: 'ipv4', addr: [ip('192.168.20.1'), ip('192.168.20.1')] }, random: false, fullyRandom: false, persistent: false, span })], 'ACCEPT'),
      ],
      span,
    },
    { name: 'filter', chains: [chain('INPUT', [], 'ACCEPT'), chain('FORWARD', forward, 'DROP'), chain('OUTPUT', [], 'ACCEPT')], span },
  ];
  return {
    host: {
      name: 'gw',
      interfaces: [
        { name: 'lan', device: 'eth0', addresses: [{ family: 'ipv4', addr: ip('10.0.0.1'), prefixLen: 8 }], span },
        { name: 'wan', device: 'eth1', addresses: [{ family: 'ipv4', addr: ip('192.168.20.1'), prefixLen: 24 }], span },
      ],
      routes: [{ family: 'ipv4', dest: { family: 'ipv4', addr: 0n, len: 0 }, via: ip('192.168.20.254'), device: 'eth1', span }],
      sysctls: {},
      span,
    },
    rulesets: { ipv4: { family: 'ipv4', tables }, ipv6: { family: 'ipv6', tables: [] } },
    expectations: [],
    sources: [],
    origin: 'nfp',
  };
}

/** Servers are spread over 4096 addresses so that the SNAT tuple space (one address) is not the limit. */
const SERVER_BASE = ip('203.0.0.0');
const server = (i: number) => SERVER_BASE + BigInt(i & 4095);
const NAT = ip('192.168.20.1');
const EMPTY = new Uint8Array(0);

function clientAddr(i: number): bigint {
  return 0x0a000000n + BigInt(2 + Math.floor(i / 50000)) * 65536n + BigInt(i % 50000);
}

function seg(src: bigint, sport: number, dst: bigint, dport: number, flags: number, seq: number, ack: number): Packet {
  return { family: 'ipv4', src, dst, proto: PROTO.tcp, ttl: 64, sport, dport, tcp: { flags, seq, ack, window: 64240 }, payload: EMPTY };
}

/** The same figure per second of this process's CPU time (the wall clock suffers on a busy machine). */
function cpuRate(n: number, c0: NodeJS.CpuUsage): string {
  const c = process.cpuUsage(c0);
  const cpu = (c.user + c.system) / 1e6;
  return `${Math.round(n / cpu).toLocaleString('en-US')}/s of CPU time`;
}

function input(t: number, device: string, packet: Packet): SimInput {
  return { t, ingress: { kind: 'iface', device }, packet };
}

/** Opens `n` connections (3-way handshake) and returns the packets of both directions for each. */
function openConnections(sim: ReturnType<typeof createSimulator>, n: number): { out: SimInput[]; back: SimInput[] } {
  const out: SimInput[] = [];
  const back: SimInput[] = [];
  for (let i = 0; i < n; i++) {
    const c = clientAddr(i);
    const sport = 20000 + (i % 40000);
    const o1 = sim.process(input(0, 'eth0', seg(c, sport, server(i), 443, TCP_FLAG.SYN, 1000, 0)));
    const natPort = o1.egress!.packet.sport!;
    sim.process(input(0, 'eth1', seg(server(i), 443, NAT, natPort, TCP_FLAG.SYN | TCP_FLAG.ACK, 5000, 1001)));
    sim.process(input(0, 'eth0', seg(c, sport, server(i), 443, TCP_FLAG.ACK, 1001, 5001)));
    out.push(input(0, 'eth0', seg(c, sport, server(i), 443, TCP_FLAG.ACK, 1001, 5001)));
    back.push(input(0, 'eth1', seg(server(i), 443, NAT, natPort, TCP_FLAG.ACK, 5001, 1001)));
  }
  return { out, back };
}

export const benchmarks: Benchmark[] = [
  {
    name: 'established fast path (100,000 live entries, SNAT, 100-rule FORWARD)',
    target: '≥ 1,000,000 packets/s',
    meets: (m) => m.value >= 1_000_000,
    run() {
      const sim = createSimulator(gatewayPolicy(100, true), { trace: false, sysctls: { nf_conntrack_buckets: '131072' } });
      const { out, back } = openConnections(sim, 100_000);
      const rounds = Number(process.env.NFPROOF_BENCH_ROUNDS ?? 10);
      // Warm up once (and check the setup: every packet must be ESTABLISHED and forwarded), then measure.
      for (let i = 0; i < out.length; i++) {
        const o = sim.process((i & 1) === 1 ? back[i] : out[i]);
        if (o.verdict !== 'forwarded' || o.ctState !== 'ESTABLISHED') throw new Error(`setup: packet ${i} ${o.verdict} ${o.ctState}`);
      }
      const t0 = process.hrtime.bigint();
      const c0 = process.cpuUsage();
      let n = 0;
      for (let r = 0; r < rounds; r++) {
        for (let i = 0; i < out.length; i++) {
          sim.process((i & 1) === 1 ? back[i] : out[i]);
          n++;
        }
      }
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      return { value: n / s, unit: 'packets/s', detail: `${n.toLocaleString('en-US')} packets over ${sim.count().toLocaleString('en-US')} entries in ${s.toFixed(2)} s; ${cpuRate(n, c0)}` };
    },
  },
  {
    name: 'new connections (SYN through SNAT + 100-rule FORWARD)',
    target: '≥ 200,000 connections/s',
    meets: (m) => m.value >= 200_000,
    run() {
      const sim = createSimulator(gatewayPolicy(100, false), { trace: false, maxEntries: 2_000_000, sysctls: { nf_conntrack_buckets: '524288' } });
      const n = 300_000;
      const pkts: SimInput[] = [];
      for (let i = 0; i < n; i++) pkts.push(input(0, 'eth0', seg(clientAddr(i), 20000 + (i % 40000), server(i), 443, TCP_FLAG.SYN, 1000, 0)));
      const t0 = process.hrtime.bigint();
      const c0 = process.cpuUsage();
      for (const p of pkts) sim.process(p);
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      return { value: n / s, unit: 'connections/s', detail: `${n.toLocaleString('en-US')} SYNs, ${sim.count().toLocaleString('en-US')} entries, ${s.toFixed(2)} s; ${cpuRate(n, c0)}` };
    },
  },
  {
    name: 'memory per conntrack entry (1,000,000 TCP entries)',
    target: '≤ 400 bytes/entry',
    meets: (m) => m.value <= 400,
    run() {
      const n = 1_000_000;
      const sim = createSimulator(gatewayPolicy(0, true), { trace: false, maxEntries: 2_000_000, sysctls: { nf_conntrack_buckets: '1048576' } });
      // Force the one-off allocations (compiled chains, first table growth) before measuring.
      sim.process(input(0, 'eth0', seg(clientAddr(0), 1, server(0), 443, TCP_FLAG.SYN, 1, 0)));
      const mem0 = heapUsedAfterGc() + process.memoryUsage().arrayBuffers;
      const p: SimInput = input(0, 'eth0', seg(0n, 0, server(0), 443, TCP_FLAG.SYN, 1000, 0));
      for (let i = 1; i <= n; i++) {
        (p.packet as Packet).src = clientAddr(i);
        (p.packet as Packet).dst = server(i);
        (p.packet as Packet).sport = 20000 + (i % 40000);
        sim.process(p);
      }
      const mem1 = heapUsedAfterGc() + process.memoryUsage().arrayBuffers;
      const entries = sim.count() - 1;
      return { value: (mem1 - mem0) / entries, unit: 'bytes/entry', detail: `${entries.toLocaleString('en-US')} entries, heap+arrayBuffers grew ${((mem1 - mem0) / 2 ** 20).toFixed(0)} MiB` };
    },
  },
  ...[true, false].map(
    (indexed): Benchmark => ({
      name: `5,000-rule FORWARD chain, ${indexed ? 'with' : 'without'} the dispatch index (SYN matching near the end)`,
      target: 'faster with the index',
      meets: () => true,
      run() {
        const sim = createSimulator(gatewayPolicy(5000, false), { trace: false, maxEntries: 2_000_000 }, indexed ? {} : { dispatchThreshold: Number.POSITIVE_INFINITY });
        const n = indexed ? 200_000 : 20_000;
        const pkts: SimInput[] = [];
        for (let i = 0; i < n; i++) pkts.push(input(0, 'eth0', seg(clientAddr(i), 20000 + (i % 40000), server(i), 443, TCP_FLAG.SYN, 1000, 0)));
        const t0 = process.hrtime.bigint();
        for (const p of pkts) sim.process(p);
        const s = Number(process.hrtime.bigint() - t0) / 1e9;
        return { value: n / s, unit: 'connections/s', detail: `${n.toLocaleString('en-US')} SYNs past 5,000 non-matching rules` };
      },
    }),
  ),
];
