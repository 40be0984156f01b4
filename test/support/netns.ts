import { type ChildProcess, type ExecFileSyncOptions, execFileSync, spawn, spawnSync } from 'node:child_process';
import type { Socket } from 'node:net';

/**
 * Network namespaces for kernel tests. Every namespace is created here, named with the
 * process id so parallel test files never collide, and removed by `dispose()` — also when a
 * test throws, and at process exit or on SIGINT/SIGTERM for anything left behind.
 * Nothing here touches the machine's own namespace.
 */
const PREFIX = `nfp${process.pid}x`;
let counter = 0;
const live = new Set<string>();

function cleanupAll(): void {
  for (const ns of live) {
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }
  live.clear();
}

process.once('exit', cleanupAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    cleanupAll();
    process.kill(process.pid, sig);
  });
}

// A test runner's forked worker whose runner dies (vitest exits on SIGTERM without stopping its
// workers) would go on running tests alone; it ends as the runner would have ended it.
if (process.connected) process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));

/**
 * For the deaths no handler sees (SIGKILL, out of memory): a detached shell, started with the
 * first namespace, reads a pipe from this process until the kernel closes it, which happens
 * however the process ends, and then deletes whatever namespaces of this process remain (the
 * names carry the pid, so it never touches anyone else's). After a clean exit there are none.
 */
let guard: ChildProcess | undefined;
function startGuard(): void {
  if (guard) return;
  const script = 'cat >/dev/null; ip netns list | while read -r name _; do case "$name" in "$1"*) ip netns del "$name";; esac; done';
  guard = spawn('sh', ['-c', script, 'nfproof-netns-guard', PREFIX], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
  guard.unref();
  // The pipe must not keep this process alive either.
  (guard.stdin as Socket | null)?.unref();
}

export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly status: number;
}

export class Netns {
  private disposed = false;

  private constructor(readonly name: string) {}

  /** Creates a fresh namespace with loopback up. */
  static create(label = 'ns'): Netns {
    startGuard();
    const name = `${PREFIX}${counter++}${label.replace(/[^a-z0-9]/gi, '').slice(0, 8)}`;
    execFileSync('ip', ['netns', 'add', name], { stdio: 'pipe' });
    live.add(name);
    const ns = new Netns(name);
    ns.run('ip', ['link', 'set', 'lo', 'up']);
    return ns;
  }

  /** Runs a command inside the namespace; throws with its stderr on a non-zero exit. */
  run(cmd: string, args: readonly string[], input?: string, opts: ExecFileSyncOptions = {}): string {
    const r = this.exec(cmd, args, input, opts);
    if (r.status !== 0) {
      throw new Error(`[netns ${this.name}] ${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr || r.stdout}`);
    }
    return r.stdout;
  }

  /** Runs a command inside the namespace and returns its outcome, whatever it is. */
  exec(cmd: string, args: readonly string[], input?: string, opts: ExecFileSyncOptions = {}): ExecResult {
    const r = spawnSync('ip', ['netns', 'exec', this.name, cmd, ...args], {
      input,
      encoding: 'utf8',
      timeout: 30_000,
      ...opts,
    });
    return { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? '') + (r.error ? String(r.error) : ''), status: r.status ?? -1 };
  }

  /** Writes a sysctl inside the namespace and reads it back (writes can fail silently). */
  sysctl(name: string, value: string): boolean {
    this.exec('sysctl', ['-q', '-w', `${name}=${value}`]);
    const back = this.exec('sysctl', ['-n', name]).stdout.trim();
    return back === value;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    spawnSync('ip', ['netns', 'del', this.name], { stdio: 'ignore' });
    live.delete(this.name);
  }
}

/** Runs `fn` with fresh namespaces and always removes them afterwards. */
export async function withNetns<T>(labels: readonly string[], fn: (...ns: Netns[]) => Promise<T> | T): Promise<T> {
  const made: Netns[] = [];
  try {
    for (const l of labels) made.push(Netns.create(l));
    return await fn(...made);
  } finally {
    for (const ns of made) ns.dispose();
  }
}
