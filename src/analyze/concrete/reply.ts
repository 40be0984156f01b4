import { PORT_PROTOS, type NumericField } from '../../ir/fields.js';
import type { FamilyModel } from '../model/build.js';
import { icmpProto } from '../model/fields.js';
import { CHOICE, type ConcreteOutcome } from './interp.js';
import type { PacketInput } from './input.js';

/**
 * The server's answer to a delivered packet: sent back from where the packet went (the egress
 * device, or a local socket), header reversed, as the connection's first reply (ESTABLISHED,
 * reply direction), with the connection's NAT binding to undo.
 */
export function replyInput(model: FamilyModel, request: PacketInput, out: ConcreteOutcome): PacketInput | undefined {
  if (out.verdict === 'dropped') return undefined;
  const f = out.final;
  const proto = Number(f.proto);
  const ports = PORT_PROTOS.includes(proto);
  const echo = model.family === 'ipv4' ? [8n, 0n] : [128n, 129n];
  const fields: Partial<Record<NumericField, bigint>> = {
    saddr: f.daddr,
    daddr: f.saddr,
    proto: f.proto,
    ttl: 64n,
    tos: 0n,
    fragment: 0n,
    length: request.fields.length ?? 60n,
    ctdir: 1n,
    ctmark: 0n,
    ctstatus: 0n,
    ctproto: f.proto,
    ctorigsrc: request.fields.saddr ?? 0n,
    ctorigdst: request.fields.daddr ?? 0n,
    ctreplsrc: f.daddr,
    ctrepldst: f.saddr,
  };
  if (ports) {
    fields.sport = f.dport;
    fields.dport = f.sport;
    if (proto === 6) fields.tcpflags = 0x12n; // SYN,ACK
  }
  if (proto === icmpProto(model.family)) {
    fields.icmptype = f.icmptype === echo[0] ? echo[1] : f.icmptype;
    fields.icmpcode = 0n;
  }
  const ingress: PacketInput['ingress'] =
    out.verdict === 'local' ? { kind: 'local' } : { kind: 'iface', device: out.egress ?? '' };
  // An echo reply carries the identifier the request left with (NAT may have changed it), or
  // it would not belong to the connection.
  const choices = out.icmpId !== undefined ? { choices: { [CHOICE.icmpId]: out.icmpId } } : {};
  return { family: model.family, ingress, fields, ctState: 'ESTABLISHED', binding: out.binding, ...choices };
}

/** Did the reply get back to the client, with the client's own addresses and ports? */
export function replyReturns(model: FamilyModel, request: PacketInput, reply: ConcreteOutcome): { ok: boolean; why: string } {
  const back = request.ingress.kind === 'iface' ? reply.verdict === 'forwarded' || reply.verdict === 'sent' : reply.verdict === 'local';
  if (!back) return { ok: false, why: reply.verdict === 'dropped' ? `the reply is dropped (${reply.dropReason ?? 'dropped'})` : `the reply is ${reply.verdict}, not sent back` };
  if (request.ingress.kind === 'iface' && reply.egress !== request.ingress.device) {
    return { ok: false, why: `the reply leaves by ${reply.egress ?? '?'}, not by ${request.ingress.device} where the request came in` };
  }
  const f = reply.final;
  const rq = request.fields;
  const proto = Number(rq.proto ?? 0n);
  const ports = PORT_PROTOS.includes(proto) && (rq.fragment ?? 0n) === 0n;
  if (f.saddr !== rq.daddr || f.daddr !== rq.saddr || (ports && (f.sport !== rq.dport || f.dport !== rq.sport))) {
    return { ok: false, why: 'the reply does not come back with the addresses and ports the client used (NAT not undone)' };
  }
  return { ok: true, why: 'the reply comes back to the client' };
}
