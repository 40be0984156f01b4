import { type Match, type Target, matchKind, printMatch, targetKind } from '../kinds/index.js';
import { CHAIN_NAME_RE } from '../kinds/target/jump.js';
import type { IfaceMatch } from '../kinds/match/iface.js';
import { type Diagnostic, diag } from '../util/diagnostics.js';
import { FAMILIES, type Family, prefixMask, prefixToInterval } from '../util/ip.js';
import type { Span } from '../util/span.js';
import type { Named, SurfaceChain, SurfaceHost, SurfacePolicy, SurfaceRule, SurfaceTable, TableFamily } from './lower-types.js';
import { type ChainPolicy, HOOKS, type Hook, TABLES, TABLE_HOOKS, type TableName, isHook, isTableName } from './netfilter.js';
import type { Chain, Expectation, Flow, HostModel, Interface, Policy, Route, Rule, Ruleset, Table } from './policy.js';

/**
 * Lowering: a policy as written (SurfacePolicy) → the typed IR (Policy).
 *
 * - host: interface names are unique, routes name a known interface (or one whose subnet holds
 *   the gateway), sysctls are unique;
 * - tables: known names, one per family; `inet` tables are split into an IPv4 and an IPv6 table,
 *   each rule restricted to what applies in that family (kinds' forFamily) and left out where
 *   it cannot match; a rule that matches in no family at all is an error;
 * - chains: built-in names are case-insensitive and must exist in the table; every built-in
 *   chain of a declared table is present in the IR (as in the kernel), policy ACCEPT unless
 *   written; user chains keep their case and their declaration order;
 * - interfaces in rules and flows: a logical name becomes its device (the name is kept as
 *   `alias`); with a host model an unknown name is an error.
 *
 * Checks that need the whole chain graph (jumps, loops, hooks) are in src/ir/check and run on
 * the IR, so they apply to imported policies too.
 */
export function lowerPolicy(s: SurfacePolicy, report: (d: Diagnostic) => void): Policy {
  const host = s.host ? lowerHost(s.host, report) : undefined;
  const ifaces = new InterfaceResolver(host?.model, report);
  host?.routeRefs.forEach((n) => ifaces.markUsed(n));

  const byFamily: Record<Family, Table[]> = { ipv4: [], ipv6: [] };
  const seen = new Map<string, Span>();
  for (const t of s.tables) {
    if (!isTableName(t.name.text)) {
      report(
        diag('error', 'E-unknown-table', t.name.span, `there is no table \`${t.name.text}\``, `netfilter's tables are ${TABLES.join(', ')} (lower case)`),
      );
      continue;
    }
    const families = familiesOf(t.family);
    const clashes = families.filter((f) => seen.has(`${f}/${t.name.text}`));
    if (clashes.length) {
      const earlier = [...new Set(clashes.map((f) => seen.get(`${f}/${t.name.text}`)!))];
      report(
        diag(
          'error',
          'E-duplicate-table',
          t.name.span,
          `table ${t.name.text} is declared twice for ${clashes.map(familyLabel).join(' and ')}`,
          'put all chains of a table in one block (`table NAME` covers both families, `table ip`/`table ip6` one)',
          earlier.map((span) => ({ span, message: 'first declared here' })),
        ),
      );
      continue;
    }
    families.forEach((f) => seen.set(`${f}/${t.name.text}`, t.name.span));
    const lowered = lowerTable(t, t.name.text, families, ifaces, report);
    for (const f of families) byFamily[f].push(lowered[f]!);
  }

  const ruleset = (f: Family): Ruleset => ({ family: f, tables: byFamily[f].sort((a, b) => TABLES.indexOf(a.name) - TABLES.indexOf(b.name)) });
  const rulesets: Record<Family, Ruleset> = { ipv4: ruleset('ipv4'), ipv6: ruleset('ipv6') };

  const userChains = new Set(FAMILIES.flatMap((f) => rulesets[f].tables.flatMap((t) => t.chains.filter((c) => !c.hook).map((c) => c.name))));
  const expectations = s.expectations.map((e) => lowerExpectation(e, ifaces, userChains, report));
  ifaces.reportUnused();

  return {
    ...(host ? { host: host.model } : {}),
    rulesets,
    expectations,
    sources: s.sources,
    origin: 'nfp',
  };
}

export function familiesOf(f: TableFamily): Family[] {
  return f === 'inet' ? ['ipv4', 'ipv6'] : [f];
}

export function familyLabel(f: Family): string {
  return f === 'ipv4' ? 'IPv4' : 'IPv6';
}

// ---------------------------------------------------------------------------------------------
// host

function lowerHost(h: SurfaceHost, report: (d: Diagnostic) => void): { model: HostModel; routeRefs: string[] } {
  const interfaces: Interface[] = [];
  const byName = new Map<string, Named>();
  const byDevice = new Map<string, Named>();
  for (const i of h.interfaces) {
    const dupName = byName.get(i.name.text);
    if (dupName) {
      report(diag('error', 'E-duplicate-interface', i.name.span, `interface \`${i.name.text}\` is declared twice`, 'give each interface its own name', [{ span: dupName.span, message: 'first declared here' }]));
      continue;
    }
    // A logical name that is another interface's device (or the reverse) would make `iif X` ambiguous.
    const clash = i.device.text !== i.name.text ? byName.get(i.device.text) : undefined;
    if (clash) {
      report(
        diag('error', 'E-ambiguous-interface', i.device.span, `device ${i.device.text} has the name of another interface`, 'rename one of them: rules would not know which is meant', [
          { span: clash.span, message: 'the other interface' },
        ]),
      );
      continue;
    }
    const namedLikeDevice = interfaces.find((x) => x.device === i.name.text);
    if (namedLikeDevice) {
      report(
        diag('error', 'E-ambiguous-interface', i.name.span, `interface name ${i.name.text} is the device of interface ${namedLikeDevice.name}`, 'rename one of them: rules would not know which is meant', [
          { span: namedLikeDevice.span, message: 'the other interface' },
        ]),
      );
      continue;
    }
    const dupDev = byDevice.get(i.device.text);
    if (dupDev) {
      report(
        diag('error', 'E-duplicate-device', i.device.span, `device ${i.device.text} already belongs to another interface`, 'one interface per device; list all its addresses on one line', [
          { span: dupDev.span, message: 'first used here' },
        ]),
      );
      continue;
    }
    byName.set(i.name.text, i.name);
    byDevice.set(i.device.text, i.device);
    interfaces.push({ name: i.name.text, device: i.device.text, addresses: i.addresses, span: i.span });
  }

  const routes: Route[] = [];
  const routeRefs: string[] = [];
  for (const r of h.routes) {
    let iface: Interface | undefined;
    if (r.dev) {
      iface = interfaces.find((i) => i.name === r.dev!.text) ?? interfaces.find((i) => i.device === r.dev!.text);
      if (!iface) {
        report(diag('error', 'E-undefined-interface', r.dev.span, `no interface \`${r.dev.text}\` in host ${h.name}`, interfaceHint(interfaces)));
        continue;
      }
    } else if (r.via !== undefined) {
      const via = r.via;
      iface = interfaces.find((i) =>
        i.addresses.some((a) => {
          if (a.family !== r.family) return false;
          const [lo, hi] = prefixToInterval({ family: a.family, addr: a.addr & prefixMask(a.family, a.prefixLen), len: a.prefixLen });
          return a.prefixLen > 0 && via >= lo && via <= hi;
        }),
      );
      if (!iface) {
        report(diag('error', 'E-route-no-interface', r.span, 'no interface has a subnet that holds this gateway', 'add `dev INTERFACE`, or give the interface an address in the gateway\'s subnet'));
        continue;
      }
    } else {
      report(diag('error', 'E-route-syntax', r.span, 'a route needs `via GATEWAY` or `dev INTERFACE`', 'e.g. route default via 192.168.20.254 dev wan'));
      continue;
    }
    routeRefs.push(iface.name);
    routes.push({
      family: r.family,
      dest: r.dest,
      ...(r.via !== undefined ? { via: r.via } : {}),
      device: iface.device,
      ...(r.metric !== undefined ? { metric: r.metric } : {}),
      span: r.span,
    });
  }

  const sysctls: Record<string, string> = {};
  const sysctlSpans = new Map<string, Span>();
  for (const s of h.sysctls) {
    const earlier = sysctlSpans.get(s.name.text);
    if (earlier) {
      report(diag('error', 'E-duplicate-sysctl', s.name.span, `sysctl ${s.name.text} is set twice`, 'keep one value', [{ span: earlier, message: 'first set here' }]));
      continue;
    }
    sysctlSpans.set(s.name.text, s.name.span);
    sysctls[s.name.text] = s.value;
  }
  return { model: { name: h.name, interfaces, routes, sysctls, span: h.span }, routeRefs };
}

function interfaceHint(interfaces: readonly Interface[]): string {
  return interfaces.length
    ? `the host has ${interfaces.map((i) => (i.name === i.device ? i.name : `${i.name} (${i.device})`)).join(', ')}; add an \`interface\` line for a new one`
    : 'declare it in the host block: interface NAME dev DEVICE address ADDR/LEN';
}

/** Resolves interface names in rules and flows against the host model, and remembers what was used. */
class InterfaceResolver {
  private readonly used = new Set<string>();

  constructor(
    private readonly host: HostModel | undefined,
    private readonly report: (d: Diagnostic) => void,
  ) {}

  markUsed(name: string): void {
    this.used.add(name);
  }

  resolve(m: IfaceMatch): IfaceMatch {
    const host = this.host;
    if (!host || m.alias !== undefined) return m;
    if (m.wildcard) {
      // `eth+` is a device prefix, never a logical name: it is kept as written.
      const hits = host.interfaces.filter((i) => i.device.startsWith(m.device));
      hits.forEach((i) => this.used.add(i.name));
      if (hits.length === 0 && m.device !== 'lo' && !'lo'.startsWith(m.device)) {
        const alias = host.interfaces.find((i) => i.name.startsWith(m.device));
        this.report(
          diag(
            'warning',
            'W-wildcard-no-device',
            m.span,
            `no device of host ${host.name} starts with \`${m.device}\``,
            alias ? `a wildcard matches device names; interface ${alias.name} is device ${alias.device}` : 'the rule can only match devices that are not in the host model',
          ),
        );
      }
      return m;
    }
    if (m.device === 'lo') return m;
    const byName = host.interfaces.find((i) => i.name === m.device);
    if (byName) {
      this.used.add(byName.name);
      return byName.device === m.device ? m : { ...m, device: byName.device, alias: byName.name };
    }
    const byDevice = host.interfaces.find((i) => i.device === m.device);
    if (byDevice) {
      this.used.add(byDevice.name);
      return m;
    }
    this.report(diag('error', 'E-undefined-interface', m.span, `no interface \`${m.device}\` in host ${host.name}`, interfaceHint(host.interfaces)));
    return m;
  }

  reportUnused(): void {
    for (const i of this.host?.interfaces ?? []) {
      if (!this.used.has(i.name)) {
        this.report(diag('warning', 'W-unused-interface', i.span, `interface ${i.name} is not used by any rule, route or expect`, 'remove it, or ignore this if it documents the host'));
      }
    }
  }

  matches(ms: readonly Match[]): Match[] {
    return ms.map((m) => (m.kind === 'iface' ? this.resolve(m) : m));
  }
}

// ---------------------------------------------------------------------------------------------
// tables and chains

function lowerTable(
  t: SurfaceTable,
  name: TableName,
  families: readonly Family[],
  ifaces: InterfaceResolver,
  report: (d: Diagnostic) => void,
): Partial<Record<Family, Table>> {
  const hooks = TABLE_HOOKS[name];
  const builtins = new Map<Hook, { policy: ChainPolicy; span: Span; rules: Record<Family, Rule[]> }>();
  const users: { name: string; span: Span; rules: Record<Family, Rule[]> }[] = [];
  const declared = new Map<string, Span>();

  for (const c of t.chains) {
    const upper = c.name.text.toUpperCase();
    const hook = isHook(upper) ? upper : undefined;
    if (hook && !hooks.includes(hook)) {
      report(
        diag('error', 'E-chain-not-in-table', c.name.span, `table ${name} has no ${hook} chain`, `the built-in chains of ${name} are ${hooks.map((h) => h.toLowerCase()).join(', ')}`),
      );
      continue;
    }
    const key = hook ?? c.name.text;
    const earlier = declared.get(key);
    if (earlier) {
      report(diag('error', 'E-duplicate-chain', c.name.span, `chain ${c.name.text} is declared twice in table ${name}`, 'put all its rules in one block', [{ span: earlier, message: 'first declared here' }]));
      continue;
    }
    declared.set(key, c.name.span);
    if (!hook && !CHAIN_NAME_RE.test(c.name.text)) {
      report(diag('error', 'E-bad-chain-name', c.name.span, `\`${c.name.text}\` is not a valid chain name`, 'letters, digits and _ . - ; at most 28 characters'));
    }
    const policy = chainPolicy(c, hook, report);
    const rules = lowerRules(c, families, t.family, ifaces, report);
    if (hook) builtins.set(hook, { policy, span: c.span, rules });
    else users.push({ name: c.name.text, span: c.span, rules });
  }

  const out: Partial<Record<Family, Table>> = {};
  for (const f of families) {
    const chains: Chain[] = [
      ...hooks.map((h): Chain => {
        const b = builtins.get(h);
        return { name: h, hook: h, policy: b?.policy ?? 'ACCEPT', rules: b?.rules[f] ?? [], span: b?.span ?? t.span };
      }),
      ...users.map((u): Chain => ({ name: u.name, rules: u.rules[f], span: u.span })),
    ];
    out[f] = { name, chains, span: t.span };
  }
  return out;
}

function chainPolicy(c: SurfaceChain, hook: Hook | undefined, report: (d: Diagnostic) => void): ChainPolicy {
  if (!c.policy) return 'ACCEPT';
  if (!hook) {
    report(
      diag('error', 'E-policy-on-user-chain', c.policy.span, `user chain ${c.name.text} cannot have a policy`, 'a user chain returns to its caller at its end; end it with a `drop` rule instead'),
    );
    return 'ACCEPT';
  }
  const p = c.policy.text.toUpperCase();
  if (p !== 'ACCEPT' && p !== 'DROP') {
    report(diag('error', 'E-bad-policy', c.policy.span, `\`${c.policy.text}\` is not a chain policy`, 'a built-in chain policy is accept or drop (reject it with a last rule instead)'));
    return 'ACCEPT';
  }
  return p;
}

function lowerRules(
  c: SurfaceChain,
  families: readonly Family[],
  tableFamily: TableFamily,
  ifaces: InterfaceResolver,
  report: (d: Diagnostic) => void,
): Record<Family, Rule[]> {
  const out: Record<Family, Rule[]> = { ipv4: [], ipv6: [] };
  for (const r of c.rules) {
    if (r.family && !families.includes(r.family)) {
      report(
        diag(
          'error',
          'E-family-mismatch',
          r.span,
          `an ${familyLabel(r.family)} rule in an ${familyLabel(families[0])} table`,
          `move it to a \`table ${r.family === 'ipv4' ? 'ip' : 'ip6'} …\` or an inet table (\`table NAME\`)`,
        ),
      );
      continue;
    }
    const matches = ifaces.matches(r.matches);
    const wanted = r.family ? [r.family] : families;
    let kept = 0;
    for (const f of wanted) {
      const restricted = restrictRule({ ...r, matches }, f);
      if (restricted) {
        out[f].push(restricted);
        kept++;
      }
    }
    if (kept === 0) reportNoFamily(r, wanted, tableFamily, report);
    else if (wanted.length === 2) warnVanishingNegation(matches, report);
  }
  return out;
}

/**
 * `saddr != 10.0.0.0/8 drop` in a table of both families drops every IPv6 packet: the negated
 * IPv4 set says nothing about IPv6, so there the rule loses the condition. Likely not meant.
 */
function warnVanishingNegation(matches: readonly Match[], report: (d: Diagnostic) => void): void {
  for (const m of matches) {
    if (!('negated' in m) || m.negated !== true) continue;
    const k = matchKind(m);
    const per = FAMILIES.map((f) => k.forFamily(m as never, f));
    const gone = FAMILIES.filter((_, i) => per[i] === 'always');
    if (gone.length !== 1 || per.some((x) => x === 'never')) continue;
    const f = gone[0];
    const keep = f === 'ipv4' ? 'ip6' : 'ip';
    report(
      diag(
        'warning',
        'W-negation-other-family',
        m.span,
        `\`${printMatch(m)}\` holds for every ${familyLabel(f)} packet, so in ${familyLabel(f)} this rule has no such condition`,
        `start the rule with \`${keep}\` if it is meant for ${familyLabel(f === 'ipv4' ? 'ipv6' : 'ipv4')} only, or add the ${familyLabel(f)} values to the set`,
      ),
    );
  }
}

/** The rule as it applies to one family, or undefined when no packet of that family can match it. */
export function restrictRule(r: SurfaceRule, family: Family): Rule | undefined {
  const matches = restrictMatches(r.matches, family);
  if (!matches) return undefined;
  const t = targetKind(r.target);
  const target = t.forFamily ? (t.forFamily(r.target as never, family) as Target | 'never') : r.target;
  if (target === 'never') return undefined;
  return { matches, target, ...(r.comment !== undefined ? { comment: r.comment } : {}), span: r.span };
}

export function restrictMatches(ms: readonly Match[], family: Family): Match[] | undefined {
  const out: Match[] = [];
  for (const m of ms) {
    const k = matchKind(m);
    const x = k.forFamily(m as never, family) as Match | 'never' | 'always';
    if (x === 'never') return undefined;
    if (x !== 'always') out.push(x);
  }
  return out;
}

function reportNoFamily(r: SurfaceRule, families: readonly Family[], tableFamily: TableFamily, report: (d: Diagnostic) => void): void {
  const blame = (f: Family) => r.matches.find((m) => matchKind(m).forFamily(m as never, f) === 'never');
  const targetNever = (f: Family) => {
    const t = targetKind(r.target);
    return t.forFamily ? t.forFamily(r.target as never, f) === 'never' : false;
  };
  const parts = families.map((f) => {
    const m = blame(f);
    return m ? `\`${printMatch(m)}\` has nothing for ${familyLabel(f)}` : targetNever(f) ? `the action does not apply to ${familyLabel(f)}` : '';
  });
  const scope = r.family ? `this ${familyLabel(r.family)}-only rule` : tableFamily === 'inet' ? 'this rule' : `this rule of an ${familyLabel(families[0])} table`;
  const other = families.length === 1 ? (families[0] === 'ipv4' ? 'IPv6' : 'IPv4') : '';
  const message =
    families.length === 1 && blame(families[0])?.kind === 'addr'
      ? `${other} address in ${scope}`
      : `${scope} can match no packet: ${parts.filter(Boolean).join('; ')}`;
  const m0 = blame(families[0]);
  report(
    diag(
      'error',
      'E-no-family',
      m0?.span ?? r.span,
      message,
      families.length === 2
        ? 'a rule cannot mix IPv4 and IPv6 addresses in different clauses; write one rule per family'
        : `use ${familyLabel(families[0])} values here, or put the rule in a ${families[0] === 'ipv4' ? '`table ip6 …`' : '`table ip …`'} or an inet table`,
    ),
  );
}

// ---------------------------------------------------------------------------------------------
// expectations

function lowerFlow(f: Flow, ifaces: InterfaceResolver): Flow {
  return { ...f, matches: ifaces.matches(f.matches) };
}

/** Resolves the interface names of a flow written outside a policy (`nfproof query`) against a host model. */
export function resolveFlowInterfaces(f: Flow, host: HostModel | undefined, report: (d: Diagnostic) => void): Flow {
  return lowerFlow(f, new InterfaceResolver(host, report));
}

function lowerExpectation(e: Expectation, ifaces: InterfaceResolver, userChains: ReadonlySet<string>, report: (d: Diagnostic) => void): Expectation {
  if (e.kind !== 'no-findings' && e.via !== undefined && !isHook(e.via) && !userChains.has(e.via)) {
    report(
      diag('error', 'E-undefined-chain', e.span, `\`via ${e.via}\` names no hook and no user chain`, `via takes a hook (${HOOKS.map((h) => h.toLowerCase()).join(', ')}) or a user chain`),
    );
  }
  switch (e.kind) {
    case 'reachable':
    case 'unreachable':
      return { ...e, flow: lowerFlow(e.flow, ifaces) };
    case 'only':
      return { ...e, allowed: e.allowed.map((f) => lowerFlow(f, ifaces)), within: lowerFlow(e.within, ifaces) };
    case 'no-findings':
      return e;
    default: {
      const never: never = e;
      return never;
    }
  }
}
