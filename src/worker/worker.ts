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
import { MemoryDirectory } from '../opfs-vfs/memory-backend.js';
import { LockTimeoutError, OpfsDirectory, OpfsUnavailableError } from '../opfs-vfs/opfs-backend.js';
import { type OpenRequest, type WorkerApi, installErrorTransfer } from './protocol.js';

let conn: Connection | null = null;

function connection(): Connection {
  if (!conn) throw new OutpostError('the database is not open', 'DATABASE_CLOSED');
  return conn;
}

async function openConnection(req: OpenRequest): Promise<Connection> {
  const options = { durability: req.durability, intMode: req.intMode };
  if (req.storage === 'memory') return Connection.open(new MemoryDirectory(`memory:${req.name}`), options);
  try {
    const dir = await OpfsDirectory.lock(req.name, { lockTimeoutMs: req.lockTimeoutMs, simulatedQuota: req.simulatedQuota });
    return await Connection.open(dir, options);
  } catch (e) {
    if (e instanceof LockTimeoutError) throw new DatabaseLockedError(req.name);
    if (e instanceof OpfsUnavailableError) throw new OutpostError(e.message, 'OPFS_UNAVAILABLE');
    throw e;
  }
}

const api: WorkerApi = {
  async open(req) {
    if (conn) throw new OutpostError('this worker already has a database open', 'INVALID_ARGUMENT');
    conn = await openConnection(req);
    return { location: conn.label };
  },
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
  },
};

installErrorTransfer();
Comlink.expose(api);
