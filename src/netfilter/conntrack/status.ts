import { CT_STATUS } from '../../ir/fields.js';

/**
 * IPS_* status bits (include/uapi/linux/netfilter/nf_conntrack_common.h), including the ones
 * the rule language does not expose (ir/fields.ts keeps the 16 bits `ct status` can test).
 */
export const IPS = {
  ...CT_STATUS,
  FIXED_TIMEOUT: 1 << 10,
  TEMPLATE: 1 << 11,
  NAT_CLASH: 1 << 12,
  HELPER: 1 << 13,
} as const;

export const IPS_NAT_MASK = IPS.SRC_NAT | IPS.DST_NAT;
export const IPS_NAT_DONE_MASK = IPS.SRC_NAT_DONE | IPS.DST_NAT_DONE;
