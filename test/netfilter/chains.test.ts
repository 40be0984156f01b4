import { describe, expect, it } from 'vitest';
import { addr, ACCEPT, DROP, RETURN, at, chain, dport, goto, host, iif, jump, log, mark, policy, proto, rejectIcmp, rejectRst, rule, saddr, setMark, simulate, table, tcp, udp } from './support/build.js';

/**
 * Chain walking as ipt_do_table does it (net/ipv4/netfilter/ip_tables.c): first match wins,
 * jump returns, goto does not, RETURN in a built-in chain applies the policy, counters on every
 * matching rule; and REJECT's answers (nf_reject_ipv4.c, icmp_send).
 */
const gw = host({
  interfaces: [
    { name: 'lan', device: 'eth0', addrs: ['10.0.0.1/24'] },
    { name: 'wan', device: 'eth1', addrs: ['198.51.100.1/24'] },
  ],
  routes: [{ dest: 'default', via: '198.51.100.254', device: 'eth1' }],
});

function filter(forward: ReturnType<typeof chain>[], policyName: 'ACCEPT' | 'DROP' = 'DROP', input: ReturnType<typeof rule>[] = []) {
  const [fwd, ...user] = forward;
  return policy(gw, [table('filter', [chain('INPUT', input, { policy: policyName }), { ...fwd, policy: policyName }, chain('OUTPUT', []), ...user])]);
}

const pkt = (sport = 1000) => tcp({ src: '10.0.0.5', sport, dst: '192.0.2.80', dport: 80 });

describe('jump, goto, return', () => {
  it('jump comes back to the next rule; RETURN leaves the user chain early', () => {
    const sim = simulate(
      filter([
        chain('FORWARD', [rule([], jump('checks')), rule([proto('tcp')], ACCEPT())]),
        chain('checks', [rule([dport(80)], RETURN()), rule([], DROP())]),
      ]),
    );
    const o = sim.process(at(0, 'eth0', pkt()));
    expect(o.verdict).toBe('forwarded');
    const rules = o.trace.filter((s) => s.rule !== undefined).map((s) => `${s.chain}#${s.rule}`);
    expect(rules).toEqual(['FORWARD#0', 'checks#0', 'FORWARD#1']);
  });

  it('goto does not come back: falling off the chain applies the built-in policy', () => {
    const sim = simulate(filter([chain('FORWARD', [rule([], goto('g')), rule([], ACCEPT())]), chain('g', [rule([dport(443)], ACCEPT())])]));
    const o = sim.process(at(0, 'eth0', pkt()));
    expect(o.verdict).toBe('dropped');
    expect(o.dropReason).toBe('policy');
    const fwd = sim.counters().find((c) => c.chain === 'FORWARD' && c.table === 'filter')!;
    expect(fwd.rules).toEqual([
      [1, 40],
      [0, 0],
    ]);
    expect(fwd.policy).toEqual([1, 40]);
  });

  it('RETURN in a built-in chain applies the policy', () => {
    const sim = simulate(filter([chain('FORWARD', [rule([], RETURN()), rule([], DROP())])], 'ACCEPT'));
    expect(sim.process(at(0, 'eth0', pkt())).verdict).toBe('forwarded');
  });

  it('non-terminating targets count and continue; a mark set earlier is seen later', () => {
    const sim = simulate(
      policy(gw, [
        table('mangle', [chain('PREROUTING', [rule([iif('eth0')], setMark(7))]), chain('INPUT', []), chain('FORWARD', []), chain('OUTPUT', []), chain('POSTROUTING', [])]),
        table('filter', [
          chain('INPUT', []),
          chain('FORWARD', [rule([], log('seen ')), rule([mark(7)], ACCEPT())], { policy: 'DROP' }),
          chain('OUTPUT', []),
        ]),
      ]),
    );
    const o = sim.process(at(0, 'eth0', pkt()));
    expect(o.trace.map((s) => s.action)).toContain('log prefix "seen "');
    expect(o.verdict).toBe('forwarded');
  });
});

describe('REJECT', () => {
  it('answers a SYN with RST+ACK acknowledging it (seq 0, ack = seq + 1), sent back out of the incoming side', () => {
    const sim = simulate(filter([chain('FORWARD', [rule([proto('tcp'), dport(80)], rejectRst())])]));
    const o = sim.process(at(0, 'eth0', tcp({ src: '10.0.0.5', sport: 1000, dst: '192.0.2.80', dport: 80, flags: 'S', seq: 777 })));
    expect(o.verdict).toBe('dropped');
    expect(o.responses).toHaveLength(1);
    const [r] = o.responses;
    expect(r.device).toBe('eth0');
    expect(r.packet).toMatchObject({ src: addr('192.0.2.80'), dst: addr('10.0.0.5'), sport: 80, dport: 1000, ttl: 64 });
    expect(r.packet.tcp).toMatchObject({ flags: 0x14, seq: 0, ack: 778, window: 0 });
    // The rejected connection was never confirmed.
    expect(sim.count()).toBe(0);
  });

  it('answers a segment carrying an ACK with a bare RST whose seq is that ack', () => {
    const sim = simulate(filter([chain('FORWARD', [rule([proto('tcp')], rejectRst())])]));
    const o = sim.process(at(0, 'eth0', tcp({ src: '10.0.0.5', sport: 1000, dst: '192.0.2.80', dport: 80, flags: 'PA', seq: 10, ack: 5555, payload: 'abc' })));
    expect(o.responses[0].packet.tcp).toMatchObject({ flags: 0x04, seq: 5555, ack: 0 });
  });

  it('never answers a RST', () => {
    const sim = simulate(filter([chain('FORWARD', [rule([proto('tcp')], rejectRst())])]));
    expect(sim.process(at(0, 'eth0', tcp({ src: '10.0.0.5', dst: '192.0.2.80', flags: 'R' }))).responses).toEqual([]);
  });

  it('ICMP port unreachable from the host address toward the sender (forwarded traffic), quoting the packet', () => {
    const sim = simulate(filter([chain('FORWARD', [rule([proto('udp')], rejectIcmp(3))])]));
    const o = sim.process(at(0, 'eth0', udp({ src: '10.0.0.5', sport: 5000, dst: '192.0.2.53', dport: 53 })));
    const [r] = o.responses;
    expect(r.device).toBe('eth0');
    expect(r.packet).toMatchObject({ src: addr('10.0.0.1'), dst: addr('10.0.0.5'), proto: 1, icmp: { type: 3, code: 3 } });
    expect(r.packet.icmp!.inner).toMatchObject({ src: addr('10.0.0.5'), dst: addr('192.0.2.53'), dport: 53 });
  });

  it('for local traffic the answer comes from the address the packet was sent to', () => {
    const sim = simulate(filter([chain('FORWARD', [])], 'ACCEPT', [rule([proto('udp')], rejectIcmp(3))]));
    const o = sim.process(at(0, 'eth1', udp({ src: '203.0.113.9', sport: 5000, dst: '198.51.100.1', dport: 161 })));
    expect(o.responses[0].packet.src).toBe(addr('198.51.100.1'));
    expect(o.responses[0].device).toBe('eth1');
  });

  it('ICMP errors to one destination are rate limited: a burst of 6, then one per second', () => {
    const sim = simulate(filter([chain('FORWARD', [rule([proto('udp')], rejectIcmp(3))])]));
    const sent = [0, 0, 0, 0, 0, 0, 0, 0, 0.5, 1.1].map((t, i) => sim.process(at(t, 'eth0', udp({ src: '10.0.0.5', sport: 5000 + i, dst: '192.0.2.53', dport: 53 }))).responses.length);
    expect(sent).toEqual([1, 1, 1, 1, 1, 1, 0, 0, 0, 1]);
    void saddr;
  });

  it('icmp_ratemask 0 (as the kernel harness sets it) turns the limit off', () => {
    const sim = simulate(filter([chain('FORWARD', [rule([proto('udp')], rejectIcmp(3))])]), { sysctls: { 'net.ipv4.icmp_ratemask': '0', 'net.ipv6.icmp.ratemask': '' } });
    const sent = [0, 0, 0, 0, 0, 0, 0, 0].map((t, i) => sim.process(at(t, 'eth0', udp({ src: '10.0.0.5', sport: 5000 + i, dst: '192.0.2.53', dport: 53 }))).responses.length);
    expect(sent).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
  });
});

describe('stateful matches run on the virtual clock', () => {
  it('limit: a bucket of `burst` packets refilled at the rate (the kind evaluates it, per rule)', () => {
    const limit = { kind: 'limit', rate: { count: 1, unit: 'second' }, burst: 2, span: { file: 'test.nfp', start: { line: 1, col: 1, offset: 0 }, end: { line: 1, col: 2, offset: 1 } } } as const;
    const sim = simulate(filter([chain('FORWARD', [rule([limit as never], ACCEPT())])]));
    const verdicts = [0, 0, 0, 0.5, 1.2].map((t, i) => sim.process(at(t, 'eth0', pkt(2000 + i))).verdict);
    // Two from the full bucket, then empty; 1.2 s after the start one token has come back.
    expect(verdicts).toEqual(['forwarded', 'forwarded', 'dropped', 'dropped', 'forwarded']);
  });
});
