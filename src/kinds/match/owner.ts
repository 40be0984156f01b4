import { type Constraint, and, inSet, not, opaque, or, present } from '../../ir/constraint.js';
import type { Hook } from '../../ir/netfilter.js';
import { diag } from '../../util/diagnostics.js';
import type { Span } from '../../util/span.js';
import { clauseSpan } from '../helpers.js';
import type { MatchKind } from '../kind.js';

/**
 * The local socket that sent the packet (iptables `-m owner`, OUTPUT and POSTROUTING only):
 *
 *   owner uid [!=] N[-M]                    --uid-owner
 *   owner gid [!=] N[-M] [supplementary]    --gid-owner [--suppl-groups]
 *   owner socket [!=] exists                --socket-exists
 *
 * A packet without a socket (forwarded, or sent by the kernel) matches exactly the negated tests
 * (xt_owner.c: `(match ^ invert) == 0`), so `owner uid != 0` matches it. Supplementary groups
 * are not in nfproof's model: that part is opaque.
 */
export type OwnerMatch =
  | { readonly kind: 'owner'; readonly what: 'uid' | 'gid'; readonly negated: boolean; readonly range: readonly [number, number]; readonly supplementary?: boolean; readonly span: Span }
  | { readonly kind: 'owner'; readonly what: 'socket'; readonly negated: boolean; readonly span: Span };

const MAX = 0xffffffff;

function parseIdRange(text: string): readonly [number, number] | undefined {
  const m = /^(\d+)(?:-(\d+))?$/.exec(text);
  if (!m) return undefined;
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  return lo <= hi && hi <= MAX ? [lo, hi] : undefined;
}

const fmt = ([lo, hi]: readonly [number, number]) => (lo === hi ? String(lo) : `${lo}-${hi}`);

export const ownerKind: MatchKind<OwnerMatch> = {
  kind: 'owner',
  doc: 'The sending socket of a locally generated packet: owner uid, gid, or whether it has a socket.',
  syntax: ['owner uid [!=] UID[-UID]', 'owner gid [!=] GID[-GID] [supplementary]', 'owner socket [!=] exists'],
  keywords: ['owner'],
  inFlows: false,

  parse(cur, ctx) {
    const kw = cur.next()!;
    const what = cur.accept('uid', 'gid', 'socket');
    if (!what) {
      ctx.report(diag('error', 'E-owner', cur.here(), '`owner` needs uid, gid or socket', 'e.g. owner uid 1000, owner socket exists'));
      return undefined;
    }
    const negated = cur.acceptNegation();
    if (what.text === 'socket') {
      if (!cur.accept('exists')) {
        ctx.report(diag('error', 'E-owner', cur.here(), 'expected `owner socket exists` or `owner socket != exists`'));
        return undefined;
      }
      return { kind: 'owner', what: 'socket', negated, span: clauseSpan(kw.span, cur) };
    }
    const w = cur.next();
    const range = w?.type === 'atom' ? parseIdRange(w.text) : undefined;
    if (!range) {
      ctx.report(diag('error', 'E-owner', w?.span ?? cur.endSpan, `\`owner ${what.text}\` needs a number or a range N-M`, 'user and group names are not resolved: write the numeric id'));
      return undefined;
    }
    const supplementary = what.text === 'gid' && !!cur.accept('supplementary');
    return { kind: 'owner', what: what.text as 'uid' | 'gid', negated, range, ...(supplementary ? { supplementary } : {}), span: clauseSpan(kw.span, cur) };
  },

  print(m) {
    const neg = m.negated ? '!= ' : '';
    if (m.what === 'socket') return `owner socket ${neg}exists`;
    return `owner ${m.what} ${neg}${fmt(m.range)}${m.supplementary ? ' supplementary' : ''}`;
  },

  forFamily(m) {
    return m;
  },

  constraint(m): Constraint {
    // `uid` is present exactly when the packet has a socket (for a socket with a file, its
    // owner's credentials; the simulator gives kernel sockets a uid no range holds).
    const socket = present('uid');
    if (m.what === 'socket') return m.negated ? not(socket) : socket;
    const set = [[BigInt(m.range[0]), BigInt(m.range[1])] as const];
    let test: Constraint = inSet(m.what, set);
    if (m.supplementary) {
      test = or(test, opaque(`owner supplementary gid ${fmt(m.range)}`, "the socket owner's supplementary groups are not modelled"));
    }
    if (!m.negated) return and(socket, test);
    // `not(test)` rather than the complement within 32 bits: the simulator marks a kernel
    // socket without a file (ICMP errors the host sends) with a uid beyond 32 bits, which no
    // uid test matches and every negated one does, as xt_owner decides without a file.
    return or(not(socket), and(socket, not(test)));
  },

  hooks(): readonly Hook[] {
    return ['OUTPUT', 'POSTROUTING'];
  },

  iptables: {
    emit(m) {
      const neg = m.negated ? ['!'] : [];
      if (m.what === 'socket') return [{ module: 'owner', args: [...neg, '--socket-exists'], order: 0 }];
      const args = [...neg, m.what === 'uid' ? '--uid-owner' : '--gid-owner', fmt(m.range)];
      if (m.supplementary) args.push('--suppl-groups');
      return [{ module: 'owner', args, order: m.what === 'uid' ? 1 : 2 }];
    },
    claims: [{ module: 'owner', options: ['--uid-owner', '--gid-owner', '--socket-exists', '--suppl-groups'] }],
    fromIptables(_module, options, ctx) {
      const out: OwnerMatch[] = [];
      const suppl = options.some((o) => o.name === '--suppl-groups');
      for (const o of options) {
        if (o.name === '--suppl-groups') continue;
        if (o.name === '--socket-exists') {
          out.push({ kind: 'owner', what: 'socket', negated: o.negated, span: o.span });
          continue;
        }
        const range = parseIdRange(o.args[0] ?? '');
        if (!range) {
          ctx.report(diag('error', 'E-import-option', o.span, `\`${o.name} ${o.args[0] ?? ''}\` is not a numeric id or range`));
          continue;
        }
        const what = o.name === '--uid-owner' ? 'uid' : 'gid';
        out.push({ kind: 'owner', what, negated: o.negated, range, ...(what === 'gid' && suppl ? { supplementary: true } : {}), span: o.span });
      }
      return out;
    },
  },
};
