import { readFileSync } from 'node:fs';
import { Option } from 'commander';
import type { Policy, Rule } from '../../ir/policy.js';
import { printMatch, printTarget } from '../../kinds/index.js';
import type { ChainCounters, CtEntrySnapshot, SimInput, SimOutcome, TraceStep } from '../../netfilter/api.js';
import { describePacket, expectationLine, formatConntrackList, formatCount, formatCounters, formatProc } from '../../netfilter/format.js';
import { PacketFileError, packetToJson, parsePacketFile } from '../../netfilter/packet-file.js';
import { type CaptureOut, readCapture, writePcapng } from '../../netfilter/pcap.js';
import { SimulationError, createSimulator } from '../../netfilter/simulator.js';
import { writeFileAtomically } from '../../util/atomic-write.js';
import { sortDiagnostics } from '../../util/diagnostics.js';
import { type Family, formatAddress } from '../../util/ip.js';
import { formatFileLine, isGenerated } from '../../util/span.js';
import { type CliContext, EXIT, printDiagnostics } from '../context.js';
import { POLICY_FORMATS, type PolicyFormat, loadAnyPolicy } from '../load-policy.js';
import type { Verb } from '../verb.js';

/**
 * `nfproof simulate POLICY --packets FILE.jsonl | --pcap IN`: runs packets through the policy
 * as the kernel would (src/netfilter) and prints, per packet, the path through hooks, tables,
 * chains and rules, the verdict, the headers after NAT and the conntrack state; at the end the
 * conntrack table (`conntrack -L` and /proc/net/nf_conntrack forms), nf_conntrack_count/max and
 * the rule counters.
 *
 * Input mistakes (unreadable policy, a bad packet line, an unknown interface) print
 * `FILE:line: message` and exit 2 before anything else is printed.
 */

const FORMATS = ['text', 'json'] as const;

interface Input {
  readonly inputs: SimInput[];
  /** Where each input came from, for messages (`file:line` or `file#record`). */
  readonly origin: (i: SimInput) => string;
}

function ifaceResolver(policy: Policy): (name: string) => string | undefined {
  const host = policy.host;
  if (!host) return (name) => (/^[A-Za-z0-9_.:@-]{1,15}$/.test(name) ? name : undefined);
  return (name) => {
    if (name === 'lo') return 'lo';
    const itf = host.interfaces.find((i) => i.name === name || i.device === name);
    return itf?.device;
  };
}

function readPackets(ctx: CliContext, path: string, policy: Policy): Input | string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    return `${path}: cannot read the packet file: ${e instanceof Error ? e.message : String(e)}`;
  }
  try {
    const inputs = parsePacketFile(text, ifaceResolver(policy));
    if (inputs.length === 0) return `${path}: no packets in the file`;
    return { inputs, origin: (i) => `${path}:${i.line ?? '?'}` };
  } catch (e) {
    if (e instanceof PacketFileError) return `${path}:${e.line}: ${e.message}`;
    throw e;
  }
}

function readPcap(path: string, policy: Policy, iface: string | undefined): Input | string {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    return `${path}: cannot read the capture: ${e instanceof Error ? e.message : String(e)}`;
  }
  const cap = readCapture(bytes);
  if (!cap.ok) return `${path}: ${cap.error}`;
  const resolve = ifaceResolver(policy);
  const inputs: SimInput[] = [];
  const t0 = cap.records.find((r) => r.decoded?.ok)?.t ?? 0;
  for (const r of cap.records) {
    if (!r.decoded) continue;
    if (!r.decoded.ok) return `${path}#${r.index}: ${r.decoded.error}`;
    const name = r.iface ?? iface;
    if (name === undefined) return `${path}#${r.index}: the capture does not say which interface the packet arrived on; give --iface DEV`;
    const device = name === 'local' ? undefined : resolve(name);
    if (name !== 'local' && device === undefined) return `${path}#${r.index}: unknown interface "${name}"`;
    inputs.push({
      t: Math.max(0, r.t - t0),
      ingress: device === undefined ? { kind: 'local' } : { kind: 'iface', device },
      packet: r.decoded.packet,
      line: r.index,
    });
  }
  if (inputs.length === 0) return `${path}: no IP packets in the capture`;
  return { inputs, origin: (i) => `${path}#${i.line ?? '?'}` };
}

function stepText(s: TraceStep): string {
  if (s.event && s.event !== 'answer') return `${s.hook.padEnd(11)} ${`(${s.event})`.padEnd(8)} ${s.action}`;
  const where = s.span && !isGenerated(s.span) ? ` (${formatFileLine(s.span)})` : '';
  const rule = s.rule !== undefined ? ` #${s.rule + 1}` : '';
  return `${s.hook.padEnd(11)} ${s.table.padEnd(8)} ${s.chain}${rule}${where}: ${s.action}`;
}

function verdictText(o: SimOutcome): string {
  switch (o.verdict) {
    case 'local':
      return `delivered locally: ${describePacket(o.delivered!)}`;
    case 'forwarded':
      return `forwarded out of ${o.egress!.device}: ${describePacket(o.egress!.packet)}`;
    case 'sent':
      return o.egress!.device === 'lo' ? `sent over lo and delivered: ${describePacket(o.delivered ?? o.egress!.packet)}` : `sent out of ${o.egress!.device}: ${describePacket(o.egress!.packet)}`;
    case 'dropped':
      return `dropped (${o.dropReason ?? 'dropped'})`;
  }
}

function outcomeText(n: number, o: SimOutcome, origin: string): string[] {
  const where = o.input.ingress.kind === 'local' ? 'local' : o.input.ingress.device;
  const lines = [`#${n} ${origin} t=${o.input.t} ${where}: ${describePacket(o.input.packet)}`];
  lines.push(`    ct ${o.ctState}${o.ctDir ? ` (${o.ctDir})` : ''}${o.invalidReason ? `: ${o.invalidReason}` : ''}`);
  for (const s of o.trace) lines.push(`    ${stepText(s)}`);
  lines.push(`    => ${verdictText(o)}`);
  for (const r of o.responses) lines.push(`    answer out of ${r.device}: ${describePacket(r.packet)}`);
  for (const u of o.unknowns ?? []) lines.push(`    unknown: ${u}`);
  return lines;
}

function traceJson(s: TraceStep): Record<string, unknown> {
  return {
    hook: s.hook,
    ...(s.event ? { event: s.event } : {}),
    table: s.table,
    chain: s.chain,
    ...(s.rule !== undefined ? { rule: s.rule + 1 } : {}),
    ...(s.span && !isGenerated(s.span) ? { at: formatFileLine(s.span) } : {}),
    action: s.action,
  };
}

function outcomeJson(o: SimOutcome): Record<string, unknown> {
  return {
    line: o.input.line,
    t: o.input.t,
    iface: o.input.ingress.kind === 'local' ? 'local' : o.input.ingress.device,
    packet: packetToJson(o.input.packet),
    verdict: o.verdict,
    ...(o.dropReason ? { dropReason: o.dropReason } : {}),
    ctState: o.ctState,
    ...(o.ctDir ? { ctDir: o.ctDir } : {}),
    ...(o.invalidReason ? { invalidReason: o.invalidReason } : {}),
    ...(o.egress ? { egress: { iface: o.egress.device, packet: packetToJson(o.egress.packet) } } : {}),
    ...(o.delivered ? { delivered: packetToJson(o.delivered) } : {}),
    responses: o.responses.map((r) => ({ iface: r.device, packet: packetToJson(r.packet) })),
    trace: o.trace.map(traceJson),
    ...(o.unknowns ? { unknowns: o.unknowns } : {}),
  };
}

function tupleJson(family: Family, t: CtEntrySnapshot['original']): Record<string, unknown> {
  return {
    src: formatAddress(family, t.src),
    dst: formatAddress(family, t.dst),
    proto: t.proto,
    ...(t.sport !== undefined ? { sport: t.sport, dport: t.dport } : {}),
    ...(t.icmpType !== undefined ? { type: t.icmpType, code: t.icmpCode, id: t.icmpId } : {}),
  };
}

function entryJson(e: CtEntrySnapshot): Record<string, unknown> {
  return {
    family: e.family,
    original: tupleJson(e.family, e.original),
    reply: tupleJson(e.family, e.reply),
    ...(e.tcpState ? { state: e.tcpState } : {}),
    timeout: e.timeout,
    status: e.status,
    mark: e.mark,
    zone: e.zone,
    ...(e.helper ? { helper: e.helper } : {}),
    ...(e.randomized ? { randomized: e.randomized } : {}),
  };
}

/** Rule texts for the counter listing: the DSL form of each rule and where it is written. */
function ruleTexts(policy: Policy): (c: ChainCounters, i: number) => string {
  return (c, i) => {
    const rule: Rule | undefined = policy.rulesets[c.family].tables.find((t) => t.name === c.table)?.chains.find((ch) => ch.name === c.chain)?.rules[i];
    if (!rule) return '?';
    const text = [...rule.matches.map(printMatch), printTarget(rule.target)].join(' ');
    return isGenerated(rule.span) ? text : `${text}    # ${formatFileLine(rule.span)}`;
  };
}

function references(policy: Policy): (c: ChainCounters) => number {
  return (c) => {
    const table = policy.rulesets[c.family].tables.find((t) => t.name === c.table);
    let n = 0;
    for (const ch of table?.chains ?? []) for (const r of ch.rules) if (r.target.kind === 'jump' && r.target.chain === c.chain) n++;
    return n;
  };
}

function policies(policy: Policy): (c: ChainCounters) => string {
  return (c) => policy.rulesets[c.family].tables.find((t) => t.name === c.table)?.chains.find((ch) => ch.name === c.chain)?.policy ?? 'ACCEPT';
}

function parseSysctls(values: readonly string[]): Record<string, string> | string {
  const out: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq <= 0) return `--sysctl ${v}: write NAME=VALUE, e.g. --sysctl nf_conntrack_tcp_loose=0`;
    out[v.slice(0, eq).trim()] = v.slice(eq + 1).trim();
  }
  return out;
}

export const simulateVerb: Verb = {
  name: 'simulate',
  summary: 'Run packets through a policy like the kernel: trace, NAT, conntrack table and counters',
  configure(cmd) {
    cmd
      .argument('<policy>', '.nfp policy or iptables-save dump')
      .option('-p, --packets <file>', 'packets as JSON Lines (one per line: t, iface, src, dst, proto, ports, flags…)')
      .option('--pcap <file>', 'packets from a pcap/pcapng capture')
      .option('--iface <dev>', 'arrival interface for a capture that does not name one')
      .option('--pcap-out <file>', 'write the packets that leave (and the answers) to a pcapng file')
      .addOption(new Option('-f, --format <format>', 'output format').choices([...FORMATS]).default('text'))
      .option('--conntrack', 'also print the conntrack table after every packet')
      .option('--max-entries <n>', 'nf_conntrack_max')
      .option('--sysctl <name=value...>', 'conntrack sysctls: timeouts, nf_conntrack_tcp_loose, tcp_be_liberal, nf_conntrack_buckets, ip_forward…')
      .option('--seed <n>', 'seed for the choices the kernel makes at random', '0')
      .addOption(new Option('--from <format>', 'input format (default: detected)').choices([...POLICY_FORMATS]));
  },
  async run(ctx, args, opts) {
    const fail = (msg: string): number => {
      ctx.stderr.write(`${msg}\n`);
      return EXIT.input;
    };
    if ((opts.packets === undefined) === (opts.pcap === undefined)) return fail('nfproof simulate: give exactly one of --packets FILE.jsonl or --pcap FILE');
    const loaded = await loadAnyPolicy(args[0], ctx.sources, opts.from ? { from: opts.from as PolicyFormat } : {});
    if (!loaded.policy) {
      printDiagnostics(ctx, sortDiagnostics(loaded.diagnostics));
      return EXIT.input;
    }
    printDiagnostics(ctx, sortDiagnostics(loaded.diagnostics.filter((d) => d.severity !== 'info')));
    const policy = loaded.policy;
    const sysctls = parseSysctls((opts.sysctl as string[] | undefined) ?? []);
    if (typeof sysctls === 'string') return fail(sysctls);
    let maxEntries: number | undefined;
    if (opts.maxEntries !== undefined) {
      maxEntries = Number(opts.maxEntries);
      if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) return fail(`--max-entries must be a positive integer, not "${String(opts.maxEntries)}"`);
    }
    const seed = Number(opts.seed);
    if (!Number.isSafeInteger(seed)) return fail(`--seed must be an integer, not "${String(opts.seed)}"`);
    const input = opts.packets !== undefined ? readPackets(ctx, String(opts.packets), policy) : readPcap(String(opts.pcap), policy, opts.iface as string | undefined);
    if (typeof input === 'string') return fail(input);

    let sim;
    try {
      sim = createSimulator(policy, { sysctls, seed, ...(maxEntries !== undefined ? { maxEntries } : {}) });
    } catch (e) {
      if (e instanceof SimulationError) return fail(`nfproof simulate: ${e.message}`);
      throw e;
    }
    // Run everything first: an input error stops the run before anything is printed.
    const outcomes: SimOutcome[] = [];
    const tables: string[][] = [];
    for (const i of input.inputs) {
      try {
        outcomes.push(sim.process(i));
      } catch (e) {
        if (e instanceof SimulationError) return fail(`${input.origin(i)}: ${e.message}`);
        throw e;
      }
      if (opts.conntrack) tables.push(formatConntrackList(sim.entries()).lines);
    }
    const entries = sim.entries();
    const expectations = sim.expectations();
    const count = sim.count();
    const counters = sim.counters();

    if (typeof opts.pcapOut === 'string') {
      const out: CaptureOut[] = [];
      for (const o of outcomes) {
        if (o.egress && o.egress.device !== 'lo') out.push({ t: o.input.t, packet: o.egress.packet, iface: o.egress.device });
        for (const r of o.responses) out.push({ t: o.input.t, packet: r.packet, iface: r.device });
      }
      try {
        writeFileAtomically(opts.pcapOut, writePcapng(out));
      } catch (e) {
        return fail(`nfproof: cannot write ${opts.pcapOut}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }

    if (opts.format === 'json') {
      const doc = {
        packets: outcomes.map((o, n) => ({ ...outcomeJson(o), ...(opts.conntrack ? { conntrack: tables[n] } : {}) })),
        conntrack: entries.map(entryJson),
        conntrackList: formatConntrackList(entries).lines,
        procNfConntrack: formatProc(entries),
        expectations: expectations.map(expectationLine),
        count,
        max: sim.max,
        counters: counters.map((c) => ({ family: c.family, table: c.table, chain: c.chain, ...(c.policy ? { policy: { packets: c.policy[0], bytes: c.policy[1] } } : {}), rules: c.rules.map(([p, b]) => ({ packets: p, bytes: b })) })),
      };
      ctx.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
      return EXIT.ok;
    }

    const lines: string[] = [];
    outcomes.forEach((o, n) => {
      lines.push(...outcomeText(n + 1, o, input.origin(o.input)));
      if (opts.conntrack) lines.push(...tables[n].map((l) => `    | ${l}`));
      lines.push('');
    });
    const list = formatConntrackList(entries);
    lines.push('# conntrack -L', ...list.lines, `# ${list.summary}`, '');
    lines.push('# cat /proc/net/nf_conntrack', ...formatProc(entries), '');
    if (expectations.length > 0) lines.push('# conntrack -L expect', ...expectations.map(expectationLine), '');
    lines.push(...formatCount(count, sim.max), '');
    lines.push(...formatCounters(counters, { describe: ruleTexts(policy), references: references(policy), policyOf: policies(policy) }));
    ctx.stdout.write(`${lines.join('\n')}\n`);
    return EXIT.ok;
  },
};
