/**
 * The Node half of the benchmark: `outpost/node` (the WASM engine over file descriptors)
 * against better-sqlite3@12 (native SQLite), both on files in WAL mode with
 * `synchronous=NORMAL`, with the same classic tests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
import { Connection } from '../src/engine/connection.js';
import { open } from '../src/node/index.js';
import { NodeDirectory } from '../src/opfs-vfs/storage/node.js';
import { abortToStop } from './abort-stop.js';
import { type ClassicAdapter, runClassic } from './classic.js';

export const NODE_CONFIGS = ['node-outpost', 'node-better-sqlite3'] as const;

export async function runNodeClassic(config: string, scale: number, only?: ReadonlySet<string>): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-bench-'));
  try {
    if (config === 'node-outpost') {
      const conn = await Connection.open(new NodeDirectory(join(dir, 'bench.db')), { durability: 'normal', intMode: 'number' });
      const adapter: ClassicAdapter = {
        exec: (sql) => conn.exec(sql),
        prepare: (sql) => ({ run: (params) => conn.run(sql, params) }),
      };
      const times = await runClassic(adapter, scale, only);
      await conn.close();
      return times;
    }
    const db = new Sqlite(join(dir, 'bench.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    const adapter: ClassicAdapter = {
      exec: (sql) => {
        db.exec(sql);
      },
      prepare: (sql) => {
        const stmt = db.prepare(sql);
        return { run: (params) => (stmt.reader ? stmt.all(...params) : stmt.run(...params)) };
      },
    };
    const times = await runClassic(adapter, scale, only);
    db.close();
    return times;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Round trip of `SELECT 1` through each API (Outpost's async API, its engine in a thread or,
 * with `engine`, inline; better-sqlite3's sync one).
 */
export async function runNodeSelect1(config: string, calls: number, engine?: 'thread' | 'inline'): Promise<{ ms: number; p99Ms: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-bench-'));
  const lat: number[] = [];
  try {
    if (config === 'node-outpost') {
      const db = await open(join(dir, 'select1.db'), { engine });
      for (let i = 0; i < calls; i++) {
        const t0 = performance.now();
        await db.get('SELECT 1');
        lat.push(performance.now() - t0);
      }
      await db.close();
    } else {
      const db = new Sqlite(join(dir, 'select1.db'));
      const stmt = db.prepare('SELECT 1');
      for (let i = 0; i < calls; i++) {
        const t0 = performance.now();
        stmt.get();
        lat.push(performance.now() - t0);
      }
      db.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  lat.sort((a, b) => a - b);
  return { ms: lat[Math.floor(lat.length / 2)]!, p99Ms: lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.99))]! };
}

/**
 * Commit-to-callback latency of a watch in the same process (`throttleMs: 0`): from the call of
 * `run()` that commits to the `onRows` call that shows its row. Median and p95.
 */
export async function runNodeWatchLatency(writes: number): Promise<{ ms: number; p95Ms: number }> {
  const db = await open(':memory:', { storage: 'memory' });
  const lat: number[] = [];
  try {
    await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v)');
    let waiting: { id: number; resolve: () => void } | null = null;
    const stop = db.watch<{ id: number }>('SELECT max(id) AS id FROM t', undefined, (rows) => {
      if (waiting && rows[0]?.id === waiting.id) waiting.resolve();
    }, { throttleMs: 0 });
    for (let i = 1; i <= writes; i++) {
      const seen = new Promise<void>((resolve) => (waiting = { id: i, resolve }));
      const t0 = performance.now();
      void db.run('INSERT INTO t(id, v) VALUES (?, ?)', [i, i]);
      await seen;
      lat.push(performance.now() - t0);
    }
    stop();
  } finally {
    await db.close();
  }
  lat.sort((a, b) => a - b);
  return { ms: lat[Math.floor(lat.length / 2)]!, p95Ms: lat[Math.min(lat.length - 1, Math.floor(lat.length * 0.95))]! };
}

/**
 * Abort to stop (bench/abort-stop.ts) while a slow statement runs on the engine thread. Median
 * and p99 of `times` aborts.
 */
export async function runNodeAbortStop(times: number): Promise<{ ms: number; p99Ms: number }> {
  const db = await open(':memory:', { storage: 'memory' });
  try {
    return await abortToStop(db, times);
  } finally {
    await db.close();
  }
}

/**
 * `open()` of a new in-memory database to its first answer, with the engine in a thread or
 * inline. Run after the other Node figures, so the process's engine thread and SQLite are
 * loaded already: this is the cost of every open after a process's first.
 */
export async function runNodeOpen(engine: 'thread' | 'inline'): Promise<{ ms: number }> {
  const t0 = performance.now();
  const db = await open(':memory:', { storage: 'memory', engine });
  await db.get('SELECT 1');
  const ms = performance.now() - t0;
  await db.close();
  return { ms };
}
