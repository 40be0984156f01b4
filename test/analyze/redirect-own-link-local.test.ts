import { describe, expect, it } from 'vitest';
import type { PacketInput } from '../../src/analyze/concrete/input.js';
import { CHOICE, runPacket } from '../../src/analyze/concrete/interp.js';
import { buildFamilyModel } from '../../src/analyze/model/build.js';
import { withLinkLocalAddress } from '../../src/analyze/model/routing.js';
import { toSimPacket } from '../../src/analyze/replay.js';
import { type Z3Bool, z3 } from '../../src/analyze/z3/context.js';
import { Encoder } from '../../src/analyze/z3/encode.js';
import { Session, newZ3Stats } from '../../src/analyze/z3/session.js';
import { CT_STATE, type NumericField } from '../../src/ir/fields.js';
import { createSimulator } from '../../src/netfilter/simulator.js';
import { parseAddress } from '../../src/util/ip.js';
import { check, nfp } from './support/nfp.js';

/**
 * IPv6 REDIRECT of a packet addressed to its ingress device's own link-local address (the
 * `ownll` choice: the device has it though the host model does not declare it). The kernel's
 * nf_nat_redirect_ipv6 (since 6.7) takes the first usable address of the device of the
 * destination's scope — here a link-local one, so that very address — and the packet is
 * delivered (the kernel witness survey, seed 400, ran it: kernel and simulator delivered it).
 * The analyzer used to look only at declared addresses, found none on eth0 and said the NAT
 * failed (an internal error: its replay disagreed). Expected values by hand from that code.
 *
 * Runtime: ~2 s.
 */
const host = `
host gw {
  interface lan dev eth0 address 192.168.18.1/24
  interface wan dev eth1 address 192.168.20.1/24, 2001:db8::1/64, fe80::99/64
}`;
const text = `${host}
table ip6 nat {
  chain prerouting {
    pkttype != otherhost redirect
  }
  chain input {
    daddr 2001:db8:77::/48 counter
  }
}`;

const ping = (device: string, dst: string): PacketInput => ({
  family: 'ipv6',
  ingress: { kind: 'iface', device },
  fields: { saddr: parseAddress('2001:db8::7')!.value, daddr: parseAddress(dst)!.value, proto: 58n, icmptype: 128n, icmpcode: 0n, length: 100n, ttl: 64n, tos: 0n, fragment: 0n, macsrc: 0x020000000001n },
  ctState: 'NEW',
  // 0: the destination is taken as the ingress device's own link-local address.
  choices: { [CHOICE.ownLinkLocal]: 0n },
});

describe('IPv6 REDIRECT to the ingress device’s own link-local address', () => {
  const policy = nfp(text);
  const model = buildFamilyModel(policy, 'ipv6');

  it('a device with no IPv6 address of its own in the model: redirected to that address and delivered', () => {
    const p = ping('eth0', 'fe80::1');
    const out = runPacket(model, p);
    expect(out.verdict).toBe('local');
    expect(out.final.daddr).toBe(parseAddress('fe80::1')!.value);
    // The replay host has the address as a /128 on eth0; the simulator agrees.
    const sim = createSimulator({ ...policy, host: withLinkLocalAddress(policy.host!, 'eth0', parseAddress('fe80::1')!.value) });
    expect(sim.process({ t: 0, ingress: { kind: 'iface', device: 'eth0' }, packet: toSimPacket(p) }).verdict).toBe('local');
  });

  it('a device with a declared link-local address: that one is the target, not the global one', () => {
    const out = runPacket(model, ping('eth1', 'fe80::1'));
    expect(out.verdict).toBe('local');
    expect(out.final.daddr).toBe(parseAddress('fe80::99')!.value);
  });

  it('the Z3 encoding agrees: with the choice taken, the packet can only be delivered, to that address', async () => {
    const { ctx } = await z3();
    const enc = new Encoder(ctx, model, { prefix: 'r.', ingress: 'iface' });
    const out = enc.encode();
    const session = new Session(ctx, out.assumptions, 10_000, newZ3Stats());
    try {
      for (const [device, final] of [['eth0', 'fe80::1'], ['eth1', 'fe80::99']] as const) {
        const p = ping(device, 'fe80::1');
        const pins: Z3Bool[] = [];
        for (const [f, v] of out.vars.fields) {
          const val = p.fields[f as NumericField];
          if (val !== undefined) pins.push(v.eq(enc.lit(val, enc.bits(f))));
        }
        if (out.vars.ctstate) pins.push(out.vars.ctstate.eq(enc.lit(CT_STATE.NEW, 8)));
        pins.push(out.vars.iif!.eq(enc.ifaceIndex(device)));
        if (out.vars.helperPresent) pins.push(enc.not(out.vars.helperPresent));
        pins.push(enc.choiceVar(CHOICE.ownLinkLocal, 1).eq(enc.lit(0, 1)));
        expect((await session.ask(...pins)).kind).toBe('sat'); // the packet itself is possible
        // Not delivered, or delivered to another address: no such run.
        const other = await session.ask(...pins, enc.or([enc.not(out.local), enc.not(out.final.vals.get('daddr')!.eq(enc.lit(parseAddress(final)!.value, 128)))]));
        expect(other.kind).toBe('unsat');
      }
    } finally {
      session.release();
    }
  });

  it('check replays its witnesses without an internal error', async () => {
    const r = await check(text);
    expect(r.internalErrors).toEqual([]);
  });
});
