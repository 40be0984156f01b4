import type { ProtoTracker, TrackerSysctls } from './tracker.js';

/**
 * Protocols without a tracker of their own (nf_conntrack_proto_generic.c and generic_packet()
 * in nf_conntrack_core.c): the entry is keyed by addresses and protocol only, every packet
 * refreshes generic_timeout, and it never becomes ASSURED. GRE (nf_conntrack_proto_gre.c) is
 * close to it: without the PPTP helper its keys are zero, and it has two timeouts, one before
 * and one after traffic was seen both ways (then ASSURED, like a UDP stream).
 */
export type GenericFlow = null;

function t(sys: TrackerSysctls, name: string, builtin: number): number {
  return sys.timeouts[name] ?? builtin;
}

export const genericTracker: ProtoTracker<GenericFlow> = {
  name: 'unknown',
  protos: [],
  create(_pkt, sys) {
    return { state: null, timeout: t(sys, 'generic_timeout', 600) };
  },
  update(_flow, _pkt, _dir, ctx) {
    return { verdict: 'accept', timeout: t(ctx.sys, 'generic_timeout', 600) };
  },
  stateName() {
    return undefined;
  },
  clone() {
    return null;
  },
};

export const greTracker: ProtoTracker<GenericFlow> = {
  name: 'gre',
  protos: [47],
  create(_pkt, sys) {
    return { state: null, timeout: t(sys, 'gre_timeout', 30) };
  },
  update(_flow, _pkt, _dir, ctx) {
    if (!ctx.seenReply) return { verdict: 'accept', timeout: t(ctx.sys, 'gre_timeout', 30) };
    const timeout = t(ctx.sys, 'gre_timeout_stream', 180);
    if (ctx.natClash || ctx.assured) return { verdict: 'accept', timeout };
    return { verdict: 'accept', timeout, assured: true };
  },
  stateName() {
    return undefined;
  },
  clone() {
    return null;
  },
};
