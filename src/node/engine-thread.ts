/**
 * The entry of `outpost/node`'s engine thread (node/thread.ts starts it): one worker thread per
 * process runs the engine of every database opened with `engine: 'thread'`, so that the calling
 * thread stays free while a statement runs and can stop it through the database's abort flag
 * (driver.ts `EngineLimits`), a SharedArrayBuffer, which Node always has. SQLite's WASM module
 * is loaded and compiled once, by the first open (engine/runtime.ts), and every connection
 * shares it.
 *
 * It exposes `NodeEngineApi` with Comlink over the thread's `parentPort` before anything is
 * awaited. Each `open` brings a message port of its own, on which the opened database's
 * `Driver` is served: `connectionDriver`, the same adapter the in-process engine and the
 * browser worker use, plus what worker/remote-driver.ts `hostMethods` adds; the callbacks of
 * the sync options arrive as proxies to the caller's thread.
 */
import { parentPort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import { type Driver, connectionDriver, forwardDriver, sharedAbortFlag } from '../driver.js';
import { OutpostError } from '../errors.js';
import { MemoryDirectory } from '../opfs-vfs/storage/memory.js';
import { NodeDirectory } from '../opfs-vfs/storage/node.js';
import { openDatabase } from '../sync/open.js';
import { openSyncedOverNode } from './http-send.js';
import { type SyncCallbacks, installErrorTransfer } from '../worker/protocol.js';
import { hostMethods } from '../worker/remote-driver.js';
import { type NodeEngineApi, type NodeOpenRequest, installCallbackTransfer, portEndpoint } from './thread-protocol.js';

/** Opens one database and serves its `Driver` on `req.port` until it closes. */
async function openOne(req: NodeOpenRequest, authToken: SyncCallbacks['authToken'], transform: SyncCallbacks['transform']): Promise<void> {
  const directory = req.memory ? new MemoryDirectory(`memory:${req.path}`) : new NodeDirectory(req.path);
  const sync = req.sync ? { ...req.sync, authToken: authToken ?? req.sync.authToken, ...(transform ? { transform } : {}) } : undefined;
  const { conn, engine } = await openDatabase(directory, { durability: req.durability, intMode: req.intMode }, sync, openSyncedOverNode);
  let driver: Driver | null = connectionDriver(conn, engine, sharedAbortFlag(new Int32Array(req.abortFlag)));
  const opened = (): Driver => {
    if (!driver) throw new OutpostError('the database is not open', 'DATABASE_CLOSED');
    return driver;
  };
  const host: Driver = {
    ...forwardDriver(opened),
    ...hostMethods(opened),
    async close() {
      const d = driver;
      driver = null;
      await d?.close();
    },
  };
  // The calling thread closes the port after `close`, which ends this side too.
  Comlink.expose(host, portEndpoint(req.port));
}

const api: NodeEngineApi = {
  async open(req, authToken, transform) {
    try {
      await openOne(req, authToken, transform);
    } catch (e) {
      req.port.close();
      throw e;
    }
  },
};

if (!parentPort) throw new Error('node/engine-thread.ts runs only as a worker thread (node/thread.ts starts it)');
installErrorTransfer();
installCallbackTransfer();
Comlink.expose(api, portEndpoint(parentPort));
