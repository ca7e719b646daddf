/**
 * Drizzle's session over an Outpost scope: the `Database`, or the `tx` of one of its
 * transactions. Each Drizzle transaction gets a session of its own bound to its `tx`, so its
 * queries run inside it while every query made through the database waits in the database's
 * queue until it ends (Drizzle's `sqlite-proxy` has one session for everything, and a query
 * from elsewhere would join an open transaction).
 *
 * Drizzle maps selected columns by position, so `values` needs rows as arrays, and Outpost's
 * `query` returns objects keyed by column name. A SELECT is therefore run as
 * `SELECT * FROM (<sql>)`: SQLite names the columns of a subquery uniquely (`id`, `id:1`), so a
 * join of two tables with an `id` column keeps both. An object keeps its keys in column order
 * unless a key looks like an array index (a column named `1`); then the query is run again with
 * every column renamed `c0`, `c1`, ... through a CTE's column list. A statement that is not a
 * SELECT (INSERT ... RETURNING) runs as it is, where duplicate or numeric column names would
 * collapse; Drizzle's own statements never produce them.
 */
import { DrizzleQueryError, entityKind } from 'drizzle-orm';
import type { BatchItem } from 'drizzle-orm/batch';
import { NoopLogger, type Logger } from 'drizzle-orm/logger';
import type { RelationalSchemaConfig, TablesRelationalConfig } from 'drizzle-orm/relations';
import { fillPlaceholders, type Query } from 'drizzle-orm/sql/sql';
import { SQLiteTransaction, type SQLiteAsyncDialect } from 'drizzle-orm/sqlite-core';
import type { SelectedFieldsOrdered } from 'drizzle-orm/sqlite-core/query-builders/select.types';
import {
  SQLitePreparedQuery,
  SQLiteSession,
  type PreparedQueryConfig as BaseConfig,
  type SQLiteExecuteMethod,
  type SQLiteTransactionConfig,
} from 'drizzle-orm/sqlite-core/session';
import * as drizzleUtils from 'drizzle-orm/utils';
import type { Database, Row, RunResult, SqlParam, SqlValue, Transaction } from '../types.js';

/**
 * Drizzle's row mapper, which every driver of Drizzle's uses; its declaration is marked
 * internal, so it is typed here by its signature in drizzle-orm 0.45.
 */
const mapResultRow = (drizzleUtils as unknown as {
  mapResultRow: (fields: SelectedFieldsOrdered, row: unknown[], joinsNotNullableMap: Record<string, boolean> | undefined) => unknown;
}).mapResultRow;

/** The internal parts of Drizzle's classes a driver uses (stripped from its declarations). */
interface PreparedInternals {
  joinsNotNullableMap?: Record<string, boolean>;
}
interface BatchItemInternals {
  _prepare(): SQLitePreparedQuery<BaseConfig> & { getQuery(): Query };
}

/** Where a session's statements run: the database (through its queue) or one transaction. */
export type Scope = Database | Transaction;

export interface OutpostSessionOptions {
  logger?: Logger;
}

type PreparedQueryConfig = Omit<BaseConfig, 'statement' | 'run'>;
type ResultMapper = (rows: unknown[][], mapColumnValue?: (value: unknown) => unknown) => unknown;

/** A string that JavaScript orders first among an object's keys (an array index). */
const INDEX_KEY = /^(?:0|[1-9]\d*)$/;
/** Statements that write; a WITH that contains one is not wrapped in a subquery. */
const WRITE_WORD = /\b(?:insert|update|delete|replace)\b/i;

/** Whether `sql` is a read that can stand as a subquery. Quoted names are left out of the test. */
function isSelect(sql: string): boolean {
  const text = sql.trimStart();
  if (/^select\b/i.test(text)) return true;
  return /^with\b/i.test(text) && !WRITE_WORD.test(text.replace(/"(?:[^"]|"")*"|'(?:[^']|'')*'|`[^`]*`|\[[^\]]*\]/g, ''));
}

/** Drizzle passes parameters as `unknown[]`; Outpost's binder refuses what it cannot bind, with a clear error. */
function asParams(params: unknown[]): SqlParam[] {
  return params as SqlParam[];
}

/** Rows as arrays of cells in column order, the shape Drizzle maps by position. */
async function arrayRows(scope: Scope, sql: string, params: SqlParam[], one: boolean): Promise<SqlValue[][]> {
  const read = async (text: string): Promise<Row[]> => {
    if (!one) return scope.query(text, params);
    const row = await scope.get(text, params);
    return row === undefined ? [] : [row];
  };
  if (!isSelect(sql)) return (await read(sql)).map((row) => Object.values(row));
  const rows = await read(`SELECT * FROM (${sql}\n)`);
  const first = rows[0];
  if (first === undefined || !Object.keys(first).some((key) => INDEX_KEY.test(key))) {
    return rows.map((row) => Object.values(row));
  }
  // A column named like an array index would be listed first: name every column by position.
  const count = Object.keys(first).length;
  const names = Array.from({ length: count }, (_, i) => `"c${i}"`).join(', ');
  const renamed = await read(`WITH "outpost_values"(${names}) AS (${sql}\n) SELECT * FROM "outpost_values"`);
  return renamed.map((row) => Object.values(row));
}

export class OutpostPreparedQuery<T extends PreparedQueryConfig = PreparedQueryConfig> extends SQLitePreparedQuery<{
  type: 'async';
  run: RunResult;
  all: T['all'];
  get: T['get'];
  values: T['values'];
  execute: T['execute'];
}> {
  static override readonly [entityKind]: string = 'OutpostPreparedQuery';

  constructor(
    private readonly scope: Scope,
    query: Query,
    private readonly logger: Logger,
    private readonly fields: SelectedFieldsOrdered | undefined,
    private readonly method: SQLiteExecuteMethod,
    private readonly arrayMode: boolean,
    private readonly customResultMapper: ResultMapper | undefined,
  ) {
    super('async', method, query);
  }

  override getQuery(): Query & { method: SQLiteExecuteMethod } {
    return { ...this.query, method: this.method };
  }

  private params(placeholderValues?: Record<string, unknown>): SqlParam[] {
    const params = asParams(fillPlaceholders(this.query.params, placeholderValues ?? {}));
    this.logger.logQuery(this.query.sql, params);
    return params;
  }

  /** Whether Drizzle maps this query's rows by position. */
  private mapsByPosition(): boolean {
    return this.fields !== undefined || this.customResultMapper !== undefined;
  }

  /**
   * What `method` reads before mapping, in `scope`: the database or a transaction (a batch runs
   * its queries in one). `mapResult(raw, true)` turns it into the query's result.
   */
  async raw(scope: Scope, method: SQLiteExecuteMethod | 'values', params: SqlParam[]): Promise<unknown> {
    const { sql } = this.query;
    switch (method) {
      case 'run':
        return scope.run(sql, params);
      case 'all':
        return this.mapsByPosition() ? arrayRows(scope, sql, params, false) : scope.query(sql, params);
      case 'get':
        return this.mapsByPosition() ? arrayRows(scope, sql, params, true) : scope.get(sql, params);
      case 'values':
        return arrayRows(scope, sql, params, false);
    }
  }

  /** Runs `method` on this query's own scope; a failure is a DrizzleQueryError with Outpost's error as its cause. */
  private async execute_(method: SQLiteExecuteMethod | 'values', placeholderValues?: Record<string, unknown>): Promise<unknown> {
    const params = this.params(placeholderValues);
    try {
      return await this.raw(this.scope, method, params);
    } catch (e) {
      throw new DrizzleQueryError(this.query.sql, params, e instanceof Error ? e : new Error(String(e)));
    }
  }

  /** Set by Drizzle's select builder on the prepared query: which joined tables may be null. */
  private get nullableJoins(): Record<string, boolean> | undefined {
    return (this as PreparedInternals).joinsNotNullableMap;
  }

  async run(placeholderValues?: Record<string, unknown>): Promise<RunResult> {
    // raw('run') resolves to the scope's RunResult.
    return (await this.execute_('run', placeholderValues)) as RunResult;
  }

  async all(placeholderValues?: Record<string, unknown>): Promise<T['all']> {
    return this.mapAllResult(await this.execute_('all', placeholderValues));
  }

  async get(placeholderValues?: Record<string, unknown>): Promise<T['get']> {
    return this.mapGetResult(await this.execute_('get', placeholderValues));
  }

  async values<V extends unknown[] = unknown[]>(placeholderValues?: Record<string, unknown>): Promise<V[]> {
    // raw('values') resolves to arrays of cells; Drizzle types each row by the caller's V.
    return (await this.execute_('values', placeholderValues)) as V[];
  }

  override mapAllResult(rows: unknown): unknown {
    if (!this.mapsByPosition()) return rows;
    // Positional rows from raw('all').
    const arrays = rows as unknown[][];
    if (this.customResultMapper) return this.customResultMapper(arrays);
    return arrays.map((row) => mapResultRow(this.fields!, row, this.nullableJoins));
  }

  override mapGetResult(rows: unknown): unknown {
    if (!this.mapsByPosition()) return rows;
    // Positional rows from raw('get'): at most one.
    const arrays = rows as unknown[][];
    const row = arrays[0];
    if (row === undefined) return undefined;
    if (this.customResultMapper) return this.customResultMapper(arrays);
    return mapResultRow(this.fields!, row, this.nullableJoins);
  }

  /** @internal Drizzle's relational queries ask whether rows come as arrays. */
  isResponseInArrayMode(): boolean {
    return this.arrayMode;
  }
}

export class OutpostSession<TFullSchema extends Record<string, unknown>, TSchema extends TablesRelationalConfig> extends SQLiteSession<
  'async',
  RunResult,
  TFullSchema,
  TSchema
> {
  static override readonly [entityKind]: string = 'OutpostSession';
  private readonly logger: Logger;

  constructor(
    readonly scope: Scope,
    readonly dialect: SQLiteAsyncDialect,
    private readonly schema: RelationalSchemaConfig<TSchema> | undefined,
    private readonly options: OutpostSessionOptions = {},
  ) {
    super(dialect);
    this.logger = options.logger ?? new NoopLogger();
  }

  prepareQuery<T extends PreparedQueryConfig>(
    query: Query,
    fields: SelectedFieldsOrdered | undefined,
    executeMethod: SQLiteExecuteMethod,
    isResponseInArrayMode: boolean,
    customResultMapper?: ResultMapper,
  ): OutpostPreparedQuery<T> {
    return new OutpostPreparedQuery<T>(this.scope, query, this.logger, fields, executeMethod, isResponseInArrayMode, customResultMapper);
  }

  /** A session bound to `scope` (a transaction's `tx`), sharing everything else with this one. */
  within(scope: Scope): OutpostSession<TFullSchema, TSchema> {
    return new OutpostSession(scope, this.dialect, this.schema, this.options);
  }

  /**
   * Outpost's transaction: `BEGIN IMMEDIATE` on the database's queue, or a savepoint inside a
   * transaction. Drizzle's `behavior` is not used: every write transaction starts IMMEDIATE.
   */
  override transaction<T>(
    transaction: (tx: OutpostTransaction<TFullSchema, TSchema>) => Promise<T>,
    _config?: SQLiteTransactionConfig,
  ): Promise<T> {
    return this.scope.transaction((tx) => transaction(new OutpostTransaction('async', this.dialect, this.within(tx), this.schema)));
  }

  /**
   * Runs the queries in one transaction, each in turn, and returns each one's result: all of
   * them happen or, when one fails, none. Queries from elsewhere wait until it ends.
   */
  async batch<T extends BatchItem<'sqlite'>[] | readonly BatchItem<'sqlite'>[]>(queries: T): Promise<unknown[]> {
    return this.scope.transaction(async (tx) => {
      const results: unknown[] = [];
      for (const item of queries) {
        const prepared = (item as unknown as BatchItemInternals)._prepare();
        const { sql, params, method } = prepared.getQuery() as Query & { method: SQLiteExecuteMethod | 'values' };
        const bound = asParams(params);
        this.logger.logQuery(sql, bound);
        // Our own prepared queries read the shape their mapping expects; a raw `db.run(sql)` item
        // (SQLiteRaw) maps objects and RunResults through the extractRaw* methods below.
        const raw = prepared instanceof OutpostPreparedQuery ? await prepared.raw(tx, method, bound) : await rawStatement(tx, sql, bound, method);
        results.push(prepared.mapResult(raw, true));
      }
      return results;
    });
  }

  extractRawAllValueFromBatchResult(result: unknown): unknown {
    return result;
  }

  extractRawGetValueFromBatchResult(result: unknown): unknown {
    return result;
  }

  extractRawValuesValueFromBatchResult(result: unknown): unknown {
    return result;
  }
}

/** A raw SQL item of a batch (`db.run(sql)`, `db.all(sql)`, ...) read as the method says. */
function rawStatement(scope: Scope, sql: string, params: SqlParam[], method: SQLiteExecuteMethod | 'values'): Promise<unknown> {
  switch (method) {
    case 'run':
      return scope.run(sql, params);
    case 'all':
      return scope.query(sql, params);
    case 'get':
      return scope.get(sql, params);
    case 'values':
      return arrayRows(scope, sql, params, false);
  }
}

export class OutpostTransaction<TFullSchema extends Record<string, unknown>, TSchema extends TablesRelationalConfig> extends SQLiteTransaction<
  'async',
  RunResult,
  TFullSchema,
  TSchema
> {
  static override readonly [entityKind]: string = 'OutpostTransaction';

  constructor(
    resultType: 'async',
    dialect: SQLiteAsyncDialect,
    private readonly outpostSession: OutpostSession<TFullSchema, TSchema>,
    schema: RelationalSchemaConfig<TSchema> | undefined,
    nestedIndex = 0,
  ) {
    super(resultType, dialect, outpostSession, schema, nestedIndex);
  }

  /** A nested transaction: a savepoint of this one, released on success, rolled back on a throw. */
  override transaction<T>(transaction: (tx: OutpostTransaction<TFullSchema, TSchema>) => Promise<T>): Promise<T> {
    const { scope, dialect } = this.outpostSession;
    return scope.transaction((inner) =>
      transaction(new OutpostTransaction('async', dialect, this.outpostSession.within(inner), this.schema, this.nestedIndex + 1)),
    );
  }
}
