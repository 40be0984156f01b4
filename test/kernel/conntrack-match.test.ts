import { describe, expect, it } from 'vitest';
import { harnessAvailable } from './harness/env.js';
import { GATEWAY, type KernelRun, type Scenario, at, checkScenario, ping, restore, tcp, udp } from './harness/index.js';

/**
 * What `-m conntrack` tests mean for a packet that has no connection (INVALID or UNTRACKED).
 * xt_conntrack.c conntrack_mt: after the --ctstate test, `if (ct == NULL) return match_flags &
 * XT_CONNTRACK_STATE` — so without a connection a match with a --ctstate test is decided by
 * that test alone (its other tests are skipped), and a match without one fails, whatever its
 * `!`s say (--ctdir REPLY fails too, though ORIGINAL is the direction of nothing here). Found by the differential property (the simulator matched `! --ctstatus` on an
 * INVALID packet). ~1 s.
 */
const env = harnessAvailable();

/** A SYN/ACK nobody asked for: no connection exists and none is created (INVALID). */
const stray = tcp('198.51.100.7:80', '192.168.18.2:40000', 'SA', { seq: 1, ack: 1 });

const counts = (run: KernelRun) => run.final.chains.find((c) => c.table === 'filter' && c.chain === 'FORWARD')!.rules.map((r) => r.packets);

const noConnection: Scenario = {
  name: 'without a connection, ! --ctstatus does not match; next to --ctstate only the state decides',
  host: GATEWAY,
  rules: {
    ipv4: restore({
      filter: [
        '-A FORWARD -m conntrack ! --ctstatus ASSURED',
        '-A FORWARD -m conntrack --ctdir REPLY',
        '-A FORWARD -m conntrack ! --ctproto 17',
        '-A FORWARD -m conntrack --ctstate INVALID --ctstatus ASSURED',
        '-A FORWARD -m conntrack --ctstate INVALID',
      ],
    }),
  },
  inputs: [at(0, 'eth1', stray)],
  expectKernel(run) {
    expect(run.steps[0].emitted.map((e) => e.device)).toEqual(['eth0']);
    expect(counts(run)).toEqual([0, 0, 0, 1, 1]);
    expect(run.final.entries).toEqual([]);
  },
};

/**
 * --ctexpire and CONFIRMED around the moment of confirmation. Until a connection's first packet
 * has passed every hook it is unconfirmed, and its timeout is stored relative
 * (__nf_ct_refresh_acct adds the clock only to confirmed entries), so nf_ct_expires() — the
 * stored value minus now, clamped at 0 — reads 0 on INPUT for a first packet, and on OUTPUT for
 * the ICMP error a REJECT sends about it (the answer carries the same, never confirmed, entry as
 * RELATED). The second packet sees the confirmed entry with its ~30 s of udp_timeout. Found by
 * the differential property (the simulator gave unconfirmed entries their full timeout).
 */
const expiry: Scenario = {
  name: '--ctexpire reads 0 before confirmation, the seconds left after; CONFIRMED only from the second packet',
  host: GATEWAY,
  rules: {
    ipv4: restore({
      filter: [
        '-A INPUT -m conntrack ! --ctstatus CONFIRMED',
        '-A INPUT -m conntrack --ctexpire 0:0',
        '-A INPUT -m conntrack --ctexpire 25:35',
        '-A INPUT -p udp -m udp --dport 69 -j REJECT --reject-with icmp-port-unreachable',
        '-A OUTPUT -m conntrack --ctstate RELATED',
        '-A OUTPUT -m conntrack --ctexpire 0:0',
        '-A OUTPUT -m conntrack ! --ctstatus CONFIRMED',
      ],
    }),
  },
  inputs: [
    at(0, 'eth0', udp('192.168.18.2:4000', '192.168.18.1:5000', 'first')),
    at(0, 'eth0', udp('192.168.18.2:4000', '192.168.18.1:5000', 'second')),
    at(0, 'eth0', udp('192.168.18.2:4001', '192.168.18.1:69', 'tftp')),
  ],
  expectKernel(run) {
    const c = (chain: string) => run.final.chains.find((x) => x.table === 'filter' && x.chain === chain)!.rules.map((r) => r.packets);
    // INPUT: unconfirmed first packets (1 and 3) read 0 and lack CONFIRMED; the second reads ~30.
    expect(c('INPUT')).toEqual([2, 2, 1, 1]);
    // OUTPUT: the port unreachable about packet 3 is RELATED to an entry never confirmed.
    expect(c('OUTPUT')).toEqual([1, 1, 1]);
    expect(run.steps[2].emitted.map((e) => e.packet.icmp?.type)).toEqual([3]);
  },
};

/**
 * --ctorigsrcport and the other tuple "ports" read the tuple's u.all for every protocol
 * (xt_conntrack ct_proto_port_check_v3): for ICMP the echo id as source and type << 8 | code as
 * destination (echo request 8/0 → 2048, the reply tuple's 0/0 → 0; ICMPv6 128/0 → 32768), 0
 * for a protocol without ports (so `--ctreplsrcport 0` matches only the protocol-99 packet). Found by the differential property (the simulator never matched
 * them on ICMPv6, so a negated --ctorigdstport did not MASQUERADE an echo request).
 */
const icmpTuplePorts: Scenario = {
  name: 'conntrack tuple ports of ICMP are the echo id and type/code, of other protocols 0',
  host: GATEWAY,
  rules: {
    ipv4: restore({
      filter: [
        '-A FORWARD -m conntrack --ctorigsrcport 4660',
        '-A FORWARD -m conntrack --ctorigdstport 2048',
        '-A FORWARD -p icmp -m conntrack --ctreplsrcport 4660 --ctrepldstport 0',
        '-A FORWARD -m conntrack --ctreplsrcport 0',
        '-A FORWARD -p 99 -m conntrack --ctorigsrcport 0 --ctorigdstport 0',
      ],
    }),
    ipv6: restore({ filter: ['-A FORWARD -m conntrack --ctorigdstport 32768', '-A FORWARD -m conntrack ! --ctorigdstport 5793:5892'] }),
  },
  inputs: [
    at(0, 'eth0', ping('192.168.18.2', '203.0.113.9', 0x1234)),
    at(0, 'eth0', { ...udp('192.168.18.2:1', '203.0.113.9:2', 'x'), proto: 99, sport: undefined, dport: undefined }),
    at(0, 'eth0', ping('fd00:18::2', 'fd00:20::9', 7)),
  ],
  expectKernel(run) {
    expect(counts(run)).toEqual([1, 1, 1, 1, 1]);
    const v6 = run.final.chains.find((c) => c.family === 'ipv6' && c.table === 'filter' && c.chain === 'FORWARD')!.rules.map((r) => r.packets);
    expect(v6).toEqual([1, 1]);
  },
};

/**
 * DNAT --random moves an ICMP echo id (nf_nat_l4proto_unique_tuple changes src.u.icmp.id
 * whatever the manip type), yet only IPS_DST_NAT is set: the POSTROUTING null binding finds
 * the tuple free and changes nothing. A listing cannot tell (the id differs between the
 * tuples, which the harness reads as SRC_NAT on both sides); `--ctstate SNAT` can. Found by
 * the differential property (seed 1).
 */
const dnatRandomIcmp: Scenario = {
  name: 'DNAT --random of an ICMP echo moves the id but sets only DST_NAT',
  host: GATEWAY,
  rules: {
    ipv4: restore({
      nat: ['-A OUTPUT -p icmp -j DNAT --to-destination 198.51.100.77 --random'],
      mangle: ['-A POSTROUTING -m conntrack --ctstate SNAT', '-A POSTROUTING -m conntrack --ctstate DNAT'],
    }),
  },
  inputs: [at(0, 'local', ping('192.168.20.1', '198.51.100.9', 1))],
  expectKernel(run) {
    const post = run.final.chains.find((c) => c.table === 'mangle' && c.chain === 'POSTROUTING')!.rules.map((r) => r.packets);
    expect(post).toEqual([0, 1]);
  },
};

/**
 * A CT template (`-j CT --zone N` in raw) is what later raw rules see as the connection, and
 * its status is IPS_TEMPLATE | IPS_CONFIRMED (nf_ct_tmpl_alloc; xt_ct_tg_check sets CONFIRMED):
 * `--ctstatus CONFIRMED` matches it, `! --ctstatus CONFIRMED` does not. Found by the differential
 * property (seed 1013: the simulator gave the template no status bits).
 */
const templateStatus: Scenario = {
  name: 'a CT template reads as CONFIRMED to --ctstatus in raw',
  host: GATEWAY,
  rules: {
    ipv4: restore({
      raw: [
        '-A PREROUTING -p udp -j CT --zone 8',
        '-A PREROUTING -m conntrack --ctstatus CONFIRMED',
        '-A PREROUTING -m conntrack ! --ctstatus CONFIRMED',
        '-A PREROUTING -m conntrack ! --ctstatus EXPECTED,SEEN_REPLY,ASSURED',
      ],
    }),
  },
  inputs: [at(0, 'eth0', udp('192.168.18.5:4000', '198.51.100.7:53', 'q'))],
  expectKernel(run) {
    const raw = run.final.chains.find((c) => c.table === 'raw' && c.chain === 'PREROUTING')!.rules.map((r) => r.packets);
    expect(raw).toEqual([1, 1, 0, 1]);
    expect(run.final.entries.map((e) => e.zone)).toEqual([8]);
  },
};

/**
 * NOTRACK in raw gives the packet the untracked connection at once: a later raw rule reads
 * UNTRACKED. The first CT target wins (xt_CT returns early on a packet that has one), so NOTRACK
 * after `CT --zone` leaves the template, which is not UNTRACKED. The diff's walk read INVALID
 * after NOTRACK until conntrack ran (found by a four-engine check, test/analyze/raw-targets.test.ts).
 */
const notrackInRaw: Scenario = {
  name: 'after NOTRACK the rest of raw reads UNTRACKED, unless a CT template came first',
  host: GATEWAY,
  rules: {
    ipv4: restore({
      raw: [
        '-A PREROUTING -p udp --dport 7001 -j CT --notrack',
        '-A PREROUTING -p udp --dport 7002 -j CT --zone 5',
        '-A PREROUTING -p udp --dport 7002 -j CT --notrack',
        '-A PREROUTING -m conntrack --ctstate UNTRACKED',
        '-A PREROUTING -m conntrack --ctstate NEW',
      ],
    }),
  },
  inputs: [at(0, 'eth0', udp('192.168.18.5:4000', '198.51.100.7:7001', 'notrack')), at(0.01, 'eth0', udp('192.168.18.5:4000', '198.51.100.7:7002', 'template first'))],
  expectKernel(run) {
    const raw = run.final.chains.find((c) => c.table === 'raw' && c.chain === 'PREROUTING')!.rules.map((r) => r.packets);
    // The template reads as NEW (its state bits say nothing else), the untracked packet as UNTRACKED.
    expect(raw).toEqual([1, 1, 1, 1, 1]);
    expect(run.final.entries.map((e) => e.zone)).toEqual([5]);
  },
};

/**
 * An ESTABLISHED packet's connection is always CONFIRMED (only confirmed entries are found) and
 * has SEEN_REPLY — the first reply sets it before any rule sees that reply. The analyzer's
 * engines left the status of an existing connection free and the diff reported ESTABLISHED
 * packets of unconfirmed connections (trust property, seed 32).
 */
const establishedStatus: Scenario = {
  name: 'an ESTABLISHED packet’s connection is CONFIRMED and has SEEN_REPLY, the first reply included',
  host: GATEWAY,
  rules: {
    ipv4: restore({
      filter: [
        '-A FORWARD -m conntrack --ctstate ESTABLISHED',
        '-A FORWARD -m conntrack --ctstate ESTABLISHED ! --ctstatus CONFIRMED',
        '-A FORWARD -m conntrack --ctstate ESTABLISHED ! --ctstatus SEEN_REPLY',
      ],
    }),
  },
  inputs: [
    at(0, 'eth0', tcp('192.168.18.5:40000', '198.51.100.7:80', 'S', { seq: 100 })),
    at(0.01, 'eth1', tcp('198.51.100.7:80', '192.168.18.5:40000', 'SA', { seq: 900, ack: 101 })),
    at(0.02, 'eth0', tcp('192.168.18.5:40000', '198.51.100.7:80', 'A', { seq: 101, ack: 901 })),
  ],
  expectKernel(run) {
    const counts = run.final.chains.find((c) => c.family === 'ipv4' && c.table === 'filter' && c.chain === 'FORWARD')!.rules.map((r) => r.packets);
    // The SYN-ACK and the ACK are ESTABLISHED, and neither lacks either bit.
    expect(counts).toEqual([2, 0, 0]);
  },
};

describe.skipIf(!env.run)('conntrack match details (kernel)', () => {
  for (const s of [noConnection, expiry, icmpTuplePorts, dnatRandomIcmp, templateStatus, notrackInRaw, establishedStatus]) {
    it(s.name, async () => {
      await checkScenario(s);
    });
  }
});
