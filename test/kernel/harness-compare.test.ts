import { describe, expect, it } from 'vitest';
import { CT_STATUS } from '../../src/ir/fields.js';
import type { CtEntrySnapshot, SimOutcome } from '../../src/netfilter/api.js';
import { normalizePacket } from '../../src/netfilter/wire.js';
import { PortMap, compareCounters, compareEntries, compareStep, inputForKernel } from './harness/compare.js';
import { addr, at, tcp } from './harness/craft.js';
import { parseConntrackLine, parseSave } from './harness/observe.js';
import { type KernelStep, carriedOnWith } from './harness/run.js';

/**
 * The comparison logic on made-up outcomes (no kernel needed): what counts as agreement, how
 * differences read, and how a port the kernel picked at random is compared modulo the choice.
 */
const syn = tcp('192.168.18.2:120', '202.10.10.1:30', 'S', { seq: 1000 });
const input = at(0, 'eth0', syn);
const natted = { ...syn, src: addr('192.168.20.1').value, sport: 450, ttl: 63 };

function outcome(over: Partial<SimOutcome>): SimOutcome {
  return { input, verdict: 'forwarded', egress: { device: 'eth1', packet: natted }, responses: [], ctState: 'NEW', trace: [], ...over };
}

function kstep(over: Partial<KernelStep>): KernelStep {
  return { input, emitted: [{ device: 'eth1', packet: normalizePacket(natted), checksumOk: true, notes: [] }], delivered: [], other: [], ...over };
}

describe('compareStep', () => {
  it('agrees when the same packet leaves by the same device', () => {
    expect(compareStep(0, outcome({}), kstep({}), new PortMap())).toEqual([]);
  });

  it('names the fields that differ', () => {
    const k = kstep({ emitted: [{ device: 'eth1', packet: normalizePacket({ ...natted, ttl: 62 }), checksumOk: true, notes: [] }] });
    const [d] = compareStep(0, outcome({}), k, new PortMap());
    expect(d.kind).toBe('packet');
    expect(d.detail).toContain('ttl: sim 63, kernel 62');
  });

  it('reports a packet one side drops', () => {
    const [d] = compareStep(0, outcome({}), kstep({ emitted: [] }), new PortMap());
    expect(d.detail).toMatch(/simulator forwarded, kernel dropped/);
    expect(d.detail).toMatch(/the kernel sends no such packet/);
  });

  it('compares a randomly chosen SNAT port modulo the choice, and sends later inputs to the kernel port', () => {
    const map = new PortMap();
    const simOut = { ...natted, sport: 1024 };
    const kernelOut = normalizePacket({ ...natted, sport: 61001 });
    const ds = compareStep(0, outcome({ egress: { device: 'eth1', packet: simOut } }), kstep({ emitted: [{ device: 'eth1', packet: kernelOut, checksumOk: true, notes: [] }] }), map);
    expect(ds).toEqual([]);
    expect(map.size).toBe(1);
    const reply = at(0, 'eth1', tcp('202.10.10.1:30', '192.168.20.1:1024', 'SA', { seq: 1, ack: 1001 }));
    expect(inputForKernel(reply, map).packet.dport).toBe(61001);
    // A port kept by one side and changed by the other is not a random choice: it is reported.
    const map2 = new PortMap();
    const kept = compareStep(0, outcome({ egress: { device: 'eth1', packet: { ...natted, sport: 120 } } }), kstep({ emitted: [{ device: 'eth1', packet: kernelOut, checksumOk: true, notes: [] }] }), map2);
    expect(kept).toHaveLength(1);
    expect(kept[0].detail).toContain('sport: sim 120, kernel 61001');
  });

  it('learns a random SNAT port of a local packet that loops back through lo', () => {
    // Seed 1002 of the differential property: a local SYN to our own address, SNATed with
    // --random-fully in POSTROUTING, comes back in by lo with a port each side drew itself.
    const local = at(0, 'local', tcp('192.168.18.1:2000', '192.168.18.1:22', 'S', { seq: 5 }));
    const simBack = { ...local.packet, src: addr('192.168.20.1').value, sport: 22309 };
    const kernelBack = normalizePacket({ ...simBack, sport: 38579 });
    const map = new PortMap();
    const sim: SimOutcome = { input: local, verdict: 'sent', egress: { device: 'lo', packet: simBack }, responses: [], ctState: 'NEW', trace: [] };
    const ds = compareStep(0, sim, { input: local, emitted: [], delivered: [{ packet: kernelBack, indev: 'lo' }], other: [] }, map);
    expect(ds).toEqual([]);
    expect(map.port('toKernel', 'ipv4', syn.proto, addr('192.168.20.1').value, 22309, addr('192.168.18.1').value, 22)).toBe(38579);
  });

  it('translates a connection started again with the same endpoints afresh (SYN into a TIME_WAIT entry)', () => {
    // Seed 1010: the reopened connection drew a new random port on each side.
    const map = new PortMap();
    for (const kernelPort of [61001, 61005]) {
      const sim = outcome({ egress: { device: 'eth1', packet: { ...natted, sport: 1024 } } });
      const k = kstep({ emitted: [{ device: 'eth1', packet: normalizePacket({ ...natted, sport: kernelPort }), checksumOk: true, notes: [] }] });
      expect(compareStep(0, sim, k, map)).toEqual([]);
    }
    const reply = at(0, 'eth1', tcp('202.10.10.1:30', '192.168.20.1:1024', 'SA', { seq: 1, ack: 1001 }));
    expect(inputForKernel(reply, map).packet.dport).toBe(61005);
    expect(map.size).toBe(1);
  });

  it('keeps bindings per connection: one simulator port may be two kernel ports toward different far ends', () => {
    // Seed 1006: two connections SNATed to one address and port range; the simulator drew the
    // same port for both, the kernel two different ones.
    const map = new PortMap();
    const toServer = (dport: number) => ({ ...natted, dport });
    for (const [dport, kernelPort] of [[30, 61001], [31, 61002]] as const) {
      const sim = outcome({ input: at(0, 'eth0', { ...syn, dport }), egress: { device: 'eth1', packet: { ...toServer(dport), sport: 1024 } } });
      const k = kstep({ emitted: [{ device: 'eth1', packet: normalizePacket({ ...toServer(dport), sport: kernelPort }), checksumOk: true, notes: [] }] });
      expect(compareStep(0, sim, k, map)).toEqual([]);
    }
    const reply = (sport: number) => at(0, 'eth1', tcp(`202.10.10.1:${sport}`, '192.168.20.1:1024', 'SA', { seq: 1, ack: 1001 }));
    expect([inputForKernel(reply(30), map).packet.dport, inputForKernel(reply(31), map).packet.dport]).toEqual([61001, 61002]);
  });
});

describe('carriedOnWith', () => {
  it('does not take the ICMP error a REJECT delivers back to a local sender for the packet itself', () => {
    // Seed 1001: a reply was built from that error and had no ports at all.
    const local = at(0, 'local', tcp('192.168.18.1:40000', '198.51.100.8:80', 'S', { seq: 5 }));
    const error = normalizePacket({ family: 'ipv4', src: addr('192.168.18.1').value, dst: addr('192.168.18.1').value, proto: 1, ttl: 64, icmp: { type: 3, code: 13, inner: local.packet }, payload: new Uint8Array(0) });
    expect(carriedOnWith({ input: local, emitted: [], delivered: [{ packet: error, indev: 'lo' }], other: [] })).toBeUndefined();
    const self = { ...local.packet, dst: addr('192.168.18.1').value };
    expect(carriedOnWith({ input: { ...local, packet: self }, emitted: [], delivered: [{ packet: normalizePacket(self), indev: 'lo' }], other: [] })?.device).toBe('local');
  });
});

describe('compareEntries', () => {
  const line = 'ipv4     2 tcp      6 431998 ESTABLISHED src=192.168.18.2 dst=202.10.10.1 sport=120 dport=30 src=202.10.10.1 dst=192.168.20.1 sport=30 dport=450 [ASSURED] mark=0 use=1';
  const kernel = parseConntrackLine(line);
  const sim: CtEntrySnapshot = {
    family: 'ipv4',
    original: kernel.original,
    reply: kernel.reply,
    tcpState: 'ESTABLISHED',
    timeout: 432000,
    status: CT_STATUS.CONFIRMED | CT_STATUS.SEEN_REPLY | CT_STATUS.ASSURED | CT_STATUS.SRC_NAT | CT_STATUS.SRC_NAT_DONE | CT_STATUS.DST_NAT_DONE,
    mark: 0,
    zone: 0,
  };

  it('agrees within the timeout tolerance, ignoring status bits a listing cannot show', () => {
    expect(kernel.status & CT_STATUS.SRC_NAT).toBeTruthy();
    expect(compareEntries([sim], [kernel], new PortMap())).toEqual([]);
  });

  it('reports state, flags and timeout differences, and entries only one side has', () => {
    const [d] = compareEntries([{ ...sim, tcpState: 'SYN_RECV', timeout: 60, status: sim.status & ~CT_STATUS.ASSURED }], [kernel], new PortMap());
    expect(d.detail).toContain('state: sim SYN_RECV, kernel ESTABLISHED');
    expect(d.detail).toContain('status: sim [SRC_NAT], kernel [ASSURED,SRC_NAT]');
    expect(d.detail).toContain('timeout: sim 60s, kernel 431998s');
    const missing = compareEntries([], [kernel], new PortMap());
    expect(missing[0].detail).toMatch(/the kernel has tcp 431998 ESTABLISHED .* the simulator has no entry/);
  });
});

describe('compareCounters', () => {
  const save = `*filter
:INPUT ACCEPT [3:120]
:FORWARD DROP [1:40]
:OUTPUT ACCEPT [0:0]
[2:80] -A FORWARD -s 10.0.0.0/8 -m comment --comment "p.nfp:4" -j ACCEPT
[1:40] -A FORWARD -s 172.16.0.0/12 -m comment --comment "p.nfp:4" -j ACCEPT
[0:0] -A FORWARD -m comment --comment "p.nfp:5 no ssh" -j DROP
COMMIT
`;
  const chains = parseSave(save, 'ipv4');

  it('adds up the iptables rules one policy rule was split into', () => {
    const notes: string[] = [];
    const ds = compareCounters([{ family: 'ipv4', table: 'filter', chain: 'FORWARD', policy: [1, 40], rules: [[3, 120], [0, 0]] }], chains, notes);
    expect(ds).toEqual([]);
  });

  it('reports a rule whose counters differ', () => {
    const [d] = compareCounters([{ family: 'ipv4', table: 'filter', chain: 'FORWARD', policy: [1, 40], rules: [[2, 80], [1, 40]] }], chains);
    expect(d.where).toBe('iptables filter FORWARD rule 1');
    expect(d.detail).toMatch(/^sim 2 packets 80 bytes, kernel 3 packets 120 bytes/);
  });
});

describe('parseSave', () => {
  it('reads a rule with neither match nor target (iptables-save prints a bare -A CHAIN)', () => {
    const [input, forward] = parseSave('*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [5:300]\n[5:300] -A FORWARD\n[1:60] -A FORWARD -p udp\nCOMMIT\n', 'ipv4');
    expect(input.rules).toEqual([]);
    expect(forward.rules.map((r) => [r.packets, r.bytes, r.text])).toEqual([
      [5, 300, '-A FORWARD'],
      [1, 60, '-A FORWARD -p udp'],
    ]);
  });
});
