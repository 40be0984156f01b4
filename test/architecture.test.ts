import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Node, Project, SyntaxKind } from 'ts-morph';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './support/env.js';

/**
 * The layering of ARCHITECTURE.md, enforced on the real import graph with ts-morph. The table
 * in ARCHITECTURE.md is parsed here, so the document and the check cannot drift apart:
 *
 *   | `src/ir` | util, and *types* from kinds … |
 *
 * A row's first column names one or more layers (a directory, or files by prefix such as
 * `src/ir/lower*.ts`); the second lists the layers it may import, `everything`, or `nothing
 * of nfproof`; "*types* from X" allows only type-only imports of X. The most specific row
 * that covers a file applies. Every static import, `export … from` and literal dynamic
 * `import('…')` of every file under src/ is checked. ~3 s.
 */

interface LayerRule {
  /** Path prefixes (relative to the repository), e.g. `src/ir/lower`, `src/ir/check/`. */
  readonly scopes: readonly string[];
  readonly values: ReadonlySet<string> | 'all';
  readonly typesOnly: ReadonlySet<string>;
  readonly text: string;
}

const LAYERS = ['util', 'ir', 'kinds', 'syntax', 'backends', 'netfilter', 'analyze', 'report', 'cli'];

function parseTable(md: string): LayerRule[] {
  const section = md.slice(md.indexOf('## Layers'));
  const rows = section.split('\n').filter((l) => /^\| `src\//.test(l));
  return rows.map((row) => {
    const [, who, may] = row.split('|').map((c) => c.trim());
    const scopes = [...who.matchAll(/`(src\/[^`]+)`/g)].map((m) => {
      const p = m[1];
      // `src/ir/lower*.ts` → prefix `src/ir/lower`; a directory → `src/ir/check/`.
      return p.includes('*') ? p.slice(0, p.indexOf('*')) : `${p.replace(/\/$/, '')}/`;
    });
    const typesOnly = new Set([...may.matchAll(/\*types\* from (\w+)/g)].map((m) => m[1]));
    const plain = may.replace(/\*types\* from \w+/g, '').replace(/\([^)]*\)/g, '');
    const values: LayerRule['values'] = /everything/.test(plain)
      ? 'all'
      : new Set(plain.split(/[,\s]+|\band\b/).map((w) => w.trim()).filter((w) => LAYERS.includes(w)));
    return { scopes, values, typesOnly, text: row };
  });
}

function layerOf(path: string): string | undefined {
  const m = /^src\/([^/]+)\//.exec(path);
  return m ? m[1] : undefined;
}

function ruleFor(rules: readonly LayerRule[], path: string): LayerRule | undefined {
  let best: LayerRule | undefined;
  let bestLen = -1;
  for (const r of rules) {
    for (const s of r.scopes) {
      if (path.startsWith(s) && s.length > bestLen) {
        best = r;
        bestLen = s.length;
      }
    }
  }
  return best;
}

interface Edge {
  readonly from: string;
  readonly to: string;
  readonly typeOnly: boolean;
  readonly line: number;
}

function importEdges(): Edge[] {
  const project = new Project({ tsConfigFilePath: join(REPO_ROOT, 'tsconfig.json'), skipAddingFilesFromTsConfig: true });
  project.addSourceFilesAtPaths(join(REPO_ROOT, 'src/**/*.ts'));
  const edges: Edge[] = [];
  for (const sf of project.getSourceFiles()) {
    const from = relative(REPO_ROOT, sf.getFilePath());
    const add = (target: string | undefined, typeOnly: boolean, node: Node) => {
      if (!target) return;
      edges.push({ from, to: relative(REPO_ROOT, target), typeOnly, line: node.getStartLineNumber() });
    };
    for (const d of sf.getImportDeclarations()) {
      const named = d.getNamedImports();
      const typeOnly = d.isTypeOnly() || (named.length > 0 && named.every((n) => n.isTypeOnly()) && !d.getDefaultImport() && !d.getNamespaceImport());
      add(d.getModuleSpecifierSourceFile()?.getFilePath(), typeOnly, d);
    }
    for (const d of sf.getExportDeclarations()) {
      add(d.getModuleSpecifierSourceFile()?.getFilePath(), d.isTypeOnly(), d);
    }
    // `import('…')` with a literal path, and `import('…').Type` in type positions.
    for (const call of sf.getDescendantsOfKind(SyntaxKind.CallExpression)) {
      if (call.getExpression().getKind() !== SyntaxKind.ImportKeyword) continue;
      const arg = call.getArguments()[0];
      if (arg && Node.isStringLiteral(arg)) {
        const target = project.getSourceFile(join(sf.getDirectoryPath(), arg.getLiteralValue().replace(/\.js$/, '.ts')));
        add(target?.getFilePath(), false, call);
      }
    }
    for (const t of sf.getDescendantsOfKind(SyntaxKind.ImportType)) {
      const arg = t.getArgument();
      const lit = Node.isLiteralTypeNode(arg) ? arg.getLiteral() : undefined;
      if (lit && Node.isStringLiteral(lit)) {
        const target = project.getSourceFile(join(sf.getDirectoryPath(), lit.getLiteralValue().replace(/\.js$/, '.ts')));
        add(target?.getFilePath(), true, t);
      }
    }
  }
  return edges;
}

const rules = parseTable(readFileSync(join(REPO_ROOT, 'ARCHITECTURE.md'), 'utf8'));
const edges = importEdges();

describe('layering (ARCHITECTURE.md)', () => {
  it('reads the layer table', () => {
    // One row per layer at least; the table is the contract, so losing a row must fail loudly.
    const covered = new Set(rules.flatMap((r) => r.scopes.map((s) => layerOf(s) ?? '')));
    expect([...covered].sort()).toEqual([...LAYERS].sort());
  });

  it('sees the import graph', () => {
    expect(edges.length).toBeGreaterThan(100);
    expect(edges.some((e) => e.from.startsWith('src/syntax/') && e.to.startsWith('src/kinds/'))).toBe(true);
  });

  it('every import of src/ follows the table', () => {
    const violations: string[] = [];
    for (const e of edges) {
      const fromLayer = layerOf(e.from);
      const toLayer = layerOf(e.to);
      if (!fromLayer || !toLayer || fromLayer === toLayer) continue;
      const rule = ruleFor(rules, e.from);
      if (!rule) {
        violations.push(`${e.from}: no row of the layer table covers this file`);
        continue;
      }
      if (rule.values === 'all' || rule.values.has(toLayer)) continue;
      if (e.typeOnly && rule.typesOnly.has(toLayer)) continue;
      violations.push(`${e.from}:${e.line} imports ${e.to}${e.typeOnly ? ' (types)' : ''}, but ${rule.scopes.join(', ')} may import: ${rule.text.split('|')[2].trim()}`);
    }
    expect(violations).toEqual([]);
  });

  it('the front end never reaches the simulator, and kinds never reach the CLI', () => {
    // The two rules DESIGN.md names, checked transitively (through any chain of imports).
    const graph = new Map<string, string[]>();
    for (const e of edges) graph.set(e.from, [...(graph.get(e.from) ?? []), e.to]);
    const reach = (start: string): Set<string> => {
      const seen = new Set<string>();
      const stack = [start];
      while (stack.length) {
        const f = stack.pop()!;
        for (const t of graph.get(f) ?? []) if (!seen.has(t)) seen.add(t), stack.push(t);
      }
      return seen;
    };
    for (const [from, forbidden] of [
      ['src/syntax/', 'src/netfilter/'],
      ['src/kinds/', 'src/cli/'],
    ] as const) {
      const bad = [...graph.keys()].filter((f) => f.startsWith(from)).flatMap((f) => [...reach(f)].filter((t) => t.startsWith(forbidden)).map((t) => `${f} → … → ${t}`));
      expect(bad).toEqual([]);
    }
  });
});
