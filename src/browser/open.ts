/**
 * `open`, `deleteDatabase` and `listDatabases` on the UI thread: each open database runs in a
 * dedicated module worker (worker/client.ts starts it), over Outpost's VFS on OPFS.
 *
 * May import: worker/ (its client side), database.ts, options.ts, the OPFS storage backend
 * (for delete and list, which need no engine), types.ts, errors.ts.
 */
import { Database } from '../database.js';
import { OutpostError } from '../errors.js';
import { DEFAULT_TAB_TIMEOUT_MS, checkDatabaseName, engineSettings, publicStorageError } from '../options.js';
import { OpfsDirectory } from '../opfs-vfs/storage/opfs.js';
import type { SimulatedQuota } from '../opfs-vfs/storage/simulated-quota.js';
import type { Database as DatabaseApi, OpenOptions } from '../types.js';
import { removeAbortFile } from '../worker/abort-file.js';
import { openInWorker } from '../worker/client.js';

/** Options of `open` that only tests use. */
interface TestingOptions {
  /** Make the OPFS files fail like a browser at quota past this many bytes. */
  simulatedQuota?: SimulatedQuota;
}

/**
 * Opens (creating when missing) the database `name` in a dedicated worker. In OPFS by default;
 * `{ storage: 'memory' }` for one that lives only as long as it is open.
 *
 * Every tab and worker of the origin may open the same OPFS database: one runs the engine, the
 * others forward to it, and another takes over when it goes away (worker/tabs.ts). Passing
 * `lockTimeoutMs` asks for the database alone instead: that open fails with
 * `DatabaseLockedError` when another context holds it past the timeout. Fails with an
 * `OutpostError` of code `OPFS_UNAVAILABLE` where OPFS is missing.
 */
export async function open(name: string, options: OpenOptions & TestingOptions = {}): Promise<DatabaseApi> {
  checkDatabaseName(name);
  // Server-side rendering and Node scripts can reach this build (a bundler that ignores the
  // `node` export condition): fail with a direction instead of a ReferenceError on Worker.
  if (typeof Worker === 'undefined') {
    throw new OutpostError('open() from "outpost" needs a browser with Worker; in Node, import { open } from "outpost/node"', 'WORKER_FAILED');
  }
  if (options.storage === 'file') throw new OutpostError('storage "file" is for outpost/node; the browser has "opfs" and "memory"', 'INVALID_ARGUMENT');
  // A custom fetch cannot cross into the worker; the worker uses its own.
  const { authToken, transform, fetch: _fetch, ...syncRest } = options.sync ?? { url: '' };
  const conn = await openInWorker(
    {
      name,
      storage: options.storage === 'memory' ? 'memory' : 'opfs',
      // A lock timeout the caller asked for keeps the database to this context alone. A memory
      // database is always alone: its bytes live in this context's worker, and a seat would
      // run its engine on OPFS, where it outlived its close.
      shared: options.storage !== 'memory' && options.lockTimeoutMs === undefined,
      tabTimeoutMs: options.tabTimeoutMs ?? DEFAULT_TAB_TIMEOUT_MS,
      ...engineSettings(options),
      simulatedQuota: options.simulatedQuota,
      sync: options.sync ? { ...syncRest, authToken: typeof authToken === 'string' ? authToken : undefined } : undefined,
    },
    {
      authToken: typeof authToken === 'function' ? async (o) => authToken(o) : undefined,
      transform: transform ? async (m) => transform(m) : undefined,
    },
  );
  const stopHandingOver = options.storage === 'memory' ? () => {} : handOverBeforeFreezing((leaving) => void conn.stepDown(leaving).catch(() => {}));
  return new Database(
    name,
    conn.driver,
    () => {
      stopHandingOver();
      conn.terminate();
    },
    conn.interrupt,
  );
}

/**
 * A page about to be frozen (`freeze`, Page Lifecycle) or put in the back/forward cache
 * (`pagehide` with `persisted`) would keep the database lock with its engine and leave the
 * other tabs waiting: it hands the engine over first, as far as the browser lets it finish
 * (README). A page being closed or reloaded (`pagehide` otherwise) does the same: the next tab
 * then takes over as soon as the engine has closed in order, instead of once the browser has
 * torn the worker down; if the worker dies first, it is a crash, which the tabs survive too.
 * Returns the function that removes the listeners. Only in a window.
 */
function handOverBeforeFreezing(stepDown: (leaving: boolean) => void): () => void {
  if (typeof document === 'undefined' || typeof window === 'undefined') return () => {};
  const onFreeze = (): void => stepDown(false);
  // Not persisted: the page is being discarded, and its context will not run an engine again.
  const onPageHide = (event: PageTransitionEvent): void => stepDown(!event.persisted);
  document.addEventListener('freeze', onFreeze);
  window.addEventListener('pagehide', onPageHide);
  return () => {
    document.removeEventListener('freeze', onFreeze);
    window.removeEventListener('pagehide', onPageHide);
  };
}

/** Deletes the OPFS database `name`. Fails with `DatabaseLockedError` while it is open anywhere. */
export async function deleteDatabase(name: string, options: { lockTimeoutMs?: number } = {}): Promise<void> {
  checkDatabaseName(name);
  try {
    await OpfsDirectory.remove(name, engineSettings(options).lockTimeoutMs);
  } catch (e) {
    throw publicStorageError(e, name);
  }
  await removeAbortFile(name);
}

/** The names of the databases stored in OPFS. */
export async function listDatabases(): Promise<string[]> {
  return OpfsDirectory.list();
}
