import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { harnessAvailable } from './harness/env.js';

/**
 * An interrupted kernel run leaves no namespace and no agent behind (test/support/netns.ts):
 * a child builds a topology and is then ended the ways a run ends early — SIGTERM (the runner
 * stopping it), SIGKILL or running out of memory (no handler runs; a guard process cleans up),
 * its runner dying (vitest exits on SIGTERM without stopping its forks: the child sees the IPC
 * channel close). ~4 s (the three run side by side).
 */
const env = harnessAvailable();
const CHILD = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'interrupted-run.ts');

interface Built {
  readonly names: readonly string[];
  readonly agent: number;
}

/** Starts the child with an IPC channel (as a vitest fork has) and waits for what it built. */
async function start(): Promise<{ child: ChildProcess; built: Built; exited: Promise<unknown> }> {
  const child = fork(CHILD, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const built = await new Promise<Built>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the child did not build its topology within 20 s')), 20_000);
    createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      resolve(JSON.parse(line) as Built);
    });
    child.once('exit', (code, signal) => reject(new Error(`the child exited early (${signal ?? code})`)));
  });
  return { child, built, exited };
}

const namespaces = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]);
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Polls (bounded) until none of the child's namespaces and not its agent remain. */
async function gone(built: Built, ms = 5000): Promise<{ namespaces: string[]; agent: boolean }> {
  const deadline = performance.now() + ms;
  for (;;) {
    const left = namespaces().filter((n) => built.names.includes(n));
    const agent = alive(built.agent);
    if ((left.length === 0 && !agent) || performance.now() > deadline) return { namespaces: left, agent };
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(!env.run)('an interrupted kernel run leaves nothing behind', () => {
  it.concurrent.each([
    ['SIGTERM', (c: ChildProcess) => c.kill('SIGTERM')],
    ['SIGKILL (also what running out of memory amounts to)', (c: ChildProcess) => c.kill('SIGKILL')],
    ['its runner going away (IPC channel closed)', (c: ChildProcess) => c.disconnect()],
  ])('%s', async (_how, end) => {
    const { child, built, exited } = await start();
    try {
      expect(built.names).toHaveLength(3);
      for (const n of built.names) expect(namespaces()).toContain(n);
      end(child);
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      expect(await gone(built)).toEqual({ namespaces: [], agent: false });
    } finally {
      // A failing case must not leave its child running (the guard then cleans up after it).
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
