import type { Flow, Policy } from '../../ir/policy.js';
import { matchConstraint } from '../../kinds/index.js';
import type { Family } from '../../util/ip.js';
import { type FamilyModel, type ModelRule, buildFamilyModel, ifacePatterns } from '../model/build.js';
import { type IfacePattern, IfaceDomain } from '../model/ifaces.js';
import { type Alignment, align, isStatefulOpaque, stripInstance } from './align.js';
import type { SideNames } from './point.js';
import { type ConnectionDomain, connectionDomain } from './connections.js';
import { Matcher } from './region.js';
import { Space } from './space.js';
import { SideWalker, type WalkLimits } from './walk.js';

/**
 * Everything one family of a diff needs: both sides compiled with one interface-name domain
 * (so an interface is the same class index on both sides), their alignment, the shared space,
 * and a walker per side that names shared things (unmodelled tests of paired rules, their
 * unmodelled targets) the same way.
 */
export interface Side extends SideNames {
  readonly name: 'old' | 'new';
  readonly model: FamilyModel;
  readonly walker: SideWalker;
}

export interface DiffContext {
  readonly family: Family;
  readonly space: Space;
  readonly a: Side;
  readonly b: Side;
  readonly alignment: Alignment;
  /** The connections existing packets belong to (made by one of the two rulesets). */
  readonly connections: ConnectionDomain;
}

export const DEFAULT_LIMITS: WalkLimits = { maxPieces: 400_000 };

export function buildContext(
  oldPolicy: Policy,
  newPolicy: Policy,
  family: Family,
  opts: { readonly flows?: readonly Flow[]; readonly limits?: WalkLimits } = {},
): DiffContext {
  const ma0 = buildFamilyModel(oldPolicy, family);
  const mb0 = buildFamilyModel(newPolicy, family);
  const patterns: IfacePattern[] = [];
  for (const r of [...ma0.rules, ...mb0.rules]) ifacePatterns(r.constraint, patterns);
  for (const f of opts.flows ?? []) for (const m of f.matches) ifacePatterns(matchConstraint(m, family), patterns);
  const ifaces = new IfaceDomain(patterns, [...new Set([...ma0.routing.devices, ...mb0.routing.devices, 'lo'])]);
  const ma: FamilyModel = { ...ma0, ifaces };
  const mb: FamilyModel = { ...mb0, ifaces };
  const alignment = align(ma, mb);
  const space = new Space(family, ifaces);
  const limits = opts.limits ?? DEFAULT_LIMITS;

  // A stateless unmodelled test is one unknown per text, on both sides; a stateful one is its
  // rule's own, shared with the other side only through a paired rule.
  const aNames: SideNames = {
    model: ma,
    opaqueKey: (k) => (isStatefulOpaque(k) ? k : `same:${stripInstance(k)}`),
    targetKey: (r: ModelRule) => `old#${r.id}`,
  };
  const bNames: SideNames = {
    model: mb,
    // Unpaired tests of the new side are its own (prefixed: the files may share names).
    opaqueKey: (k) => (isStatefulOpaque(k) ? (alignment.opaqueKeyOfB.get(k) ?? `new:${k}`) : `same:${stripInstance(k)}`),
    targetKey: (r: ModelRule) => {
      const paired = alignment.targetPairOfB.get(r.id);
      return paired !== undefined ? `old#${paired}` : `new#${r.id}`;
    },
  };
  const side = (name: 'old' | 'new', names: SideNames): Side => {
    const matcher = new Matcher(space, family, names.opaqueKey, names.model.routing);
    const walker = new SideWalker(space, names.model, matcher, names.targetKey, names.opaqueKey, limits);
    return { name, ...names, walker };
  };
  const a = side('old', aNames);
  const b = side('new', bNames);
  const policies = new Set(alignment.policyChanged.map((c) => `${c.table}/${c.name}`));
  a.walker.setChanges({ changed: new Set(alignment.changedA.map((r) => r.id)), gaps: alignment.gapsA, policies, otherHull: (r) => b.walker.hullOf(r) });
  b.walker.setChanges({ changed: new Set(alignment.changedB.map((r) => r.id)), gaps: alignment.gapsB, policies, otherHull: (r) => a.walker.hullOf(r) });
  return { family, space, a, b, alignment, connections: connectionDomain([ma, mb]) };
}
