/**
 * The public `Database` over a `Driver`: the worker behind Comlink in the browser, the engine
 * in-process under Node. Both entry points share this file, so the API behaves the same.
 *
 * Ordering: every top-level call takes the database's queue in call order. `transaction(fn)`
 * holds the queue from `BEGIN IMMEDIATE` until its `COMMIT` or `ROLLBACK`, so other callers
 * wait and never interleave with it; the `tx` object's calls bypass the queue (they are the
 * holder) and fail once the transaction has ended.
 */
import { unpackRows } from './engine/packed-rows.js';
import type { Driver } from './driver.js';
import { OutpostError } from './errors.js';
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

let savepointCounter = 0;

/**
 * The statements every scope can run, written once. A scope differs only in its gate: the
 * database's queue for `Database`, "still active" for a transaction's `tx`.
 */
abstract class Scope {
  constructor(protected readonly driver: Driver) {}

  /** Runs `fn` when this scope may run a statement. */
  protected abstract gate<T>(fn: () => Promise<T>): Promise<T>;

  exec(sql: string): Promise<void> {
    return this.gate(() => this.driver.exec(sql));
  }

  query<T = Row>(sql: string, params?: SqlParams): Promise<T[]> {
    return this.gate(async () => unpackRows<T>(await this.driver.query(sql, params)));
  }

  get<T = Row>(sql: string, params?: SqlParams): Promise<T | undefined> {
    return this.gate(async () => unpackRows<T>(await this.driver.query(sql, params, 1))[0]);
  }

  run(sql: string, params?: SqlParams): Promise<RunResult> {
    return this.gate(() => this.driver.run(sql, params));
  }

  batch(statements: readonly BatchStatement[]): Promise<RunResult[]> {
    return this.gate(() => this.driver.batch(statements));
  }

  execMany(sql: string): Promise<StatementResult[]> {
    return this.gate(() => this.driver.execMany(sql));
  }
}

class TransactionScope extends Scope implements Transaction {
  active = true;

  protected gate<T>(fn: () => Promise<T>): Promise<T> {
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
      const inner = new TransactionScope(this.driver);
      try {
        const result = await fn(inner);
        inner.active = false;
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

export class Database extends Scope implements DatabaseApi {
  private tail: Promise<unknown> = Promise.resolve();
  private isClosed = false;
  private closing: Promise<void> | null = null;

  constructor(
    readonly name: string,
    driver: Driver,
    private readonly onClose: () => void = () => {},
  ) {
    super(driver);
  }

  get closed(): boolean {
    return this.isClosed;
  }

  protected gate<T>(fn: () => Promise<T>): Promise<T> {
    return this.enqueue(fn);
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
    if (this.isClosed) return Promise.reject(new OutpostError(`database "${this.name}" is closed`, 'DATABASE_CLOSED'));
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
    return () => this.listeners.delete(listener);
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
