/**
 * Loads the official SQLite WASM build once per realm (worker or Node process).
 *
 * Installing Outpost's VFS in the loaded module is the engine's job (`engine/runtime.ts`): this
 * layer knows SQLite, not Outpost's storage.
 *
 * Contract / may import: nothing internal.
 */
import sqlite3InitModule from '@sqlite.org/sqlite-wasm';
import type { Sqlite3Runtime } from './wasm-api.js';

let loading: Promise<Sqlite3Runtime> | null = null;

/** The WASM module, loaded on first use; every later call gets the same module. */
export function loadSqlite(): Promise<Sqlite3Runtime> {
  // The WASM build probes for its own OPFS VFS (which needs cross-origin isolation) and warns
  // when it cannot install it. Outpost does not use it, so that warning is noise: drop it.
  // The typings declare init() without the Emscripten module options it accepts, and type
  // the module less precisely than it behaves (see wasm-api.ts): cast once, here.
  const init = sqlite3InitModule as unknown as (options: object) => Promise<Sqlite3Runtime>;
  // Nor does Outpost use the build's other VFSes: in a cross-origin isolated page, installing
  // its "opfs" and "opfs-wl" VFSes starts two proxy workers and waits for them at every open.
  // The build reads (and then deletes) this global during init.
  if (!loading) (globalThis as { sqlite3ApiConfig?: object }).sqlite3ApiConfig = { disable: { vfs: { opfs: true, 'opfs-wl': true, 'opfs-vfs': true, 'opfs-sahpool': true } } };
  loading ??= init({
    print: () => {},
    printErr: (...args: unknown[]) => {
      const text = args.join(' ');
      if (!/OPFS|opfs|SharedArrayBuffer|Atomics/.test(text)) console.error(text);
    },
  });
  return loading;
}
