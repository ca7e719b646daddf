/**
 * The database worker's entry. It exposes `WorkerApi` with Comlink synchronously, before
 * anything is awaited: a message posted to a module worker while a top-level `await` is pending
 * is lost, and Vite builds workers as IIFE by default, which rejects top-level `await`. The
 * WASM module loads inside the `open` handler instead.
 *
 * After `open`, every call goes to `connectionDriver` (../driver.ts), the same adapter Node
 * uses; the worker only adds the transfer of result buffers.
 */
import * as Comlink from 'comlink';
import { transferables } from '../engine/packed-rows.js';
import { type Driver, connectionDriver, forwardDriver } from '../driver.js';
import { OutpostError } from '../errors.js';
import { publicStorageError } from '../options.js';
import { MemoryDirectory } from '../opfs-vfs/storage/memory.js';
import { OpfsDirectory } from '../opfs-vfs/storage/opfs.js';
import type { StorageDirectory } from '../opfs-vfs/storage/backend.js';
import { openDatabase } from '../sync/open.js';
import { type OpenRequest, type SyncCallbacks, type WorkerApi, installErrorTransfer } from './protocol.js';

let driver: Driver | null = null;

function opened(): Driver {
  if (!driver) throw new OutpostError('the database is not open', 'DATABASE_CLOSED');
  return driver;
}

async function openDriver(req: OpenRequest, callbacks: SyncCallbacks): Promise<Driver> {
  const options = { durability: req.durability, intMode: req.intMode };
  const openIn = async (dir: StorageDirectory): Promise<Driver> => {
    const sync = req.sync
      ? {
          ...req.sync,
          authToken: callbacks.authToken ?? req.sync.authToken,
          ...(callbacks.transform ? { transform: callbacks.transform } : {}),
        }
      : undefined;
    const { conn, engine } = await openDatabase(dir, options, sync);
    return connectionDriver(conn, engine);
  };
  if (req.storage === 'memory') return openIn(new MemoryDirectory(`memory:${req.name}`));
  try {
    const dir = await OpfsDirectory.lock(req.name, { lockTimeoutMs: req.lockTimeoutMs, simulatedQuota: req.simulatedQuota });
    return await openIn(dir);
  } catch (e) {
    throw publicStorageError(e, req.name);
  }
}

const forwarded = forwardDriver(opened);

const api: WorkerApi = {
  ...forwarded,
  async open(req, authToken, transform) {
    if (driver) throw new OutpostError('this worker already has a database open', 'INVALID_ARGUMENT');
    driver = await openDriver(req, { authToken, transform });
  },
  async query(sql, params, maxRows) {
    const rows = await opened().query(sql, params, maxRows);
    return Comlink.transfer(rows, transferables(rows));
  },
  async watchQuery(sql, params) {
    const result = await opened().watchQuery(sql, params);
    return Comlink.transfer(result, transferables(result.rows));
  },
  async onTablesChanged(listener) {
    // The listener is a Comlink proxy of the UI thread's: each call posts a message and returns
    // a promise, which rejects once that side is gone; nothing here waits for it.
    await opened().onTablesChanged(listener ? (tables) => void Promise.resolve(listener(tables)).catch(() => {}) : null);
  },
  async export() {
    const bytes = await opened().export();
    return Comlink.transfer(bytes, [bytes.buffer]);
  },
  async close() {
    const d = driver;
    driver = null;
    await d?.close();
  },
};

installErrorTransfer();
Comlink.expose(api);
