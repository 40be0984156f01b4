import type { Policy } from '../../ir/policy.js';
import { FAMILIES, type Family } from '../../util/ip.js';
import type { AllowEntry, AllowList } from './allow.js';
import { type DiffOptions, diffFamily } from './family.js';
import type { DiffReport, DiffStatus, FamilyDiff } from './types.js';

/**
 * Semantic diff of two policies: `diffPolicies(old, new)` tells whether they treat every packet
 * alike (proved), or lists the classes of packets whose verdict, NAT rewrite or egress changed,
 * each a cube of header space with a witness packet, the deciding rule on each side, and a
 * replay in the simulator.
 *
 * How (see the modules of this directory): the two rulesets are aligned rule by rule
 * (align.ts); only packets that fire a changed rule can differ (change-region.ts); that region
 * is walked on each side as boxes of header space, splitting where rules split it (walk.ts);
 * the leaves of the two walks are compared (compare.ts), and what the box walk cannot split
 * exactly or within budget goes to Z3 (z3pair.ts). Cubes are merged for reading (merge.ts).
 */
export interface DiffSideInput {
  /** As the user named it (shown in reports). */
  readonly path: string;
  readonly policy: Policy;
}

export interface DiffPolicyOptions extends DiffOptions {
  /** Only these families (default: every family both sides say something about). */
  readonly families?: readonly Family[];
  /** Expected differences: matching classes go to `allowed` instead of `classes`. */
  readonly allow?: AllowList;
}

/** Does a side say anything about a family? An iptables dump speaks for its own family only. */
function speaksFor(p: Policy, family: Family): boolean | 'silent' {
  const has = p.rulesets[family].tables.length > 0;
  if (has) return true;
  if (p.origin === 'iptables-save') return FAMILIES.some((f) => p.rulesets[f].tables.length > 0) ? 'silent' : family === 'ipv4' ? false : 'silent';
  return false;
}

export async function diffPolicies(oldSide: DiffSideInput, newSide: DiffSideInput, opts: DiffPolicyOptions = {}): Promise<DiffReport> {
  const t0 = performance.now();
  const assumptions: string[] = [];
  let a = oldSide.policy;
  let b = newSide.policy;
  // Routing is the host's, not the ruleset's: a side without a host model borrows the other's.
  if (a.host && !b.host) {
    b = { ...b, host: a.host };
    assumptions.push(`${newSide.path} has no host model: the host of ${oldSide.path} (${a.host.name}) is used for both sides`);
  } else if (b.host && !a.host) {
    a = { ...a, host: b.host };
    assumptions.push(`${oldSide.path} has no host model: the host of ${newSide.path} (${b.host.name}) is used for both sides`);
  } else if (!a.host && !b.host) {
    assumptions.push('no host model: whether a packet is for this host or forwarded, and by which device it leaves, is left open and taken alike on both sides (a destination DNAT changed is routed on its own)');
  }
  assumptions.push('each packet is compared on its own, arriving unmarked, with the conntrack state it is given (new, established, related or invalid)');
  assumptions.push('a packet of an existing connection belongs to one these rulesets could have made: its connection mark is one their rules can set (0 if none does), its helper one a CT rule attaches');
  const opaque = new Set<string>();
  const allowUsed = new Set<AllowEntry>();
  const families: FamilyDiff[] = [];
  const skipped: DiffReport['skipped'][number][] = [];
  for (const family of opts.families ?? FAMILIES) {
    const sa = speaksFor(a, family);
    const sb = speaksFor(b, family);
    if (sa === 'silent' || sb === 'silent') {
      const which = sa === 'silent' ? oldSide.path : newSide.path;
      skipped.push({ family, reason: `${which} is an iptables dump of the other family: it says nothing about ${family === 'ipv4' ? 'IPv4' : 'IPv6'}` });
      continue;
    }
    if (!sa && !sb) continue;
    const fd = await diffFamily(a, b, family, { ...opts, allowUsed });
    families.push(fd);
    for (const c of fd.classes) for (const d of c.dependsOn) opaque.add(d);
  }
  for (const o of [...opaque].sort()) assumptions.push(`unmodelled: ${o}; differences that depend on it are listed with the answer they need`);
  const classes = families.flatMap((f) => f.classes);
  const allowed = families.flatMap((f) => f.allowed);
  const unknown = families.flatMap((f) => f.unknown);
  const status: DiffStatus = classes.length || allowed.length ? 'different' : unknown.length ? 'unknown' : 'equivalent';
  return {
    old: oldSide.path,
    new: newSide.path,
    status,
    families,
    skipped,
    classes,
    unknown,
    internalErrors: families.flatMap((f) => f.internalErrors),
    assumptions,
    allowed,
    allowUnused: (opts.allow?.entries ?? []).filter((e) => !allowUsed.has(e)).map((e) => ({ line: e.line, text: e.text })),
    ms: Math.round(performance.now() - t0),
  };
}

export type { DiffOptions } from './family.js';
export type * from './types.js';
export { parseAllowList, type AllowList, type AllowEntry } from './allow.js';
