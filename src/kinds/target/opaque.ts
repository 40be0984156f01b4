import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import { joinRawWords, optionWords, readXtClause } from '../helpers.js';
import type { TargetKind } from '../kind.js';

/**
 * Any iptables target nfproof does not model, kept verbatim: `xt target AUDIT "--type drop"` is
 * `-j AUDIT --type drop`. Emitted back unchanged; its effect is opaque (the simulator reports
 * it, the analyzer treats the rule's outcome as unknown).
 *
 * `iptables.names` is empty: the importer hands a `-j NAME` that is neither a known target nor a
 * chain of the dump to this kind (see OPAQUE_TARGET_FALLBACK in index.ts).
 */
export interface OpaqueTarget {
  readonly kind: 'opaque';
  /** The target name after -j (or -g). */
  readonly name: string;
  readonly args: readonly string[];
  readonly span: Span;
}

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,28}$/;

export const opaqueTargetKind: TargetKind<OpaqueTarget> = {
  kind: 'opaque',
  doc: 'An iptables target nfproof does not model, kept verbatim; its outcome is unknown to the analyzer.',
  syntax: ['xt target NAME ["OPTIONS"]'],
  keywords: ['xt'],

  accepts(cur) {
    return cur.peekAtom(1) === 'target';
  },

  parse(cur, ctx) {
    const xt = readXtClause(cur, ctx, 'target', NAME_RE, 'xt target AUDIT "--type drop"');
    return xt && { kind: 'opaque', name: xt.name, args: xt.args, span: xt.span };
  },

  print(t) {
    return `xt target ${t.name}${t.args.length ? ` ${JSON.stringify(joinRawWords(t.args))}` : ''}`;
  },

  effect(t) {
    const text = `-j ${t.name}${t.args.length ? ` ${joinRawWords(t.args)}` : ''}`;
    return { type: 'opaque', name: t.name, reason: `\`${text}\` is not modelled by nfproof`, terminates: 'maybe' };
  },

  iptables: {
    names: [],
    emit(t) {
      return ['-j', t.name, ...t.args];
    },
    fromIptables(name, options, ctx) {
      // (-g always names a chain; an unknown -g target is the jump kind's, not this one's.)
      return { kind: 'opaque', name, args: options.flatMap(optionWords), span: ctx.span };
    },
  },
};
