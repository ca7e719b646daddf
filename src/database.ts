/**
 * The public `Database` over a `Driver`: the worker behind Comlink in the browser, the engine
 * in-process under Node. Both entry points share this file, so the API behaves the same.
 *
 * Ordering: every top-level call takes the database's queue in call order. `transaction(fn)`
 * holds the queue from `BEGIN IMMEDIATE` until its `COMMIT` or `ROLLBACK`, so other callers
 * wait and never interleave with it; the `tx` object's calls bypass the queue (they are the
 * holder) and fail once the transaction has ended.
 */
import { type PackedRows, unpackRows } from './engine/packed-rows.js';
import { OutpostError } from './errors.js';
import type { SyncDriver } from './sync/driver.js';
import type {
  BatchStatement,
  Database as DatabaseApi,
  PendingChange,
  Row,
  RunResult,
  SqlParams,
  StatementResult,
  SyncStatus,
  Transaction,
} from './types.js';

/** What a `Database` needs from the engine, wherever it runs. */
export interface Driver extends SyncDriver {
  exec(sql: string): Promise<void>;
  /** Rows of one statement; at most `maxRows` when given. */
  query(sql: string, params: SqlParams | undefined, maxRows?: number): Promise<PackedRows>;
  run(sql: string, params: SqlParams | undefined): Promise<RunResult>;
  batch(statements: readonly BatchStatement[]): Promise<RunResult[]>;
  execMany(sql: string): Promise<StatementResult[]>;
  /** Rolls back whatever transaction is open; never throws for "no transaction". */
  rollbackQuietly(sql?: string): Promise<void>;
  export(): Promise<Uint8Array>;
  import(bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

let savepointCounter = 0;

class TransactionScope implements Transaction {
  active = true;

  constructor(private readonly driver: Driver) {}

  private check(): void {
    if (!this.active) {
      throw new OutpostError('this transaction has already ended; use the database, not the tx object, after it', 'INVALID_ARGUMENT');
    }
  }

  async exec(sql: string): Promise<void> {
    this.check();
    return this.driver.exec(sql);
  }

  async query<T = Row>(sql: string, params?: SqlParams): Promise<T[]> {
    this.check();
    return unpackRows<T>(await this.driver.query(sql, params));
  }

  async get<T = Row>(sql: string, params?: SqlParams): Promise<T | undefined> {
    this.check();
    return unpackRows<T>(await this.driver.query(sql, params, 1))[0];
  }

  async run(sql: string, params?: SqlParams): Promise<RunResult> {
    this.check();
    return this.driver.run(sql, params);
  }

  async batch(statements: readonly BatchStatement[]): Promise<RunResult[]> {
    this.check();
    return this.driver.batch(statements);
  }

  async execMany(sql: string): Promise<StatementResult[]> {
    this.check();
    return this.driver.execMany(sql);
  }

  /** A nested transaction: a savepoint that is released on success and rolled back on error. */
  async transaction<R>(fn: (tx: Transaction) => Promise<R>): Promise<R> {
    this.check();
    const name = `outpost_sp${++savepointCounter}`;
    await this.driver.exec(`SAVEPOINT ${name}`);
    const inner = new TransactionScope(this.driver);
    try {
      const result = await fn(inner);
      inner.active = false;
      await this.driver.exec(`RELEASE ${name}`);
      return result;
    } catch (e) {
      inner.active = false;
      await this.driver.rollbackQuietly(`ROLLBACK TO ${name}; RELEASE ${name}`);
      throw e;
    }
  }
}

export class Database implements DatabaseApi {
  private tail: Promise<unknown> = Promise.resolve();
  private isClosed = false;
  private closing: Promise<void> | null = null;

  constructor(
    readonly name: string,
    private readonly driver: Driver,
    private readonly onClose: () => void = () => {},
  ) {}

  get closed(): boolean {
    return this.isClosed;
  }

  /** Runs `fn` when every earlier call has finished. */
  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    if (this.isClosed) return Promise.reject(new OutpostError(`database "${this.name}" is closed`, 'DATABASE_CLOSED'));
    const result = this.tail.then(fn);
    this.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  exec(sql: string): Promise<void> {
    return this.enqueue(() => this.driver.exec(sql));
  }

  query<T = Row>(sql: string, params?: SqlParams): Promise<T[]> {
    return this.enqueue(async () => unpackRows<T>(await this.driver.query(sql, params)));
  }

  get<T = Row>(sql: string, params?: SqlParams): Promise<T | undefined> {
    return this.enqueue(async () => unpackRows<T>(await this.driver.query(sql, params, 1))[0]);
  }

  run(sql: string, params?: SqlParams): Promise<RunResult> {
    return this.enqueue(() => this.driver.run(sql, params));
  }

  batch(statements: readonly BatchStatement[]): Promise<RunResult[]> {
    return this.enqueue(() => this.driver.batch(statements));
  }

  execMany(sql: string): Promise<StatementResult[]> {
    return this.enqueue(() => this.driver.execMany(sql));
  }

  transaction<R>(fn: (tx: Transaction) => Promise<R>): Promise<R> {
    return this.enqueue(async () => {
      await this.driver.exec('BEGIN IMMEDIATE');
      const tx = new TransactionScope(this.driver);
      try {
        const result = await fn(tx);
        tx.active = false;
        await this.driver.exec('COMMIT');
        return result;
      } catch (e) {
        tx.active = false;
        await this.driver.rollbackQuietly();
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
    if (this.listeners.size === 0 || this.isClosed) return;
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
    if (this.isClosed) return Promise.reject(new OutpostError(`database "${this.name}" is closed`, 'DATABASE_CLOSED'));
    // One pull at a time; a second caller shares the one in flight.
    this.pulling ??= this.notifying(
      (async () => {
        const ticket = await this.driver.syncFetchPull(options.longPollTimeoutMs);
        if (ticket === null) return false;
        await this.enqueue(() => this.driver.syncApplyPull(ticket));
        return true;
      })(),
    ).finally(() => {
      this.pulling = null;
    });
    return this.pulling;
  }

  push(): Promise<number> {
    if (this.isClosed) return Promise.reject(new OutpostError(`database "${this.name}" is closed`, 'DATABASE_CLOSED'));
    return this.notifying(this.driver.syncPush());
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
    return () => this.listeners.delete(listener);
  }

  pendingChanges(): Promise<PendingChange[]> {
    return this.enqueue(() => this.driver.syncPending());
  }

  dropPendingChange(changeId: number): Promise<void> {
    return this.notifying(this.enqueue(() => this.driver.syncDrop(changeId)));
  }

  retryRejectedChange(changeId: number): Promise<void> {
    return this.notifying(this.enqueue(() => this.driver.syncRetry(changeId)));
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    const finished = this.tail;
    this.isClosed = true;
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
