/**
 * The layer rules of ARCHITECTURE.md, enforced: every import between files in `src/` must be an
 * edge the table below allows, and no file may reach itself through imports (no cycles, type
 * imports included, since a cycle of types still ties the files' meaning together).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';

const SRC = fileURLToPath(new URL('../src', import.meta.url));

/** Layers, most specific prefix first (paths relative to src/, with forward slashes). */
const LAYERS: { layer: string; match: (path: string) => boolean }[] = [
  { layer: 'types', match: (p) => p === 'types.ts' },
  { layer: 'errors', match: (p) => p === 'errors.ts' },
  { layer: 'index', match: (p) => p === 'index.ts' },
  { layer: 'options', match: (p) => p === 'options.ts' },
  { layer: 'api', match: (p) => p === 'database.ts' || p === 'driver.ts' || p === 'statement.ts' },
  { layer: 'sqlite', match: (p) => p.startsWith('sqlite/') },
  { layer: 'storage', match: (p) => p.startsWith('opfs-vfs/storage/') },
  { layer: 'vfs', match: (p) => p.startsWith('opfs-vfs/') },
  { layer: 'engine', match: (p) => p.startsWith('engine/') },
  { layer: 'protocol', match: (p) => p.startsWith('protocol/') },
  { layer: 'sync', match: (p) => p.startsWith('sync/') },
  { layer: 'server', match: (p) => p.startsWith('server/') },
  { layer: 'worker', match: (p) => p.startsWith('worker/') },
  { layer: 'browser', match: (p) => p.startsWith('browser/') },
  { layer: 'node', match: (p) => p.startsWith('node/') },
  { layer: 'drizzle', match: (p) => p.startsWith('drizzle/') },
  { layer: 'kysely', match: (p) => p.startsWith('kysely/') },
  { layer: 'react', match: (p) => p.startsWith('react/') },
  { layer: 'sw', match: (p) => p.startsWith('sw/') },
];

/** What each layer may import besides itself. */
const ALLOWED: Record<string, readonly string[]> = {
  types: [],
  errors: [],
  // Defaults, the database-name rule and storage-error mapping: shared by every entry point.
  options: ['types', 'errors'],
  // sqlite/errors.ts builds the SqliteError class that errors.ts defines.
  sqlite: ['errors'],
  storage: [],
  vfs: ['sqlite', 'storage'],
  engine: ['sqlite', 'storage', 'vfs', 'types', 'errors'],
  protocol: ['errors'],
  sync: ['engine', 'protocol', 'sqlite', 'storage', 'types', 'errors'],
  server: ['engine', 'protocol', 'sqlite', 'storage', 'options', 'types', 'errors'],
  api: ['engine', 'sync', 'options', 'types', 'errors'],
  worker: ['api', 'engine', 'sync', 'storage', 'options', 'types', 'errors'],
  browser: ['worker', 'api', 'storage', 'options', 'types', 'errors'],
  // The engine thread speaks the browser worker's protocol (its error transfer).
  node: ['api', 'worker', 'engine', 'sync', 'storage', 'options', 'types', 'errors'],
  index: ['browser', 'types', 'errors'],
  // The ORM adapters work over any Database through its public surface alone.
  drizzle: ['types', 'errors'],
  kysely: ['types', 'errors'],
  // outpost/react: hooks over the public Database type only.
  react: ['types', 'errors'],
  // outpost/sw: a service worker's queue of push batches; it reads batches, never SQLite.
  sw: ['protocol'],
};

function layerOf(path: string): string {
  const found = LAYERS.find((l) => l.match(path));
  if (!found) throw new Error(`src/${path} belongs to no layer: add its folder to the table in test/layers.test.ts and ARCHITECTURE.md`);
  return found.layer;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) return sourceFiles(full);
    return name.endsWith('.ts') ? [full] : [];
  });
}

/** The internal files a source file imports: static, re-exports and dynamic, types included. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return internal(file, [...staticSpecifiers(text), ...[...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]!)]);
}

/** What a file's static imports and re-exports name, types included. */
function staticSpecifiers(text: string): string[] {
  return [...text.matchAll(/^\s*(?:import|export)\s[^'";]*?from\s*['"]([^'"]+)['"]/gm), ...text.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
}

/** The internal files whose code loading `file` loads with it: static value imports only (no `import type`, no `import()`). */
function loadedWith(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const values = [...text.matchAll(/^\s*(?:import|export)\s+(type\s)?[^'";]*?from\s*['"]([^'"]+)['"]/gm)].filter((m) => m[1] === undefined).map((m) => m[2]!);
  return internal(file, [...values, ...[...text.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm)].map((m) => m[1]!)]);
}

function internal(file: string, specifiers: string[]): string[] {
  return specifiers
    .filter((s) => s.startsWith('.'))
    .map((s) => relative(SRC, resolve(dirname(file), s.replace(/\.js$/, '.ts'))).split('\\').join('/'));
}

const graph = new Map<string, string[]>();
for (const file of sourceFiles(SRC)) {
  graph.set(relative(SRC, file).split('\\').join('/'), importsOf(file));
}

describe('layers', () => {
  test('every import between src/ files is an edge the layer table allows', () => {
    const violations: string[] = [];
    for (const [from, targets] of graph) {
      const fromLayer = layerOf(from);
      for (const to of targets) {
        if (!graph.has(to)) {
          violations.push(`src/${from} imports src/${to}, which does not exist`);
          continue;
        }
        const toLayer = layerOf(to);
        if (toLayer !== fromLayer && !ALLOWED[fromLayer]!.includes(toLayer)) {
          violations.push(`src/${from} (${fromLayer}) imports src/${to} (${toLayer})`);
        }
      }
    }
    expect(violations).toEqual([]);
  });

  test('no import cycle', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'visiting' | 'done'>();
    const stack: string[] = [];
    const visit = (file: string): void => {
      state.set(file, 'visiting');
      stack.push(file);
      for (const next of graph.get(file) ?? []) {
        if (!graph.has(next)) continue;
        if (state.get(next) === 'visiting') cycles.push([...stack.slice(stack.indexOf(next)), next].join(' -> '));
        else if (!state.has(next)) visit(next);
      }
      stack.pop();
      state.set(file, 'done');
    };
    for (const file of graph.keys()) if (!state.has(file)) visit(file);
    expect(cycles).toEqual([]);
  });

  test('a database that does not sync loads no sync client: the worker and the page reach sync/open-synced.ts only by import()', () => {
    // The sync engine, the transport and protobufjs are about a third of the worker's bundle
    // (ARCHITECTURE.md, "The sync client loads when a database syncs").
    const reached = (entry: string): Set<string> => {
      const seen = new Set([entry]);
      for (const file of seen) for (const next of loadedWith(join(SRC, file))) if (graph.has(next)) seen.add(next);
      return seen;
    };
    for (const entry of ['worker/worker.ts', 'index.ts']) {
      const loaded = reached(entry);
      expect([...loaded].filter((f) => f === 'sync/open-synced.ts' || f === 'sync/engine.ts' || f.startsWith('protocol/pull-updates')), entry).toEqual([]);
    }
  });

  test('no source file over 600 lines without a stated reason', () => {
    const long = [...graph.keys()].filter((file) => {
      const text = readFileSync(join(SRC, file), 'utf8');
      return text.split('\n').length > 600 && !/^ \* Length: /m.test(text);
    });
    expect(long).toEqual([]);
  });
});

describe('documents', () => {
  test('every backticked src/, test/ or test-browser/ path in a comment or a Markdown file exists', () => {
    const root = fileURLToPath(new URL('..', import.meta.url));
    const texts = [
      ...['README.md', 'ARCHITECTURE.md'].map((f) => join(root, f)),
      ...[...graph.keys()].map((f) => join(SRC, f)),
    ];
    const missing: string[] = [];
    for (const file of texts) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/`((?:src|test|test-browser)\/[A-Za-z0-9_./-]+?)`/g)) {
        const path = m[1]!.replace(/[.,]$/, '');
        // A glob or a folder pattern names no single file.
        if (path.includes('*')) continue;
        let exists = true;
        try {
          statSync(join(root, path));
        } catch {
          exists = false;
        }
        if (!exists) missing.push(`${relative(root, file)}: ${path}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
