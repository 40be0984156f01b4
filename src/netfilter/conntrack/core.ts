import { PROTO, TCP_FLAG } from '../../ir/fields.js';
import { CTINFO, type Frame, NO_CT, TEMPLATE_CT, traceEvent } from '../frame.js';
import { natFollowMaster } from '../nat/targets.js';
import { icmpKind } from '../proto/icmp.js';
import { trackerFor } from '../proto/registry.js';
import type { Direction } from '../proto/tracker.js';
import { ACCEPT, DROP } from '../rules/exec.js';
import { seqOffset } from '../seqadj.js';
import type { FamilyState } from '../state.js';
import { final32, mix32 } from './hash.js';
import { IPS, IPS_NAT_DONE_MASK } from './status.js';
import { Tuple, addrToWords, hasPorts, invertTuple, isIcmpProto } from './tuple.js';

/**
 * Connection tracking for one packet (nf_conntrack_in at PREROUTING/OUTPUT, priority -200) and
 * confirmation at the last hook (nf_confirm: helper, sequence adjustment, insertion).
 *
 * The packet's state for the rules follows resolve_normal_ct: a packet matching an entry's
 * REPLY tuple is ESTABLISHED (reply); in the ORIGINAL direction it is ESTABLISHED once a reply
 * was seen, RELATED for an expected connection, NEW otherwise. No entry: a new, unconfirmed
 * one is made (NEW, or RELATED when an expectation matches). The protocol tracker can refuse
 * the packet (INVALID: the packet carries no conntrack at all), ask for the entry to be
 * recreated (a SYN reusing a closed connection) or to be killed after this packet.
 */

/** Fills `out` with the packet's conntrack tuple; false when the packet has none (no ports…). */
export function packetTuple(S: FamilyState, p: Frame['pkt'], out: Tuple, f?: Frame): boolean {
  if (f && S.words === 1) {
    // The frame keeps the IPv4 addresses as numbers already.
    out.src[0] = f.srcN;
    out.dst[0] = f.dstN;
  } else {
    addrToWords(S.family, p.src, out.src);
    addrToWords(S.family, p.dst, out.dst);
  }
  out.proto = p.proto;
  if (isIcmpProto(p.proto)) {
    if (!p.icmp) return false;
    out.sport = p.icmp.id ?? 0;
    out.dport = (p.icmp.type << 8) | p.icmp.code;
    return true;
  }
  if (hasPorts(p.proto)) {
    if (p.sport === undefined || p.dport === undefined) return false;
    out.sport = p.sport;
    out.dport = p.dport;
    return true;
  }
  out.sport = 0;
  out.dport = 0;
  return true;
}

function invalid(f: Frame, why: string): number {
  f.ct = NO_CT;
  f.ctinfo = CTINFO.NEW;
  traceEvent(f, 'conntrack', `INVALID: ${why}`);
  f.invalidReason = why;
  return ACCEPT;
}

function ctStep(f: Frame, action: string): void {
  traceEvent(f, 'conntrack', action);
}

/** The ICMP protocol of this family (ICMP in IPv4, ICMPv6 in IPv6). */
function familyIcmp(S: FamilyState): number {
  return S.family === 'ipv4' ? PROTO.icmp : PROTO.icmpv6;
}

/**
 * nf_conntrack_inet_error: an ICMP error is RELATED to the connection its quoted packet
 * belongs to, provided the error is addressed to that connection's endpoint (the outer
 * destination equals the destination of the tuple the quote matches).
 */
function relatedToQuoted(S: FamilyState, f: Frame, zone: number): number {
  const inner = f.pkt.icmp?.inner;
  if (!inner || inner.family !== S.family) return invalid(f, 'ICMP error without a quoted packet');
  const orig = S.t3;
  if (!packetTuple(S, inner, orig)) return invalid(f, 'cannot read the quoted packet');
  const wanted = S.t4;
  if (!invertTuple(orig, wanted, S.words)) return invalid(f, 'quoted packet cannot belong to a connection');
  const node = S.table.find(wanted, zone, f.now);
  if (node < 0) return invalid(f, 'ICMP error for no known connection');
  const i = node >> 1;
  const dir = (node & 1) as Direction;
  S.table.getTuple(i, dir, orig);
  addrToWords(S.family, f.pkt.dst, wanted.dst);
  for (let k = 0; k < S.words; k++) {
    if (orig.dst[k] !== wanted.dst[k]) return invalid(f, 'ICMP error not addressed to the connection it quotes');
  }
  f.ct = i;
  f.ctinfo = dir === 0 ? CTINFO.RELATED : CTINFO.RELATED_REPLY;
  if (f.trace) ctStep(f, `RELATED (ICMP error quoting a ${dir === 0 ? 'original' : 'reply'}-direction packet)`);
  return ACCEPT;
}

/** A deterministic initial sequence number for packets whose seq the user left out. */
function isnFor(t: Tuple, words: number): number {
  let h = mix32(0x2545f491, (t.sport << 16) | t.dport);
  for (let k = 0; k < words; k++) h = mix32(mix32(h, t.src[k]), t.dst[k]);
  return (final32(h) | 1) >>> 0;
}

/** Seq/ack the user omitted: follow the connection (what each side sent so far). */
function fillSeqAck(S: FamilyState, f: Frame, i: number, dir: Direction, t: Tuple): void {
  const th = f.pkt.tcp;
  if (!th) return;
  if (f.autoSeq) {
    const next = i >= 0 ? S.table.nextSeq[2 * i + dir] : 0;
    th.seq = next !== 0 ? next : isnFor(t, S.words);
  }
  if (f.autoAck) {
    const other = i >= 0 ? S.table.nextSeq[2 * i + (1 - dir)] : 0;
    if (other !== 0 && th.flags & TCP_FLAG.ACK) {
      // The peer's bytes arrived here after sequence adjustment (NAT helpers): ack those numbers.
      th.ack = (other + seqOffset(S.table, i, (1 - dir) as Direction, other)) >>> 0;
    } else th.ack = 0;
  }
}

function recordSeq(S: FamilyState, f: Frame, i: number, dir: Direction): void {
  const th = f.pkt.tcp;
  if (!th) return;
  const len = f.pkt.payload.length + (th.flags & TCP_FLAG.SYN ? 1 : 0) + (th.flags & TCP_FLAG.FIN ? 1 : 0);
  const end = (th.seq + len) >>> 0;
  S.table.nextSeq[2 * i + dir] = end === 0 ? 1 : end;
}

export function conntrackIn(S: FamilyState, f: Frame): number {
  if (f.untracked) {
    f.ctinfo = CTINFO.UNTRACKED;
    return ACCEPT;
  }
  // Seen before (looped back through lo): the packet keeps its connection.
  if (f.ct >= 0) return ACCEPT;
  const tmpl = f.ct === TEMPLATE_CT ? f.template : undefined;
  const zone = tmpl?.zone ?? 0;
  f.ct = NO_CT;
  const p = f.pkt;
  const table = S.table;

  // A non-first fragment has no transport header: ipv4_get_l4proto / ipv6_get_l4proto give up
  // on any fragment offset, whatever the protocol, so the packet gets no conntrack at all
  // (a GRE or proto-0 fragment too, not only those whose ports are missing).
  if (p.fragment) return invalid(f, 'non-first fragment: no transport header to find a connection by');

  if (p.proto === familyIcmp(S) && p.icmp) {
    switch (icmpKind(S.family, p.icmp.type)) {
      case 'untracked':
        f.untracked = true;
        f.ctinfo = CTINFO.UNTRACKED;
        if (f.trace) ctStep(f, 'UNTRACKED (neighbour discovery / MLD is never tracked)');
        return ACCEPT;
      case 'invalid':
        return invalid(f, `ICMP type ${p.icmp.type} is neither a query nor an error`);
      case 'error':
        return relatedToQuoted(S, f, zone);
      case 'query':
        break;
    }
  }

  const t = S.t1;
  if (!packetTuple(S, p, t, f)) return invalid(f, 'no conntrack tuple (missing ports?)');

  for (let attempt = 0; attempt < 2; attempt++) {
    const node = table.find(t, zone, f.now);
    if (node < 0) return newConnection(S, f, t, zone, tmpl?.helper);

    const i = node >> 1;
    const dir = (node & 1) as Direction;
    const status = table.status[i];
    f.ctinfo =
      dir === 1 ? CTINFO.ESTABLISHED_REPLY : status & IPS.SEEN_REPLY ? CTINFO.ESTABLISHED : status & IPS.EXPECTED ? CTINFO.RELATED : CTINFO.NEW;
    if (f.autoSeq || f.autoAck) fillSeqAck(S, f, i, dir, t);
    const tracker = trackerFor(p.proto);
    const ctx = S.trackCtx;
    ctx.seenReply = (status & IPS.SEEN_REPLY) !== 0;
    ctx.assured = (status & IPS.ASSURED) !== 0;
    ctx.now = f.now;
    ctx.expiresIn = table.expires[i] - f.now;
    ctx.natClash = (status & IPS.NAT_CLASH) !== 0;
    S.trackEntry = i;
    const r = tracker.update(table.state[i], p, dir, ctx);
    if (r.verdict === 'restart') {
      if (f.trace) ctStep(f, `entry destroyed, tracking again as new (${r.reason ?? 'connection reopened'})`);
      table.remove(i);
      continue;
    }
    recordSeq(S, f, i, dir);
    if (r.verdict === 'invalid') {
      if (r.timeout !== undefined && (status & IPS.FIXED_TIMEOUT) === 0) {
        const at = f.now + r.timeout;
        if (at < table.expires[i]) table.setExpires(i, at);
      }
      return invalid(f, r.reason ?? `${tracker.name}: packet does not fit the connection`);
    }
    if (r.timeout !== undefined && (status & IPS.FIXED_TIMEOUT) === 0) table.setExpires(i, f.now + r.timeout);
    if (r.assured) table.status[i] |= IPS.ASSURED;
    if (dir === 1) table.status[i] |= IPS.SEEN_REPLY;
    if (r.kill) f.killAfter = true;
    f.ct = i;
    if (f.trace && r.ignored) ctStep(f, `packet ignored by the ${tracker.name} tracker (${r.reason ?? 'no state change'})`);
    return ACCEPT;
  }
  return invalid(f, 'connection could not be re-created');
}

function newConnection(S: FamilyState, f: Frame, t: Tuple, zone: number, helper: string | undefined): number {
  const table = S.table;
  const reply = S.t2;
  if (!invertTuple(t, reply, S.words)) return invalid(f, 'cannot invert the tuple (no reply type)');
  if (f.autoSeq || f.autoAck) fillSeqAck(S, f, -1, 0, t);
  // __nf_conntrack_alloc: the table is full when this entry would exceed nf_conntrack_max.
  if (S.totalCount() + 1 > S.cfg.maxEntries) {
    // The kernel has one table for both families; nfproof keeps one per family, so when this
    // family has nothing to evict near the new tuple's bucket the other family's table is tried.
    let dropped = table.earlyDrop(t, zone, f.now);
    if (dropped.length === 0 && S.peer) dropped = S.peer.table.earlyDropFrom(table.hashOf(t, zone), f.now);
    if (dropped.length === 0) {
      f.dropReason = 'table-full';
      S.gc.tableFullAt = f.now;
      if (f.trace) ctStep(f, 'nf_conntrack: table full, dropping packet');
      return DROP;
    }
    if (f.trace) ctStep(f, `table full: early drop of ${dropped.length} unassured entr${dropped.length === 1 ? 'y' : 'ies'}`);
  }
  const tracker = trackerFor(f.pkt.proto);
  const created = tracker.create(f.pkt, S.cfg.sys, f.now);
  if ('invalid' in created) return invalid(f, created.invalid);
  const i = table.alloc(t, reply, zone);
  table.state[i] = created.state;
  // Unconfirmed: the timer is relative until the entry is confirmed.
  table.expires[i] = created.timeout;
  recordSeq(S, f, i, 0);
  f.ct = i;
  f.ctinfo = CTINFO.NEW;
  const exp = S.expect.take(t, S.words, f.now, (m) => table.isConfirmed(m) && table.isLive(m));
  if (exp) {
    table.status[i] |= IPS.EXPECTED;
    table.mark[i] = table.mark[exp.master];
    table.ext[i] = { master: exp.master };
    f.ctinfo = CTINFO.RELATED;
    if (f.trace) ctStep(f, `RELATED: expected by the ${exp.helper} helper of an existing connection`);
    if (exp.followMaster) natFollowMaster(S, i, exp, f.now);
  } else if (helper) {
    table.ext[i] = { helper };
    table.status[i] |= IPS.HELPER;
  }
  return ACCEPT;
}

/**
 * nf_confirm + __nf_conntrack_confirm: at the last hook a packet passes (INPUT, POSTROUTING),
 * run the connection's helper, adjust sequence numbers, then insert a new entry into the table.
 * A reply-direction packet never confirms (REJECT's RST carries its connection backwards).
 */
export function confirm(S: FamilyState, f: Frame, helperFn: (S: FamilyState, f: Frame) => number, seqAdjust: (S: FamilyState, f: Frame) => void): number {
  const i = f.ct;
  if (i < 0) return ACCEPT;
  const table = S.table;
  const ext = table.ext[i];
  if (ext?.helper && f.ctinfo !== CTINFO.RELATED_REPLY) {
    if (helperFn(S, f) !== ACCEPT) return DROP;
  }
  if (table.status[i] & IPS.SEQ_ADJUST && f.iif !== 'lo') seqAdjust(S, f);
  if (table.isConfirmed(i)) return ACCEPT;
  if (f.ctDir !== 0) return ACCEPT;

  const orig = table.getTuple(i, 0, S.t1);
  const reply = table.getTuple(i, 1, S.t2);
  const zone = table.zoneOf(i);
  const clash = table.find(orig, zone, f.now);
  const clashReply = clash < 0 ? table.find(reply, zone, f.now) : -1;
  if (clash >= 0 || clashReply >= 0) return resolveClash(S, f, i, clash >= 0 ? clash >> 1 : clashReply >> 1, clash < 0);

  table.expires[i] = f.now + table.expires[i];
  table.link(i, S.t3);
  if (f.trace) ctStep(f, 'confirmed: entry inserted into the table');
  return ACCEPT;
}

/**
 * nf_ct_resolve_clash: the new entry's tuple is already in the table (only possible through
 * NAT, or UDP/TCP oddities). Protocols that allow clashes (UDP) take over the existing entry
 * when it has no NAT or identical tuples; otherwise, when only the original direction clashes,
 * the new entry goes in with its reply tuple only, a fixed 1 s timeout and IPS_NAT_CLASH.
 * Everything else: the packet is dropped (insert_failed).
 */
function resolveClash(S: FamilyState, f: Frame, loser: number, winner: number, replyClash: boolean): number {
  const table = S.table;
  const proto = table.protoOf(loser);
  const allowClash = proto === PROTO.udp || proto === PROTO.udplite;
  if (allowClash) {
    const same = sameTuples(S, winner, loser);
    if ((table.status[winner] & IPS_NAT_DONE_MASK) === 0 || same) {
      table.remove(loser);
      f.ct = winner;
      if (f.trace) ctStep(f, 'clash: packet attached to the existing identical entry');
      return ACCEPT;
    }
    if (!replyClash && table.find(table.getTuple(loser, 1, S.t2), table.zoneOf(loser), f.now) < 0) {
      table.status[loser] |= IPS.FIXED_TIMEOUT | IPS.NAT_CLASH;
      table.expires[loser] = f.now + 1;
      table.linkReplyOnly(loser, S.t3);
      if (f.trace) ctStep(f, 'clash: entry inserted for the reply direction only (IPS_NAT_CLASH, 1 s)');
      return ACCEPT;
    }
  }
  table.remove(loser);
  f.ct = NO_CT;
  f.dropReason = 'clash';
  if (f.trace) ctStep(f, 'insert failed: a connection with the same tuple exists (packet dropped)');
  return DROP;
}

function sameTuples(S: FamilyState, a: number, b: number): boolean {
  const t = S.table;
  const x = S.t3;
  const y = S.t4;
  for (const d of [0, 1] as const) {
    if (!t.getTuple(a, d, x).equals(t.getTuple(b, d, y), S.words)) return false;
  }
  return true;
}
