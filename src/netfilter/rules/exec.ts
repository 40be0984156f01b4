import type { NatAction, RejectReply, SideEffect } from '../../ir/effect.js';
import type { Frame } from '../frame.js';
import { ipLength } from '../packet.js';
import type { CompiledChain, CompiledRule, CompiledTable } from './compile.js';

/**
 * Runs one table's built-in chain for a packet the way ipt_do_table does: first match wins,
 * jump pushes a return point, goto does not, RETURN (or falling off a user chain) pops, falling
 * off (or RETURN in) the built-in chain applies its policy. Every rule that matches counts the
 * packet (packets, bytes = IP length), also non-terminating ones and jumps; the policy has its
 * own counter. Matched rules are appended to the frame's trace.
 */

export const DROP = 0;
export const ACCEPT = 1;

/** What the executor asks of the simulator for targets that reach outside the chain walk. */
export interface TargetHost {
  /** A NAT target in the nat table: set up the binding; returns ACCEPT or DROP. */
  nat(f: Frame, action: NatAction, rule: CompiledRule, chain: CompiledChain): number;
  /** A non-terminating target's side effect (MARK, CONNMARK, LOG, NOTRACK, CT…). */
  sideEffect(f: Frame, e: SideEffect, rule: CompiledRule, chain: CompiledChain): void;
  /** REJECT: queue the answer; the packet itself is dropped. */
  reject(f: Frame, reply: RejectReply, rule: CompiledRule, chain: CompiledChain): void;
}

interface Return {
  chain: CompiledChain;
  list: Int32Array | null;
  pos: number;
}

const MAX_DEPTH = 64;

function step(f: Frame, chain: CompiledChain, rule: number | undefined, action: string, span = rule === undefined ? chain.span : chain.rules[rule].span): void {
  f.trace?.push({ hook: f.hook, table: chain.table, chain: chain.name, ...(rule !== undefined ? { rule } : {}), span, action });
}

function applyPolicy(builtin: CompiledChain, f: Frame, len: number): number {
  builtin.policyPackets++;
  builtin.policyBytes += len;
  const p = builtin.policy ?? 'ACCEPT';
  if (f.trace) step(f, builtin, undefined, `policy ${p}`);
  if (p === 'DROP') {
    f.dropReason = 'policy';
    return DROP;
  }
  return ACCEPT;
}

export function runChain(builtin: CompiledChain, table: CompiledTable, f: Frame, host: TargetHost): number {
  const len = ipLength(f.pkt);
  let cur = builtin;
  let list = cur.dispatch ? cur.dispatch.candidates(f) : null;
  let pos = 0;
  let stack: Return[] | undefined;

  for (;;) {
    const n = list ? list.length : cur.rules.length;
    if (pos >= n) {
      if (cur === builtin || !stack || stack.length === 0) {
        if (cur !== builtin && f.trace) step(f, cur, undefined, 'end of chain');
        return applyPolicy(builtin, f, len);
      }
      if (f.trace) step(f, cur, undefined, 'end of chain, return');
      const r = stack.pop() as Return;
      cur = r.chain;
      list = r.list;
      pos = r.pos;
      continue;
    }
    const ri = list ? list[pos] : pos;
    pos++;
    const rule = cur.rules[ri];
    if (!rule.test(f)) continue;
    cur.packets[ri]++;
    cur.bytes[ri] += len;
    const e = rule.effect;
    switch (e.type) {
      case 'accept':
        if (f.trace) step(f, cur, ri, rule.label);
        return ACCEPT;
      case 'drop':
        if (f.trace) step(f, cur, ri, rule.label);
        f.dropReason = 'rule';
        return DROP;
      case 'reject':
        if (f.trace) step(f, cur, ri, rule.label);
        f.dropReason = 'rule';
        host.reject(f, e.reply, rule, cur);
        return DROP;
      case 'return':
        if (f.trace) step(f, cur, ri, rule.label);
        if (!stack || stack.length === 0) return applyPolicy(builtin, f, len);
        {
          const r = stack.pop() as Return;
          cur = r.chain;
          list = r.list;
          pos = r.pos;
        }
        continue;
      case 'jump':
      case 'goto': {
        const target = table.chains.get(e.chain);
        if (f.trace) step(f, cur, ri, rule.label);
        if (!target) {
          // The validator refuses undefined chains; a dangling jump behaves as a no-op here.
          continue;
        }
        if (e.type === 'jump') {
          stack ??= [];
          if (stack.length >= MAX_DEPTH) {
            f.dropReason = 'loop';
            return DROP;
          }
          stack.push({ chain: cur, list, pos });
        }
        cur = target;
        list = cur.dispatch ? cur.dispatch.candidates(f) : null;
        pos = 0;
        continue;
      }
      case 'continue':
        if (f.trace) step(f, cur, ri, rule.label);
        for (const a of e.actions) host.sideEffect(f, a, rule, cur);
        continue;
      case 'nat':
        if (f.trace) step(f, cur, ri, rule.label);
        return host.nat(f, e.nat, rule, cur);
      case 'opaque':
        (f.unknowns ??= []).push(`${e.name}: ${e.reason}`);
        if (f.trace) step(f, cur, ri, `${rule.label} (not modelled: ${e.reason}; ${e.terminates === 'no' ? 'continuing' : 'assumed ACCEPT'})`);
        if (e.terminates === 'no') continue;
        return ACCEPT;
      default: {
        const never: never = e;
        throw new Error(`unhandled effect ${JSON.stringify(never)}`);
      }
    }
  }
}
