import type { Word } from '../kinds/dsl.js';
import { parseIfaceName } from '../kinds/match/iface.js';
import type { SurfaceHost, SurfaceInterface, SurfaceRoute } from '../ir/lower-types.js';
import type { InterfaceAddress } from '../ir/policy.js';
import { type Diagnostic, diag } from '../util/diagnostics.js';
import { FAMILIES, type Family, familyBits, formatPrefix, parseAddress, parsePrefix } from '../util/ip.js';
import type { HostStmt, Line } from './ast.js';

/**
 * The host block: the firewall machine the policy runs on.
 *
 *   interface NAME [dev DEVICE] [address ADDR/LEN[, ADDR/LEN…]]
 *   route DEST|default [via GATEWAY] [dev INTERFACE] [metric N]
 *   sysctl NAME VALUE
 *
 * NAME is the logical name rules use (`iif lan`); DEVICE the kernel's (`eth0`, default NAME).
 * The first address of each family is the interface's primary one (MASQUERADE takes it).
 * A route without `dev` goes out of the interface whose subnet holds the gateway; `default`
 * without a gateway means both families.
 */
export function readHost(h: HostStmt, report: (d: Diagnostic) => void): SurfaceHost {
  const interfaces: SurfaceInterface[] = [];
  const routes: SurfaceRoute[] = [];
  const sysctls: { name: { text: string; span: Line['span'] }; value: string }[] = [];
  for (const line of h.items) {
    const head = line.words[0];
    const kw = head.type === 'atom' ? head.text : '';
    if (kw === 'interface') {
      const i = readInterface(line, report);
      if (i) interfaces.push(i);
    } else if (kw === 'route') {
      routes.push(...readRoute(line, report));
    } else if (kw === 'sysctl') {
      const s = readSysctl(line, report);
      if (s) sysctls.push(s);
    } else {
      report(
        diag('error', 'E-host-syntax', head.span, `\`${kw || 'this'}\` does not belong in a host block`, 'a host block holds `interface`, `route` and `sysctl` lines'),
      );
    }
  }
  return { name: h.name.text, interfaces, routes, sysctls, span: h.span };
}

function atomAt(line: Line, i: number): (Word & { type: 'atom' }) | undefined {
  const w = line.words[i];
  return w?.type === 'atom' ? w : undefined;
}

function readInterface(line: Line, report: (d: Diagnostic) => void): SurfaceInterface | undefined {
  const name = atomAt(line, 1);
  if (!name || !parseIfaceName(name.text) || name.text.endsWith('+')) {
    report(diag('error', 'E-interface-syntax', line.words[1]?.span ?? line.span, '`interface` needs a name', 'interface lan dev eth0 address 192.168.1.1/24'));
    return undefined;
  }
  let device = { text: name.text, span: name.span };
  const addresses: InterfaceAddress[] = [];
  let ok = true;
  let i = 2;
  while (i < line.words.length) {
    const w = line.words[i];
    const kw = w.type === 'atom' ? w.text : '';
    if (kw === 'dev') {
      const d = atomAt(line, i + 1);
      const parsed = d ? parseIfaceName(d.text) : undefined;
      if (!d || !parsed || parsed.wildcard) {
        report(diag('error', 'E-interface-syntax', d?.span ?? w.span, '`dev` needs a device name', 'at most 15 characters, no wildcard, e.g. dev eth0'));
        ok = false;
      } else {
        device = { text: d.text, span: d.span };
      }
      i += 2;
    } else if (kw === 'address') {
      i++;
      // ADDR, ADDR, … or { ADDR, ADDR }
      const values: Word[] = [];
      const first = line.words[i];
      if (first?.type === 'set') {
        for (const item of first.items) values.push(...item);
        i++;
      } else {
        while (i < line.words.length) {
          values.push(line.words[i++]);
          if (line.words[i]?.type !== 'comma') break;
          i++;
        }
      }
      if (values.length === 0) {
        report(diag('error', 'E-interface-syntax', w.span, '`address` needs ADDR/LEN', 'e.g. address 192.168.1.1/24, fd00:1::1/64'));
        ok = false;
      }
      for (const v of values) {
        const a = readInterfaceAddress(v, report);
        if (a) addresses.push(a);
        else ok = false;
      }
    } else {
      report(diag('error', 'E-interface-syntax', w.span, `unexpected \`${kw || 'value'}\` in an interface line`, 'interface NAME [dev DEVICE] [address ADDR/LEN, …]'));
      return undefined;
    }
  }
  return ok ? { name: { text: name.text, span: name.span }, device, addresses, span: line.span } : undefined;
}

function readInterfaceAddress(w: Word, report: (d: Diagnostic) => void): InterfaceAddress | undefined {
  const text = w.type === 'atom' ? w.text : '';
  const slash = text.indexOf('/');
  const a = parseAddress(slash < 0 ? text : text.slice(0, slash));
  const bits = a ? familyBits(a.family) : 0;
  const len = slash < 0 ? bits : /^\d{1,3}$/.test(text.slice(slash + 1)) ? Number(text.slice(slash + 1)) : NaN;
  if (!a || !(len >= 0 && len <= bits)) {
    report(diag('error', 'E-bad-address', w.span, `\`${text || 'this'}\` is not an interface address`, 'write ADDRESS/PREFIXLEN, e.g. 192.168.1.1/24 or fd00:1::1/64'));
    return undefined;
  }
  return { family: a.family, addr: a.value, prefixLen: len };
}

function readRoute(line: Line, report: (d: Diagnostic) => void): SurfaceRoute[] {
  const dest = atomAt(line, 1);
  if (!dest) {
    report(diag('error', 'E-route-syntax', line.words[1]?.span ?? line.span, '`route` needs a destination', 'route default via 192.168.1.254, route 10.0.0.0/8 via 192.168.1.1 dev lan'));
    return [];
  }
  let via: { family: Family; value: bigint } | undefined;
  let dev: { text: string; span: Line['span'] } | undefined;
  let metric: number | undefined;
  for (let i = 2; i < line.words.length; i += 2) {
    const w = line.words[i];
    const arg = atomAt(line, i + 1);
    const kw = w.type === 'atom' ? w.text : '';
    if (kw === 'via' && arg && parseAddress(arg.text)) via = parseAddress(arg.text);
    else if (kw === 'dev' && arg) dev = { text: arg.text, span: arg.span };
    else if (kw === 'metric' && arg && /^\d{1,10}$/.test(arg.text) && Number(arg.text) <= 0xffffffff) metric = Number(arg.text);
    else {
      report(
        diag(
          'error',
          'E-route-syntax',
          (kw === 'via' || kw === 'dev' || kw === 'metric' ? (arg ?? w) : w).span,
          kw === 'via' ? '`via` needs a gateway address' : kw === 'dev' ? '`dev` needs an interface' : kw === 'metric' ? '`metric` needs a number' : `unexpected \`${kw || 'value'}\` in a route`,
          'route DEST|default [via GATEWAY] [dev INTERFACE] [metric N]',
        ),
      );
      return [];
    }
  }
  const common = { ...(dev ? { dev } : {}), ...(metric !== undefined ? { metric } : {}), span: line.span };
  if (dest.text === 'default') {
    const fams = via ? [via.family] : FAMILIES;
    return fams.map((family) => ({ family, dest: { family, addr: 0n, len: 0 }, ...(via ? { via: via.value } : {}), ...common }));
  }
  const p = parsePrefix(dest.text);
  if (!p) {
    report(diag('error', 'E-route-syntax', dest.span, `\`${dest.text}\` is not a destination`, 'write a prefix (10.0.0.0/8, fd00::/16) or default'));
    return [];
  }
  if (p.hostBitsSet) {
    report(diag('warning', 'W-host-bits', dest.span, `\`${dest.text}\` has host bits set; it means ${formatPrefix(p)}`, `write ${formatPrefix(p)}`));
  }
  if (via && via.family !== p.family) {
    report(diag('error', 'E-route-family', line.span, 'the gateway and the destination are of different families', 'an IPv4 route needs an IPv4 gateway'));
    return [];
  }
  return [{ family: p.family, dest: { family: p.family, addr: p.addr, len: p.len }, ...(via ? { via: via.value } : {}), ...common }];
}

function readSysctl(line: Line, report: (d: Diagnostic) => void): { name: { text: string; span: Line['span'] }; value: string } | undefined {
  const name = atomAt(line, 1);
  let i = 2;
  if (atomAt(line, 2)?.text === '=') i = 3;
  const value = line.words[i];
  const valueText = value?.type === 'atom' ? value.text : value?.type === 'string' ? value.value : undefined;
  if (!name || !/^[a-z0-9_][a-z0-9_./-]*$/i.test(name.text) || valueText === undefined || line.words.length > i + 1) {
    report(diag('error', 'E-sysctl-syntax', line.span, '`sysctl` takes a name and a value', 'e.g. sysctl nf_conntrack_tcp_loose 0'));
    return undefined;
  }
  return { name: { text: name.text, span: name.span }, value: valueText };
}
