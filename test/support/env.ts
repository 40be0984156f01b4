import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';

/** Repository root (this file is test/support/env.ts). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The shared corpus lives beside the repository: ../shared/corpus. */
export const CORPUS_DIR = resolve(REPO_ROOT, '..', 'shared', 'corpus');

export const IN_CI = process.env.CI === 'true';

/**
 * Tests that need the real corpus or the kernel call this. Outside CI a missing prerequisite
 * skips with a loud reason; under CI=true it is a failure, because CI must run them.
 */
export function requirement(what: string, ok: boolean, reason: string): { run: boolean; reason: string } {
  if (ok) return { run: true, reason: '' };
  const message = `[nfproof] ${what} not available: ${reason}`;
  if (IN_CI) throw new Error(`${message} (CI=true: this suite must run)`);
  console.warn(`\n*** SKIPPING ${what}: ${reason} ***\n`);
  return { run: false, reason: message };
}

export function corpusAvailable(): { run: boolean; reason: string } {
  return requirement('corpus', existsSync(join(CORPUS_DIR, 'net-network')), `${CORPUS_DIR}/net-network is missing`);
}

function have(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Kernel tests need root, `ip netns`, iptables (legacy and nft) and conntrack. */
export function kernelAvailable(): { run: boolean; reason: string } {
  const missing = ['ip', 'iptables-legacy-restore', 'iptables-nft-restore', 'ip6tables-legacy-restore', 'conntrack'].filter(
    (c) => !have(c),
  );
  if (process.getuid?.() !== 0) return requirement('kernel tests', false, 'not running as root (try: sudo npm run test:kernel)');
  if (missing.length) {
    return requirement('kernel tests', false, `missing ${missing.join(', ')} (apt-get install iptables iproute2 conntrack)`);
  }
  return { run: true, reason: '' };
}
