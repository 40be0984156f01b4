import { CT_STATE, type CtStateName, type NumericField } from '../../ir/fields.js';
import type { PacketInput } from '../concrete/input.js';
import type { FamilyModel } from '../model/build.js';
import type { Z3BV, Z3Bool, Z3Model } from './context.js';
import type { PacketVars } from './encode.js';

/** Reads a Z3 model back into a concrete packet (the witness), via the encoding's variables. */
export function readInput(model: FamilyModel, vars: PacketVars, m: Z3Model, ingress: 'iface' | 'local', base: Partial<Record<NumericField, bigint>> = {}): PacketInput {
  const bv = (v: Z3BV): bigint => (m.eval(v, true) as unknown as { value(): bigint }).value();
  const bool = (v: Z3Bool): boolean => String(m.eval(v, true)) === 'true';
  const fields: Partial<Record<NumericField, bigint>> = { ...base };
  for (const [f, v] of vars.fields) fields[f] = bv(v);
  if (vars.helperPresent && !bool(vars.helperPresent)) delete fields.cthelper;
  const stateValue = vars.ctstate ? Number(bv(vars.ctstate)) : CT_STATE.NEW;
  const state = (Object.entries(CT_STATE).find(([, v]) => v === stateValue)?.[0] ?? 'NEW') as CtStateName;
  const opaque: Record<string, boolean> = {};
  for (const [k, v] of vars.opaque) opaque[k] = bool(v);
  const choices: Record<string, bigint> = {};
  for (const [k, v] of vars.choices) choices[k] = bv(v);
  const iif = vars.iif ? model.ifaces.nameOf(Number(bv(vars.iif))) : '';
  return {
    family: model.family,
    ingress: ingress === 'local' ? { kind: 'local' } : { kind: 'iface', device: iif },
    fields,
    ctState: state === 'UNTRACKED' ? 'NEW' : state,
    ...(vars.opaque.size ? { opaque } : {}),
    ...(vars.choices.size ? { choices } : {}),
  };
}
