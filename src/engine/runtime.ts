/**
 * The SQLite module with Outpost's VFS installed in it: what every connection of this realm
 * (worker or Node process) runs on. `sqlite/load.ts` loads the module; installing the VFS is
 * the engine's step, since the `sqlite/` layer knows nothing of Outpost's storage.
 */
import { OutpostVfs } from '../opfs-vfs/vfs.js';
import { type LoadOptions, loadSqlite } from '../sqlite/load.js';
import type { Sqlite3Runtime } from '../sqlite/wasm-api.js';

export type { LoadOptions } from '../sqlite/load.js';

export interface SqliteRuntime {
  sqlite3: Sqlite3Runtime;
  vfs: OutpostVfs;
}

let runtime: Promise<SqliteRuntime> | null = null;

/**
 * The WASM module and the VFS, loaded and installed on first use. `options` (a compiled module
 * to reuse, or where to hand the one compiled here) count only on that first call.
 */
export function loadRuntime(options?: LoadOptions): Promise<SqliteRuntime> {
  runtime ??= loadSqlite(options).then((sqlite3) => ({ sqlite3, vfs: OutpostVfs.install(sqlite3) }));
  return runtime;
}
