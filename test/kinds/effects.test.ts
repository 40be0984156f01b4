import { describe, expect, it } from 'vitest';
import type { SideEffect, TargetEffect } from '../../src/ir/effect.js';
import { targetEffect } from '../../src/kinds/index.js';
import type { Family } from '../../src/util/ip.js';
import { parseRule } from './support/dsl.js';

/**
 * What each target does, as the simulator and the analyzer read it. Expected values are worked
 * out by hand from the kernel's target functions (xt_REJECT / ipt_REJECT, xt_MARK, xt_connmark,
 * xt_DSCP, xt_TTL …), not copied from nfproof's output.
 */
function effect(dsl: string, family: Family = 'ipv4'): TargetEffect {
  const r = parseRule(dsl, { family });
  if (!r.target) throw new Error(`${dsl}: no target (${r.diagnostics.map((d) => d.message).join('; ')})`);
  return targetEffect(r.target, family);
}

function action(dsl: string): SideEffect {
  const e = effect(dsl);
  if (e.type !== 'continue' || e.actions.length !== 1) throw new Error(`${dsl}: ${JSON.stringify(e)}`);
  return e.actions[0];
}

/** field = (field & ~mask) ^ xor, 32 bits. */
function xmark(a: SideEffect, v: bigint): bigint {
  if (a.type !== 'xmark') throw new Error(a.type);
  return (v & ~a.mask & 0xffffffffn) ^ a.xor;
}

/** to = (to & ~toMask) ^ (from & fromMask). */
function copy(a: SideEffect, from: bigint, to: bigint): bigint {
  if (a.type !== 'copy-mark') throw new Error(a.type);
  return (to & ~a.toMask & 0xffffffffn) ^ (from & a.fromMask);
}

describe('reject replies', () => {
  it('default is port unreachable of the family; names map to type/code', () => {
    expect(effect('reject')).toEqual({ type: 'reject', reply: { type: 'icmp', icmpType: 3, code: 3 } });
    expect(effect('reject', 'ipv6')).toEqual({ type: 'reject', reply: { type: 'icmpv6', icmpType: 1, code: 4 } });
    expect(effect('reject with icmp-host-prohibited')).toEqual({ type: 'reject', reply: { type: 'icmp', icmpType: 3, code: 10 } });
    expect(effect('reject with admin-prohibited')).toEqual({ type: 'reject', reply: { type: 'icmp', icmpType: 3, code: 13 } });
    expect(effect('reject with admin-prohibited', 'ipv6')).toEqual({ type: 'reject', reply: { type: 'icmpv6', icmpType: 1, code: 1 } });
    expect(effect('tcp reject with tcp-reset')).toEqual({ type: 'reject', reply: { type: 'tcp-reset' } });
  });
});

describe('marks', () => {
  it('mark set/and/or/xor as the kernel computes them', () => {
    expect(xmark(action('mark set 0x1/0xff'), 0x1234n)).toBe(0x1201n);
    expect(xmark(action('mark set 0x5'), 0x1234n)).toBe(0x5n);
    expect(xmark(action('mark and 0xf0'), 0xabcdn)).toBe(0xc0n);
    expect(xmark(action('mark or 0x3'), 0x10n)).toBe(0x13n);
    expect(xmark(action('mark xor 0x3'), 0x11n)).toBe(0x12n);
  });
  it('ct mark save/restore with masks (xt_connmark.c)', () => {
    const save = action('ct mark save nfmask 0xff ctmask 0xf0');
    expect(save).toMatchObject({ from: 'mark', to: 'ctmark' });
    // ctmark = (ctmark & ~ctmask) ^ (mark & nfmask) = 0x1204 ^ 0x56
    expect(copy(save, 0x56n, 0x1234n)).toBe(0x1252n);
    const restore = action('ct mark restore nfmask 0xf ctmask 0xff');
    expect(restore).toMatchObject({ from: 'ctmark', to: 'mark' });
    // mark = (mark & ~nfmask) ^ (ctmark & ctmask) = 0x30 ^ 0x34
    expect(copy(restore, 0x1234n, 0x3fn)).toBe(0x04n);
  });
});

describe('NAT actions', () => {
  it('addresses and ports of the mapping', () => {
    expect(effect('tcp dnat to 10.0.0.1:8080')).toEqual({
      type: 'nat',
      nat: { type: 'dnat', addr: [0x0a000001n, 0x0a000001n], ports: [8080n, 8080n], random: false, fullyRandom: false, persistent: false },
    });
    expect(effect('tcp masquerade to :1024-2000 random')).toEqual({
      type: 'nat',
      nat: { type: 'masquerade', ports: [1024n, 2000n], random: true, fullyRandom: false, persistent: false },
    });
    expect(effect('redirect')).toEqual({ type: 'nat', nat: { type: 'redirect', random: false, fullyRandom: false, persistent: false } });
    expect(effect('netmap to 10.1.0.0/16')).toEqual({
      type: 'nat',
      nat: { type: 'netmap', addr: [0x0a010000n, 0x0a01ffffn], random: false, fullyRandom: false, persistent: false },
    });
  });
});

describe('header rewrites and conntrack templates', () => {
  it('DSCP keeps the ECN bits; TOS is an xmark on the byte (xt_DSCP.c)', () => {
    const d = action('dscp set ef');
    if (d.type !== 'rewrite-tos') throw new Error(d.type);
    expect((0x01 & ~d.mask & 0xff) ^ d.xor).toBe(0xb9);
    const t = action('tos set 0x10/0x3f');
    if (t.type !== 'rewrite-tos') throw new Error(t.type);
    expect((0xff & ~t.mask & 0xff) ^ t.xor).toBe(0xd0);
  });
  it('ttl, ct helper, notrack, log', () => {
    expect(action('ttl dec 1')).toEqual({ type: 'rewrite-ttl', op: 'dec', value: 1 });
    expect(action('tcp ct helper set ftp')).toEqual({ type: 'ct-template', helper: 'ftp' });
    expect(action('ct notrack')).toEqual({ type: 'notrack' });
    expect(action('notrack')).toEqual({ type: 'notrack' });
    expect(action('log prefix "x: " level info')).toEqual({ type: 'log', prefix: 'x: ', level: 6 });
    expect(action('nflog group 3')).toEqual({ type: 'log', group: 3 });
  });
  it('queue and tproxy decide elsewhere: opaque and terminating', () => {
    expect(effect('queue num 3')).toMatchObject({ type: 'opaque', terminates: 'yes' });
    expect(effect('tcp tproxy to :3129')).toMatchObject({ type: 'opaque', terminates: 'yes' });
    expect(effect('xt target AUDIT "--type drop"')).toMatchObject({ type: 'opaque', terminates: 'maybe' });
  });
});
