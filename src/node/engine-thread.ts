/**
 * The entry of `outpost/node`'s engine thread (node/thread.ts starts it): one worker thread per
 * open database runs the engine, as a browser worker does, so that the calling thread stays free
 * while a statement runs and can stop it through the abort flag (driver.ts `EngineLimits`),
 * a SharedArrayBuffer, which Node always has.
 *
 * It exposes `NodeEngineApi` with Comlink over the thread's `parentPort` before anything is
 * awaited; `open` must be the first call. Every call after it goes to `connectionDriver`, the
 * same adapter the in-process engine and the browser worker use; this file only adds what
 * worker/remote-driver.ts `hostMethods` adds and the callbacks of the sync options (proxies to
 * the caller's thread).
 */
import { parentPort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import { type Driver, connectionDriver, forwardDriver } from '../driver.js';
import { OutpostError } from '../errors.js';
import { MemoryDirectory } from '../opfs-vfs/storage/memory.js';
import { NodeDirectory } from '../opfs-vfs/storage/node.js';
import { openDatabase } from '../sync/open.js';
import { installErrorTransfer } from '../worker/protocol.js';
import { hostMethods } from '../worker/remote-driver.js';
import { type NodeEngineApi, installCallbackTransfer, portEndpoint } from './thread-protocol.js';

let driver: Driver | null = null;

function opened(): Driver {
  if (!driver) throw new OutpostError('the database is not open', 'DATABASE_CLOSED');
  return driver;
}

const api: NodeEngineApi = {
  ...forwardDriver(opened),
  ...hostMethods(opened),
  async open(req, authToken, transform) {
    if (driver) throw new OutpostError('this engine thread already has a database open', 'INVALID_ARGUMENT');
    const directory = req.memory ? new MemoryDirectory(`memory:${req.path}`) : new NodeDirectory(req.path);
    const sync = req.sync ? { ...req.sync, authToken: authToken ?? req.sync.authToken, ...(transform ? { transform } : {}) } : undefined;
    const { conn, engine } = await openDatabase(directory, { durability: req.durability, intMode: req.intMode }, sync);
    driver = connectionDriver(conn, engine, new Int32Array(req.abortFlag));
  },
  async close() {
    const d = driver;
    driver = null;
    await d?.close();
  },
};

if (!parentPort) throw new Error('node/engine-thread.ts runs only as a worker thread (node/thread.ts starts it)');
installErrorTransfer();
installCallbackTransfer();
Comlink.expose(api, portEndpoint(parentPort));
