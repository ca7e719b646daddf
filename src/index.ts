/**
 * `outpost`: SQLite in a dedicated worker over Outpost's OPFS VFS, in WAL mode.
 * Node users import `outpost/node`.
 */
import { Database } from './database.js';
import { DatabaseLockedError, OutpostError } from './errors.js';
import { OpfsDirectory } from './opfs-vfs/storage/opfs.js';
import type { SimulatedQuota } from './opfs-vfs/storage/simulated-quota.js';
import type { Database as DatabaseApi, OpenOptions } from './types.js';
import { openInWorker } from './worker/client.js';

export type * from './types.js';
export { SqliteError, DatabaseLockedError, OutpostError, SyncError, type OutpostErrorCode, type SyncErrorCode } from './errors.js';

const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

function checkName(name: string): void {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw new OutpostError(
      `invalid database name ${JSON.stringify(name)}: use 1 to 128 letters, digits, '_', '-' or '.', not starting with '.' or '-'`,
      'INVALID_ARGUMENT',
    );
  }
}

/** Options of `open` that only tests use. */
interface TestingOptions {
  /** Make the OPFS files fail like a browser at quota past this many bytes. */
  simulatedQuota?: SimulatedQuota;
}

/**
 * Opens (creating when missing) the database `name` in a dedicated worker. In OPFS by default;
 * `{ storage: 'memory' }` for one that lives only as long as it is open.
 *
 * Fails with `DatabaseLockedError` when another tab holds it past `lockTimeoutMs`, and with an
 * `OutpostError` of code `OPFS_UNAVAILABLE` where OPFS is missing.
 */
export async function open(name: string, options: OpenOptions & TestingOptions = {}): Promise<DatabaseApi> {
  checkName(name);
  if (options.storage === 'file') throw new OutpostError('storage "file" is for outpost/node; the browser has "opfs" and "memory"', 'INVALID_ARGUMENT');
  // A custom fetch cannot cross into the worker; the worker uses its own.
  const { authToken, transform, fetch: _fetch, ...syncRest } = options.sync ?? { url: '' };
  const conn = await openInWorker(
    {
      name,
      storage: options.storage === 'memory' ? 'memory' : 'opfs',
      durability: options.durability ?? 'normal',
      intMode: options.intMode ?? 'number',
      lockTimeoutMs: options.lockTimeoutMs ?? 5000,
      simulatedQuota: options.simulatedQuota,
      sync: options.sync ? { ...syncRest, authToken: typeof authToken === 'string' ? authToken : undefined } : undefined,
    },
    {
      authToken: typeof authToken === 'function' ? async (o) => authToken(o) : undefined,
      transform: transform ? async (m) => transform(m) : undefined,
    },
  );
  return new Database(name, conn.driver, conn.terminate);
}

/** Deletes the OPFS database `name`. Fails with `DatabaseLockedError` while it is open anywhere. */
export async function deleteDatabase(name: string, options: { lockTimeoutMs?: number } = {}): Promise<void> {
  checkName(name);
  try {
    await OpfsDirectory.remove(name, options.lockTimeoutMs ?? 5000);
  } catch (e) {
    if ((e as Error).name === 'LockTimeoutError') throw new DatabaseLockedError(name);
    if ((e as Error).name === 'OpfsUnavailableError') throw new OutpostError((e as Error).message, 'OPFS_UNAVAILABLE');
    throw e;
  }
}

/** The names of the databases stored in OPFS. */
export async function listDatabases(): Promise<string[]> {
  return OpfsDirectory.list();
}
