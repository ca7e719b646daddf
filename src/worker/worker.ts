/**
 * The database worker's entry. It exposes `WorkerApi` with Comlink synchronously, before
 * anything is awaited: a message posted to a module worker while a top-level `await` is pending
 * is lost, and Vite builds workers as IIFE by default, which rejects top-level `await`. The
 * WASM module loads inside the `open` handler instead.
 */
import * as Comlink from 'comlink';
import { Connection } from '../engine/connection.js';
import { transferables } from '../engine/packed-rows.js';
import { DatabaseLockedError, OutpostError } from '../errors.js';
import { MemoryDirectory } from '../opfs-vfs/storage/memory.js';
import { LockTimeoutError, OpfsDirectory, OpfsUnavailableError } from '../opfs-vfs/storage/opfs.js';
import type { StorageDirectory } from '../opfs-vfs/storage/backend.js';
import { type SyncDriver, syncDriver } from '../sync/driver.js';
import type { SyncEngine } from '../sync/engine.js';
import { openSynced } from '../sync/open.js';
import { type OpenRequest, type SyncCallbacks, type WorkerApi, installErrorTransfer } from './protocol.js';

let conn: Connection | null = null;
let sync: SyncDriver = syncDriver(null);
let engine: SyncEngine | null = null;

function connection(): Connection {
  if (!conn) throw new OutpostError('the database is not open', 'DATABASE_CLOSED');
  return conn;
}

async function openConnection(req: OpenRequest, callbacks: SyncCallbacks): Promise<Connection> {
  const options = { durability: req.durability, intMode: req.intMode };
  const openIn = async (dir: StorageDirectory): Promise<Connection> => {
    if (!req.sync) return Connection.open(dir, options);
    const { authToken, ...rest } = req.sync;
    const opened = await openSynced(dir, options, {
      ...rest,
      authToken: callbacks.authToken ?? authToken,
      ...(callbacks.transform ? { transform: callbacks.transform } : {}),
    });
    engine = opened.engine;
    sync = syncDriver(opened.engine);
    return opened.conn;
  };
  if (req.storage === 'memory') return openIn(new MemoryDirectory(`memory:${req.name}`));
  try {
    const dir = await OpfsDirectory.lock(req.name, { lockTimeoutMs: req.lockTimeoutMs, simulatedQuota: req.simulatedQuota });
    return await openIn(dir);
  } catch (e) {
    if (e instanceof LockTimeoutError) throw new DatabaseLockedError(req.name);
    if (e instanceof OpfsUnavailableError) throw new OutpostError(e.message, 'OPFS_UNAVAILABLE');
    throw e;
  }
}

const api: WorkerApi = {
  async open(req, authToken, transform) {
    if (conn) throw new OutpostError('this worker already has a database open', 'INVALID_ARGUMENT');
    conn = await openConnection(req, { authToken, transform });
    return { location: conn.label };
  },
  syncFetchPull: (longPoll) => sync.syncFetchPull(longPoll),
  syncApplyPull: (ticket) => sync.syncApplyPull(ticket),
  syncPush: () => sync.syncPush(),
  syncStatus: () => sync.syncStatus(),
  syncPending: () => sync.syncPending(),
  syncDrop: (id) => sync.syncDrop(id),
  syncRetry: (id) => sync.syncRetry(id),
  async exec(sql) {
    connection().exec(sql);
  },
  async query(sql, params, maxRows) {
    const rows = connection().query(sql, params, maxRows);
    return Comlink.transfer(rows, transferables(rows));
  },
  async run(sql, params) {
    return connection().run(sql, params);
  },
  async batch(statements) {
    return connection().batch(statements);
  },
  async execMany(sql) {
    return connection().execMany(sql);
  },
  async rollbackQuietly(sql) {
    connection().rollbackQuietly(sql);
  },
  async export() {
    const bytes = connection().export();
    return Comlink.transfer(bytes, [bytes.buffer]);
  },
  async import(bytes) {
    connection().import(bytes);
  },
  async close() {
    const c = conn;
    conn = null;
    await c?.close();
    engine?.close();
    engine = null;
  },
};

installErrorTransfer();
Comlink.expose(api);
