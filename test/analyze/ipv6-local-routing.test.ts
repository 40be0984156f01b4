import { describe, expect, it } from 'vitest';
import type { PacketInput } from '../../src/analyze/concrete/input.js';
import { runPacket } from '../../src/analyze/concrete/interp.js';
import { buildContext } from '../../src/analyze/diff/context.js';
import { pointOf, valAt } from '../../src/analyze/diff/point.js';
import { termHas } from '../../src/analyze/diff/space.js';
import { startPieces } from '../../src/analyze/diff/start.js';
import { buildFamilyModel } from '../../src/analyze/model/build.js';
import { type Z3BV, type Z3Bool, z3 } from '../../src/analyze/z3/context.js';
import { Encoder } from '../../src/analyze/z3/encode.js';
import { Session, newZ3Stats } from '../../src/analyze/z3/session.js';
import { CT_STATE, type NumericField } from '../../src/ir/fields.js';
import type { Policy } from '../../src/ir/policy.js';
import { toSimPacket } from '../../src/analyze/replay.js';
import { createSimulator } from '../../src/netfilter/simulator.js';
import { parseAddress } from '../../src/util/ip.js';
import { at, check, lineOf, nfp } from './support/nfp.js';

/**
 * Two IPv6 behaviours of locally generated packets that the simulator learned from the kernel
 * (test/kernel/routing.test.ts: localGroupFirst, localGroupNoAddress, loopbackGroupSource), held
 * by all four engines at once — the simulator, the concrete interpreter, the Z3 encoding and the
 * diff walk — on small made-up hosts:
 * - a packet to a group (ff00::/8) from a socket bound to no device leaves by the first
 *   interface (its ff00::/8 route was installed first), whatever the routing table says, and is
 *   refused (no route) when that interface has no IPv6 address;
 * - a packet looping back through lo passes ip6_rcv_core's header checks, so one whose source
 *   POSTROUTING turned into a group address dies before PREROUTING on its way back in.
 * The expected values follow from those kernel runs by hand (each case says which).
 *
 * Runtime: ~3 s.
 */
const addr = (a: string) => parseAddress(a)!.value;

type Seen = { verdict: string; egress?: string };

/** The simulator's verdict and device for one locally generated packet. */
function simulate(policy: Policy, p: PacketInput): Seen {
  const out = createSimulator(policy).process({ t: 0, ingress: { kind: 'local' }, packet: toSimPacket(p), uid: 0, gid: 0 });
  return { verdict: out.verdict, ...(out.verdict !== 'dropped' && out.egress ? { egress: out.egress.device } : {}) };
}

function input(src: string, dst: string, dport: number): PacketInput {
  return { family: 'ipv6', ingress: { kind: 'local' }, fields: { saddr: addr(src), daddr: addr(dst), proto: 17n, sport: 4000n, dport: BigInt(dport), length: 100n, ttl: 64n, tos: 0n, fragment: 0n, uid: 0n, gid: 0n }, ctState: 'NEW' };
}

function interpret(policy: Policy, p: PacketInput): Seen {
  const out = runPacket(buildFamilyModel(policy, 'ipv6'), p);
  return { verdict: out.verdict, ...(out.verdict !== 'dropped' ? { egress: out.egress } : {}) };
}

/** The Z3 encoding with its packet variables pinned to the packet. */
async function solve(policy: Policy, p: PacketInput): Promise<Seen> {
  const { ctx } = await z3();
  const model = buildFamilyModel(policy, 'ipv6');
  const enc = new Encoder(ctx, model, { prefix: 'l.', ingress: 'local' });
  const out = enc.encode();
  const session = new Session(ctx, out.assumptions, 10_000, newZ3Stats());
  try {
    const pins: Z3Bool[] = [];
    for (const [f, v] of out.vars.fields) {
      const val = p.fields[f as NumericField];
      if (val !== undefined) pins.push(v.eq(enc.lit(val, enc.bits(f))));
    }
    if (out.vars.ctstate) pins.push(out.vars.ctstate.eq(enc.lit(CT_STATE.NEW, 8)));
    if (out.vars.helperPresent) pins.push(enc.not(out.vars.helperPresent));
    const a = await session.ask(...pins);
    if (a.kind !== 'sat') throw new Error(`solver: ${a.kind}`);
    const is = (t: Z3Bool) => ctx.isTrue(a.model.eval(t, true));
    const verdict = is(out.local) ? 'local' : is(out.forwarded) ? 'forwarded' : is(out.sent) ? 'sent' : 'dropped';
    const egress = model.ifaces.nameOf(Number((a.model.eval(out.egress, true) as unknown as { value(): bigint }).value()));
    return { verdict, ...(verdict !== 'dropped' ? { egress } : {}) };
  } finally {
    session.release();
  }
}

/** The leaf of the diff's walk (the policy against itself, focused on the packet) that holds it. */
function walk(policy: Policy, p: PacketInput): Seen {
  const ctx = buildContext(policy, policy, 'ipv6');
  const point = pointOf(ctx.space, ctx.a, p);
  const from = startPieces(ctx).find((q) => q.terms.some((t) => termHas(ctx.space, t, point)));
  const leaf = from && ctx.a.walker.runFocused(from, point);
  if (!leaf) throw new Error('the walk has no leaf for the packet');
  const o = leaf.out;
  return { verdict: o.verdict, ...(o.verdict !== 'dropped' && o.egress ? { egress: ctx.space.ifaces.nameOf(Number(valAt(o.egress, point))) } : {}) };
}

async function allEngines(policy: Policy, src: string, dst: string, dport: number): Promise<Record<string, Seen>> {
  const p = input(src, dst, dport);
  return { simulator: simulate(policy, p), interpreter: interpret(policy, p), z3: await solve(policy, p), walk: walk(policy, p) };
}

const same = (s: Seen) => ({ simulator: s, interpreter: s, z3: s, walk: s });

const host = (lan: string) => `
host gw {
  interface lan dev eth0 address ${lan}
  interface wan dev eth1 address 192.168.20.1/24, fd00:20::1/64
  route default via fd00:20::fe dev wan
}`;

describe('IPv6 local packets: groups and looping back, in every engine', () => {
  it('a packet to a group leaves by the first interface, not by the default route', async () => {
    // Kernel: localGroupFirst (both ff0e::5 and ffff::ffe2 left by eth0, the lan).
    const text = `${host('192.168.18.1/24, fd00:18::1/64')}
table ip6 filter {
  chain output {
    udp oif lan counter   # L1
    udp oif wan counter   # L2
  }
}`;
    const policy = nfp(text);
    for (const group of ['ff0e::5', 'ffff::ffe2']) {
      expect(await allEngines(policy, 'fd00:20::1', group, 53)).toEqual(same({ verdict: 'sent', egress: 'eth0' }));
    }
    // A unicast destination still takes the default route (the control).
    expect(await allEngines(policy, 'fd00:20::1', '2001:db8::5', 53)).toEqual(same({ verdict: 'sent', egress: 'eth1' }));
  });

  it('a packet to a group is refused when the first interface has no IPv6 address', async () => {
    // Kernel: localGroupNoAddress (nothing left: the socket got EADDRNOTAVAIL).
    const text = `${host('192.168.18.1/24')}
table ip6 filter {
  chain output {
    udp daddr ff00::/8 counter   # L1
  }
}`;
    const policy = nfp(text);
    expect(await allEngines(policy, 'fd00:20::1', 'ff0e::5', 53)).toEqual(same({ verdict: 'dropped' }));
    // No group packet ever reaches OUTPUT, so the proof engine calls the rule unreachable.
    const r = await check(text);
    expect(at(r, lineOf(text, '# L1')).map((f) => f.kind)).toEqual(['unreachable']);
    expect(r.internalErrors).toEqual([]);
  });

  it('a looped-back packet SNATed to a group source dies before PREROUTING', async () => {
    // Kernel: loopbackGroupSource (nothing delivered, filter INPUT counted 0).
    const text = `${host('192.168.18.1/24, fd00:18::1/64')}
table ip6 nat {
  chain postrouting {
    udp dport 7003 snat to ff0e::77
  }
}
table ip6 filter {
  chain input {
    iif lo ct state new ct status confirmed udp dport 7003 counter   # L1
    iif lo ct state new ct status confirmed udp dport 7004 counter   # L2
  }
}`;
    const policy = nfp(text);
    expect(await allEngines(policy, 'fd00:18::1', 'fd00:20::1', 7003)).toEqual(same({ verdict: 'dropped' }));
    // Not SNATed: loops back and is delivered (the control).
    expect(await allEngines(policy, 'fd00:18::1', 'fd00:20::1', 7004)).toEqual(same({ verdict: 'sent', egress: 'lo' }));
    // Only a looped-back first packet is in INPUT by lo with its connection already confirmed
    // (a packet arriving on lo from outside the model is not): L1 sees none of them.
    const r = await check(text);
    expect(at(r, lineOf(text, '# L1')).map((f) => f.kind)).toEqual(['unreachable']);
    expect(at(r, lineOf(text, '# L2'))).toEqual([]);
    expect(r.internalErrors).toEqual([]);
  });
});
