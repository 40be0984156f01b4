import type { Family } from '../../util/ip.js';
import type { Alignment } from './align.js';
import type { DiffUnknown } from './types.js';

/**
 * The ICMP errors the host sends by itself (REJECT's answer, "net unreachable" of a packet with
 * no route, "time exceeded" of one whose TTL runs out) are not the packets of a local socket the
 * diff walks through OUTPUT: they carry the offending packet's connection from the start
 * (icmp_send attaches it), so already in raw/OUTPUT, before conntrack runs, a test of the
 * connection (state, status, direction, tuple, ct mark, helper) matches them, where for a
 * socket's packet it finds none. The diff does not walk these answers; when a changed raw rule
 * tests the connection, whether they still leave may differ, so the region stays open.
 */
const READS_CONNECTION = new Set(['ct-state', 'ct-status', 'ct-direction', 'ct-tuple', 'helper']);

export function hostAnswersUnknown(alignment: Alignment, family: Family): DiffUnknown | undefined {
  const rules = [...alignment.changedA, ...alignment.changedB].filter(
    (r) => r.table === 'raw' && r.source.matches.some((m) => READS_CONNECTION.has(m.kind) || (m.kind === 'mark' && m.field === 'ctmark')),
  );
  if (!rules.length) return undefined;
  const r = rules[0]!;
  return {
    family,
    reason: `the host's own ICMP errors carry their packet's connection through raw/${r.chain}, where changed rule \`${r.text}\` tests it; nfproof does not walk these answers`,
  };
}
