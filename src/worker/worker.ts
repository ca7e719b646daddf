/**
 * The database worker's entry. It exposes `WorkerApi` with Comlink synchronously, before
 * anything is awaited: a message posted to a module worker while a top-level `await` is pending
 * is lost, and Vite builds workers as IIFE by default, which rejects top-level `await`. The
 * WASM module loads inside the `open` handler instead.
 *
 * After `open`, every call goes to `connectionDriver` (../driver.ts), the same adapter Node
 * uses; the worker only adds the transfer of result buffers. An OPFS database opened with
 * `shared` (every `open()` without an explicit `lockTimeoutMs`) gets a seat instead (seat.ts):
 * this worker runs the engine while it holds the database lock, and the page (tabs.ts) sends
 * its calls straight to whichever worker runs it; `open` then resolves at once.
 */
import * as Comlink from 'comlink';
import { transferables, unpackRows } from '../engine/packed-rows.js';
import { type Driver, connectionDriver, forwardDriver } from '../driver.js';
import { OutpostError } from '../errors.js';
import { publicStorageError } from '../options.js';
import { MemoryDirectory } from '../opfs-vfs/storage/memory.js';
import { OpfsDirectory } from '../opfs-vfs/storage/opfs.js';
import type { StorageDirectory } from '../opfs-vfs/storage/backend.js';
import { openDatabase } from '../sync/open.js';
import { CallLog } from './call-log.js';
import { type OpenRequest, type SyncCallbacks, type WorkerApi, installErrorTransfer } from './protocol.js';
import { EngineSeat, type OpenEngine } from './seat.js';

let driver: Driver | null = null;
/** The page's abort flag (driver.ts `EngineLimits`), when the page is cross-origin isolated. */
let abortFlag: Int32Array | null = null;
let seat: EngineSeat | null = null;

/**
 * Opens an engine like `req`'s on a throwaway memory directory, writes, reads and closes it:
 * a waiting seat's warm-up (seat.ts).
 */
async function warmUp(req: OpenRequest): Promise<void> {
  const engine = await openEngine({ ...req, sync: undefined }, {}, new MemoryDirectory(`warm-up:${req.name}`));
  try {
    const d = engine.driver;
    await d.exec('CREATE TABLE warm(id INTEGER PRIMARY KEY, v TEXT)');
    await d.run('INSERT INTO warm(v) VALUES (?)', ['warm']);
    await d.query('SELECT * FROM warm', undefined);
    await engine.tables();
  } finally {
    await engine.driver.close();
  }
}

/** A shared database's seat: the engine opens on `dir` when this worker wins the lock. */
function takeSeat(req: OpenRequest, callbacks: SyncCallbacks, joined: NonNullable<OpenRequest['seat']>): EngineSeat {
  const dirOptions = { lockTimeoutMs: req.lockTimeoutMs, simulatedQuota: req.simulatedQuota };
  return new EngineSeat(
    req.name,
    joined.port,
    joined.clientId,
    async (release) => {
      try {
        return await openEngine(req, callbacks, await OpfsDirectory.locked(req.name, dirOptions, release));
      } catch (e) {
        // Also when this worker takes over later: the page's callers see the public error.
        throw publicStorageError(e, req.name);
      }
    },
    joined.brokerId,
    () => warmUp(req),
  );
}

function opened(): Driver {
  if (!driver) throw new OutpostError('the database is not open', 'DATABASE_CLOSED');
  return driver;
}

/** Opens the engine on `dir`: the Driver, and what the shared mode needs of its connection. */
async function openEngine(req: OpenRequest, callbacks: SyncCallbacks, dir: StorageDirectory): ReturnType<OpenEngine> {
  const options = { durability: req.durability, intMode: req.intMode };
  const sync = req.sync
    ? {
        ...req.sync,
        authToken: callbacks.authToken ?? req.sync.authToken,
        ...(callbacks.transform ? { transform: callbacks.transform } : {}),
      }
    : undefined;
  const { conn, engine } = await openDatabase(dir, options, sync);
  return {
    driver: connectionDriver(conn, engine, abortFlag),
    inTransaction: () => conn.inTransaction,
    calls: new CallLog(conn),
    leaving: () => conn.skipCheckpointOnClose(),
    tables: async () => unpackRows<{ name: string }>(conn.query("SELECT name FROM sqlite_master WHERE type = 'table'", undefined)).map((r) => r.name),
  };
}

async function openDriver(req: OpenRequest, callbacks: SyncCallbacks): Promise<Driver> {
  if (req.storage === 'memory') return (await openEngine(req, callbacks, new MemoryDirectory(`memory:${req.name}`))).driver;
  const dirOptions = { lockTimeoutMs: req.lockTimeoutMs, simulatedQuota: req.simulatedQuota };
  try {
    return (await openEngine(req, callbacks, await OpfsDirectory.lock(req.name, dirOptions))).driver;
  } catch (e) {
    throw publicStorageError(e, req.name);
  }
}

const forwarded = forwardDriver(opened);

const api: WorkerApi = {
  ...forwarded,
  async open(req, authToken, transform) {
    if (driver || seat) throw new OutpostError('this worker already has a database open', 'INVALID_ARGUMENT');
    abortFlag = req.abortFlag ? new Int32Array(req.abortFlag) : null;
    if (req.seat) seat = takeSeat(req, { authToken, transform }, req.seat);
    else driver = await openDriver(req, { authToken, transform });
  },
  async query(sql, params, maxRows, limits) {
    const rows = await opened().query(sql, params, maxRows, limits);
    return Comlink.transfer(rows, transferables(rows));
  },
  async statementRows(handle, sql, params, step, limits) {
    const result = await opened().statementRows(handle, sql, params, step, limits);
    return Comlink.transfer(result, transferables(result.rows));
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
  async onSyncProgress(listener) {
    await opened().onSyncProgress(listener ? (progress) => void Promise.resolve(listener(progress)).catch(() => {}) : null);
  },
  async export() {
    const bytes = await opened().export();
    return Comlink.transfer(bytes, [bytes.buffer]);
  },
  async stepDown(leaving) {
    await seat?.stepDown(leaving);
  },
  async close() {
    const s = seat;
    seat = null;
    await s?.close();
    const d = driver;
    driver = null;
    await d?.close();
  },
};

installErrorTransfer();
Comlink.expose(api);
