import type { KindCase } from '../support/cases.js';
import { FILTER_TARGET_CASES, MANGLE_RAW_TARGET_CASES, NAT_TARGET_CASES } from './targets.js';
import { OTHER_MATCH_CASES, STATEFUL_MATCH_CASES, TCP_ICMP_CASES } from './matches.js';
import { BASIC_CASES, BASIC_TARGET_CASES, CONNTRACK_CASES, CT_STATE_CASES, SNAT_CASES } from './basic.js';

/** Every table-driven case, by group; the kernel test loads them all. */
export const CASE_GROUPS: Readonly<Record<string, readonly KindCase[]>> = {
  basic: BASIC_CASES,
  'ct-state': CT_STATE_CASES,
  conntrack: CONNTRACK_CASES,
  'tcp and icmp': TCP_ICMP_CASES,
  'stateful matches': STATEFUL_MATCH_CASES,
  'other matches': OTHER_MATCH_CASES,
  'basic targets': BASIC_TARGET_CASES,
  snat: SNAT_CASES,
  'filter targets': FILTER_TARGET_CASES,
  'mangle and raw targets': MANGLE_RAW_TARGET_CASES,
  'nat targets': NAT_TARGET_CASES,
};

export const ALL_CASES: readonly KindCase[] = Object.values(CASE_GROUPS).flat();
