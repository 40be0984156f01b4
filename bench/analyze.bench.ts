import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkPolicy } from '../src/analyze/check.js';
import { queryFlow } from '../src/analyze/query.js';
import { importIptablesSave } from '../src/backends/import/index.js';
import type { Flow, Policy } from '../src/ir/policy.js';
import { CORPUS_DIR } from '../test/support/env.js';
import { type Benchmark, peakRssMb, rng, timeMs } from './harness.js';

/**
 * Figures of issue 6: a full `nfproof check` of generated policies of 1k/2k/5k/10k rules and of
 * the largest corpus rulesets (≤ 10 s, ≤ 2 GB), and one `query` (≤ 1 s).
 *
 * The generated policy looks like a site firewall: stateful rules first, then per-zone user
 * chains with host/service accepts, a few overlapping and shadowed rules (so findings exist),
 * port forwards and source NAT, a logging drop at the end. Deterministic (seeded).
 */
export function generatedRuleset(rules: number, seed = 7): string {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)];
  const zones = Math.max(4, Math.round(rules / 250));
  const out: string[] = ['*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]'];
  const natRules = Math.max(4, Math.round(rules / 100));
  for (let i = 0; i < natRules; i++) {
    out.push(`-A PREROUTING -i eth0 -d 198.51.100.${1 + (i % 200)} -p tcp -m tcp --dport ${8000 + i} -j DNAT --to-destination 10.${1 + (i % zones)}.0.${10 + (i % 200)}:80`);
  }
  for (let z = 1; z <= zones; z++) out.push(`-A POSTROUTING -s 10.${z}.0.0/16 -o eth0 -j SNAT --to-source 198.51.100.${z % 250}`);
  out.push('COMMIT', '*filter', ':INPUT DROP [0:0]', ':FORWARD DROP [0:0]', ':OUTPUT ACCEPT [0:0]');
  for (let z = 1; z <= zones; z++) out.push(`:zone${z} - [0:0]`);
  out.push(':LOGDROP - [0:0]');
  out.push('-A INPUT -i lo -j ACCEPT', '-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT', '-A INPUT -m conntrack --ctstate INVALID -j DROP');
  out.push('-A INPUT -p tcp -m tcp --dport 22 -s 10.1.0.0/16 -j ACCEPT', '-A INPUT -p icmp -m icmp --icmp-type 8 -j ACCEPT', '-A INPUT -j LOGDROP');
  out.push('-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT', '-A FORWARD -m conntrack --ctstate INVALID -j DROP');
  for (let z = 1; z <= zones; z++) out.push(`-A FORWARD -o eth${z} -j zone${z}`);
  out.push('-A FORWARD -j LOGDROP');
  out.push('-A LOGDROP -m limit --limit 5/min -j LOG --log-prefix "drop: "', '-A LOGDROP -j DROP');
  const perZone = Math.floor((rules - out.filter((l) => l.startsWith('-A')).length) / zones);
  const ports = [22, 25, 53, 80, 110, 143, 443, 465, 587, 993, 995, 3306, 5432, 8080, 8443];
  for (let z = 1; z <= zones; z++) {
    for (let i = 0; i < perZone; i++) {
      const host = `10.${z}.${Math.floor(i / 200)}.${1 + (i % 200)}`;
      const roll = r();
      if (roll < 0.55) {
        const src = r() < 0.5 ? '' : ` -s ${pick(['10.', '172.', '100.'])}${Math.floor(r() * 200)}.0.0/16`;
        out.push(`-A zone${z}${src} -d ${host}/32 -p tcp -m tcp --dport ${pick(ports)} -j ACCEPT`);
      } else if (roll < 0.7) {
        out.push(`-A zone${z} -d ${host}/32 -p udp -m udp --dport ${pick([53, 123, 161, 514])} -j ACCEPT`);
      } else if (roll < 0.8) {
        out.push(`-A zone${z} -s 203.0.113.${Math.floor(r() * 250)}/32 -j DROP`);
      } else if (roll < 0.88) {
        out.push(`-A zone${z} -d ${host}/32 -p tcp -m multiport --dports 80,443 -j ACCEPT`);
      } else if (roll < 0.94) {
        // A narrower copy of an earlier rule: shadowed or redundant.
        out.push(`-A zone${z} -s 10.9.0.0/16 -d ${host}/32 -p tcp -m tcp --dport ${pick(ports)} -j ${pick(['ACCEPT', 'REJECT --reject-with tcp-reset'])}`);
      } else {
        out.push(`-A zone${z} -i eth${1 + (z % zones)} -d 10.${z}.0.0/16 -p icmp -j ACCEPT`);
      }
    }
    out.push(`-A zone${z} -j RETURN`);
  }
  out.push('COMMIT', '');
  return out.join('\n');
}

function policyOf(text: string, file: string): Policy {
  const r = importIptablesSave(text, file);
  if (!r.policy) throw new Error(`${file} does not import: ${r.diagnostics.filter((d) => d.severity === 'error').map((d) => d.message).slice(0, 3).join('; ')}`);
  return r.policy;
}

async function measureCheck(policy: Policy): Promise<{ ms: number; detail: string }> {
  let stats = '';
  const ms = await timeMs(async () => {
    const rep = await checkPolicy(policy, { timeoutMs: 5000 });
    const s = rep.stats;
    stats = `${s.rules} rules: pre-pass ${Math.round(s.prepassMs)} ms decided ${s.prepassDecided}, Z3 ${s.z3Decided} rules / ${s.z3Queries} queries / ${Math.round(s.z3Ms)} ms, ${s.undecided} undecided, ${rep.findings.length} findings, ${s.replayAgreed}/${s.replayed} replayed, ${rep.internalErrors.length} internal errors`;
  });
  return { ms, detail: `${stats}; peak RSS ${Math.round(peakRssMb())} MB` };
}

const sizes = [1000, 2000, 5000, 10000];

export const benchmarks: Benchmark[] = [
  ...sizes.map(
    (n): Benchmark => ({
      name: `check generated ${n}-rule policy`,
      target: n === 5000 ? '≤ 10,000 ms, ≤ 2 GB' : '(growth curve)',
      meets: (m) => n !== 5000 || (m.value <= 10_000 && peakRssMb() <= 2048),
      async run() {
        const policy = policyOf(generatedRuleset(n), `generated-${n}.rules`);
        const { ms, detail } = await measureCheck(policy);
        return { value: ms, unit: 'ms', detail };
      },
    }),
  ),
  ...[
    'configs_chair_for_Network_Architectures_and_Services/iptables-save-2015-05-13_10-53-20',
    'configs_chair_for_Network_Architectures_and_Services/ip6tables-save-2016-03-16_13-53-28',
    'configs_medium-sized-company/iptables-save.iptables_mainfw_30.01.2016',
  ].map(
    (file): Benchmark => ({
      name: `check corpus ${file.split('/').pop()}`,
      target: '≤ 10,000 ms, ≤ 2 GB',
      meets: (m) => m.value <= 10_000 && peakRssMb() <= 2048,
      async run() {
        const path = join(CORPUS_DIR, 'net-network', file);
        if (!existsSync(path)) throw new Error(`corpus file missing: ${path}`);
        const { ms, detail } = await measureCheck(policyOf(readFileSync(path, 'utf8'), path));
        return { value: ms, unit: 'ms', detail };
      },
    }),
  ),
  {
    name: 'query on the generated 5,000-rule policy',
    target: '≤ 1,000 ms',
    meets: (m) => m.value <= 1000,
    async run() {
      const policy = policyOf(generatedRuleset(5000), 'generated-5000.rules');
      // Warm the solver once: the figure is one query in a running process (Z3 starts ~0.3 s).
      const flow: Flow = {
        family: 'ipv4',
        matches: [
          { kind: 'proto', negated: false, protos: [6], span: NO },
          { kind: 'addr', dir: 'dst', negated: false, value: { items: [{ type: 'prefix', family: 'ipv4', addr: 0x0a030000n, len: 16 }], excluded: [] }, span: NO },
          { kind: 'port', dir: 'dst', negated: false, value: { items: [[443, 443]] }, span: NO },
        ],
        span: NO,
      };
      await queryFlow(policy, flow, { timeoutMs: 5000, replay: false });
      let detail = '';
      const ms = await timeMs(async () => {
        const q = await queryFlow(policy, flow, { timeoutMs: 5000 });
        detail = `${q.outcomes.length} outcomes (${[...new Set(q.outcomes.map((o) => o.verdict))].join(', ')}), ${q.unknown.length} unknown`;
      });
      return { value: ms, unit: 'ms', detail };
    },
  },
];

import { NO_SPAN as NO } from '../src/util/span.js';
