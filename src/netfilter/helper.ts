import type { Frame } from './frame.js';
import { ACCEPT } from './rules/exec.js';
import type { FamilyState } from './state.js';

/**
 * Conntrack helpers attached to connections (CT --helper in raw): called at confirm time
 * (nf_confirm) for every packet of the connection except ICMP errors, on the packet as it
 * leaves (after NAT). A helper reads the payload, registers expectations and, behind NAT,
 * rewrites what it read. Helpers without an implementation here are attached (conntrack -L
 * shows them) but do nothing.
 */
export type HelperFn = (S: FamilyState, f: Frame) => number;

const HELPERS = new Map<string, HelperFn>();

export function registerHelper(name: string, fn: HelperFn): void {
  HELPERS.set(name, fn);
}

export function runHelper(S: FamilyState, f: Frame): number {
  const name = S.table.ext[f.ct]?.helper;
  const fn = name !== undefined ? HELPERS.get(name) : undefined;
  return fn ? fn(S, f) : ACCEPT;
}
