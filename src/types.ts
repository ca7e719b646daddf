/**
 * The public types of Outpost's API. The browser (`outpost`) and Node (`outpost/node`) entry
 * points return the same `Database` interface.
 *
 * Contract: types only, and this file imports nothing internal, so that every layer may use it
 * without a cycle.
 */

/** A value as SQLite returns it: INTEGER is a number when it is a safe integer (or always a bigint with `intMode: 'bigint'`), REAL a number, TEXT a string, BLOB a Uint8Array. */
export type SqlValue = null | number | bigint | string | Uint8Array;

/** A value that can be bound to a parameter. Booleans bind as 1 and 0. */
export type SqlParam = SqlValue | boolean | ArrayBuffer;

/**
 * Parameters of a statement: an array for positional `?` and `?NNN` parameters, or an object
 * for named `:name`, `@name` and `$name` parameters (keys with or without the prefix).
 */
export type SqlParams = readonly SqlParam[] | { readonly [name: string]: SqlParam };

/** A row as an object keyed by column name. */
export type Row = Record<string, SqlValue>;

export interface RunResult {
  /** Rows changed by the statement (`sqlite3_changes`); 0 for statements that change none. */
  changes: number;
  /** The rowid of the last inserted row of this connection. */
  lastInsertRowid: bigint;
}

/** One statement of a `batch`: a SQL string, or SQL with parameters (`args` is `params`' other name, as in @libsql/client). */
export type BatchStatement = string | { sql: string; params?: SqlParams; args?: SqlParams };

/** The result of one statement of `execMany`, as the playground shows it. */
export interface StatementResult {
  /** The statement's SQL text. */
  sql: string;
  columns: string[];
  rows: SqlValue[][];
  changes: number;
  /** Wall time of the statement inside the engine, in milliseconds. */
  timeMs: number;
  /** Set when this statement failed; it is then the last result and nothing after it ran. */
  error?: { code: string; resultCode: number; message: string };
}

// ---- sync ------------------------------------------------------------------------------

/** A token, or a function returning one (called again with `refresh: true` after a 401). */
export type TokenSource = string | ((options: { refresh: boolean }) => string | undefined | Promise<string | undefined>) | undefined;

export interface SyncOptions {
  /** The database's URL, e.g. `http://127.0.0.1:8080/db/notes`. */
  url: string;
  /** A token, or a function returning one (called again with `refresh: true` after a 401). */
  authToken?: TokenSource;
  /** A readable prefix for this client's id on the server. */
  clientName?: string;
  /** `pull()` waits up to this long for a change when there is none (default 0: answer at once). */
  longPollTimeoutMs?: number;
  /** Row changes per pushed batch; a batch always ends on a transaction boundary (default 1000). */
  pushBatchSize?: number;
  /**
   * Tables whose primary key names the thing a row is about (a setting's name, a user's
   * email): an insert that finds its key taken on the server overwrites that row, last push
   * wins, as Turso does. In every other table such an insert is an insert collision (README,
   * "Conflicts"): re-keyed where the table has no primary key, refused and reported where it has one.
   */
  upsertTables?: string[];
  /** Inspect, skip or rewrite each pushed row change. */
  transform?: (mutations: Mutation[]) => MutationResult[] | Promise<MutationResult[]>;
  /** Per request (default 30 s); a streamed bootstrap fails only when no byte arrives for this long. */
  timeoutMs?: number;
  /** When the local part of the WAL passes this, checkpoint it with saved pre-images (default 8 MiB). */
  maxLocalWalBytes?: number;
  /** A fetch to use instead of the global one (Node and workers; not sent to a browser worker). */
  fetch?: typeof fetch;
  /**
   * Retries of a pull or push that failed for a reason that may pass (no network, a timeout,
   * a 5xx or 429), with exponential backoff from 250 ms (default 2).
   */
  retries?: number;
  /**
   * Browser PWAs with a service worker that queues push batches (README, "Background push"):
   * when the server cannot be reached, a push still sends its pending changes, one batch per
   * transaction in order (only those it has not sent before in this session), so that the service worker can store those requests and send them when the network returns,
   * even with no tab open. Each batch carries its own gate on the server's acknowledgement (and
   * waits for the batch before it), so it is applied at most once however often it is sent.
   * Default false.
   */
  backgroundPush?: boolean;
  /**
   * Live sync (default false): the engine keeps the database in sync by itself. It long-polls
   * the server for changes (`longPollTimeoutMs`, 20 s when not set) and applies each between
   * transactions, pushes shortly after each local commit (`pushDelayMs`), backs off after a
   * failure (as long as a server's Retry-After asks), pauses while the browser is offline and
   * resumes on `online`, and stops on `close()`. A never-synced database bootstraps in the
   * background instead of inside `open()`: watch `onSyncProgress` for a bar. With several tabs it
   * runs once, where the engine runs, and moves with it.
   */
  live?: boolean;
  /** Live sync: how long after a local commit the push starts, so a burst of commits goes in one push (default 10). */
  pushDelayMs?: number;
}

/** Where a download or upload is: `db.onSyncProgress`. */
export interface SyncProgress {
  /** `bootstrap`: the first download of the whole database; `pull`: a later download; `apply`: writing it locally; `push`: sending local changes; `idle`: done. */
  phase: 'bootstrap' | 'pull' | 'apply' | 'push' | 'idle';
  /** Pages downloaded so far (bootstrap, pull) or being applied (apply). */
  pagesDone: number;
  /** Pages in this download when known, else `pagesDone`. */
  pagesTotal: number;
  /** Bytes of pages downloaded so far in this phase. */
  bytes: number;
}

export interface SyncStatus {
  clientId: string;
  url: string;
  revision: string | null;
  pendingChanges: number;
  rejectedChanges: { changeId: number; reason: string }[];
  lastPullAt: number | null;
  lastPushAt: number | null;
  bytesSent: number;
  bytesReceived: number;
  lastError: { code: string; message: string } | null;
}

export interface PendingChange {
  changeId: number;
  ddl: string[];
  mutations: Mutation[];
  rejected: string | null;
}

/** What a transform hook sees of one row change. */
export interface Mutation {
  changeId: number;
  table: string;
  op: 'insert' | 'update' | 'delete';
  /**
   * Column values before (update, delete) and after (insert, update; an update lists only
   * changed columns), as `query` returns values: a whole REAL shows as a number like an
   * INTEGER, and text that is not UTF-8 shows with U+FFFD. `'keep'` pushes the values exactly as
   * stored, whatever they show as here; a rewrite binds what it passes.
   */
  before: Record<string, SqlValue>;
  after: Record<string, SqlValue>;
}

/** keep: push as captured; skip: push nothing for it; or rewrite it as other SQL. */
export type MutationResult = 'keep' | 'skip' | { sql: string; args?: SqlValue[] };

// ---- the database ----------------------------------------------------------------------

export interface OpenOptions {
  /**
   * Where the database lives. Browser: `'opfs'` (default, persistent) or `'memory'` (gone when
   * closed). Node: `'file'` (default) or `'memory'`.
   */
  storage?: 'opfs' | 'file' | 'memory';
  /**
   * `'normal'` (default): WAL with `synchronous=NORMAL`; a commit survives a crash of the tab
   * or process, and the last commits may be lost on power loss or an OS crash.
   * `'full'`: `synchronous=FULL`; every commit is flushed to the device before it returns.
   */
  durability?: 'normal' | 'full';
  /** `'number'` (default): safe integers as numbers, larger ones as bigint. `'bigint'`: always bigint. */
  intMode?: 'number' | 'bigint';
  /**
   * Browser: set it to have the database to this tab alone, failing with `DatabaseLockedError`
   * when another tab or worker holds it past this (without it every tab shares the database).
   * Node: how long to wait for another process before `DatabaseLockedError` (default 5000).
   */
  lockTimeoutMs?: number;
  /**
   * Browser, a database shared by several tabs: how long a call waits on the tab running the
   * engine while it shows no sign of life (frozen in the background, or busy in one statement)
   * before rejecting with `OutpostError` `ENGINE_UNRESPONSIVE` (default 10000).
   */
  tabTimeoutMs?: number;
  /**
   * Node (`outpost/node`): where the engine runs. `'thread'` (default): a worker thread of its
   * own, so a long statement does not block the event loop and a call's `signal` stops it while
   * it runs. `'inline'`: on the calling thread, faster for many tiny calls (README, "Node: the
   * engine thread"), but a statement blocks the event loop and only its `timeoutMs` can stop
   * it. A sync option `fetch` cannot cross threads, so it needs `'inline'` (which it gets by
   * default). The browser always runs the engine in a worker and ignores this.
   */
  engine?: 'thread' | 'inline';
  /** Sync with a server speaking Turso's sync protocol (an Outpost server, `tursodb --sync-server`, Turso Cloud). */
  sync?: SyncOptions;
}

/**
 * Options of one call, its last argument. A call aborted (by `signal`, or past `timeoutMs`,
 * counted from the call) rejects with an error named `AbortError`:
 * - before it started (waiting behind other calls): it never runs;
 * - while it runs: SQLite stops its statement, which undoes that statement. A running statement
 *   sees `timeoutMs` everywhere (the engine checks it itself). It sees `signal` under
 *   `outpost/node` (its engine thread reads a SharedArrayBuffer flag) and in a cross-origin
 *   isolated page (COOP/COEP), whose worker reads the same flag; elsewhere (a page that is
 *   not isolated; `engine: 'inline'` in Node, where no abort can fire while the statement
 *   runs on the calling thread), a call already running settles with its own outcome;
 * - between chunks of `iterate`: the next chunk is not fetched.
 * Inside `transaction(fn)`, an aborted call rolls the whole transaction back: later calls of
 * its `tx` reject, and `transaction` rejects with the AbortError.
 */
export interface CallOptions {
  signal?: AbortSignal | undefined;
  timeoutMs?: number | undefined;
}

/** A result column of a prepared statement: its name and declared type (null for an expression). */
export interface ColumnInfo {
  name: string;
  type: string | null;
}

/**
 * A prepared statement (`prepare`): compiled once in the engine, run many times with other
 * parameters. Its calls take the same place in line as the scope's that prepared it.
 * `finalize()` frees it; closing the database frees every statement. A finalized statement's
 * calls reject with `OutpostError` `STATEMENT_FINALIZED`.
 */
export interface Statement<T = Row> {
  readonly sql: string;
  readonly finalized: boolean;
  /** The result columns, as prepared. */
  columns(): ColumnInfo[];
  all(params?: SqlParams, options?: CallOptions): Promise<T[]>;
  get(params?: SqlParams, options?: CallOptions): Promise<T | undefined>;
  run(params?: SqlParams, options?: CallOptions): Promise<RunResult>;
  /** Every row as an array of values in column order. */
  values(params?: SqlParams, options?: CallOptions): Promise<SqlValue[][]>;
  /** Streams the rows in chunks (see `Queryable.iterate`). */
  iterate(params?: SqlParams, options?: CallOptions): AsyncIterableIterator<T>;
  finalize(): Promise<void>;
}

/** The statements every scope (database or transaction) can run. */
export interface Queryable {
  /** Runs one or more statements separated by semicolons; returns nothing. */
  exec(sql: string, options?: CallOptions): Promise<void>;
  /** Runs one statement and returns every row as an object. */
  query<T = Row>(sql: string, params?: SqlParams, options?: CallOptions): Promise<T[]>;
  /** Runs one statement and returns its first row, or undefined. */
  get<T = Row>(sql: string, params?: SqlParams, options?: CallOptions): Promise<T | undefined>;
  /** Runs one statement for its effect. */
  run(sql: string, params?: SqlParams, options?: CallOptions): Promise<RunResult>;
  /**
   * Runs the statements atomically: all of them or, when one fails, none. A SQLite failure
   * carries `statementIndex`, the index of the statement that failed.
   */
  batch(statements: readonly BatchStatement[], options?: CallOptions): Promise<RunResult[]>;
  /**
   * Runs many statements and returns each one's columns, rows and changes, for shells and
   * playgrounds. A statement that fails ends the run: its result carries `error` and is the
   * last one (the statements before it keep their effects, as in the sqlite3 shell).
   */
  execMany(sql: string, options?: CallOptions): Promise<StatementResult[]>;
  /** Prepares one statement; rejects at once when it does not compile. */
  prepare<T = Row>(sql: string): Promise<Statement<T>>;
  /**
   * Streams the rows of one statement, fetched from the engine in chunks of 1000 rows, so
   * memory stays bounded by a chunk. Each chunk is its own call: other calls run between
   * chunks, and a change they make to a table being read may or may not show in later rows
   * (SQLite's rule for one connection); iterate inside `transaction` for a stable view.
   * `break` ends the statement. `timeoutMs` bounds the whole iteration. A pull or import that
   * replaces the database mid-iteration ends it with an error.
   */
  iterate<T = Row>(sql: string, params?: SqlParams, options?: CallOptions): AsyncIterableIterator<T>;
  /** A tagged template: `` sql`SELECT * FROM t WHERE id = ${id}` ``; every value is bound as a parameter, never spliced into the text. Resolves to the rows. */
  sql<T = Row>(strings: TemplateStringsArray, ...values: SqlParam[]): Promise<T[]>;
}

/** Options of `transaction(fn, options)`. */
export interface TransactionOptions {
  /**
   * How the transaction begins (`BEGIN DEFERRED | IMMEDIATE | EXCLUSIVE`); default `'immediate'`.
   * Outpost's connection holds the database file exclusively, so all three keep other
   * connections out alike; they differ in when SQLite takes its write lock.
   */
  mode?: 'deferred' | 'immediate' | 'exclusive';
}

// ---- live queries ------------------------------------------------------------------------

/** Options of `db.watch`. */
export interface WatchOptions<T> {
  /**
   * At most one re-run per this many milliseconds (default 16): a burst of commits is coalesced,
   * and a change after the last run always gets one more. 0 re-runs as soon as the change is seen.
   */
  throttleMs?: number;
  /** Aborting it stops the watch, like calling the returned function. */
  signal?: AbortSignal;
  /**
   * Called when the query fails (its table dropped, say); the watch goes on and calls `onRows`
   * again once the query works after a later change. Without it, the error is logged.
   */
  onError?: (error: Error) => void;
  /**
   * A column that identifies a row. A row whose key and every value are as in the previous
   * result is the same object as before, so a UI can skip re-rendering it.
   */
  key?: Extract<keyof T, string>;
}

/** Called with the names of the tables a commit, pull or import changed. */
export type TablesChangedListener = (tables: string[]) => void;

/** The scope of `db.transaction(fn)`. `transaction` nests as a savepoint. */
export interface Transaction extends Queryable {
  transaction<R>(fn: (tx: Transaction) => Promise<R>): Promise<R>;
}

export interface Database extends Queryable {
  /** The name (browser) or path (Node) the database was opened with. */
  readonly name: string;
  /**
   * Runs `fn` in a transaction (`BEGIN IMMEDIATE`, or `options.mode`): commits when it
   * resolves, rolls back when it throws, and resolves to its value. Other calls on this
   * database wait until it ends.
   */
  transaction<R>(fn: (tx: Transaction) => Promise<R>, options?: TransactionOptions): Promise<R>;
  /** A consistent SQLite file of the whole database, WAL folded in. */
  export(): Promise<Uint8Array>;
  /**
   * Replaces the whole database with a SQLite file. The file is validated first (header, size,
   * `integrity_check`); a file that is not a valid SQLite database is refused with an
   * `OutpostError` of code `NOT_A_DATABASE` and the old data is kept.
   */
  import(bytes: Uint8Array | ArrayBuffer): Promise<void>;
  /** Closes the database; later calls fail with `DATABASE_CLOSED`. Idempotent. */
  close(): Promise<void>;
  /** Whether `close()` has been called. */
  readonly closed: boolean;

  /**
   * Downloads and applies what changed on the server; resolves to whether anything did.
   * Pending local changes are rebased on top (see ARCHITECTURE.md). With
   * `longPollTimeoutMs`, waits that long for a change when there is none.
   */
  pull(options?: { longPollTimeoutMs?: number }): Promise<boolean>;
  /** Sends pending local changes; resolves to how many transactions the server took. */
  push(): Promise<number>;
  /** Push, then pull. */
  sync(): Promise<boolean>;
  /** Revision, pending changes, last pull/push, bytes, last error; null without sync. */
  syncStatus(): Promise<SyncStatus | null>;
  /** Called after every pull, push and change to pending changes; returns an unsubscribe. */
  onSyncStatus(listener: (status: SyncStatus) => void): () => void;
  /**
   * Called as a bootstrap or pull downloads pages (per chunk of a bootstrap), as it applies them,
   * while a push runs, and with `phase: 'idle'` when each ends; a listener added while one runs
   * gets its last event at once. The first listener also hears, at once, the events no listener
   * heard before it (a live bootstrap can end before the app subscribes). Returns an unsubscribe.
   */
  onSyncProgress(listener: (progress: SyncProgress) => void): () => void;
  /**
   * A live query: calls `onRows` with the query's rows at once, then again after every commit,
   * pull or import that changed a table the query reads (SQLite reports which, views and
   * triggers resolved), and never after one that changed none of them. Returns a function that
   * stops it (so does `options.signal`, and closing the database).
   */
  watch<T = Row>(sql: string, params: SqlParams | undefined, onRows: (rows: T[]) => void, options?: WatchOptions<T>): () => void;
  /**
   * Calls `listener` with the changed tables among `tables` (compared without case; an empty
   * list means every table) after each commit, pull or import that changed any of them.
   * Returns an unsubscribe.
   */
  onChange(tables: readonly string[], listener: TablesChangedListener): () => void;
  /** Local changes not yet confirmed by a pull, with the reason for any the server refused. */
  pendingChanges(): Promise<PendingChange[]>;
  /** Drops a pending change: never pushed, and the next pull's rebase leaves it out. */
  dropPendingChange(changeId: number): Promise<void>;
  /** Pushes a change the server refused again at the next push (after a transform fixes it). */
  retryRejectedChange(changeId: number): Promise<void>;
}
