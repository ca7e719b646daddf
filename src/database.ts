/**
 * The public `Database` over a `Driver`: the database worker in the browser (over a
 * MessagePort), the engine thread or the in-process engine under Node. Both entry points share
 * this file, so the API behaves the same.
 *
 * Ordering: every top-level call takes the database's queue in call order. `transaction(fn)`
 * holds the queue from `BEGIN IMMEDIATE` until its `COMMIT` or `ROLLBACK`, so other callers
 * wait and never interleave with it; the `tx` object's calls bypass the queue (they are the
 * holder) and fail once the transaction has ended.
 *
 * Per-call options, prepared statements, `iterate` and the `sql` tag are statement.ts's: each
 * scope lends them its gate. An aborted call inside `transaction(fn)` ends the transaction:
 * SQLite undoes an interrupted write's whole transaction, so every abort does, whatever the
 * statement was, and the `tx` refuses further calls.
 *
 * Live queries: the engine reports the tables each commit, pull or import changed
 * (`Driver.onTablesChanged`, subscribed on first use); a watch re-runs its query through the
 * queue when one of the tables it last read is among them, at most once per `throttleMs`, and
 * always once more after the last change it saw.
 */
import { unpackRows } from './engine/packed-rows.js';
import type { Driver, EngineLimits } from './driver.js';
import { AbortError, OutpostError } from './errors.js';
import { type StatementScope, callWithOptions, iterateSql, prepareStatement, taggedSql } from './statement.js';
import type {
  BatchStatement,
  CallOptions,
  SqlParam,
  Statement,
  TransactionOptions,
  Database as DatabaseApi,
  PendingChange,
  Row,
  RunResult,
  SqlParams,
  StatementResult,
  SyncProgress,
  SyncStatus,
  Transaction,
  TablesChangedListener,
  WatchOptions,
} from './types.js';

let savepointCounter = 0;

/** One `watch`: re-runs its query when a table it reads changes, throttled, never two at once. */
class Watcher<T> {
  private tables: Set<string> | null = null;
  private dirty = false;
  private running = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private lastRunAt = Number.NEGATIVE_INFINITY;
  private previous: T[] | null = null;
  stopped = false;

  constructor(
    private readonly query: () => Promise<{ rows: T[]; tables: string[] }>,
    private readonly onRows: (rows: T[]) => void,
    private readonly options: WatchOptions<T>,
  ) {}

  /** A commit, pull or import changed `changed` (lower case). */
  changed(changed: readonly string[]): void {
    // Before the first result the tables are unknown: any change may matter.
    if (this.tables && !changed.some((t) => this.tables!.has(t))) return;
    this.dirty = true;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  schedule(): void {
    if (this.stopped || this.running || this.timer !== null) return;
    const throttleMs = this.options.throttleMs ?? 16;
    const delayMs = Math.max(0, this.lastRunAt + throttleMs - performance.now());
    if (delayMs === 0) void this.run();
    else this.timer = setTimeout(() => void this.run(), delayMs);
  }

  private async run(): Promise<void> {
    this.timer = null;
    this.dirty = false;
    this.running = true;
    this.lastRunAt = performance.now();
    try {
      const { rows, tables } = await this.query();
      if (this.stopped) return;
      this.tables = new Set(tables.map((t) => t.toLowerCase()));
      const key = this.options.key;
      const result = key && this.previous ? keepIdentity(this.previous, rows, key) : rows;
      this.previous = result;
      this.onRows(result);
    } catch (e) {
      if (this.stopped) return;
      const error = e instanceof Error ? e : new Error(String(e));
      if (this.options.onError) this.options.onError(error);
      else console.error('outpost: a watched query failed', error);
    } finally {
      this.running = false;
      if (this.dirty) this.schedule();
    }
  }
}

/** `next`, with each row whose key and values equal a row of `previous` replaced by that row. */
function keepIdentity<T>(previous: readonly T[], next: T[], key: string): T[] {
  const byKey = new Map<string, T>();
  for (const row of previous) byKey.set(keyOf((row as Record<string, unknown>)[key]), row);
  return next.map((row) => {
    const old = byKey.get(keyOf((row as Record<string, unknown>)[key]));
    return old !== undefined && sameRow(old as Record<string, unknown>, row as Record<string, unknown>) ? old : row;
  });
}

function keyOf(value: unknown): string {
  if (value instanceof Uint8Array) return `b:${Array.from(value).join(',')}`;
  return `${typeof value}:${String(value)}`;
}

function sameRow(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const names = Object.keys(a);
  if (names.length !== Object.keys(b).length) return false;
  return names.every((n) => sameValue(a[n], b[n]));
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a instanceof Uint8Array && b instanceof Uint8Array) return a.length === b.length && a.every((x, i) => x === b[i]);
  return a === b || Object.is(a, b);
}

/**
 * The statements every scope can run, written once. A scope differs only in its gate: the
 * database's queue for `Database`, "still active" for a transaction's `tx`.
 */
abstract class Scope implements StatementScope {
  constructor(
    readonly driver: Driver,
    /** Writes the page's abort flag for a running call (worker/client.ts), where there is one. */
    protected readonly interrupt: ((abortId: number) => void) | undefined,
  ) {}

  /** Runs `fn` when this scope may run a statement. */
  protected abstract gate<T>(fn: () => Promise<T>): Promise<T>;

  abstract isClosed(): boolean;

  /** A call of this scope rejected with an AbortError (a transaction ends itself then). */
  protected aborted(_error: Error): void {}

  call<T>(options: CallOptions | undefined, fn: (limits: EngineLimits | undefined) => Promise<T>): Promise<T> {
    const result = callWithOptions((f) => this.gate(f), this.interrupt, options, fn);
    if (options === undefined) return result;
    return result.catch((e: unknown) => {
      if (e instanceof Error && e.name === 'AbortError') this.aborted(e);
      throw e;
    });
  }

  exec(sql: string, options?: CallOptions): Promise<void> {
    return this.call(options, (limits) => this.driver.exec(sql, limits));
  }

  query<T = Row>(sql: string, params?: SqlParams, options?: CallOptions): Promise<T[]> {
    return this.call(options, async (limits) => unpackRows<T>(await this.driver.query(sql, params, undefined, limits)));
  }

  get<T = Row>(sql: string, params?: SqlParams, options?: CallOptions): Promise<T | undefined> {
    return this.call(options, async (limits) => unpackRows<T>(await this.driver.query(sql, params, 1, limits))[0]);
  }

  run(sql: string, params?: SqlParams, options?: CallOptions): Promise<RunResult> {
    return this.call(options, (limits) => this.driver.run(sql, params, limits));
  }

  batch(statements: readonly BatchStatement[], options?: CallOptions): Promise<RunResult[]> {
    return this.call(options, (limits) => this.driver.batch(statements, limits));
  }

  execMany(sql: string, options?: CallOptions): Promise<StatementResult[]> {
    return this.call(options, (limits) => this.driver.execMany(sql, limits));
  }

  prepare<T = Row>(sql: string): Promise<Statement<T>> {
    return prepareStatement<T>(this, sql);
  }

  iterate<T = Row>(sql: string, params?: SqlParams, options?: CallOptions): AsyncIterableIterator<T> {
    return iterateSql<T>(this, sql, params, options);
  }

  sql<T = Row>(strings: TemplateStringsArray, ...values: SqlParam[]): Promise<T[]> {
    try {
      const { sql, params } = taggedSql(strings, values);
      return this.query<T>(sql, params);
    } catch (e) {
      return Promise.reject(e);
    }
  }
}

/** What a transaction and its savepoints share: the AbortError that ended it, if one did. */
interface TransactionState {
  aborted: Error | null;
}

class TransactionScope extends Scope implements Transaction {
  active = true;

  constructor(
    driver: Driver,
    interrupt: ((abortId: number) => void) | undefined,
    private readonly database: Scope,
    readonly state: TransactionState,
  ) {
    super(driver, interrupt);
  }

  isClosed(): boolean {
    return this.database.isClosed();
  }

  protected override aborted(error: Error): void {
    this.state.aborted ??= error;
  }

  protected gate<T>(fn: () => Promise<T>): Promise<T> {
    if (this.state.aborted) {
      return Promise.reject(new AbortError('a call of this transaction was aborted, so it is rolled back; run it again', this.state.aborted));
    }
    if (!this.active) {
      return Promise.reject(
        new OutpostError('this transaction has already ended; use the database, not the tx object, after it', 'INVALID_ARGUMENT'),
      );
    }
    return fn();
  }

  /** A nested transaction: a savepoint that is released on success and rolled back on error. */
  transaction<R>(fn: (tx: Transaction) => Promise<R>): Promise<R> {
    return this.gate(async () => {
      const name = `outpost_sp${++savepointCounter}`;
      await this.driver.exec(`SAVEPOINT ${name}`);
      const inner = new TransactionScope(this.driver, this.interrupt, this.database, this.state);
      try {
        const result = await fn(inner);
        inner.active = false;
        if (this.state.aborted) throw this.state.aborted;
        await this.driver.exec(`RELEASE ${name}`);
        return result;
      } catch (e) {
        inner.active = false;
        await this.driver.rollback(name);
        throw e;
      }
    });
  }
}

const BEGIN: Record<NonNullable<TransactionOptions['mode']>, string> = {
  deferred: 'BEGIN DEFERRED',
  immediate: 'BEGIN IMMEDIATE',
  exclusive: 'BEGIN EXCLUSIVE',
};

export class Database extends Scope implements DatabaseApi {
  private tail: Promise<unknown> = Promise.resolve();
  private closedFlag = false;
  private closing: Promise<void> | null = null;

  constructor(
    readonly name: string,
    driver: Driver,
    private readonly onClose: () => void = () => {},
    interrupt?: (abortId: number) => void,
  ) {
    super(driver, interrupt);
  }

  isClosed(): boolean {
    return this.closedFlag;
  }

  // ---- live queries -----------------------------------------------------------------------

  private readonly watchers = new Set<Watcher<unknown>>();
  private readonly changeListeners = new Set<{ tables: Set<string>; listener: TablesChangedListener }>();
  private subscribed: Promise<void> | null = null;

  /** Subscribes to the engine's change events once, on first use. */
  private subscribe(): Promise<void> {
    this.subscribed ??= this.driver.onTablesChanged((tables) => this.tablesChanged(tables));
    return this.subscribed;
  }

  private tablesChanged(tables: string[]): void {
    const lower = tables.map((t) => t.toLowerCase());
    for (const w of [...this.watchers]) w.changed(lower);
    for (const { tables: wanted, listener } of [...this.changeListeners]) {
      const hits = wanted.size === 0 ? tables : tables.filter((_, i) => wanted.has(lower[i]!));
      if (hits.length > 0) listener(hits);
    }
  }

  watch<T = Row>(sql: string, params: SqlParams | undefined, onRows: (rows: T[]) => void, options: WatchOptions<T> = {}): () => void {
    if (this.closedFlag) throw new OutpostError(`database "${this.name}" is closed`, 'DATABASE_CLOSED');
    // The query takes its place in the queue at once (not after an await), so a call made
    // after the change that triggered it runs after it.
    const query = (): Promise<{ rows: T[]; tables: string[] }> => {
      const subscribed = this.subscribe();
      return this.enqueue(async () => {
        await subscribed;
        const { rows, tables } = await this.driver.watchQuery(sql, params);
        return { rows: unpackRows<T>(rows), tables };
      });
    };
    const watcher = new Watcher<T>(query, onRows, options);
    const stop = (): void => {
      watcher.stop();
      this.watchers.delete(watcher as Watcher<unknown>);
      options.signal?.removeEventListener('abort', stop);
    };
    if (options.signal?.aborted) return stop;
    options.signal?.addEventListener('abort', stop, { once: true });
    // The set holds watchers of every row type; it only calls changed() and stop(), which do not
    // depend on T.
    this.watchers.add(watcher as Watcher<unknown>);
    watcher.schedule();
    return stop;
  }

  onChange(tables: readonly string[], listener: TablesChangedListener): () => void {
    const entry = { tables: new Set(tables.map((t) => t.toLowerCase())), listener };
    this.changeListeners.add(entry);
    void this.subscribe().catch(() => {});
    return () => {
      this.changeListeners.delete(entry);
    };
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  protected gate<T>(fn: () => Promise<T>): Promise<T> {
    return this.enqueue(fn);
  }

  /** Runs `fn` when every earlier call has finished. */
  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closedFlag) return Promise.reject(new OutpostError(`database "${this.name}" is closed`, 'DATABASE_CLOSED'));
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  transaction<R>(fn: (tx: Transaction) => Promise<R>, options: TransactionOptions = {}): Promise<R> {
    const begin = BEGIN[options.mode ?? 'immediate'];
    if (!begin) {
      return Promise.reject(new OutpostError(`transaction mode must be 'deferred', 'immediate' or 'exclusive' (got ${String(options.mode)})`, 'INVALID_ARGUMENT'));
    }
    return this.enqueue(async () => {
      await this.driver.exec(begin);
      const tx = new TransactionScope(this.driver, this.interrupt, this, { aborted: null });
      try {
        const result = await fn(tx);
        tx.active = false;
        // An aborted call ended the transaction (types.ts, CallOptions), even if fn caught it.
        if (tx.state.aborted) throw tx.state.aborted;
        await this.driver.exec('COMMIT');
        return result;
      } catch (e) {
        tx.active = false;
        await this.driver.rollback();
        throw e;
      }
    });
  }

  export(): Promise<Uint8Array> {
    return this.enqueue(() => this.driver.export());
  }

  import(bytes: Uint8Array | ArrayBuffer): Promise<void> {
    const view = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : bytes;
    return this.enqueue(() => this.driver.import(view));
  }

  // ---- sync ------------------------------------------------------------------------------

  private readonly listeners = new Set<(status: SyncStatus) => void>();
  private pulling: Promise<boolean> | null = null;

  private async emit(): Promise<void> {
    if (this.listeners.size === 0 || this.closedFlag) return;
    const status = await this.driver.syncStatus();
    if (status) for (const l of [...this.listeners]) l(status);
  }

  private async notifying<T>(op: Promise<T>): Promise<T> {
    try {
      return await op;
    } finally {
      await this.emit().catch(() => {});
    }
  }

  pull(options: { longPollTimeoutMs?: number } = {}): Promise<boolean> {
    if (this.closedFlag) return Promise.reject(new OutpostError(`database "${this.name}" is closed`, 'DATABASE_CLOSED'));
    // One pull at a time; a second caller shares the one in flight.
    this.pulling ??= this.notifying(
      (async () => {
        const updateId = await this.driver.fetchPull(options.longPollTimeoutMs);
        if (updateId === null) return false;
        await this.enqueue(() => this.driver.applyPull(updateId));
        return true;
      })(),
    ).finally(() => {
      this.pulling = null;
    });
    return this.pulling;
  }

  push(): Promise<number> {
    if (this.closedFlag) return Promise.reject(new OutpostError(`database "${this.name}" is closed`, 'DATABASE_CLOSED'));
    return this.notifying(this.driver.push());
  }

  async sync(): Promise<boolean> {
    await this.push();
    return this.pull();
  }

  syncStatus(): Promise<SyncStatus | null> {
    return this.driver.syncStatus();
  }

  onSyncStatus(listener: (status: SyncStatus) => void): () => void {
    this.listeners.add(listener);
    // Live sync pulls and pushes by itself: its progress events say when the status moved.
    this.subscribeProgress();
    return () => this.listeners.delete(listener);
  }

  private readonly progressListeners = new Set<(progress: SyncProgress) => void>();
  private progressSubscribed: Promise<void> | null = null;
  private lastProgress: SyncProgress | null = null;

  private subscribeProgress(): void {
    this.progressSubscribed ??= this.driver.onSyncProgress((p) => this.progressed(p)).catch(() => {});
  }

  /**
   * Progress that arrived before the first `onSyncProgress` listener (the driver's subscription
   * was made for `onSyncStatus`): that listener hears it first, so a download that ended before
   * the app listened is still heard once. Null once a listener has heard it.
   */
  private unheardProgress: SyncProgress[] | null = [];

  private progressed(progress: SyncProgress): void {
    this.lastProgress = progress;
    if (this.progressListeners.size === 0 && this.unheardProgress && this.unheardProgress.push(progress) > 1000) this.unheardProgress.shift();
    for (const l of [...this.progressListeners]) l(progress);
    if (progress.phase === 'idle') void this.emit().catch(() => {});
  }

  onSyncProgress(listener: (progress: SyncProgress) => void): () => void {
    this.progressListeners.add(listener);
    const unheard = this.unheardProgress;
    this.unheardProgress = null;
    if (unheard && unheard.length > 0) for (const p of unheard) listener(p);
    else if (this.lastProgress && this.lastProgress.phase !== 'idle') listener(this.lastProgress);
    // After the replay: a driver that kept progress from before anyone listened replays it now.
    this.subscribeProgress();
    return () => this.progressListeners.delete(listener);
  }

  pendingChanges(): Promise<PendingChange[]> {
    return this.enqueue(() => this.driver.pendingChanges());
  }

  dropPendingChange(changeId: number): Promise<void> {
    return this.notifying(this.enqueue(() => this.driver.dropPendingChange(changeId)));
  }

  retryRejectedChange(changeId: number): Promise<void> {
    return this.notifying(this.enqueue(() => this.driver.retryRejectedChange(changeId)));
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    const finished = this.tail;
    this.closedFlag = true;
    for (const w of this.watchers) w.stop();
    this.watchers.clear();
    this.changeListeners.clear();
    this.progressListeners.clear();
    this.closing = (async () => {
      await finished;
      try {
        await this.driver.close();
      } finally {
        this.onClose();
      }
    })();
    return this.closing;
  }
}
