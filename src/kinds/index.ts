/**
 * The registry of match and target kinds. Adding a kind: write its module under match/ or
 * target/, then add it to the union and the registry object below. The mapped registry types
 * make the compiler refuse a kind that is in the union but not registered, and vice versa.
 */
import type { Constraint } from '../ir/constraint.js';
import type { TargetEffect } from '../ir/effect.js';
import type { Family } from '../util/ip.js';
import type { MatchKind, TargetKind } from './kind.js';
import { type AddrMatch, addrKind } from './match/addr.js';
import { type AddrTypeMatch, addrtypeKind } from './match/addrtype.js';
import { type CtDirectionMatch, ctDirectionKind } from './match/ct-direction.js';
import { type CtStateMatch, ctStateKind } from './match/ct-state.js';
import { type CtStatusMatch, ctStatusKind } from './match/ct-status.js';
import { type CtTupleMatch, ctTupleKind } from './match/ct-tuple.js';
import { type HashlimitMatch, hashlimitKind } from './match/hashlimit.js';
import { type IcmpMatch, icmpKind } from './match/icmp.js';
import { type IfaceMatch, ifaceKind } from './match/iface.js';
import { type LimitMatch, limitKind } from './match/limit.js';
import { type MacMatch, macKind } from './match/mac.js';
import { type MarkMatch, markKind } from './match/mark.js';
import { type RecentMatch, recentKind } from './match/recent.js';
import { type TcpFlagsMatch, tcpFlagsKind } from './match/tcp-flags.js';
import { type TcpOptionMatch, tcpOptionKind } from './match/tcp-option.js';
import { type PortMatch, portKind } from './match/port.js';
import { type ProtoMatch, protoKind } from './match/proto.js';
import { type OpaqueMatch, opaqueMatchKind } from './match/opaque.js';
import { type ConnlimitMatch, connlimitKind } from './match/connlimit.js';
import { type DscpMatch, dscpKind } from './match/dscp.js';
import { type FragmentMatch, fragmentKind } from './match/fragment.js';
import { type HelperMatch, helperKind } from './match/helper.js';
import { type IpsecMatch, ipsecKind } from './match/ipsec.js';
import { type IpsetMatch, ipsetKind } from './match/ipset.js';
import { type LengthMatch, lengthKind } from './match/length.js';
import { type OwnerMatch, ownerKind } from './match/owner.js';
import { type PhysdevMatch, physdevKind } from './match/physdev.js';
import { type PktTypeMatch, pkttypeKind } from './match/pkttype.js';
import { type RpfilterMatch, rpfilterKind } from './match/rpfilter.js';
import { type SctpDccpMatch, sctpDccpKind } from './match/sctp-dccp.js';
import { type TtlMatch, ttlKind } from './match/ttl.js';
import { type ChecksumTarget, checksumKind } from './target/checksum.js';
import { type ClassifyTarget, classifyKind } from './target/classify.js';
import { type CounterTarget, counterKind } from './target/counter.js';
import { type CtTarget, ctTargetKind } from './target/ct.js';
import { type DnatTarget, dnatKind } from './target/dnat.js';
import { type DscpTarget, dscpTargetKind } from './target/dscp.js';
import { type LogTarget, logKind } from './target/log.js';
import { type MarkTarget, markTargetKind } from './target/mark.js';
import { type MasqueradeTarget, masqueradeKind } from './target/masquerade.js';
import { type NetmapTarget, netmapKind } from './target/netmap.js';
import { type NflogTarget, nflogKind } from './target/nflog.js';
import { type NotrackTarget, notrackKind } from './target/notrack.js';
import { type QueueTarget, queueKind } from './target/queue.js';
import { type RedirectTarget, redirectKind } from './target/redirect.js';
import { type RejectTarget, rejectKind } from './target/reject.js';
import { type ReturnTarget, returnKind } from './target/return.js';
import { type TcpmssTarget, tcpmssKind } from './target/tcpmss.js';
import { type TproxyTarget, tproxyKind } from './target/tproxy.js';
import { type TtlTarget, ttlTargetKind } from './target/ttl.js';
import { type JumpTarget, jumpKind } from './target/jump.js';
import { type OpaqueTarget, opaqueTargetKind } from './target/opaque.js';
import { type SnatTarget, snatKind } from './target/snat.js';
import { type VerdictTarget, verdictKind } from './target/verdict.js';

export type Match =
  | AddrMatch
  | PortMatch
  | ProtoMatch
  | IfaceMatch
  | CtStateMatch
  | CtStatusMatch
  | CtDirectionMatch
  | CtTupleMatch
  | TcpFlagsMatch
  | TcpOptionMatch
  | IcmpMatch
  | MacMatch
  | MarkMatch
  | LimitMatch
  | HashlimitMatch
  | RecentMatch
  | AddrTypeMatch
  | DscpMatch
  | TtlMatch
  | PktTypeMatch
  | LengthMatch
  | HelperMatch
  | FragmentMatch
  | OwnerMatch
  | IpsetMatch
  | IpsecMatch
  | ConnlimitMatch
  | RpfilterMatch
  | PhysdevMatch
  | SctpDccpMatch
  | OpaqueMatch;

export type Target =
  | VerdictTarget
  | RejectTarget
  | ReturnTarget
  | JumpTarget
  | LogTarget
  | NflogTarget
  | SnatTarget
  | DnatTarget
  | MasqueradeTarget
  | RedirectTarget
  | NetmapTarget
  | NotrackTarget
  | CtTarget
  | MarkTarget
  | TcpmssTarget
  | ChecksumTarget
  | DscpTarget
  | TtlTarget
  | ClassifyTarget
  | QueueTarget
  | TproxyTarget
  | CounterTarget
  | OpaqueTarget;

type MatchRegistry = { readonly [K in Match['kind']]: MatchKind<Extract<Match, { kind: K }>> };
type TargetRegistry = { readonly [K in Target['kind']]: TargetKind<Extract<Target, { kind: K }>> };

export const MATCH_KINDS: MatchRegistry = {
  addr: addrKind,
  port: portKind,
  proto: protoKind,
  iface: ifaceKind,
  'ct-state': ctStateKind,
  'ct-status': ctStatusKind,
  'ct-direction': ctDirectionKind,
  'ct-tuple': ctTupleKind,
  'tcp-flags': tcpFlagsKind,
  'tcp-option': tcpOptionKind,
  icmp: icmpKind,
  mac: macKind,
  mark: markKind,
  limit: limitKind,
  hashlimit: hashlimitKind,
  recent: recentKind,
  addrtype: addrtypeKind,
  dscp: dscpKind,
  ttl: ttlKind,
  pkttype: pkttypeKind,
  length: lengthKind,
  helper: helperKind,
  fragment: fragmentKind,
  owner: ownerKind,
  ipset: ipsetKind,
  ipsec: ipsecKind,
  connlimit: connlimitKind,
  rpfilter: rpfilterKind,
  physdev: physdevKind,
  'sctp-dccp': sctpDccpKind,
  opaque: opaqueMatchKind,
};

export const TARGET_KINDS: TargetRegistry = {
  verdict: verdictKind,
  reject: rejectKind,
  return: returnKind,
  jump: jumpKind,
  log: logKind,
  nflog: nflogKind,
  snat: snatKind,
  dnat: dnatKind,
  masquerade: masqueradeKind,
  redirect: redirectKind,
  netmap: netmapKind,
  notrack: notrackKind,
  ct: ctTargetKind,
  'mark-set': markTargetKind,
  tcpmss: tcpmssKind,
  checksum: checksumKind,
  'dscp-set': dscpTargetKind,
  'ttl-set': ttlTargetKind,
  classify: classifyKind,
  queue: queueKind,
  tproxy: tproxyKind,
  opaque: opaqueTargetKind,
  counter: counterKind,
};

/**
 * Importer fallbacks: a `-m` section (or options of one) that no kind claims goes to the opaque
 * match, kept verbatim; a `-j NAME` that is neither a known target name nor a chain of the dump
 * goes to the opaque target. Both are emitted back unchanged.
 */
export const OPAQUE_MATCH_FALLBACK = opaqueMatchKind;
export const OPAQUE_TARGET_FALLBACK = opaqueTargetKind;

/** The kind record for a match node (typed to that node). */
export function matchKind<M extends Match>(m: M): MatchKind<M> {
  return MATCH_KINDS[m.kind as M['kind']] as unknown as MatchKind<M>;
}

export function targetKind<T extends Target>(t: T): TargetKind<T> {
  return TARGET_KINDS[t.kind as T['kind']] as unknown as TargetKind<T>;
}

export const ALL_MATCH_KINDS: readonly MatchKind<Match>[] = Object.values(MATCH_KINDS) as unknown as MatchKind<Match>[];
export const ALL_TARGET_KINDS: readonly TargetKind<Target>[] = Object.values(TARGET_KINDS) as unknown as TargetKind<Target>[];

function byKeyword<K extends { keywords: readonly string[] }>(kinds: readonly K[]): ReadonlyMap<string, readonly K[]> {
  const map = new Map<string, K[]>();
  for (const k of kinds) for (const w of k.keywords) map.set(w, [...(map.get(w) ?? []), k]);
  return map;
}

/** Kinds that may start a clause with this word (more than one when they share `ct`…). */
export const MATCH_KEYWORDS = byKeyword(ALL_MATCH_KINDS);
export const TARGET_KEYWORDS = byKeyword(ALL_TARGET_KINDS);

export function printMatch(m: Match): string {
  return matchKind(m).print(m);
}

export function printTarget(t: Target): string {
  return targetKind(t).print(t);
}

export function matchConstraint(m: Match, family: Family): Constraint {
  return matchKind(m).constraint(m, family);
}

export function targetEffect(t: Target, family: Family): TargetEffect {
  return targetKind(t).effect(t, family);
}

export type { MatchKind, TargetKind } from './kind.js';
