/**
 * The parts of the public API that every scope of database.ts shares beyond single calls: the
 * per-call options (`signal`, `timeoutMs`), prepared statements, iteration in chunks, and the
 * `sql` tag. database.ts gives each a `StatementScope`: its Driver and its gate (the database's
 * queue, or "the transaction is still active").
 *
 * Cancellation (see `CallOptions` in types.ts): a call aborted while it waits is taken out of
 * line and never runs; one aborted while it runs is stopped by the engine, through the limits
 * it is given (driver.ts `EngineLimits`): its deadline always, and the abort flag where the
 * page has one (`interrupt`).
 */
import type { Driver, EngineLimits } from './driver.js';
import { type PackedRows, unpackRows, unpackValues } from './engine/packed-rows.js';
import { AbortError, OutpostError } from './errors.js';
import type { CallOptions, ColumnInfo, Row, RunResult, SqlParam, SqlParams, SqlValue, Statement } from './types.js';

/** Rows per chunk of an iteration: the most a chunk holds in the engine, on the wire and here. */
export const ITERATE_CHUNK_ROWS = 1000;

/** What statements and iterations need of the scope that made them. */
export interface StatementScope {
  readonly driver: Driver;
  /** Runs `fn` when the scope may run a statement, under `options`. */
  call<T>(options: CallOptions | undefined, fn: (limits: EngineLimits | undefined) => Promise<T>): Promise<T>;
  /** Whether the database is closed (its statements are gone with it). */
  isClosed(): boolean;
}

let abortIds = 0;

/** A call's abort id: unique in this page and unlikely in another tab sharing the engine. */
function nextAbortId(): number {
  abortIds = (abortIds + 1) & 0xffff;
  return (((Math.random() * 0x7fff) | 0) << 16) | abortIds || 1;
}

function abortError(reason: unknown): AbortError {
  const why = reason instanceof Error ? `: ${reason.message}` : '';
  return new AbortError(`the call was aborted${why}`, reason);
}

/**
 * Runs `fn` through `gate` under `options` (the header). `interrupt` writes the page's abort
 * flag; without one, a running call cannot see its signal and settles with its own outcome.
 */
export function callWithOptions<T>(
  gate: <R>(fn: () => Promise<R>) => Promise<R>,
  interrupt: ((abortId: number) => void) | undefined,
  options: CallOptions | undefined,
  fn: (limits: EngineLimits | undefined) => Promise<T>,
): Promise<T> {
  const signal = options?.signal;
  const timeoutMs = options?.timeoutMs;
  if (signal === undefined && timeoutMs === undefined) return gate(() => fn(undefined));
  if (timeoutMs !== undefined && !(typeof timeoutMs === 'number' && timeoutMs >= 0)) {
    return Promise.reject(new OutpostError(`timeoutMs must be a number of milliseconds, 0 or more (got ${String(timeoutMs)})`, 'INVALID_ARGUMENT'));
  }
  if (signal?.aborted) return Promise.reject(abortError(signal.reason));
  const startedAt = performance.now();
  const abortId = nextAbortId();
  let running = false;
  let aborted: AbortError | null = null;
  let rejectWaiting: (e: Error) => void = () => {};
  const waiting = new Promise<never>((_, reject) => (rejectWaiting = reject));
  const abort = (error: AbortError): void => {
    if (aborted) return;
    aborted = error;
    if (running) interrupt?.(abortId);
    else rejectWaiting(error);
  };
  const onAbort = (): void => abort(abortError(signal!.reason));
  signal?.addEventListener('abort', onAbort, { once: true });
  const timer = timeoutMs === undefined ? null : setTimeout(() => abort(new AbortError(`the call took longer than its timeoutMs (${timeoutMs} ms)`)), timeoutMs);
  const result = gate(async () => {
    // Aborted while it waited: it leaves the line without running.
    if (aborted) throw aborted;
    running = true;
    const remainingMs = timeoutMs === undefined ? undefined : Math.max(0, timeoutMs - (performance.now() - startedAt));
    return fn({ timeoutMs: remainingMs, abortId });
  });
  // Once `waiting` has won the race, nobody else observes `result`.
  result.catch(() => {});
  return Promise.race([result, waiting])
    .catch((e: unknown) => {
      throw aborted && e instanceof Error && e.name === 'AbortError' ? aborted : e;
    })
    .finally(() => {
      signal?.removeEventListener('abort', onAbort);
      if (timer !== null) clearTimeout(timer);
    });
}

let handles = 0;
const handlePrefix = Math.random().toString(36).slice(2, 10);
let cursors = 0;

/** A statement handle unique among the tabs that may share one engine. */
export function nextHandle(): string {
  return `${handlePrefix}:${++handles}`;
}

/**
 * The rows of statement `handle`, fetched in chunks of `ITERATE_CHUNK_ROWS` (each chunk one
 * call through the scope) and handed out one by one without a new await per row. Ending early
 * (`return()`, which a `break` calls) ends the engine's cursor; with `own`, the statement is
 * finalized at the end too (`db.iterate` prepares one for itself).
 */
class ChunkedRows<T> implements AsyncIterableIterator<T> {
  private rows: T[] = [];
  private at = 0;
  private readonly cursor = ++cursors;
  private readonly startedAt = performance.now();
  private started = false;
  /** The engine has stepped the statement to its end. */
  private engineDone = false;
  /** This iterator is finished: exhausted, failed or returned. */
  private ended = false;
  private fetching: Promise<void> | null = null;

  constructor(
    private readonly scope: StatementScope,
    private readonly statement: { handle: string; sql: string; own: boolean },
    private readonly params: SqlParams | undefined,
    private readonly options: CallOptions | undefined,
    private readonly unpack: (rows: PackedRows) => T[],
  ) {}

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  next(): Promise<IteratorResult<T, undefined>> {
    if (this.at < this.rows.length) return Promise.resolve({ value: this.rows[this.at++]!, done: false });
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    this.fetching ??= this.fetch().finally(() => {
      this.fetching = null;
    });
    return this.fetching.then(() => this.next());
  }

  async return(): Promise<IteratorResult<T, undefined>> {
    await this.end();
    return { value: undefined, done: true };
  }

  private async fetch(): Promise<void> {
    if (this.engineDone) return this.end();
    try {
      const timeoutMs = this.options?.timeoutMs;
      const remainingMs = timeoutMs === undefined ? undefined : timeoutMs - (performance.now() - this.startedAt);
      if (remainingMs !== undefined && remainingMs <= 0) throw new AbortError(`the iteration took longer than its timeoutMs (${timeoutMs} ms)`);
      const { handle, sql } = this.statement;
      const step = { maxRows: ITERATE_CHUNK_ROWS, cursor: this.cursor, start: !this.started };
      this.started = true;
      const chunk = await this.scope.call({ signal: this.options?.signal, timeoutMs: remainingMs }, (limits) =>
        this.scope.driver.statementRows(handle, sql, this.params, step, limits),
      );
      if (this.ended) return;
      this.engineDone = chunk.done;
      this.rows = this.unpack(chunk.rows);
      this.at = 0;
      if (this.rows.length === 0 && chunk.done) await this.end();
    } catch (e) {
      await this.end();
      throw e;
    }
  }

  private async end(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    this.rows = [];
    this.at = 0;
    // Outside the scope's line: ending a cursor or freeing a statement changes no data, and a
    // transaction that ended must not keep its statements alive.
    if (this.scope.isClosed()) return;
    const { handle, own } = this.statement;
    if (this.started && !this.engineDone) await this.scope.driver.closeCursor(handle, this.cursor).catch(() => {});
    if (own) await this.scope.driver.finalize(handle).catch(() => {});
  }
}

export function iterateRows<T>(
  scope: StatementScope,
  statement: { handle: string; sql: string; own: boolean },
  params: SqlParams | undefined,
  options: CallOptions | undefined,
  unpack: (rows: PackedRows) => T[],
): AsyncIterableIterator<T> {
  return new ChunkedRows(scope, statement, params, options, unpack);
}

/** `db.prepare(sql)`'s statement. */
export class PreparedStatement<T = Row> implements Statement<T> {
  private isFinalized = false;

  constructor(
    private readonly scope: StatementScope,
    readonly sql: string,
    private readonly handle: string,
    private readonly columnInfo: ColumnInfo[],
  ) {}

  get finalized(): boolean {
    return this.isFinalized;
  }

  columns(): ColumnInfo[] {
    return this.columnInfo.map((c) => ({ ...c }));
  }

  async all(params?: SqlParams, options?: CallOptions): Promise<T[]> {
    return unpackRows<T>(await this.rows(params, undefined, options));
  }

  async get(params?: SqlParams, options?: CallOptions): Promise<T | undefined> {
    return unpackRows<T>(await this.rows(params, 1, options))[0];
  }

  async values(params?: SqlParams, options?: CallOptions): Promise<SqlValue[][]> {
    return unpackValues(await this.rows(params, undefined, options));
  }

  run(params?: SqlParams, options?: CallOptions): Promise<RunResult> {
    return this.live(() => this.scope.call(options, (limits) => this.scope.driver.statementRun(this.handle, this.sql, params, limits)));
  }

  iterate(params?: SqlParams, options?: CallOptions): AsyncIterableIterator<T> {
    if (this.isFinalized) throw this.finalizedError();
    return iterateRows(this.scope, { handle: this.handle, sql: this.sql, own: false }, params, options, (rows) => unpackRows<T>(rows));
  }

  async finalize(): Promise<void> {
    if (this.isFinalized) return;
    this.isFinalized = true;
    // Closing the database has freed it already.
    if (!this.scope.isClosed()) await this.scope.driver.finalize(this.handle);
  }

  private rows(params: SqlParams | undefined, maxRows: number | undefined, options: CallOptions | undefined): Promise<PackedRows> {
    return this.live(async () => {
      const chunk = await this.scope.call(options, (limits) => this.scope.driver.statementRows(this.handle, this.sql, params, { maxRows }, limits));
      return chunk.rows;
    });
  }

  private live<R>(fn: () => Promise<R>): Promise<R> {
    return this.isFinalized ? Promise.reject(this.finalizedError()) : fn();
  }

  private finalizedError(): OutpostError {
    return new OutpostError(`this statement was finalized: ${this.sql}`, 'STATEMENT_FINALIZED');
  }
}

/** Prepares `sql` in the engine under a new handle; rejects when it does not compile. */
export async function prepareStatement<T>(scope: StatementScope, sql: string): Promise<Statement<T>> {
  if (typeof sql !== 'string') throw new OutpostError('prepare() needs the SQL text', 'INVALID_ARGUMENT');
  const handle = nextHandle();
  const info = await scope.call(undefined, () => scope.driver.prepare(handle, sql));
  return new PreparedStatement<T>(scope, sql, handle, info.columns);
}

/** `db.iterate(sql, params)`: a statement of its own, finalized when the iteration ends. */
export function iterateSql<T>(scope: StatementScope, sql: string, params: SqlParams | undefined, options: CallOptions | undefined): AsyncIterableIterator<T> {
  return iterateRows(scope, { handle: nextHandle(), sql, own: true }, params, options, (rows) => unpackRows<T>(rows));
}

/** The text and parameters of a `sql` tagged template: each value becomes `?N`, bound, never spliced. */
export function taggedSql(strings: TemplateStringsArray, values: readonly SqlParam[]): { sql: string; params: SqlParam[] } {
  if (!Array.isArray(strings) || !('raw' in strings)) {
    throw new OutpostError('sql is a tagged template: write sql`SELECT ... ${value}`, not sql(text)', 'INVALID_ARGUMENT');
  }
  let sql = strings[0] ?? '';
  for (let i = 1; i < strings.length; i++) sql += `?${i}${strings[i]}`;
  return { sql, params: [...values] };
}
