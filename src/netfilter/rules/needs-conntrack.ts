import type { Constraint } from '../../ir/constraint.js';
import type { SideEffect, TargetEffect } from '../../ir/effect.js';
import type { Ruleset } from '../../ir/policy.js';
import { matchConstraint, targetEffect } from '../../kinds/index.js';

/**
 * Whether the kernel tracks connections for a family at all. Since Linux 4.x conntrack's hooks
 * are registered in a network namespace only when something asks for them (nf_ct_netns_get):
 * the iptables extensions that look at or change connections (state, conntrack, connmark,
 * connbytes, connlimit, helper, the CT target with a template, every NAT target…). `CT
 * --notrack` and `NOTRACK` do not ask (xt_ct_tg_check skips nf_ct_netns_get for them): alone
 * they track nothing, and the packet they mark would not be tracked anyway. A nat table with
 * no NAT rule, a filter table with plain header matches: no connection is ever tracked, no
 * entry appears in `conntrack -L`, every packet carries no conntrack.
 * (Checked on the kernel: an empty nat table, `-A POSTROUTING -j ACCEPT` or `-m mark` leave
 * the table empty; `-m state` or `-j CONNMARK` fill it.)
 */

/** Fields only conntrack provides: a match on one of them enables tracking. */
const CT_FIELDS = new Set(['ctstate', 'ctstatus', 'ctmark', 'ctdir', 'ctproto', 'ctorigsrc', 'ctorigdst', 'ctreplsrc', 'ctrepldst', 'ctorigsrcport', 'ctorigdstport', 'ctreplsrcport', 'ctrepldstport', 'cthelper']);

/** iptables match modules and targets that take a conntrack reference (xt_*.c checkentry). */
const CT_MATCH_MODULES = new Set(['state', 'conntrack', 'connmark', 'connbytes', 'connlabel', 'connlimit', 'helper', 'cluster', 'ipvs']);
const CT_TARGETS = new Set(['CT', 'CONNMARK', 'CONNSECMARK', 'SNAT', 'DNAT', 'MASQUERADE', 'REDIRECT', 'NETMAP', 'CLUSTERIP', 'SYNPROXY']);

function constraintUsesCt(c: Constraint): boolean {
  switch (c.op) {
    case 'in':
    case 'masked':
    case 'present':
      return CT_FIELDS.has(c.field);
    case 'and':
    case 'or':
      return c.of.some(constraintUsesCt);
    case 'not':
      return constraintUsesCt(c.of);
    default:
      return false;
  }
}

function sideEffectUsesCt(e: SideEffect): boolean {
  switch (e.type) {
    case 'ct-template':
      return true;
    case 'xmark':
      return e.field === 'ctmark';
    case 'copy-mark':
      return e.from === 'ctmark' || e.to === 'ctmark';
    default:
      return false;
  }
}

function effectUsesCt(e: TargetEffect): boolean {
  if (e.type === 'nat') return true;
  if (e.type === 'continue') return e.actions.some(sideEffectUsesCt);
  if (e.type === 'opaque') return CT_TARGETS.has(e.name);
  return false;
}

export function rulesetUsesConntrack(rs: Ruleset, effectOf: (r: Ruleset['tables'][number]['chains'][number]['rules'][number]) => TargetEffect = (r) => targetEffect(r.target, rs.family)): boolean {
  for (const t of rs.tables) {
    for (const c of t.chains) {
      for (const r of c.rules) {
        if (effectUsesCt(effectOf(r))) return true;
        for (const m of r.matches) {
          if (m.kind === 'opaque' && CT_MATCH_MODULES.has(m.module)) return true;
          if (constraintUsesCt(matchConstraint(m, rs.family))) return true;
        }
      }
    }
  }
  return false;
}
