/**
 * Loads the official SQLite WASM build once per realm (worker or Node process) and installs
 * Outpost's VFS in it. The engine (`connection.ts`) is the only other module that touches the
 * WASM API.
 */
import sqlite3InitModule from '@sqlite.org/sqlite-wasm';
import { OutpostVfs } from '../opfs-vfs/vfs.js';
import type { Sqlite3Runtime } from './wasm-api.js';

export interface SqliteRuntime {
  sqlite3: Sqlite3Runtime;
  vfs: OutpostVfs;
}

let loading: Promise<SqliteRuntime> | null = null;

/** The WASM module and the VFS, loaded on first use. */
export function loadSqlite(): Promise<SqliteRuntime> {
  loading ??= (async () => {
    // The WASM build probes for its own OPFS VFS (which needs cross-origin isolation) and warns
    // when it cannot install it. Outpost does not use it, so that warning is noise: drop it.
    // The typings declare init() without the Emscripten module options it accepts, and type
    // the module less precisely than it behaves (see wasm-api.ts): cast once, here.
    const init = sqlite3InitModule as unknown as (options: object) => Promise<Sqlite3Runtime>;
    const sqlite3 = await init({
      print: () => {},
      printErr: (...args: unknown[]) => {
        const text = args.join(' ');
        if (!/OPFS|opfs|SharedArrayBuffer|Atomics/.test(text)) console.error(text);
      },
    });
    return { sqlite3, vfs: OutpostVfs.install(sqlite3) };
  })();
  return loading;
}
