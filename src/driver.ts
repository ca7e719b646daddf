/**
 * The Driver: the one seam between the public `Database` (database.ts) and an engine, wherever
 * the engine runs. In the browser the engine is in a dedicated worker and the Driver sends
 * each call over a MessagePort (worker/call-port.ts, or worker/tabs.ts for a shared database)
 * to worker/worker.ts; under Node it goes to the process's engine thread (node/thread.ts), or
 * with `engine: 'inline'` is called in-process. Every engine serves `connectionDriver`, so the
 * engine is adapted once.
 *
 * Contract
 * - Calls arrive in the order `Database` issues them and the engine runs each to completion
 *   before the next (the worker is single-threaded; Node calls are synchronous underneath).
 *   `Database` owns ordering between callers (its queue and transactions); the Driver does not.
 *   Several tabs sharing one database (worker/tabs.ts) each have a Driver; the engine runs their
 *   calls one at a time, and a tab whose call leaves a transaction open keeps the engine until
 *   it ends, so a `Database` sees the same contract as if it were alone.
 * - Every method either resolves or rejects with `SqliteError`, `OutpostError`,
 *   `DatabaseLockedError`, `SyncError` or `AbortError` (the worker rebuilds them by name on the
 *   UI side).
 * - `query` returns `PackedRows`, whose buffers the worker transfers (not copies) once they
 *   pass 64 KiB in all (packed-rows.ts `TRANSFER_MIN_BYTES`; a smaller result is copied, which
 *   costs less); `export` transfers its bytes. The sender must not touch them afterwards.
 * - `onPart` of `query` is given only on the engine's own side, by what serves a thread's
 *   calls (worker/call-port.ts, worker/engine-host.ts): a large result then leaves in parts as
 *   it is read (packed-rows.ts, "Parts"), and the receiving end answers its caller with the
 *   parts' objects (`ObjectRows`). A function cannot cross a thread, so no caller passes one.
 * - Method names follow the public API (`pendingChanges`, not `syncPending`).
 * - Statement calls take `EngineLimits` last; the engine enforces them itself (`limited`) and
 *   rejects a stopped call with `AbortError`. Prepared statements are named by a handle the
 *   caller chooses and carry their SQL, so any engine can serve them (engine/prepared.ts).
 * - Sync methods reject with `SyncError('NOT_CONFIGURED')` on a database opened without sync;
 *   `syncStatus` resolves to null there.
 * - With `sync.live`, `connectionDriver` runs live sync (sync/live.ts) until `close`; its
 *   applies wait in an idle gate here for the open transaction, if any, to end.
 *
 * Layer api (database.ts, driver.ts, statement.ts). May import: engine/, sync/, options.ts,
 * types.ts, errors.ts; nothing above it (worker/, browser/, node/).
 */
import type { Connection } from './engine/connection.js';
import type { PackedRows, QueryRows } from './engine/packed-rows.js';
import { type RowsStep, type StatementInfo, isInterrupt } from './engine/prepared.js';
import { AbortError, OutpostError } from './errors.js';
import { CALLS_TABLE } from './sync/calls-table.js';
import { type SyncDriver, syncDriver } from './sync/driver.js';
import type { SyncEngine } from './sync/engine.js';
import { LiveSync } from './sync/live.js';
import type { BatchStatement, RunResult, SqlParams, StatementResult, SyncProgress } from './types.js';

/**
 * Limits of one call, enforced inside the engine by SQLite's progress handler: past
 * `timeoutMs` (counted from when the engine starts the call), or once the abort flag the
 * engine was given holds `abortId`, the running statement stops and the call rejects with
 * `AbortError`. The flag is what another thread can write while the engine is busy in a
 * statement: a SharedArrayBuffer (Node's engine thread, a cross-origin isolated page) or, in a
 * page without isolation, a small OPFS file (worker/abort-file.ts).
 */
export interface EngineLimits {
  timeoutMs?: number | undefined;
  abortId?: number | undefined;
}

/**
 * Where the engine looks for the abort of a running call. `watch(abortId)` is asked once when a
 * call with an abort id starts; the function it returns is asked by SQLite's progress handler,
 * so it must be cheap or pace itself, and says whether that call has been aborted. Null: this
 * flag cannot see an abort now (its file never opened), so the call needs no check for it.
 */
export interface AbortFlag {
  watch(abortId: number): (() => boolean) | null;
}

/** An abort flag in shared memory: whoever aborts a call stores its id with `Atomics.store`. */
export function sharedAbortFlag(view: Int32Array): AbortFlag {
  return { watch: (abortId) => () => Atomics.load(view, 0) === abortId };
}

export interface Driver extends SyncDriver {
  exec(sql: string, limits?: EngineLimits): Promise<void>;
  /** Rows of one statement; at most `maxRows` when given. */
  query(sql: string, params: SqlParams | undefined, maxRows?: number, limits?: EngineLimits, onPart?: (rows: PackedRows) => void): Promise<QueryRows>;
  run(sql: string, params: SqlParams | undefined, limits?: EngineLimits): Promise<RunResult>;
  batch(statements: readonly BatchStatement[], limits?: EngineLimits): Promise<RunResult[]>;
  execMany(sql: string, limits?: EngineLimits): Promise<StatementResult[]>;
  /**
   * Prepared statements by a handle the caller chooses (engine/prepared.ts): every call carries
   * the SQL, so an engine that does not know the handle (reopened, or another tab's) prepares it.
   */
  prepare(handle: string, sql: string): Promise<StatementInfo>;
  /** Rows of a prepared statement: a whole call, or one chunk of an iteration (`step.cursor`). */
  statementRows(handle: string, sql: string, params: SqlParams | undefined, step: RowsStep, limits?: EngineLimits): Promise<{ rows: PackedRows; done: boolean }>;
  statementRun(handle: string, sql: string, params: SqlParams | undefined, limits?: EngineLimits): Promise<RunResult>;
  /** Ends an iteration before its end (a `break`); a cursor already ended is ignored. */
  closeCursor(handle: string, cursor: number): Promise<void>;
  finalize(handle: string): Promise<void>;
  /**
   * Rolls back the open transaction, or with `savepoint` only back to that savepoint (which is
   * then released). Never throws for "no transaction": SQLite may have rolled back already.
   */
  rollback(savepoint?: string): Promise<void>;
  export(): Promise<Uint8Array>;
  import(bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
  /**
   * Live queries: `listener` (or none) is called with the tables each commit, pull or import
   * changed, as the engine sees them. One listener per driver; a broker between tabs forwards
   * these events as they are.
   */
  onTablesChanged(listener: ((tables: string[]) => void) | null): Promise<void>;
  /** Sync progress (`SyncProgress`): one listener per driver, forwarded like `onTablesChanged`. */
  onSyncProgress(listener: ((progress: SyncProgress) => void) | null): Promise<void>;
  /** Rows of one statement, and the tables it reads (from SQLite's authorizer). */
  watchQuery(sql: string, params: SqlParams | undefined): Promise<{ rows: PackedRows; tables: string[] }>;
}

/** Every method of the Driver, so forwarders (`forwardDriver`, the call port, tabs.ts) list them once. */
export const DRIVER_METHODS = [
  'exec',
  'query',
  'run',
  'batch',
  'execMany',
  'prepare',
  'statementRows',
  'statementRun',
  'closeCursor',
  'finalize',
  'rollback',
  'export',
  'import',
  'close',
  'onTablesChanged',
  'onSyncProgress',
  'watchQuery',
  'fetchPull',
  'applyPull',
  'push',
  'syncStatus',
  'pendingChanges',
  'dropPendingChange',
  'retryRejectedChange',
] as const satisfies readonly (keyof Driver)[];

// Compile-time check that DRIVER_METHODS names every method of Driver, not only some.
type Missing = Exclude<keyof Driver, (typeof DRIVER_METHODS)[number]>;
const _allMethodsListed: [Missing] extends [never] ? true : Missing = true;
void _allMethodsListed;

/**
 * A Driver whose every method calls the same method of `target()` through `wrap` (for example
 * to race each call against the worker's death). `target` is read per call, so it may change.
 */
export function forwardDriver(target: () => Driver, wrap: <T>(call: () => Promise<T>) => Promise<T> = (call) => call()): Driver {
  const entries = DRIVER_METHODS.map((name) => [
    name,
    (...args: unknown[]) =>
      wrap(() => {
        // The method and its arguments are typed by Driver at both ends; indexing by a name
        // from the union loses the pairing, so this one call site is untyped. The call must be
        // a plain method call: on a Comlink proxy, `.apply` or `.call` would itself become a
        // remote call, with the proxy as an argument (a new MessageChannel per call).
        const driver = target() as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
        return driver[name]!(...args);
      }),
  ]);
  return Object.fromEntries(entries) as unknown as Driver;
}

/** A savepoint name the engine itself created (`outpost_sp12`), never user text. */
const SAVEPOINT_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Runs jobs between transactions: at once when none is open, else right after the call that
 * ends it. A live pull's apply waits here, never inside another caller's transaction.
 */
class IdleGate {
  private readonly waiting: { job: () => void; reject: (e: Error) => void }[] = [];
  private closed = false;

  constructor(private readonly busy: () => boolean) {}

  run(job: () => void): Promise<void> {
    return new Promise((resolve, reject) => {
      const entry = {
        job: () => {
          try {
            job();
            resolve();
          } catch (e) {
            reject(e instanceof Error ? e : new Error(String(e)));
          }
        },
        reject,
      };
      if (this.closed) reject(new OutpostError('the database is closed', 'DATABASE_CLOSED'));
      else if (this.busy()) this.waiting.push(entry);
      else entry.job();
    });
  }

  /** After every call: runs what waited if no transaction is open now. */
  check(): void {
    while (!this.closed && this.waiting.length > 0 && !this.busy()) this.waiting.shift()!.job();
  }

  close(): void {
    this.closed = true;
    for (const { reject } of this.waiting.splice(0)) reject(new OutpostError('the database is closed', 'DATABASE_CLOSED'));
  }
}

/** The methods after which a transaction may have ended. */
const GATED_METHODS: readonly (keyof Driver)[] = ['exec', 'query', 'run', 'batch', 'execMany', 'statementRows', 'statementRun', 'rollback', 'import', 'watchQuery', 'applyPull', 'dropPendingChange', 'retryRejectedChange'];

/** How many virtual-machine steps SQLite runs between two looks at a call's limits. */
const PROGRESS_OPS = 1000;

/**
 * Runs `fn` (one synchronous engine call) under `limits`: a progress handler stops its
 * statement past the deadline or once `abortFlag` says the call's `abortId` was aborted, and SQLite's
 * interrupt then becomes an `AbortError` (with SQLite's error as its cause).
 */
function limited<T>(conn: Connection, abortFlag: AbortFlag | null, limits: EngineLimits | undefined, fn: () => T): T {
  const timeoutMs = limits?.timeoutMs;
  const aborted = abortFlag && limits?.abortId !== undefined ? abortFlag.watch(limits.abortId) : null;
  if (timeoutMs === undefined && aborted === null) return fn();
  const deadline = timeoutMs === undefined ? Number.POSITIVE_INFINITY : performance.now() + timeoutMs;
  let stopped: 'timeout' | 'abort' | null = null;
  conn.setInterruptCheck(PROGRESS_OPS, () => {
    if (aborted?.()) stopped = 'abort';
    else if (performance.now() > deadline) stopped = 'timeout';
    return stopped !== null;
  });
  try {
    return fn();
  } catch (e) {
    if (stopped === null || !isInterrupt(e)) throw e;
    const message = stopped === 'abort' ? 'the call was aborted while it ran; SQLite stopped it' : `the call ran past its timeoutMs (${timeoutMs} ms); SQLite stopped it`;
    throw new AbortError(message, e);
  } finally {
    conn.setInterruptCheck(PROGRESS_OPS, null);
  }
}

/**
 * The engine's `Connection` (and its sync engine, when synced) as a Driver. With
 * `sync.live`, live sync (sync/live.ts) runs from here until `close`. `abortFlag`: the page's
 * abort flag (`EngineLimits`), where it has one.
 */
export function connectionDriver(conn: Connection, engine: SyncEngine | null = null, abortFlag: AbortFlag | null = null): Driver {
  const driver = plainConnectionDriver(conn, engine, abortFlag);
  if (!engine?.options.live) return driver;
  const gate = new IdleGate(() => conn.inTransaction);
  const live = new LiveSync(engine, (job) => gate.run(job), engine.options);
  const gated: Partial<Record<keyof Driver, unknown>> = {};
  for (const name of GATED_METHODS) {
    // Each wrapper passes its method's arguments and result through unchanged.
    const method = driver[name] as (...a: unknown[]) => Promise<unknown>;
    gated[name] = (...args: unknown[]) =>
      method(...args).finally(() => {
        gate.check();
      });
  }
  return {
    ...driver,
    ...(gated as Partial<Driver>),
    close: async () => {
      gate.close();
      await live.stop();
      await driver.close();
    },
  };
}

function plainConnectionDriver(conn: Connection, engine: SyncEngine | null, abortFlag: AbortFlag | null): Driver {
  const sync = syncDriver(engine);
  // Async, so a throw becomes a rejection; the call itself still runs at once, as before.
  const within = async <T>(limits: EngineLimits | undefined, fn: () => T): Promise<T> => limited(conn, abortFlag, limits, fn);
  return {
    ...sync,
    exec: (sql, limits) => within(limits, () => conn.exec(sql)),
    query: (sql, params, maxRows, limits, onPart) => within(limits, () => conn.query(sql, params, maxRows, onPart)),
    run: (sql, params, limits) => within(limits, () => conn.run(sql, params)),
    batch: (statements, limits) => within(limits, () => conn.batch(statements)),
    execMany: (sql, limits) => within(limits, () => conn.execMany(sql)),
    prepare: async (handle, sql) => conn.prepared.prepare(handle, sql),
    statementRows: (handle, sql, params, step, limits) => within(limits, () => conn.prepared.rows(handle, sql, params, step)),
    statementRun: (handle, sql, params, limits) => within(limits, () => conn.prepared.run(handle, sql, params)),
    closeCursor: async (handle, cursor) => conn.prepared.closeCursor(handle, cursor),
    finalize: async (handle) => conn.prepared.finalize(handle),
    rollback: async (savepoint) => {
      if (savepoint === undefined) return conn.rollbackQuietly();
      if (!SAVEPOINT_NAME.test(savepoint)) throw new OutpostError(`invalid savepoint name ${JSON.stringify(savepoint)}`, 'INVALID_ARGUMENT');
      conn.rollbackQuietly(`ROLLBACK TO ${savepoint}; RELEASE ${savepoint}`);
    },
    // The applied-call records (worker/call-log.ts) are of this database's tabs, nobody else's.
    export: async () => conn.export([CALLS_TABLE]),
    onTablesChanged: async (listener) => conn.onTablesChanged(listener),
    onSyncProgress: async (listener) => engine?.onProgress(listener),
    watchQuery: async (sql, params) => {
      const rows = conn.query(sql, params);
      return { rows, tables: conn.tablesRead(sql) };
    },
    import: async (bytes) => {
      if (engine) {
        // The synced image comes from the server and local writes are pushed as changes: a
        // wholesale replacement would be neither, and the next pull would undo it.
        throw new OutpostError(
          'import() cannot replace a synced database: its contents come from its server. Import into a database opened without sync, or write the rows through SQL so they sync',
          'INVALID_ARGUMENT',
        );
      }
      conn.import(bytes);
    },
    close: async () => {
      await conn.close();
      engine?.close();
    },
  };
}
