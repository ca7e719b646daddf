/**
 * The entry of `outpost/node`'s engine thread (node/thread.ts starts it): one worker thread per
 * open database runs the engine, as a browser worker does, so that the calling thread stays free
 * while a statement runs and can stop it through the abort flag (driver.ts `EngineLimits`),
 * a SharedArrayBuffer, which Node always has.
 *
 * It exposes `NodeEngineApi` with Comlink over the thread's `parentPort` before anything is
 * awaited; `open` must be the first call. Every call after it goes to `connectionDriver`, the
 * same adapter the in-process engine and the browser worker use; this file only adds the
 * transfer of result buffers and the callbacks of the sync options (proxies to the caller's
 * thread).
 */
import { parentPort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import { type Driver, connectionDriver, forwardDriver, sharedAbortFlag } from '../driver.js';
import { transferables } from '../engine/packed-rows.js';
import { OutpostError } from '../errors.js';
import { MemoryDirectory } from '../opfs-vfs/storage/memory.js';
import { NodeDirectory } from '../opfs-vfs/storage/node.js';
import { openDatabase } from '../sync/open.js';
import { installErrorTransfer } from '../worker/protocol.js';
import { type NodeEngineApi, portEndpoint } from './thread-protocol.js';

let driver: Driver | null = null;

function opened(): Driver {
  if (!driver) throw new OutpostError('the database is not open', 'DATABASE_CLOSED');
  return driver;
}

const api: NodeEngineApi = {
  ...forwardDriver(opened),
  async open(req, authToken, transform) {
    if (driver) throw new OutpostError('this engine thread already has a database open', 'INVALID_ARGUMENT');
    const directory = req.memory ? new MemoryDirectory(`memory:${req.path}`) : new NodeDirectory(req.path);
    const sync = req.sync ? { ...req.sync, authToken: authToken ?? req.sync.authToken, ...(transform ? { transform } : {}) } : undefined;
    const { conn, engine } = await openDatabase(directory, { durability: req.durability, intMode: req.intMode }, sync);
    driver = connectionDriver(conn, engine, sharedAbortFlag(new Int32Array(req.abortFlag)));
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
    // The listener is a proxy of the caller's thread: a call returns a promise that rejects once
    // that side is gone, and nothing here waits for it.
    await opened().onTablesChanged(listener ? (tables) => void Promise.resolve(listener(tables)).catch(() => {}) : null);
  },
  async onSyncProgress(listener) {
    await opened().onSyncProgress(listener ? (progress) => void Promise.resolve(listener(progress)).catch(() => {}) : null);
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

if (!parentPort) throw new Error('node/engine-thread.ts runs only as a worker thread (node/thread.ts starts it)');
installErrorTransfer();
Comlink.expose(api, portEndpoint(parentPort));
