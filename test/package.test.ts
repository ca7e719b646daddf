/**
 * The package as npm would publish it: `npm pack --dry-run` lists what ships (dist, src, README,
 * LICENSE, package.json; no tests or fixtures), every export points at a shipped file, the
 * worker and SQLite's WASM are reachable from dist, and `import 'outpost'` in Node gives an
 * error that names `outpost/node` instead of a ReferenceError on Worker. Needs dist built
 * (`npx tsc -p tsconfig.build.json`; `npm test` builds it first).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, test } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  private?: boolean;
  license: string;
  repository?: unknown;
  keywords?: string[];
  exports: Record<string, string | Record<string, string>>;
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional?: boolean }>;
  scripts: Record<string, string>;
};

let files: string[] = [];

beforeAll(() => {
  if (!existsSync(join(root, 'dist/index.js'))) throw new Error('dist/ is missing: run `npx tsc -p tsconfig.build.json` first');
  // --ignore-scripts: `prepare` would rebuild dist; the test reads the build that is there.
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' });
  const [packed] = JSON.parse(out) as { files: { path: string }[] }[];
  files = packed!.files.map((f) => f.path);
}, 60_000);

describe('package', () => {
  test('the manifest can be published and installed', () => {
    expect(manifest.private).toBeUndefined();
    expect(manifest.license).toBe('MIT');
    expect(manifest.repository).toBeDefined();
    expect(manifest.keywords?.length).toBeGreaterThan(0);
    expect(manifest.scripts.prepublishOnly).toMatch(/test/);
    // Ranges, so that applications can share a copy; exact versions live in the lock file.
    for (const [name, range] of Object.entries(manifest.dependencies)) expect(range, name).toMatch(/^[~^]/);
    for (const name of ['drizzle-orm', 'kysely']) {
      expect(manifest.peerDependencies[name], name).toBeDefined();
      expect(manifest.peerDependenciesMeta[name]?.optional, name).toBe(true);
    }
  });

  test('the tarball holds dist, src, README and LICENSE, and no tests or fixtures', () => {
    expect(files).toEqual(expect.arrayContaining(['LICENSE', 'README.md', 'package.json', 'dist/index.js', 'dist/index.d.ts.map']));
    const stray = files.filter(
      (f) => !/^(dist|src)\//.test(f) && !['LICENSE', 'README.md', 'package.json'].includes(f),
    );
    expect(stray).toEqual([]);
    expect(files.filter((f) => /(^|\/)(test|test-browser|e2e|fixtures)\/|\.test\.|\.check\./.test(f))).toEqual([]);
  });

  test('every export and its types point at a shipped file', () => {
    const targets = Object.values(manifest.exports).flatMap((entry) => (typeof entry === 'string' ? [entry] : Object.values(entry)));
    const missing = targets.map((t) => t.replace(/^\.\//, '')).filter((t) => !files.includes(t));
    expect(missing).toEqual([]);
  });

  test('the worker and sqlite3.wasm are reachable from dist', () => {
    // The browser build starts its worker by a URL relative to its own module, which bundlers follow.
    expect(readFileSync(join(root, 'dist/worker/client.js'), 'utf8')).toContain("new URL('./worker.js', import.meta.url)");
    expect(files).toContain('dist/worker/worker.js');
    // The engine loads SQLite from its dependency, which finds sqlite3.wasm beside its own module.
    expect(readFileSync(join(root, 'dist/sqlite/load.js'), 'utf8')).toContain("from '@sqlite.org/sqlite-wasm'");
    expect(manifest.dependencies['@sqlite.org/sqlite-wasm']).toBeDefined();
    const entry = createRequire(join(root, 'dist/sqlite/load.js')).resolve('@sqlite.org/sqlite-wasm');
    expect(existsSync(join(dirname(entry), 'sqlite3.wasm'))).toBe(true);
  });

  test("import 'outpost' in Node fails with an error naming outpost/node, and the subpaths load", () => {
    // Every value the browser entry exports must exist under Node too, or shared code that
    // imports it fails as it loads: the names are read from src/index.ts's export lists.
    const exported = [...readFileSync(join(root, 'src/index.ts'), 'utf8').matchAll(/^export \{([^}]*)\}/gm)]
      .flatMap((m) => m[1]!.split(','))
      .map((n) => n.trim())
      .filter((n) => n && !n.startsWith('type '));
    expect(exported).toContain('AbortError');
    // A separate Node process resolves the package by its own name, as an application would.
    const script = `
      const outpost = await import('outpost');
      const names = ${JSON.stringify(exported)}.filter((n) => !(n in outpost));
      const error = await outpost.open('notes').then(() => null, (e) => ({ name: e.name, code: e.code, message: e.message }));
      const drizzle = typeof (await import('outpost/drizzle')).drizzle;
      const kysely = typeof (await import('outpost/kysely')).OutpostDialect;
      const node = typeof (await import('outpost/node')).open;
      console.log(JSON.stringify({ names, error, drizzle, kysely, node }));
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
    const result = JSON.parse(out) as { names: string[]; error: { name: string; code: string; message: string } | null };
    expect(result).toMatchObject({ names: [], drizzle: 'function', kysely: 'function', node: 'function' });
    expect(result.error).toMatchObject({ name: 'OutpostError', code: 'WORKER_FAILED' });
    expect(result.error?.message).toContain('outpost/node');
  });
});
