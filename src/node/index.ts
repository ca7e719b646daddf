/**
 * `outpost/node`: the same `Database` API in-process over the Node file-descriptor backend.
 * `open(path)` takes a file path; the WAL lives beside it as `path-wal`.
 *
 * One process holds a database once: a second `open` of the same path waits up to
 * `lockTimeoutMs` for the first to close, then fails with `DatabaseLockedError`. Two processes
 * must not open the same file (the VFS uses exclusive locking in memory, not file locks).
 *
 * Where the engine runs (`OpenOptions.engine`): by default in a worker thread of its own
 * (node/thread.ts), like the browser's worker, so a statement never blocks the event loop and
 * a call's `signal` stops it while it runs (the abort flag is a SharedArrayBuffer). With
 * `engine: 'inline'` it runs on the calling thread, with less overhead per call; no abort can
 * fire while a statement runs there, so only `timeoutMs`, which the engine checks itself,
 * stops a running statement. A sync option `fetch` (a function of this thread) needs the
 * inline engine and gets it by default.
 *
 * May import: database.ts, driver.ts (api), worker/ (its protocol: the engine thread speaks the
 * browser worker's error transfer and remote Driver), engine/, sync/, opfs-vfs/storage/,
 * options.ts, types.ts, errors.ts.
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { Database } from '../database.js';
import { connectionDriver } from '../driver.js';
import { DatabaseLockedError, OutpostError } from '../errors.js';
import { engineSettings } from '../options.js';
import { MemoryDirectory } from '../opfs-vfs/storage/memory.js';
import { NODE_SUFFIXES } from '../opfs-vfs/storage/files.js';
import { NodeDirectory } from '../opfs-vfs/storage/node.js';
import { openDatabase } from '../sync/open.js';
import { openSyncedOverNode } from './http-send.js';
import { openInThread } from './thread.js';
import type { Database as DatabaseApi, OpenOptions } from '../types.js';

export type * from '../types.js';
export { SqliteError, DatabaseLockedError, OutpostError, SyncError, AbortError, type OutpostErrorCode, type SyncErrorCode } from '../errors.js';

const openPaths = new Set<string>();

async function claimPath(key: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (openPaths.has(key)) {
    if (Date.now() >= deadline) throw new DatabaseLockedError(key, `database ${key} is already open in this process; close it first`);
    await new Promise((r) => setTimeout(r, 20));
  }
  openPaths.add(key);
}

/** Opens (creating when missing) the database at `path`; `':memory:'` or `{ storage: 'memory' }` for a private in-memory one. */
export async function open(path: string, options: OpenOptions = {}): Promise<DatabaseApi> {
  if (typeof path !== 'string' || path.length === 0) {
    throw new OutpostError('open() needs a file path', 'INVALID_ARGUMENT');
  }
  const memory = options.storage === 'memory' || path === ':memory:';
  if (options.storage === 'opfs') throw new OutpostError('storage "opfs" exists only in the browser', 'INVALID_ARGUMENT');
  const key = memory ? null : nodePath.resolve(path);
  const { lockTimeoutMs, ...engineOptions } = engineSettings(options);
  const inline = inlineEngine(options);
  if (key) await claimPath(key, lockTimeoutMs);
  try {
    const release = (): void => {
      if (key) openPaths.delete(key);
    };
    if (inline) {
      const directory = key ? new NodeDirectory(key) : new MemoryDirectory(`memory:${path}`);
      const { conn, engine } = await openDatabase(directory, engineOptions, options.sync, openSyncedOverNode);
      return new Database(path, connectionDriver(conn, engine), release);
    }
    const { authToken, transform, fetch: _fetch, ...syncRest } = options.sync ?? { url: '' };
    const thread = await openInThread(
      {
        path: key ?? path,
        memory: key === null,
        ...engineOptions,
        sync: options.sync ? { ...syncRest, authToken: typeof authToken === 'string' ? authToken : undefined } : undefined,
      },
      {
        authToken: typeof authToken === 'function' ? async (o) => authToken(o) : undefined,
        transform: transform ? async (m) => transform(m) : undefined,
      },
      options.sync?.live === true,
    );
    return new Database(path, thread.driver, release, thread.interrupt);
  } catch (e) {
    if (key) openPaths.delete(key);
    throw e;
  }
}

/** Whether `options` ask for the engine on the calling thread (the header). */
function inlineEngine(options: OpenOptions): boolean {
  const engine = options.engine ?? (options.sync?.fetch ? 'inline' : 'thread');
  if (engine !== 'thread' && engine !== 'inline') throw new OutpostError(`engine must be "thread" or "inline" (got ${String(engine)})`, 'INVALID_ARGUMENT');
  if (engine === 'thread' && options.sync?.fetch) {
    throw new OutpostError('a sync fetch function cannot cross to the engine thread: leave out engine: "thread", or the fetch', 'INVALID_ARGUMENT');
  }
  return engine === 'inline';
}

/** Deletes the database at `path` and its WAL. It must not be open. */
export async function deleteDatabase(path: string): Promise<void> {
  const key = nodePath.resolve(path);
  if (openPaths.has(key)) throw new DatabaseLockedError(key, `database ${key} is open in this process; close it before deleting`);
  for (const suffix of NODE_SUFFIXES) fs.rmSync(`${key}${suffix}`, { force: true });
}
