/**
 * `outpost/node`: the same `Database` API in-process over the Node file-descriptor backend.
 * `open(path)` takes a file path; the WAL lives beside it as `path-wal`.
 *
 * One process holds a database once: a second `open` of the same path waits up to
 * `lockTimeoutMs` for the first to close, then fails with `DatabaseLockedError`. Two processes
 * must not open the same file (the VFS uses exclusive locking in memory, not file locks).
 *
 * The engine runs on the calling thread, so no abort can fire while a statement runs: a
 * call's `signal` acts while it waits and between chunks of `iterate`, and `timeoutMs`, which
 * the engine checks itself, is what stops a running statement.
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
  if (key) await claimPath(key, lockTimeoutMs);
  try {
    const directory = key ? new NodeDirectory(key) : new MemoryDirectory(`memory:${path}`);
    const { conn, engine } = await openDatabase(directory, engineOptions, options.sync);
    return new Database(path, connectionDriver(conn, engine), () => {
      if (key) openPaths.delete(key);
    });
  } catch (e) {
    if (key) openPaths.delete(key);
    throw e;
  }
}

/** Deletes the database at `path` and its WAL. It must not be open. */
export async function deleteDatabase(path: string): Promise<void> {
  const key = nodePath.resolve(path);
  if (openPaths.has(key)) throw new DatabaseLockedError(key, `database ${key} is open in this process; close it before deleting`);
  for (const suffix of NODE_SUFFIXES) fs.rmSync(`${key}${suffix}`, { force: true });
}
