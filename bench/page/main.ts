/**
 * The benchmark page. `bench/run.ts` drives it with Playwright through `window.bench`:
 * classic tests run in a fresh dedicated worker per configuration and run; API and open
 * costs run through Outpost's public main-thread API.
 */
import { type Queryable, open } from '../../src/index.js';
import type { WorkerRequest } from './bench-worker.js';
import { abortToStop } from '../abort-stop.js';
import { type BenchValue, type ClassicAdapter, runClassic } from '../classic.js';
// Named, not a bare import: the package has no side effects, so a bare import is dropped.
import { benchTabs } from './tabs.js';
import { benchBootstrap } from './bootstrap.js';

interface ClassicReply {
  ok: boolean;
  times?: Record<string, number>;
  error?: string;
}

/**
 * Turso's WASM engine starts its own worker for OPFS I/O and must be loaded from the page (it
 * hung when loaded inside a dedicated worker), so its classic tests drive it from here.
 */
async function runTurso(req: WorkerRequest): Promise<ClassicReply> {
  const { connect } = (await import('@tursodatabase/database-wasm')) as unknown as {
    connect(path: string): Promise<{
      exec(sql: string): Promise<void>;
      prepare(sql: string): { run(...params: BenchValue[]): Promise<unknown> };
      close(): Promise<void>;
    }>;
  };
  const { ioNotifier } = (await import('@tursodatabase/database-wasm-common')) as unknown as {
    ioNotifier: { waitForCompletion(): Promise<void> };
  };
  const db = await connect(`bench-turso-${req.runId}.db`);
  // Turso 0.7.2 can wait forever for an I/O completion that never comes (upstream issue #8341,
  // fixed after 0.7.2): wake each wait on a completion or after 1 ms. Must precede prepare().
  (db as unknown as { ioStep: () => Promise<unknown> }).ioStep = () =>
    Promise.race([ioNotifier.waitForCompletion(), new Promise((r) => setTimeout(r, 1))]);
  const times = await runClassic(
    {
      exec: (sql) => db.exec(sql),
      prepare: (sql) => {
        const stmt = db.prepare(sql);
        return { run: (params) => stmt.run(...params) };
      },
    },
    req.scale,
    req.only ? new Set(req.only) : undefined,
  );
  await db.close();
  return { ok: true, times };
}

/** Runs one configuration's classic tests, failing after `timeoutMs`. */
async function runClassicConfig(req: WorkerRequest & { timeoutMs: number }): Promise<ClassicReply> {
  let timer = 0;
  const timeout = new Promise<ClassicReply>((resolve) => {
    timer = window.setTimeout(() => resolve({ ok: false, error: `timed out after ${req.timeoutMs} ms` }), req.timeoutMs);
  });
  const work = (req.config === 'turso-wasm' ? runTurso(req) : runInWorker(req)).catch(
    (e: unknown): ClassicReply => ({ ok: false, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) }),
  );
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function runInWorker(req: WorkerRequest): Promise<ClassicReply> {
  const worker = new Worker(new URL('./bench-worker.ts', import.meta.url), { type: 'module' });
  try {
    return await new Promise<ClassicReply>((resolve) => {
      worker.onmessage = (e: MessageEvent<ClassicReply>) => resolve(e.data);
      worker.onerror = (e) => resolve({ ok: false, error: e.message || 'worker failed to load' });
      worker.postMessage(req);
    });
  } finally {
    worker.terminate();
  }
}

/**
 * The classic tests through the public API, as users write them: `open()`, `db.run` for
 * writes, `db.query` for SELECTs, `db.transaction` for the tests that run in one, all 16 one
 * after another on one database. `storage` is 'memory' (the baseline) or 'opfs'.
 */
async function runApiClassic(storage: 'memory' | 'opfs', runId: string, scale: number, only?: string[]): Promise<ClassicReply> {
  try {
    const db = await open(`bench-apiclassic-${runId}`, { storage });
    const adapterOf = (q: Queryable): ClassicAdapter => ({
      exec: (sql) => q.exec(sql),
      prepare: (sql) => ({
        run: /^\s*SELECT/i.test(sql) ? (params) => q.query(sql, params) : (params) => q.run(sql, params),
      }),
    });
    const times = await runClassic(
      { ...adapterOf(db), transaction: (fn) => db.transaction((tx) => fn(adapterOf(tx))) },
      scale,
      only ? new Set(only) : undefined,
      window.benchStep,
    );
    await db.close();
    return { ok: true, times };
  } catch (e) {
    return { ok: false, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  }
}

/** What main.ts needs of Worker1's promiser (its typings are marked deprecated upstream). */
type Worker1Call = (type: string, args: Record<string, unknown>) => Promise<{ dbId?: string; result: { dbId?: string } }>;

/**
 * The classic tests through the official public worker API of @sqlite.org/sqlite-wasm: its
 * Worker1 promiser, talking to a worker that installs opfs-sahpool and starts Worker1
 * (worker1.ts), with the same pragmas as the sahpool-wal configuration. The like-for-like
 * baseline of the suite through Outpost's public API: writes are `exec` with `bind`, SELECTs
 * ask for their rows as objects, and transactions are BEGIN and COMMIT, as a Worker1 user
 * writes them.
 */
async function runWorker1Classic(runId: string, scale: number, only?: string[]): Promise<ClassicReply> {
  const worker = new Worker(new URL('./worker1.ts', import.meta.url), { type: 'module', name: runId });
  try {
    // The module exports the promiser's v2 form, which resolves once the worker is ready.
    const { sqlite3Worker1Promiser } = (await import('@sqlite.org/sqlite-wasm')) as unknown as {
      sqlite3Worker1Promiser: (config: { worker: Worker; onerror?: (...args: unknown[]) => void }) => Promise<Worker1Call>;
    };
    const promiser = await sqlite3Worker1Promiser({ worker, onerror: () => {} });
    const opened = await promiser('open', { filename: 'file:/bench.db?vfs=opfs-sahpool' });
    const dbId = opened.dbId ?? opened.result.dbId;
    await promiser('exec', { dbId, sql: 'PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;' });
    const times = await runClassic(
      {
        exec: async (sql) => {
          await promiser('exec', { dbId, sql });
        },
        prepare: (sql) => ({
          run: /^\s*SELECT/i.test(sql)
            ? (params) => promiser('exec', { dbId, sql, bind: params, rowMode: 'object', resultRows: [] })
            : (params) => promiser('exec', { dbId, sql, bind: params }),
        }),
      },
      scale,
      only ? new Set(only) : undefined,
    );
    await promiser('close', { dbId });
    return { ok: true, times };
  } catch (e) {
    // Worker1 rejects with its error message object, not an Error.
    return { ok: false, error: e instanceof Error ? `${e.name}: ${e.message}` : JSON.stringify(e) };
  } finally {
    worker.terminate();
  }
}

export interface ApiResult {
  metric: string;
  ms: number;
  p99Ms?: number;
  rate?: number;
  unit?: string;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/**
 * What a signal costs a long call that is never aborted, in a page without cross-origin
 * isolation, where the engine reads the abort file while the call runs (src/worker/abort-file.ts):
 * the best of `times` runs of a 2,000,000-step count with a signal and without, interleaved.
 */
async function signalOverhead(db: Awaited<ReturnType<typeof open>>, times: number, scale: number): Promise<{ withMs: number; withoutMs: number }> {
  const steps = Math.max(100_000, Math.round(2_000_000 * scale));
  const sql = `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${steps}) SELECT count(*) AS n FROM c`;
  let withMs = Number.POSITIVE_INFINITY;
  let withoutMs = Number.POSITIVE_INFINITY;
  for (let i = 0; i < times; i++) {
    let t0 = performance.now();
    await db.get(sql, [], { signal: new AbortController().signal });
    withMs = Math.min(withMs, performance.now() - t0);
    t0 = performance.now();
    await db.get(sql);
    withoutMs = Math.min(withoutMs, performance.now() - t0);
  }
  return { withMs, withoutMs };
}

/**
 * Abort to stop in this page, isolated or not (bench/run.ts opens a second page without COOP
 * and COEP for it): an OPFS or memory database, abort to AbortError, and a signal's cost.
 */
async function runAbort(storage: 'opfs' | 'memory', runId: string, scale: number): Promise<ApiResult[]> {
  const db = await open(`bench-abort-${runId}`, { storage });
  try {
    const stop = await abortToStop(db, Math.max(5, Math.round(20 * scale)));
    const cost = await signalOverhead(db, 3, scale);
    return [
      { metric: crossOriginIsolated ? 'api-abort-stop' : 'api-abort-stop-unisolated', ...stop },
      { metric: 'api-long-call-signal', ms: cost.withMs },
      { metric: 'api-long-call', ms: cost.withoutMs },
    ];
  } finally {
    await db.close();
  }
}

/**
 * The floor of any call from the page to a worker and back: a bare postMessage round trip to a
 * worker that echoes it, with a message shaped like a statement call. Median of `calls`.
 */
async function echoRoundTrip(calls: number): Promise<number> {
  const worker = new Worker(new URL('./echo-worker.ts', import.meta.url), { type: 'module' });
  try {
    const ping = (): Promise<unknown> =>
      new Promise((resolve) => {
        worker.onmessage = (e) => resolve(e.data);
        worker.postMessage([1, 'query', ['SELECT 1', undefined]]);
      });
    for (let i = 0; i < 50; i++) await ping();
    const lat: number[] = [];
    for (let i = 0; i < calls; i++) {
      const t0 = performance.now();
      await ping();
      lat.push(performance.now() - t0);
    }
    return quantile(lat.sort((a, b) => a - b), 0.5);
  } finally {
    worker.terminate();
  }
}

/** The public API's costs for one configuration ('outpost', 'outpost-full' or 'memory'). */
async function runApi(config: string, runId: string, scale: number): Promise<ApiResult[]> {
  const storage = config === 'memory' ? 'memory' : 'opfs';
  const durability = config === 'outpost-full' ? 'full' : 'normal';
  const results: ApiResult[] = [];
  const db = await open(`bench-api-${runId}`, { storage, durability });
  try {
    const calls = Math.max(10, Math.round(1000 * scale));
    const lat: number[] = [];
    for (let i = 0; i < 50; i++) await db.get('SELECT 1');
    await window.benchStep?.('select1', 'start');
    for (let i = 0; i < calls; i++) {
      const t0 = performance.now();
      await db.get('SELECT 1');
      lat.push(performance.now() - t0);
    }
    await window.benchStep?.('select1', 'end');
    lat.sort((a, b) => a - b);
    results.push({ metric: 'api-select1', ms: quantile(lat, 0.5), p99Ms: quantile(lat, 0.99) });
    results.push({ metric: 'api-echo', ms: await echoRoundTrip(calls) });

    const rows = Math.max(100, Math.round(100_000 * scale));
    await db.exec(`CREATE TABLE big(id INTEGER PRIMARY KEY, x REAL, label TEXT, tag TEXT, n INTEGER);
      WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ${rows})
      INSERT INTO big SELECT i, i * 1.5, 'label number ' || i, hex(i * 7919), i % 97 FROM s;`);
    await window.benchStep?.('query100k', 'start');
    let t0 = performance.now();
    const got = await db.query('SELECT id, x, label, tag, n FROM big');
    let ms = performance.now() - t0;
    await window.benchStep?.('query100k', 'end');
    if (got.length !== rows) throw new Error(`expected ${rows} rows, got ${got.length}`);
    results.push({ metric: 'api-query-100k', ms, rate: rows / (ms / 1000), unit: 'rows/s' });

    const blobBytes = Math.max(1024, Math.round(10 * 1024 * 1024 * scale));
    const blob = new Uint8Array(blobBytes).map((_, i) => i & 0xff);
    await db.exec('CREATE TABLE blobs(id INTEGER PRIMARY KEY, b BLOB)');
    t0 = performance.now();
    await db.run('INSERT INTO blobs(b) VALUES (?)', [blob]);
    ms = performance.now() - t0;
    results.push({ metric: 'api-blob-write', ms, rate: blobBytes / 1e6 / (ms / 1000), unit: 'MB/s' });
    t0 = performance.now();
    const back = await db.get<{ b: Uint8Array }>('SELECT b FROM blobs');
    ms = performance.now() - t0;
    if (back?.b.length !== blobBytes) throw new Error('blob did not round-trip');
    results.push({ metric: 'api-blob-read', ms, rate: blobBytes / 1e6 / (ms / 1000), unit: 'MB/s' });

    await db.exec('CREATE TABLE runs(v)');
    t0 = performance.now();
    for (let i = 0; i < calls; i++) await db.run('INSERT INTO runs VALUES (?)', [i]);
    results.push({ metric: 'api-run-1000', ms: performance.now() - t0 });

    // On the cross-origin isolated page the abort reaches the worker through its
    // SharedArrayBuffer flag; the page without isolation is measured by runAbort.
    if (crossOriginIsolated) results.push({ metric: 'api-abort-stop', ...(await abortToStop(db, Math.max(5, Math.round(20 * scale)))) });
  } finally {
    await db.close();
  }
  return results;
}

/** Open costs: a new database, and an existing one of about 50 MB. */
async function runOpen(config: string, runId: string, scale: number): Promise<ApiResult[]> {
  const storage = config === 'memory' ? 'memory' : 'opfs';
  const results: ApiResult[] = [];
  let t0 = performance.now();
  const fresh = await open(`bench-open-${runId}`, { storage });
  await fresh.get('SELECT 1');
  results.push({ metric: 'open-new', ms: performance.now() - t0 });
  await fresh.close();
  if (storage === 'opfs') {
    const name = `bench-open50-${runId}`;
    const db = await open(name);
    const chunks = Math.max(1, Math.round(50 * scale));
    await db.exec('CREATE TABLE filler(b BLOB)');
    await db.transaction(async (tx) => {
      for (let i = 0; i < chunks; i++) await tx.run('INSERT INTO filler VALUES (randomblob(1024 * 1024))');
    });
    await db.close();
    await window.benchStep?.('open50mb', 'start');
    t0 = performance.now();
    const again = await open(name);
    await again.get('SELECT count(*) FROM filler');
    results.push({ metric: 'open-50mb', ms: performance.now() - t0 });
    await window.benchStep?.('open50mb', 'end');
    await again.close();
  }
  return results;
}

/** Removes what the benchmark left in OPFS. */
async function cleanup(): Promise<void> {
  const root = await navigator.storage.getDirectory();
  // `keys()` is missing from TypeScript's DOM typings of FileSystemDirectoryHandle.
  const keys = async (dir: FileSystemDirectoryHandle): Promise<string[]> => {
    const names: string[] = [];
    for await (const k of (dir as unknown as { keys(): AsyncIterable<string> }).keys()) names.push(k);
    return names;
  };
  for (const name of await keys(root)) {
    if (name.startsWith('bench')) await root.removeEntry(name, { recursive: true }).catch(() => {});
  }
  const outpostDir = await root.getDirectoryHandle('outpost', { create: true });
  for (const name of await keys(outpostDir)) {
    if (name.startsWith('bench')) await outpostDir.removeEntry(name, { recursive: true }).catch(() => {});
  }
}

declare global {
  interface Window {
    /** Exposed by the runner with `--profile`: profiles the workers around each API test. */
    benchStep?: (id: string, phase: 'start' | 'end') => Promise<void>;
    bench: {
      runClassicConfig: typeof runClassicConfig;
      runApiClassic: typeof runApiClassic;
      runWorker1Classic: typeof runWorker1Classic;
      runApi: typeof runApi;
      runAbort: typeof runAbort;
      runOpen: typeof runOpen;
      cleanup: typeof cleanup;
    };
  }
}

window.bench = { runClassicConfig, runApiClassic, runWorker1Classic, runApi, runAbort, runOpen, cleanup };
window.benchTabs = benchTabs;
window.benchBootstrap = benchBootstrap;
document.getElementById('status')!.textContent = 'ready';
