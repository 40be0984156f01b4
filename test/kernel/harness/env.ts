import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { kernelAvailable, requirement } from '../../support/env.js';
import { PYTHON } from './agent.js';

/**
 * What the harness needs beyond test/support/env.ts kernelAvailable(): the nft tool (our own
 * hooks in the firewall namespace) and Debian's python3 (the packet agent). Skips loudly
 * outside CI, fails under CI=true.
 */
export function harnessAvailable(): { run: boolean; reason: string } {
  const k = kernelAvailable();
  if (!k.run) return k;
  const nft = spawnSync('sh', ['-c', 'command -v nft'], { stdio: 'ignore' }).status === 0;
  if (!nft) return requirement('kernel harness', false, 'nft is missing (apt-get install nftables)');
  if (!existsSync(PYTHON)) return requirement('kernel harness', false, `${PYTHON} is missing (apt-get install python3)`);
  return { run: true, reason: '' };
}
