/**
 * The bound on SQLite's memory in a server process (`maxHeapBytes`, `--max-heap`).
 *
 * Every hosted database runs in one SQLite WASM module, and WASM memory only ever grows: one
 * statement that holds many large values at once (`SELECT randomblob(n), randomblob(n), ...`,
 * a recursive CTE building long strings, a sort of big values) would otherwise grow the heap
 * for good, and past the machine's memory take every tenant down. SQLite's own hard heap limit
 * stops it before the growth: past the limit, SQLite's allocator refuses, so the statement fails
 * with SQLITE_NOMEM, frees what it held, and the next statement (any tenant's) runs as before.
 * The official build honours the limit (it keeps memory statistics; checked by
 * test/server/heap-limit.test.ts), though it exports only the PRAGMA, not the C function.
 *
 * The soft limit is set at three quarters of the hard one: past it, each database's page cache
 * reuses its own pages instead of growing, which keeps the last quarter for statements.
 *
 * The limit is the process's, not one server's: servers in one process (tests, an app that
 * mounts two handlers) share it, and the smallest limit of the servers running applies.
 * Statements run one at a time on the event loop, so the bound a tenant's statement meets is
 * the limit less what the open databases hold (their page caches and schemas).
 */
import { openSqlite } from '../engine/file-image.js';
import { loadRuntime } from '../engine/runtime.js';
import { type Sqlite3Runtime, rawExports } from '../sqlite/wasm-api.js';

/**
 * The default bound, 1 GiB: three quarters of it (the open databases' share, database-cache.ts)
 * keeps about 12,000 small databases open at about 61 KiB each, and the last quarter leaves
 * statements far more than the default value limit.
 */
export const HEAP_BYTES_MAX = 1024 * 1024 * 1024;

/** The limits of the servers running in this process, by server. */
const held = new Map<object, number>();

/** Applies `bytes` for `owner` (a server) until `releaseHeapLimit(owner)`. */
export async function holdHeapLimit(owner: object, bytes: number): Promise<void> {
  held.set(owner, bytes);
  await applyLimit();
}

/** The server stopped: the smallest limit of the servers still running applies, or none. */
export async function releaseHeapLimit(owner: object): Promise<void> {
  if (!held.delete(owner)) return;
  await applyLimit();
}

/**
 * The runtime the limit was applied to, and 16 bytes kept for reading its statistics: what
 * `heapUsedBytes` reads (a server applies its limit before it opens a database). The bytes are
 * allocated once, so reading never needs memory when the heap is at its limit.
 */
let limited: { sqlite3: Sqlite3Runtime; scratch: number } | null = null;

/**
 * What SQLite's allocator holds now, read without waiting; 0 before any limit was applied. The
 * database cache reads it after each open, to close idle databases before the open ones' caches
 * and schemas leave a statement too little of the limit.
 */
export function heapUsedBytes(): number {
  return limited ? readHeap(limited.sqlite3, limited.scratch).usedBytes : 0;
}

/**
 * What SQLite's allocator holds now and at most since the process started, and the WASM
 * memory's size, read without waiting (for `/metrics`); zeros before any limit was applied.
 */
export function heapUsage(): { usedBytes: number; peakBytes: number; wasmBytes: number } {
  return limited ? readHeap(limited.sqlite3, limited.scratch) : { usedBytes: 0, peakBytes: 0, wasmBytes: 0 };
}

/** The bound in force in this process: the smallest limit of the servers running, 0 for none. */
export function heapLimitBytes(): number {
  return held.size > 0 ? Math.min(...held.values()) : 0;
}

/** What SQLite's allocator holds now and at most since the process started, and the WASM memory's size. */
export async function sqliteHeap(): Promise<{ usedBytes: number; peakBytes: number; wasmBytes: number }> {
  const { sqlite3 } = await loadRuntime();
  const out = sqlite3.wasm.alloc(16);
  try {
    return readHeap(sqlite3, out);
  } finally {
    sqlite3.wasm.dealloc(out);
  }
}

/** SQLITE_STATUS_MEMORY_USED (current and highwater, two 64-bit integers written at `out`) and the WASM memory's size. */
function readHeap(sqlite3: Sqlite3Runtime, out: number): { usedBytes: number; peakBytes: number; wasmBytes: number } {
  rawExports(sqlite3).sqlite3_status64(0, out, out + 8, 0);
  const heap = sqlite3.wasm.heap8u();
  const view = new DataView(heap.buffer, heap.byteOffset);
  return { usedBytes: Number(view.getBigInt64(out, true)), peakBytes: Number(view.getBigInt64(out + 8, true)), wasmBytes: heap.byteLength };
}

async function applyLimit(): Promise<void> {
  const { sqlite3 } = await loadRuntime();
  limited ??= { sqlite3, scratch: sqlite3.wasm.alloc(16) };
  // Read after the wait: the limits held now, whatever order calls arrived in.
  const hardBytes = heapLimitBytes();
  const softBytes = Math.floor(hardBytes * 0.75);
  // The PRAGMAs set process-wide values; any connection will do, so a private in-memory one.
  const db = openSqlite(sqlite3, null, ':memory:');
  try {
    // Hard first: SQLite keeps the soft limit at or under the hard one.
    const rc = sqlite3.capi.sqlite3_exec(db, `PRAGMA hard_heap_limit = ${hardBytes}; PRAGMA soft_heap_limit = ${softBytes};`, 0, 0, 0);
    if (rc !== 0) throw new Error(`setting SQLite's heap limit failed: ${sqlite3.capi.sqlite3_errstr(rc)}`);
  } finally {
    sqlite3.capi.sqlite3_close_v2(db);
  }
}
