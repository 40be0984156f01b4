import { describe, expect, it } from 'vitest';
import type { PacketInput } from '../../src/analyze/concrete/input.js';
import { runPacket } from '../../src/analyze/concrete/interp.js';
import { buildFamilyModel } from '../../src/analyze/model/build.js';
import { toSimPacket } from '../../src/analyze/replay.js';
import type { Policy } from '../../src/ir/policy.js';
import { createSimulator } from '../../src/netfilter/simulator.js';
import type { Family } from '../../src/util/ip.js';
import { kernelAvailable } from '../support/env.js';
import { withNetns } from '../support/netns.js';
import { fromSave } from './support/policies.js';

/**
 * Cases where the analyzer's model was wrong, each settled on the kernel. The expected rule
 * lists are the rules whose counters the kernel moved for the one packet (iptables-save -c
 * after sending it in a fresh namespace; every rule is narrowed to that packet so answers the
 * kernel sends do not count). The unit part checks the analyzer's model and the simulator
 * against those lists; the kernel part (root only) checks the lists against the kernel again.
 *
 * Runtime: ~1 s without the kernel, ~3 s with it.
 */

interface KernelCase {
  readonly name: string;
  readonly family: Family;
  /** iptables-save text (made up, local traffic only). */
  readonly rules: string;
  /** The packet as the analyzer takes it: from a local socket. */
  readonly input: PacketInput;
  /** Python that sends the same packet inside the namespace. */
  readonly send: string;
  /** `table/CHAIN#index` of every rule the packet hits, as the kernel counted them. */
  readonly fired: readonly string[];
}

const udpTo = (host: string, family: Family) =>
  `import socket\ns = socket.socket(${family === 'ipv4' ? 'socket.AF_INET' : 'socket.AF_INET6'}, socket.SOCK_DGRAM)\ns.bind(('${family === 'ipv4' ? '127.0.0.1' : '::1'}', 40000))\ns.sendto(b'x', ('${host}', 9))\n`;

const UDP4: PacketInput = {
  family: 'ipv4',
  ingress: { kind: 'local' },
  fields: { saddr: 0x7f000001n, daddr: 0x7f000001n, proto: 17n, sport: 40000n, dport: 9n, length: 29n },
  ctState: 'NEW',
};

const CASES: readonly KernelCase[] = [
  {
    // xt_CT: a packet that already has a conntrack (here the template of `CT --zone`) ignores
    // later CT/NOTRACK targets; until conntrack runs the rest of raw sees the template as a
    // connection in state NEW, original direction, with zeroed tuples (protocol 0, 0.0.0.0,
    // ports 0). --ctstatus NONE never matches (status mask 0). The entry is made in zone 5.
    name: 'NOTRACK after a CT template is ignored; raw sees the template as NEW with zeroed tuples',
    family: 'ipv4',
    rules: `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A OUTPUT -o lo -p udp --dport 9 -j CT --zone 5
-A OUTPUT -o lo -p udp --dport 9 -m conntrack --ctstate NEW
-A OUTPUT -o lo -p udp --dport 9 -m conntrack --ctstate INVALID
-A OUTPUT -o lo -p udp --dport 9 -m conntrack --ctdir ORIGINAL
-A OUTPUT -o lo -p udp --dport 9 -m conntrack --ctdir REPLY
-A OUTPUT -o lo -p udp --dport 9 -m conntrack --ctproto 17
-A OUTPUT -o lo -p udp --dport 9 -m conntrack --ctorigsrc 0.0.0.0
-A OUTPUT -o lo -p udp --dport 9 -m conntrack --ctorigdstport 0
-A OUTPUT -o lo -p udp --dport 9 -m conntrack --ctstatus NONE
-A OUTPUT -o lo -p udp --dport 9 -m connmark --mark 0
-A OUTPUT -o lo -p udp --dport 9 -j NOTRACK
-A OUTPUT -o lo -p udp --dport 9 -m conntrack --ctstate UNTRACKED
-A PREROUTING -i lo -p udp --dport 9 -j NOTRACK
-A PREROUTING -i lo -p udp --dport 9 -m conntrack --ctstate UNTRACKED
-A PREROUTING -i lo -p udp --dport 9 -m conntrack --ctstate NEW
COMMIT
`,
    input: UDP4,
    send: udpTo('127.0.0.1', 'ipv4'),
    fired: [
      'raw/OUTPUT#0',
      'raw/OUTPUT#1',
      'raw/OUTPUT#3',
      'raw/OUTPUT#6',
      'raw/OUTPUT#7',
      'raw/OUTPUT#9',
      'raw/OUTPUT#10',
      // Looped back by lo: the packet keeps its connection, so NOTRACK is ignored here too.
      'raw/PREROUTING#0',
      'raw/PREROUTING#2',
    ],
  },
  {
    // NOTRACK first: the rest of raw sees UNTRACKED at once, and a later CT target is ignored.
    name: 'NOTRACK first: raw sees UNTRACKED at once and ignores a later CT target',
    family: 'ipv4',
    rules: `*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A OUTPUT -o lo -p udp --dport 9 -m conntrack --ctstate INVALID
-A OUTPUT -o lo -p udp --dport 9 -j NOTRACK
-A OUTPUT -o lo -p udp --dport 9 -m conntrack --ctstate UNTRACKED
-A OUTPUT -o lo -p udp --dport 9 -m conntrack --ctstate INVALID
-A OUTPUT -o lo -p udp --dport 9 -j CT --zone 5
-A OUTPUT -o lo -p udp --dport 9 -m conntrack --ctstate UNTRACKED
-A OUTPUT -o lo -p udp --dport 9 -m conntrack --ctstate NEW
COMMIT
`,
    input: UDP4,
    send: udpTo('127.0.0.1', 'ipv4'),
    fired: ['raw/OUTPUT#0', 'raw/OUTPUT#1', 'raw/OUTPUT#2', 'raw/OUTPUT#4', 'raw/OUTPUT#5'],
  },
  {
    // No rule asks for conntrack, so the namespace never loads it for IPv6: nat is not consulted.
    name: 'without a rule that needs conntrack the nat table is never consulted',
    family: 'ipv6',
    rules: `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A OUTPUT -p udp --dport 9
-A POSTROUTING -p udp --dport 9
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A OUTPUT -p udp --dport 9
COMMIT
`,
    input: { family: 'ipv6', ingress: { kind: 'local' }, fields: { saddr: 1n, daddr: 1n, proto: 17n, sport: 40000n, dport: 9n, length: 49n }, ctState: 'NEW' },
    send: udpTo('::1', 'ipv6'),
    fired: ['filter/OUTPUT#0'],
  },
  {
    // get_unique_tuple: an ICMP query's identifier is its "port" for either manip type; out
    // of the given range it is moved in (here to 1000), and the reply tuple carries it.
    // xt_conntrack reads tuple "ports" as u.all for every protocol: the original id stays.
    name: 'DNAT with a port range moves an ICMP echo identifier into the range',
    family: 'ipv4',
    rules: `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A OUTPUT -d 127.0.0.2/32 -p icmp -j DNAT --to-destination 127.0.0.1:1000-2000
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A OUTPUT -p icmp --icmp-type 8 -m conntrack --ctreplsrcport 1000:2000
-A OUTPUT -p icmp --icmp-type 8 -m conntrack --ctorigsrcport 4242 --ctorigdstport 2048 --ctrepldstport 0
-A OUTPUT -p icmp --icmp-type 8 -m conntrack --ctreplsrcport 4242
COMMIT
`,
    input: {
      family: 'ipv4',
      ingress: { kind: 'local' },
      fields: { saddr: 0x7f000001n, daddr: 0x7f000002n, proto: 1n, icmptype: 8n, icmpcode: 0n, length: 32n },
      ctState: 'NEW',
      choices: { icmpid: 4242n },
    },
    send: [
      'import socket, struct',
      'def csum(b):',
      "    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))",
      '    s = (s >> 16) + (s & 0xffff)',
      '    s += s >> 16',
      '    return (~s) & 0xffff',
      "body = struct.pack('!HH', 4242, 1) + b'abcd'",
      "pkt = struct.pack('!BBH', 8, 0, csum(struct.pack('!BBH', 8, 0, 0) + body)) + body",
      "socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).sendto(pkt, ('127.0.0.2', 0))",
      '',
    ].join('\n'),
    fired: ['nat/OUTPUT#0', 'filter/OUTPUT#0', 'filter/OUTPUT#1'],
  },
];

function policyOf(c: KernelCase): Policy {
  return fromSave(c.rules, { family: c.family, host: { interfaces: { eth0: ['192.0.2.1/24', '2001:db8::1/64'] } } });
}

function modelFired(c: KernelCase): string[] {
  const model = buildFamilyModel(policyOf(c), c.family);
  return runPacket(model, c.input).fired.map((id) => `${model.rules[id].table}/${model.rules[id].chain}#${model.rules[id].index}`);
}

function simulatorFired(c: KernelCase): string[] {
  const out = createSimulator(policyOf(c), { trace: true }).process({ t: 0, ingress: { kind: 'local' }, packet: toSimPacket(c.input) });
  return out.trace.filter((s) => s.rule !== undefined && !s.action.startsWith('[answer]')).map((s) => `${s.table}/${s.chain}#${s.rule}`);
}

const sorted = (xs: readonly string[]) => [...new Set(xs)].sort();

describe('kernel-checked cases: the analyzer model', () => {
  for (const c of CASES) {
    it(c.name, () => {
      expect(sorted(modelFired(c))).toEqual(sorted(c.fired));
      expect(sorted(simulatorFired(c))).toEqual(sorted(c.fired));
    });
  }
});

const env = kernelAvailable();

describe.skipIf(!env.run)('kernel-checked cases: the kernel', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      for (const tool of ['iptables-legacy', 'iptables-nft'] as const) {
        const cmd = c.family === 'ipv4' ? tool : tool.replace('iptables', 'ip6tables');
        const hit = await withNetns(['an'], (ns) => {
          ns.run(`${cmd}-restore`, [], c.rules);
          ns.run('/usr/bin/python3', ['-c', c.send]);
          const out: string[] = [];
          let table = '';
          const index = new Map<string, number>();
          for (const line of ns.run(`${cmd}-save`, ['-c']).split('\n')) {
            if (line.startsWith('*')) table = line.slice(1);
            const m = /^\[(\d+):\d+\] -A (\S+)/.exec(line);
            if (!m) continue;
            const i = index.get(`${table}/${m[2]}`) ?? 0;
            index.set(`${table}/${m[2]}`, i + 1);
            if (Number(m[1]) > 0) out.push(`${table}/${m[2]}#${i}`);
          }
          return out;
        });
        expect(sorted(hit), tool).toEqual(sorted(c.fired));
      }
    });
  }
});

/**
 * A packet from a link to the interface's own (declared) link-local address is delivered; the
 * simulator once looked link-local destinations up bound to the incoming device before asking
 * whether they are its own, and forwarded it back out. Kernel: a UDP datagram from a peer to
 * fe80::100%link counts once in INPUT and never in FORWARD.
 */
describe('kernel-checked cases: own link-local address', () => {
  const save = `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p udp -m udp --dport 9
-A FORWARD -p udp -m udp --dport 9
COMMIT
`;
  const policy = fromSave(save, { family: 'ipv6', host: { interfaces: { vf0: ['fe80::100/64', '2001:db8::1/64'] } } });
  const input: PacketInput = {
    family: 'ipv6',
    ingress: { kind: 'iface', device: 'vf0' },
    fields: { saddr: 0xfe800000000000000000000000000002n, daddr: 0xfe800000000000000000000000000100n, proto: 17n, sport: 40000n, dport: 9n, length: 49n },
    ctState: 'NEW',
  };

  it('the model and the simulator deliver it locally', () => {
    const model = buildFamilyModel(policy, 'ipv6');
    const out = runPacket(model, input);
    expect(out.verdict).toBe('local');
    expect(out.fired.map((id) => `${model.rules[id].chain}#${model.rules[id].index}`)).toEqual(['INPUT#0']);
    const sim = createSimulator(policy, { trace: true }).process({ t: 0, ingress: { kind: 'iface', device: 'vf0' }, packet: toSimPacket(input) });
    expect(sim.verdict).toBe('local');
  });

  it.skipIf(!env.run)('the kernel delivers it locally', async () => {
    const hits = await withNetns(['fw', 'peer'], (fw, peer) => {
      fw.run('ip', ['link', 'add', 'name', 'vf0', 'type', 'veth', 'peer', 'name', 'vp0']);
      fw.run('ip', ['link', 'set', 'vp0', 'netns', peer.name]);
      fw.run('ip', ['addr', 'add', 'fe80::100/64', 'dev', 'vf0', 'nodad']);
      fw.run('ip', ['link', 'set', 'vf0', 'up']);
      peer.run('ip', ['addr', 'add', 'fe80::2/64', 'dev', 'vp0', 'nodad']);
      peer.run('ip', ['link', 'set', 'vp0', 'up']);
      fw.run('ip6tables-legacy-restore', [], save);
      peer.run('/usr/bin/python3', ['-c', "import socket, time\ns = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)\ns.sendto(b'x', ('fe80::100%vp0', 9))\ntime.sleep(0.5)"]);
      return fw
        .run('ip6tables-legacy-save', ['-c', '-t', 'filter'])
        .split('\n')
        .filter((l) => l.startsWith('['))
        .map((l) => `${/-A (\S+)/.exec(l)![1]} ${/^\[(\d+):/.exec(l)![1]}`);
    });
    expect(hits).toEqual(['INPUT 1', 'FORWARD 0']);
  });
});
