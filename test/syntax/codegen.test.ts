import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generate } from '../../scripts/codegen.js';
import { REPO_ROOT } from '../support/env.js';

/**
 * The generated files in grammar/ (REFERENCE.md, DIAGNOSTICS.md, diagrams.html, the TextMate
 * grammar) must be what `npm run codegen` makes from the current sources. A kind or diagnostic
 * added without regenerating fails here. ~3 s (ts-morph reads src/).
 */
describe('generated grammar files are up to date', () => {
  const files = generate();

  it.each(Object.keys(files))('%s', (path) => {
    let committed = '';
    try {
      committed = readFileSync(join(REPO_ROOT, path), 'utf8');
    } catch {
      // missing: reported by the comparison below
    }
    expect(committed === files[path], `${path} is out of date: run \`npm run codegen\` and commit the result`).toBe(true);
  });

  it('lists every registered kind and the front end diagnostics', () => {
    const ref = files['grammar/REFERENCE.md'];
    for (const kind of ['addr', 'port', 'proto', 'iface', 'ct-state', 'verdict', 'jump', 'snat']) expect(ref).toContain(`### ${kind}\n`);
    const diags = files['grammar/DIAGNOSTICS.md'];
    for (const code of ['E-undefined-chain', 'E-jump-loop', 'W-unreachable-chain', 'E-include-cycle', 'E-unclosed', 'E-no-family', 'E-target-hook']) expect(diags).toContain(`| \`${code}\` |`);
  });
});
