/**
 * Another checkout's engine, for benches that compare commits (engine-cpu.ts, engine-calls.ts):
 * a worktree of an older commit with its own `node_modules`, whose layout may differ from this
 * one's. Each name is found by trying the paths it had in each layout.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

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
