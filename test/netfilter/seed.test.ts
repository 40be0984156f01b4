import { describe, expect, it } from 'vitest';
import { CT_STATUS } from '../../src/ir/fields.js';
import { formatConntrackList, formatProc } from '../../src/netfilter/format.js';
import { formatAddress } from '../../src/util/ip.js';
import { ACCEPT, DROP, addr, at, chain, ctstate, host, iif, oif, policy, proto, rule, saddr, simulate, snat, table, tcp } from './support/build.js';

/**
 * The source document's worked example (BRIEF.md): 192.168.18.2 connects by TCP from port 120
 * to 202.10.10.1:30 through a gateway that SNATs to 192.168.20.1:450. Expected values are the
 * document's, checked by hand against nf_nat_core.c: the ORIGINAL tuple keeps what the client
 * sent; SNAT replaces the REPLY tuple's destination with the NAT address and port; the reply
 * matches the REPLY tuple and is de-NATed back to the client.
 */
const gw = host({
  interfaces: [
    { name: 'lan', device: 'eth0', addrs: ['192.168.18.1/24'] },
    { name: 'wan', device: 'eth1', addrs: ['192.168.20.1/24'] },
  ],
  routes: [{ dest: 'default', via: '192.168.20.254', device: 'eth1' }],
});

function seedPolicy() {
  return policy(gw, [
    table('nat', [chain('PREROUTING', []), chain('INPUT', []), chain('OUTPUT', []), chain('POSTROUTING', [rule([oif('eth1'), saddr('192.168.18.0/24'), proto('tcp')], snat('192.168.20.1:450'))])]),
    table('filter', [
      chain('INPUT', []),
      chain('FORWARD', [rule([ctstate('ESTABLISHED', 'RELATED')], ACCEPT()), rule([iif('eth0'), oif('eth1')], ACCEPT())], { policy: 'DROP' }),
      chain('OUTPUT', []),
    ]),
  ]);
}

describe('seed scenario: SNAT to 192.168.20.1:450', () => {
  it('creates the entry with the SNATed reply tuple and delivers the reply back to 192.168.18.2:120', () => {
    const sim = simulate(seedPolicy());
    const syn = sim.process(at(0, 'eth0', tcp({ src: '192.168.18.2', sport: 120, dst: '202.10.10.1', dport: 30, flags: 'S', seq: 1000 })));
    expect(syn.verdict).toBe('forwarded');
    expect(syn.ctState).toBe('NEW');
    expect(syn.egress?.device).toBe('eth1');
    expect(formatAddress('ipv4', syn.egress!.packet.src)).toBe('192.168.20.1');
    expect(syn.egress!.packet.sport).toBe(450);
    expect(syn.egress!.packet.dst).toBe(addr('202.10.10.1'));
    expect(syn.egress!.packet.dport).toBe(30);

    const [e] = sim.entries();
    expect(e.original).toMatchObject({ src: addr('192.168.18.2'), dst: addr('202.10.10.1'), sport: 120, dport: 30 });
    expect(e.reply).toMatchObject({ src: addr('202.10.10.1'), dst: addr('192.168.20.1'), sport: 30, dport: 450 });
    expect(e.status & CT_STATUS.SRC_NAT).toBeTruthy();
    expect(e.status & CT_STATUS.SEEN_REPLY).toBe(0);
    expect(e.tcpState).toBe('SYN_SENT');
    // tcp_timeout_syn_sent = 120 s, nothing elapsed.
    expect(formatConntrackList([e]).lines[0]).toBe(
      'tcp      6 120 SYN_SENT src=192.168.18.2 dst=202.10.10.1 sport=120 dport=30 [UNREPLIED] src=202.10.10.1 dst=192.168.20.1 sport=30 dport=450 mark=0 use=1',
    );

    const synack = sim.process(at(0.01, 'eth1', tcp({ src: '202.10.10.1', sport: 30, dst: '192.168.20.1', dport: 450, flags: 'SA', seq: 5000, ack: 1001 })));
    expect(synack.verdict).toBe('forwarded');
    expect(synack.ctState).toBe('ESTABLISHED');
    expect(synack.ctDir).toBe('reply');
    expect(synack.egress?.device).toBe('eth0');
    expect(synack.egress!.packet.dst).toBe(addr('192.168.18.2'));
    expect(synack.egress!.packet.dport).toBe(120);
    expect(synack.egress!.packet.src).toBe(addr('202.10.10.1'));

    const ack = sim.process(at(0.02, 'eth0', tcp({ src: '192.168.18.2', sport: 120, dst: '202.10.10.1', dport: 30, flags: 'A', seq: 1001, ack: 5001 })));
    expect(ack.verdict).toBe('forwarded');
    expect(ack.ctState).toBe('ESTABLISHED');
    const [done] = sim.entries();
    expect(done.tcpState).toBe('ESTABLISHED');
    expect(done.status & CT_STATUS.ASSURED).toBeTruthy();
    // 432000 s established timeout set at t=0.02, read at t=0.02.
    expect(formatProc([done])[0]).toBe(
      'ipv4     2 tcp      6 432000 ESTABLISHED src=192.168.18.2 dst=202.10.10.1 sport=120 dport=30 src=202.10.10.1 dst=192.168.20.1 sport=30 dport=450 [ASSURED] mark=0 zone=0 use=2',
    );
  });

  it('traces the path with file:line of the rules that matched', () => {
    const sim = simulate(seedPolicy());
    const o = sim.process(at(0, 'eth0', tcp({ src: '192.168.18.2', sport: 120, dst: '202.10.10.1', dport: 30 })));
    const matched = o.trace.filter((s) => s.rule !== undefined).map((s) => `${s.hook} ${s.table} ${s.chain} #${s.rule} ${s.action}`);
    expect(matched).toEqual(['FORWARD filter FORWARD #1 accept', 'POSTROUTING nat POSTROUTING #0 snat to 192.168.20.1:450']);
    expect(o.trace.find((s) => s.table === 'nat')?.span?.file).toBe('test.nfp');
  });

  it('drops a new connection from the outside (FORWARD policy DROP) and leaves no entry', () => {
    const sim = simulate(seedPolicy());
    const o = sim.process(at(0, 'eth1', tcp({ src: '202.10.10.1', sport: 30, dst: '192.168.18.2', dport: 22 })));
    expect(o.verdict).toBe('dropped');
    expect(o.dropReason).toBe('policy');
    expect(sim.entries()).toEqual([]);
    expect(sim.count()).toBe(0);
  });

  it('counts rule and policy hits (packets, bytes = IP length)', () => {
    const sim = simulate(seedPolicy());
    sim.process(at(0, 'eth0', tcp({ src: '192.168.18.2', sport: 120, dst: '202.10.10.1', dport: 30 })));
    sim.process(at(0, 'eth1', tcp({ src: '202.10.10.1', sport: 30, dst: '192.168.18.2', dport: 22 })));
    const fwd = sim.counters().find((c) => c.family === 'ipv4' && c.table === 'filter' && c.chain === 'FORWARD')!;
    // A SYN without options or payload: 20 bytes IP + 20 bytes TCP.
    expect(fwd.rules).toEqual([
      [0, 0],
      [1, 40],
    ]);
    expect(fwd.policy).toEqual([1, 40]);
    const post = sim.counters().find((c) => c.table === 'nat' && c.chain === 'POSTROUTING' && c.family === 'ipv4')!;
    expect(post.rules).toEqual([[1, 40]]);
    void DROP;
  });
});
