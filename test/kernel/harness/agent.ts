import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/**
 * The TypeScript side of agent.py: starts it, sends JSON-line requests, matches replies by id.
 * The agent only moves bytes; crafting and decoding packets stays in TypeScript (wire.ts).
 * Every agent is killed when its topology is disposed, and at process exit for any left over.
 */
const AGENT_PY = join(dirname(fileURLToPath(import.meta.url)), 'agent.py');
export const PYTHON = '/usr/bin/python3';

/** A capture reported by the agent: a frame received on a tap, or an NFLOG packet copy. */
export type AgentEvent =
  | { readonly tap: string; readonly hex: string; readonly t: number }
  | { readonly nflog: string; readonly hex: string; readonly family: number; readonly indev?: number; readonly hook?: number; readonly prefix?: string; readonly t: number };

interface Reply {
  readonly id: number;
  readonly ok: boolean;
  readonly error?: string;
  readonly events?: AgentEvent[];
  /** The send itself failed (errno name), e.g. ENETUNREACH for a local packet without a route. */
  readonly sendError?: string;
}

const liveAgents = new Set<ChildProcessWithoutNullStreams>();
process.once('exit', () => {
  for (const p of liveAgents) p.kill('SIGKILL');
});

export class PacketAgent {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private exited: string | undefined;
  private stderr = '';
  /** Resolves when the agent process has exited. */
  readonly done: Promise<void>;

  private constructor(private readonly proc: ChildProcessWithoutNullStreams) {
    liveAgents.add(proc);
    this.done = new Promise((resolve) => proc.once('exit', () => resolve()));
    createInterface({ input: proc.stdout }).on('line', (line) => this.onLine(line));
    proc.stderr.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
    proc.on('exit', (code, signal) => {
      liveAgents.delete(proc);
      this.exited = `agent exited (${signal ?? code})${this.stderr ? `: ${this.stderr.trim()}` : ''}`;
      for (const [, w] of this.waiting) {
        clearTimeout(w.timer);
        w.reject(new Error(this.exited));
      }
      this.waiting.clear();
    });
  }

  /** Starts an agent pinned to `cpu` and waits for it to say it is ready. */
  static async start(cpu = 0): Promise<PacketAgent> {
    const proc = spawn(PYTHON, [AGENT_PY, String(cpu)], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } });
    const agent = new PacketAgent(proc);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`agent did not start: ${agent.stderr}`)), 10_000);
      agent.waiting.set(0, {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject,
        timer,
      });
    });
    return agent;
  }

  private onLine(line: string): void {
    let reply: Reply;
    try {
      reply = JSON.parse(line) as Reply;
    } catch {
      this.stderr += `\nunparsable agent output: ${line}`;
      return;
    }
    const w = this.waiting.get(reply.id);
    if (!w) return;
    this.waiting.delete(reply.id);
    clearTimeout(w.timer);
    w.resolve(reply);
  }

  /** Sends one request; rejects when the agent reports an error or does not answer in time. */
  async request(op: string, args: Record<string, unknown> = {}, timeoutMs = 10_000): Promise<Reply> {
    if (this.exited) throw new Error(this.exited);
    const id = this.nextId++;
    const reply = await new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`agent did not answer ${op} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      this.proc.stdin.write(`${JSON.stringify({ id, op, ...args })}\n`);
    });
    if (!reply.ok) {
      const err = new Error(`agent ${op}: ${reply.error ?? 'failed'}`) as Error & { events?: AgentEvent[] };
      err.events = reply.events;
      throw err;
    }
    return reply;
  }

  async tap(name: string, ns: string, dev: string, markersOnly = false): Promise<void> {
    await this.request('tap', { name, ns, dev, markersOnly });
  }

  async nflog(name: string, ns: string, group: number): Promise<void> {
    await this.request('nflog', { name, ns, group });
  }

  async raw(name: string, ns: string, family: 4 | 6): Promise<void> {
    await this.request('raw', { name, ns, family });
  }

  /**
   * Sends `hex` through endpoint `via` (a tap, or a raw sender with `dst`), then waits on the
   * marker stages; returns every capture seen until the last marker arrived.
   */
  async step(send: { via: string; hex: string; dst?: string }, markers: readonly (readonly [string, string])[][], timeoutMs = 2000): Promise<{ events: AgentEvent[]; sendError?: string }> {
    const r = await this.request('step', { send, markers, timeout: timeoutMs / 1000 }, timeoutMs + 5000);
    return { events: r.events ?? [], ...(r.sendError ? { sendError: r.sendError } : {}) };
  }

  /** Captures that arrived outside any step (noise, or late frames). */
  async drain(): Promise<AgentEvent[]> {
    return (await this.request('drain')).events ?? [];
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  close(): void {
    if (this.exited) return;
    this.proc.stdin.end();
    const p = this.proc;
    setTimeout(() => {
      if (liveAgents.has(p)) p.kill('SIGKILL');
    }, 1000).unref();
  }
}
