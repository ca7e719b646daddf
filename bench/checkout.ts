/**
 * Another checkout's engine, for benches that compare commits (engine-cpu.ts, engine-calls.ts):
 * a worktree of an older commit with its own `node_modules`, whose layout may differ from this
 * one's. Each name is found by trying the paths it had in each layout. And another checkout's
 * bench page, built and served (open.ts, hot.ts).
 */
import { cpSync, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, preview } from 'vite';

/** What the benches use of a `Connection`, in every layout. */
export interface EngineConnection {
  exec(sql: string): void;
  run(sql: string, params: unknown[]): unknown;
  close(): Promise<void>;
}

/** The first of `paths` (relative to `root`) that exists, imported. */
async function importFirst(root: string, paths: string[]): Promise<Record<string, unknown>> {
  for (const p of paths) {
    const file = join(root, p);
    if (existsSync(file)) return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  }
  throw new Error(`none of ${paths.join(', ')} in ${root}`);
}

/** `root`'s `Connection` and Node storage backend (both layouts export `Connection` from engine/connection.ts; the Node backend moved). */
export async function engineOf(root: string): Promise<{
  Connection: { open(dir: unknown, options: object): Promise<EngineConnection> };
  NodeDirectory: new (path: string) => unknown;
  NodeFileBackend: { prototype: Record<string, unknown> };
}> {
  const { Connection } = (await importFirst(root, ['src/engine/connection.ts'])) as { Connection: { open(dir: unknown, options: object): Promise<EngineConnection> } };
  const { NodeDirectory, NodeFileBackend } = (await importFirst(root, ['src/opfs-vfs/storage/node.ts', 'src/opfs-vfs/node-backend.ts'])) as {
    NodeDirectory: new (path: string) => unknown;
    NodeFileBackend: { prototype: Record<string, unknown> };
  };
  return { Connection, NodeDirectory, NodeFileBackend };
}

/**
 * Builds checkout `tree`'s copy of the bench page folder `page` (copied from this checkout
 * when that tree has none, so an older commit is measured by today's page) and serves it;
 * resolves with its address. `isolated` serves it cross-origin isolated, as the main bench's page;
 * `minify` false keeps the functions' names (for CPU profiles).
 */
export async function serveCheckoutPage(tree: string, page: string, isolated = false, minify = true): Promise<string> {
  const root = join(tree, 'bench', page);
  if (!existsSync(root)) cpSync(new URL(`./${page}/`, import.meta.url).pathname, root, { recursive: true });
  const outDir = mkdtempSync(join(tmpdir(), `outpost-${page}-build-`));
  await build({ root, configFile: false, logLevel: 'warn', build: { outDir, emptyOutDir: true, target: 'es2022', minify }, worker: { format: 'es' } });
  const headers = isolated ? { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' } : {};
  const server = await preview({ root, configFile: false, logLevel: 'warn', build: { outDir }, preview: { host: '127.0.0.1', port: 0, headers } });
  const address = server.httpServer.address();
  if (!address || typeof address === 'string') throw new Error('vite did not bind');
  return `http://127.0.0.1:${address.port}/`;
}
