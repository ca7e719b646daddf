/**
 * Runs the classic tests inside a dedicated worker for one configuration (engine speed, no
 * API crossing). The page starts a fresh worker per configuration and run.
 */
import sqlite3InitModule from '@sqlite.org/sqlite-wasm';
import { Connection } from '../../src/engine/connection.js';
import { OpfsDirectory } from '../../src/opfs-vfs/storage/opfs.js';
import { type BenchValue, type ClassicAdapter, runClassic } from '../classic.js';

export interface WorkerRequest {
  config: string;
  runId: string;
  scale: number;
  only?: string[] | undefined;
  /** Extra SQL run after open, for experiments (`BENCH_PRAGMAS`). */
  pragmas?: string | undefined;
}

/** The slice of the oo1 API the stock-SQLite configurations use. */
interface Oo1Db {
  exec(sql: string): void;
  prepare(sql: string): { bind(p: BenchValue[]): { stepReset(): unknown }; step(): boolean; reset(): unknown; finalize(): void };
  close(): void;
}
interface Oo1 {
  oo1: { DB: new (name: string) => Oo1Db };
  installOpfsSAHPoolVfs(options: { name: string; directory: string }): Promise<{
    OpfsSAHPoolDb: new (name: string) => Oo1Db;
    removeVfs(): Promise<boolean>;
  }>;
}

function oo1Adapter(db: Oo1Db): ClassicAdapter & { close(): void } {
  const statements: { finalize(): void }[] = [];
  return {
    exec: (sql) => db.exec(sql),
    prepare: (sql) => {
      const stmt = db.prepare(sql);
      statements.push(stmt);
      return {
        run: (params) => {
          stmt.bind(params);
          while (stmt.step()) {
            // Step through every row, as the other adapters do.
          }
          stmt.reset();
        },
      };
    },
    close: () => {
      for (const s of statements) s.finalize();
      db.close();
    },
  };
}

async function openAdapter(req: WorkerRequest): Promise<ClassicAdapter & { close(): void | Promise<void> }> {
  switch (req.config) {
    case 'outpost':
    case 'outpost-full': {
      const dir = await OpfsDirectory.lock(`bench-${req.runId}`, { lockTimeoutMs: 5000 });
      const conn = await Connection.open(dir, { durability: req.config === 'outpost-full' ? 'full' : 'normal', intMode: 'number' });
      if (req.pragmas) conn.exec(req.pragmas);
      return {
        exec: (sql) => conn.exec(sql),
        prepare: (sql) => ({ run: (params) => conn.run(sql, params) }),
        close: () => conn.close(),
      };
    }
    case 'memory': {
      const sqlite3 = (await (sqlite3InitModule as unknown as () => Promise<Oo1>)()) as Oo1;
      const db = new sqlite3.oo1.DB(':memory:');
      // The same page size as Outpost's databases, so the comparison isolates storage.
      db.exec('PRAGMA page_size=4096');
      return oo1Adapter(db);
    }
    case 'sahpool':
    case 'sahpool-wal': {
      const sqlite3 = (await (sqlite3InitModule as unknown as () => Promise<Oo1>)()) as Oo1;
      const pool = await sqlite3.installOpfsSAHPoolVfs({ name: `sahpool-${req.runId}`, directory: `/bench-sahpool-${req.runId}` });
      const db = new pool.OpfsSAHPoolDb('/bench.db');
      if (req.config === 'sahpool-wal') db.exec('PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;');
      return oo1Adapter(db);
    }
    default:
      throw new Error(`unknown configuration ${req.config}`);
  }
}

/** A WAL frame as SQLite writes it: a 24-byte header, then one 4,096-byte page. */
const FRAME_HEADER_BYTES = 24;
const PAGE_BYTES = 4096;

/**
 * T1's storage floor: `frames` appends of one WAL frame each (header and page, as two writes,
 * the way SQLite hands them to a VFS) through an OPFS sync access handle, without a flush.
 * Returns the milliseconds the appends took.
 */
async function rawAppends(runId: string, frames: number): Promise<number> {
  const root = await navigator.storage.getDirectory();
  const name = `bench-appends-${runId}`;
  const file = await root.getFileHandle(name, { create: true });
  // createSyncAccessHandle is missing from the DOM typings of the worker global.
  const handle = await (file as unknown as { createSyncAccessHandle(): Promise<SyncHandle> }).createSyncAccessHandle();
  const header = new Uint8Array(FRAME_HEADER_BYTES).fill(1);
  const page = new Uint8Array(PAGE_BYTES).fill(2);
  try {
    const t0 = performance.now();
    let at = 0;
    for (let i = 0; i < frames; i++) {
      handle.write(header, { at });
      handle.write(page, { at: at + FRAME_HEADER_BYTES });
      at += FRAME_HEADER_BYTES + PAGE_BYTES;
    }
    return performance.now() - t0;
  } finally {
    handle.close();
    await root.removeEntry(name);
  }
}

interface SyncHandle {
  write(buffer: Uint8Array, options: { at: number }): number;
  close(): void;
}

self.onmessage = async (event: MessageEvent<WorkerRequest>) => {
  try {
    if (event.data.config === 'raw-appends') {
      const frames = Math.max(10, Math.round(1000 * event.data.scale));
      self.postMessage({ ok: true, times: { appends: await rawAppends(event.data.runId, frames) } });
      return;
    }
    const db = await openAdapter(event.data);
    const only = event.data.only ? new Set(event.data.only) : undefined;
    const times = await runClassic(db, event.data.scale, only);
    await db.close();
    self.postMessage({ ok: true, times });
  } catch (e) {
    self.postMessage({ ok: false, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
  }
};
