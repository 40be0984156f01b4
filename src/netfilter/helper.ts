import { IPS_NAT_MASK } from './conntrack/status.js';
import { Tuple, addrToWords, wordsToAddr } from './conntrack/tuple.js';
import { CTINFO, type Frame, traceEvent } from './frame.js';
import { FTP_EXPECT_POLICY, type FtpHelperState, type FtpTuples, ftpHelp, ftpNatAddress, ftpNatRewrite, newFtpHelperState } from './helpers/ftp.js';
import { ACCEPT, DROP } from './rules/exec.js';
import { seqadjSet } from './seqadj.js';
import type { FamilyState } from './state.js';

/**
 * Conntrack helpers attached to connections (CT --helper in raw): called at confirm time
 * (nf_confirm) for every packet of the connection except ICMP errors, on the packet as it
 * leaves (after NAT). A helper reads the payload, registers expectations and, behind NAT,
 * rewrites what it read. The protocol parsing lives in helpers/ (pure functions); this file
 * connects it to the table: expectations, NAT port reservation, sequence adjustment.
 * Helpers without an implementation are attached (conntrack -L shows them) but do nothing.
 */
export type HelperFn = (S: FamilyState, f: Frame) => number;

const HELPERS = new Map<string, HelperFn>([['ftp', ftpHelper]]);

export function runHelper(S: FamilyState, f: Frame): number {
  const name = S.table.ext[f.ct]?.helper;
  const fn = name !== undefined ? HELPERS.get(name) : undefined;
  return fn ? fn(S, f) : ACCEPT;
}

function note(f: Frame, action: string): void {
  traceEvent(f, 'helper', action);
}

function masterTuples(S: FamilyState, i: number): FtpTuples {
  const o = S.table.getTuple(i, 0, new Tuple());
  const r = S.table.getTuple(i, 1, new Tuple());
  return {
    family: S.family,
    origSrc: wordsToAddr(S.family, o.src),
    origDst: wordsToAddr(S.family, o.dst),
    replySrc: wordsToAddr(S.family, r.src),
    replyDst: wordsToAddr(S.family, r.dst),
  };
}

/** nf_conntrack_ftp help() + nf_nat_ftp(): expectations for PORT/EPRT/227/229, NAT rewriting. */
function ftpHelper(S: FamilyState, f: Frame): number {
  const th = f.pkt.tcp;
  if (!th) return ACCEPT;
  const i = f.ct;
  const table = S.table;
  const ext = (table.ext[i] ??= {});
  const state = (ext.helperState ??= newFtpHelperState()) as FtpHelperState;
  const dir = f.ctDir;
  const tuples = masterTuples(S, i);
  const established = f.ctinfo === CTINFO.ESTABLISHED || f.ctinfo === CTINFO.ESTABLISHED_REPLY;
  const r = ftpHelp(state, { dir, established, seq: th.seq, payload: f.pkt.payload, tuples });
  if (r.action === 'accept') {
    if (r.ignored && f.trace) note(f, `ftp helper: ${r.reason ?? 'command ignored'}`);
    return ACCEPT;
  }
  if (r.action === 'drop') {
    f.dropReason = `ftp helper: ${r.reason}`;
    note(f, f.dropReason);
    return DROP;
  }
  const e = r.expectation;
  const tuple = new Tuple();
  addrToWords(S.family, e.src, tuple.src);
  addrToWords(S.family, e.dst, tuple.dst);
  tuple.proto = e.proto;
  tuple.sport = 0;
  tuple.dport = e.dport;
  const expires = f.now + FTP_EXPECT_POLICY.timeoutSeconds;
  const base = { master: i, tuple, matchSrcPort: false, expires, helper: 'ftp' };

  if ((table.status[i] & IPS_NAT_MASK) === 0) {
    if (!S.expect.add(base, S.words, FTP_EXPECT_POLICY.maxExpected)) {
      f.dropReason = 'ftp helper: cannot add expectation';
      return DROP;
    }
    note(f, `ftp helper: ${r.command.type} expects a data connection to port ${e.dport}`);
    return ACCEPT;
  }

  // nf_nat_ftp: the data connection must reach the address this packet goes to (as its
  // receiver sees it); reserve a port there (the announced one if free, nf_nat_exp_find_port),
  // rewrite the command, and record the length change for sequence adjustment.
  const newAddr = ftpNatAddress(dir, tuples);
  const saved = e.dport;
  let port = saved;
  const range = 65535 - saved;
  let attempts = Math.min(range, 128);
  let ok = false;
  for (;;) {
    tuple.dport = port;
    if (S.expect.add({ ...base, natDir: e.dir, savedPort: saved, followMaster: true }, S.words, FTP_EXPECT_POLICY.maxExpected)) {
      ok = true;
      break;
    }
    if (--attempts < 0 || range <= 0) break;
    port = saved + (S.rng.nextU16() % range);
  }
  if (!ok) {
    f.dropReason = 'ftp helper: all ports in use';
    return DROP;
  }
  const rw = ftpNatRewrite(f.pkt.payload, r.command, newAddr, port);
  f.pkt.payload = rw.payload;
  if (rw.delta !== 0) seqadjSet(table, i, dir, th.seq, rw.delta);
  note(f, `ftp helper: ${r.command.type} rewritten to "${rw.text}", data connection expected on port ${port}`);
  return ACCEPT;
}
