/**
 * Executes Hrana pipeline requests (`v2/pipeline`, `v3/pipeline`) on one connection: `execute`,
 * `batch` with conditions, `sequence`, `describe`, `store_sql` / `close_sql`, `get_autocommit`
 * and `close`. A pipeline is one stream: requests run in order on the same connection. A
 * transaction left open at the end is rolled back, unless the stream goes on (the pipeline
 * ended with a transaction open and no `close`); then the transaction stays open for the
 * stream's next request, which the caller (hosted-database.ts) identifies by its baton, and the
 * stream's `StreamSession` (its stored SQL texts) goes on with it.
 *
 * Every statement, whichever request carries it, runs through `runStatement`: the statement
 * clock (time limit and time share) and the sandbox's authorizer apply to all of them.
 *
 * A pipeline's rows are bounded (`AnswerBudget`): a statement that only reads fails with
 * SQLITE_TOOBIG once the rows of the whole pipeline pass the limit. A write's RETURNING rows are
 * not stopped (its changes are made before them; engine/statements.ts).
 *
 * Result values keep SQLite's storage class: rows are read with every INTEGER as a bigint, so
 * a whole REAL goes out as a float (`2.0`), never as the integer `2`.
 *
 * Malformed requests throw `ProtocolError` (HTTP 400, nothing executed after the bad part, and
 * an open transaction is rolled back); so does a `sql_id` the stream has not stored. SQL errors
 * are per-statement results, as Hrana defines, with SQLite's extended code
 * (`SQLITE_CONSTRAINT_UNIQUE`).
 */
import type { BindParam, BindParams } from '../engine/binding.js';
import type { SqlValue } from '../types.js';
import type { Connection, ExecuteResult } from '../engine/connection.js';
import { type StoredValue, textValue } from '../engine/stored-value.js';
import { OutpostError, ProtocolError, SqliteError } from '../errors.js';
import {
  type HranaBatchStep,
  type HranaCondition,
  type HranaError,
  type HranaResponse,
  type HranaStmt,
  type HranaStmtResult,
  type HranaStreamResult,
  type HranaValue,
  type PipelineResponse,
  decodeHranaValue,
  toHranaFloat,
  toHranaValue,
} from '../protocol/hrana.js';
import type { StatementClock } from './sandbox.js';

const MAX_STEPS = 100_000;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * A Hrana argument bound exactly as sent: a float stays REAL even when whole (bound as a plain
 * JS number, 3.0 would become INTEGER 3), integers keep all 64 bits, text and blobs their bytes.
 */
function argument(v: unknown): StoredValue {
  const d = decodeHranaValue(v);
  switch (d.type) {
    case 'null':
      return d;
    case 'integer':
      return { type: 'integer', value: d.value };
    case 'float':
      return { type: 'real', value: d.value };
    case 'text':
      return textValue(d.value);
    case 'blob':
      return { type: 'blob', bytes: d.bytes };
  }
}

function params(stmt: HranaStmt): BindParams | undefined {
  const args = stmt.args ?? [];
  const named = stmt.named_args ?? [];
  if (!Array.isArray(args) || !Array.isArray(named)) throw new ProtocolError('args and named_args must be arrays');
  if (named.length > 0) {
    if (args.length > 0) throw new ProtocolError('mixing positional and named arguments is not supported');
    const out: Record<string, BindParam> = {};
    for (const a of named) {
      if (!isObject(a) || typeof a.name !== 'string') throw new ProtocolError('a named argument needs a name');
      out[a.name] = argument(a.value);
    }
    return out;
  }
  return args.length > 0 ? args.map(argument) : undefined;
}

function interruptedError(clock: StatementClock): HranaError {
  return { message: `the statement ran longer than the server's limit of ${clock.limitMs} ms and was interrupted`, code: 'SQLITE_INTERRUPT' };
}

/** A statement's failure as a Hrana error; anything else (a ProtocolError, a bug) propagates. */
function errorOf(e: unknown, clock: StatementClock): HranaError {
  if (e instanceof SqliteError) return sqliteErrorOf(e.code, e.message, clock);
  // The build's allocator refused a value the engine copies in (a bound argument): the same limit.
  if (e instanceof Error && e.name === 'WasmAllocError') return outOfMemoryError();
  if (e instanceof OutpostError) return { message: e.message, code: e.code };
  throw e;
}

/** SQLite's failure `code` of a statement as a Hrana error: its limits and a read token's refusals say why in words. */
function sqliteErrorOf(code: string, message: string, clock: StatementClock): HranaError {
  if (code === 'SQLITE_INTERRUPT' && clock.expired) return interruptedError(clock);
  if (code === 'SQLITE_NOMEM') return outOfMemoryError();
  return clock.readOnly ? readOnlyError(code, message) : { message, code };
}

/**
 * A statement stopped by SQLite's heap limit (heap-limit.ts), before the process's memory grew
 * past it. SQLite may roll back the whole transaction such a statement ran in, or only the statement.
 */
function outOfMemoryError(): HranaError {
  return {
    message:
      "out of memory: this statement needed more memory than the server lets SQLite use (its heap limit), so it was stopped (SQLite may have rolled back the transaction it ran in); ask for fewer or smaller values at once (LIMIT, substr(), a WHERE on the key)",
    code: 'SQLITE_NOMEM',
  };
}

/**
 * A statement's failure under a read token: a write (SQLITE_READONLY, from `query_only`) or a
 * setting (SQLITE_AUTH, from the sandbox's authorizer) says why in words; the code stays SQLite's.
 */
function readOnlyError(code: string, message: string): HranaError {
  if (code.startsWith('SQLITE_READONLY')) return { message: `this token's role is "read": it may run only statements that do not write (${message})`, code };
  if (code.startsWith('SQLITE_AUTH')) return { message: `this token's role is "read": it may not change settings, attach or vacuum (${message})`, code };
  return { message, code };
}

/**
 * A cell read with `execute(..., exact)` as a Hrana value: integers are bigints, so a number is
 * always a REAL and goes as a float, whole or not (599.0 stays REAL in the client).
 */
function cellValue(v: unknown): HranaValue {
  return typeof v === 'number' ? toHranaFloat(v) : toHranaValue(v);
}

function toResult(r: ExecuteResult, wantRows: boolean): HranaStmtResult {
  return {
    cols: r.columns.map((name, i) => ({ name, decltype: r.decltypes[i] ?? null })),
    rows: wantRows ? r.rows.map((row) => row.map(cellValue)) : [],
    affected_row_count: r.changes,
    last_insert_rowid: r.lastInsertRowid.toString(),
    replication_index: null,
    rows_read: 0,
    rows_written: 0,
    query_duration_ms: 0,
  };
}

/** A statement's SQL: its text, or the text the stream stored under its `sql_id`. */
function sqlOf(x: { sql?: unknown; sql_id?: unknown }, session: StreamSession, what: string): string {
  const hasText = x.sql !== undefined && x.sql !== null;
  const hasId = x.sql_id !== undefined && x.sql_id !== null;
  if (hasText && hasId) throw new ProtocolError(`${what} has both sql and sql_id; send one`);
  if (hasId) {
    const stored = session.storedSql.get(x.sql_id as number);
    if (stored === undefined) throw new ProtocolError(`${what} refers to sql_id ${JSON.stringify(x.sql_id)}, which this stream has not stored (store_sql)`);
    return stored;
  }
  if (typeof x.sql !== 'string') throw new ProtocolError(`${what}.sql must be a string`);
  return x.sql;
}

function checkStmt(stmt: unknown, session: StreamSession): { sql: string; stmt: HranaStmt } {
  if (!isObject(stmt)) throw new ProtocolError('stmt must be an object');
  return { sql: sqlOf(stmt, session, 'stmt'), stmt: stmt as HranaStmt };
}

/** Whether a pipeline's result (or, for a batch, one of its steps) is an error. */
export function pipelineResultFailed(result: HranaStreamResult): boolean {
  if (result.type === 'error') return true;
  return result.response.type === 'batch' && result.response.result.step_errors.some((e) => e !== null);
}

/** Whether a pipeline body is well formed at its top level (the baton is the caller's to check). */
export function checkPipelineBody(body: unknown): asserts body is { baton?: unknown; requests: unknown[] } {
  if (!isObject(body) || !Array.isArray(body.requests)) throw new ProtocolError('the body must be {"baton": null, "requests": [...]}');
}

/** What a stream keeps between its requests: the SQL texts it stored, and its read-only flag. */
export interface StreamSession {
  storedSql: Map<number, string>;
  /** Characters of stored SQL, bounded by `storedSqlCharsMax`. */
  storedChars: number;
  /** A `BEGIN TRANSACTION READONLY` holds `query_only` on until its transaction ends. */
  readOnly: boolean;
}

export function newStreamSession(): StreamSession {
  return { storedSql: new Map(), storedChars: 0, readOnly: false };
}

/** SQLite's code for a string or blob too big (the same as a value over the value limit). */
const SQLITE_TOOBIG = 18;

/**
 * What the rows of one pipeline may still add to its answer. Text counts its characters, a
 * blob its bytes, anything else 16: close to the JSON they become, and cheap to count as each
 * cell is read, before the next one is.
 */
export class AnswerBudget {
  private bytes = 0;

  constructor(readonly bytesMax: number) {}

  count = (value: SqlValue): void => {
    this.bytes += typeof value === 'string' ? value.length : value instanceof Uint8Array ? value.length : 16;
    if (this.bytes <= this.bytesMax) return;
    throw new SqliteError(
      `the rows of this request pass the server's answer limit of ${this.bytesMax} bytes; read them in parts (LIMIT, or a WHERE on the key)`,
      'SQLITE_TOOBIG',
      SQLITE_TOOBIG,
    );
  };
}

/** Everything a pipeline runs with. */
export interface PipelineContext {
  conn: Connection;
  clock: StatementClock;
  session: StreamSession;
  /** Runs SQL as the server, outside the sandbox (the read-only transaction's `query_only`). */
  trusted: (sql: string) => void;
  /** Most characters of SQL one stream may keep stored. */
  storedSqlCharsMax: number;
  /** What this pipeline's rows may still add to its answer. */
  answer: AnswerBudget;
}

/** Most SQL texts one stream may keep stored (`@libsql/client` keeps at most 30). */
const STORED_SQL_MAX = 1000;

/**
 * libsql's read-only transaction, which SQLite does not parse: it runs as `BEGIN DEFERRED` with
 * `query_only` on until the transaction ends, so a write in it fails with SQLITE_READONLY.
 */
const READONLY_BEGIN = /^\s*BEGIN\s+TRANSACTION\s+READONLY\s*;?\s*$/i;

/**
 * Runs a pipeline. Returns the answer (its baton null: the caller sets it) and whether the
 * stream stays open: a transaction is open at the end and no `close` request came. Otherwise
 * nothing stays half-applied.
 */
export function executePipeline(ctx: PipelineContext, body: unknown): { response: PipelineResponse; open: boolean } {
  checkPipelineBody(body);
  const { conn } = ctx;
  const results: HranaStreamResult[] = [];
  let closed = false;
  let completed = false;
  try {
    for (const request of body.requests as unknown[]) {
      if (!isObject(request)) throw new ProtocolError('a request must be an object');
      if (request.type === 'close') {
        closed = true;
        conn.rollbackQuietly();
        results.push({ type: 'ok', response: { type: 'close' } });
      } else {
        results.push(executeRequest(ctx, request));
      }
    }
    completed = true;
  } finally {
    // Unless the stream goes on, it ends with the HTTP request: nothing may stay half-applied.
    // A malformed request (ProtocolError) ends it too.
    if (!(completed && !closed && conn.inTransaction)) conn.rollbackQuietly();
  }
  return { response: { baton: null, base_url: null, results }, open: !closed && conn.inTransaction };
}

/** Runs one statement with the clock on; a read-only BEGIN as the header of READONLY_BEGIN says. */
function runStatement(ctx: PipelineContext, sql: string, args: BindParams | undefined): ExecuteResult {
  const { conn, clock, session } = ctx;
  // Inside a transaction, BEGIN DEFERRED fails as any nested BEGIN does, and nothing is set.
  const readOnlyBegin = READONLY_BEGIN.test(sql);
  clock.start(sql);
  let result: ExecuteResult;
  try {
    result = conn.execute(readOnlyBegin ? 'BEGIN DEFERRED' : sql, args, true, ctx.answer.count);
  } finally {
    clock.stop();
    if (session.readOnly && !conn.inTransaction) {
      // A read token's request keeps query_only on to its end (hosted-database.ts).
      if (!clock.readOnly) ctx.trusted('PRAGMA query_only = 0');
      session.readOnly = false;
    }
  }
  if (readOnlyBegin) {
    ctx.trusted('PRAGMA query_only = 1');
    session.readOnly = true;
    // The server's reset puts query_only back should the stream end some other way.
    clock.sessionChanged = true;
  }
  return result;
}

/** One request of a pipeline other than `close`. */
function executeRequest(ctx: PipelineContext, request: Record<string, unknown>): HranaStreamResult {
  const { conn, session } = ctx;
  const ok = (response: HranaResponse): HranaStreamResult => ({ type: 'ok', response });
  const failed = (e: unknown): HranaStreamResult => ({ type: 'error', error: errorOf(e, ctx.clock) });
  switch (request.type) {
    case 'execute': {
      const { sql, stmt } = checkStmt(request.stmt, session);
      const args = params(stmt);
      try {
        return ok({ type: 'execute', result: toResult(runStatement(ctx, sql, args), stmt.want_rows !== false) });
      } catch (e) {
        return failed(e);
      }
    }
    case 'batch':
      return ok({ type: 'batch', result: executeBatch(ctx, request.batch) });
    case 'sequence': {
      const sql = sqlOf(request, session, 'sequence');
      try {
        const failure = conn
          .execMany(
            sql,
            (text, body) => {
              ctx.clock.start(text);
              try {
                return body();
              } finally {
                ctx.clock.stop();
              }
            },
            ctx.answer.count,
          )
          .find((r) => r.error)?.error;
        if (!failure) return ok({ type: 'sequence' });
        return { type: 'error', error: sqliteErrorOf(failure.code, failure.message, ctx.clock) };
      } catch (e) {
        return failed(e);
      }
    }
    case 'describe': {
      const sql = sqlOf(request, session, 'describe');
      try {
        const d = conn.describe(sql);
        return ok({
          type: 'describe',
          result: {
            params: d.params.map((name) => ({ name })),
            cols: d.columns.map((name, i) => ({ name, decltype: d.decltypes[i] ?? null })),
            is_explain: d.explain,
            is_readonly: d.readonly,
          },
        });
      } catch (e) {
        return failed(e);
      }
    }
    case 'store_sql': {
      const { sql_id: id, sql } = request;
      if (!Number.isSafeInteger(id) || typeof sql !== 'string') throw new ProtocolError('store_sql needs an integer sql_id and a string sql');
      if (session.storedSql.has(id as number)) throw new ProtocolError(`sql_id ${String(id)} is already stored in this stream`);
      if (session.storedSql.size >= STORED_SQL_MAX || session.storedChars + sql.length > ctx.storedSqlCharsMax) {
        throw new ProtocolError(`a stream may store at most ${STORED_SQL_MAX} SQL texts of ${ctx.storedSqlCharsMax} characters in all; close_sql the ones no longer needed`);
      }
      session.storedSql.set(id as number, sql);
      session.storedChars += sql.length;
      return ok({ type: 'store_sql' });
    }
    case 'close_sql': {
      if (!Number.isSafeInteger(request.sql_id)) throw new ProtocolError('close_sql needs an integer sql_id');
      const stored = session.storedSql.get(request.sql_id as number);
      if (stored !== undefined) {
        session.storedSql.delete(request.sql_id as number);
        session.storedChars -= stored.length;
      }
      return ok({ type: 'close_sql' });
    }
    case 'get_autocommit':
      return ok({ type: 'get_autocommit', is_autocommit: !conn.inTransaction });
    default:
      throw new ProtocolError(`unknown request type ${JSON.stringify(request.type)}`);
  }
}

/** A batch: every step checked before the first runs, then run in order under its condition. */
function executeBatch(ctx: PipelineContext, batch: unknown): Extract<HranaResponse, { type: 'batch' }>['result'] {
  if (!isObject(batch) || !Array.isArray(batch.steps)) throw new ProtocolError('batch.steps must be an array');
  const steps = batch.steps as unknown[];
  if (steps.length > MAX_STEPS) throw new ProtocolError(`a batch may have at most ${MAX_STEPS} steps`);
  // Every statement and argument is read before the first step runs: a malformed value
  // anywhere refuses the whole batch (400) with nothing of it executed.
  const checked = steps.map((raw, i) => {
    if (!isObject(raw)) throw new ProtocolError(`step ${i} must be an object`);
    const step = raw as unknown as HranaBatchStep;
    const { sql, stmt } = checkStmt(step.stmt, ctx.session);
    return { step, sql, stmt, args: params(stmt) };
  });
  const outcome: ('ok' | 'error' | 'skipped')[] = [];
  const stepResults: (HranaStmtResult | null)[] = [];
  const stepErrors: (HranaError | null)[] = [];
  for (const [i, { step, sql, stmt, args }] of checked.entries()) {
    if (step.condition != null && !evaluate(step.condition, outcome, ctx.conn, i)) {
      outcome.push('skipped');
      stepResults.push(null);
      stepErrors.push(null);
      continue;
    }
    try {
      stepResults.push(toResult(runStatement(ctx, sql, args), stmt.want_rows !== false));
      stepErrors.push(null);
      outcome.push('ok');
    } catch (e) {
      stepResults.push(null);
      stepErrors.push(errorOf(e, ctx.clock));
      outcome.push('error');
    }
  }
  return { step_results: stepResults, step_errors: stepErrors, replication_index: null };
}

/** Deepest condition nesting accepted; real clients nest two or three levels. */
const CONDITION_DEPTH_MAX = 64;

function evaluate(cond: unknown, outcome: ('ok' | 'error' | 'skipped')[], conn: Connection, current: number, depth = 0): boolean {
  if (depth > CONDITION_DEPTH_MAX) throw new ProtocolError(`a condition may nest at most ${CONDITION_DEPTH_MAX} levels`);
  if (!isObject(cond)) throw new ProtocolError('a condition must be an object');
  const c = cond as HranaCondition;
  const stepOf = (step: unknown): number => {
    if (!Number.isInteger(step) || (step as number) < 0 || (step as number) >= current) {
      throw new ProtocolError(`condition refers to step ${String(step)}, which has not run before step ${current}`);
    }
    return step as number;
  };
  switch (c.type) {
    case 'ok':
      return outcome[stepOf(c.step)] === 'ok';
    case 'error':
      return outcome[stepOf(c.step)] === 'error';
    case 'not':
      return !evaluate(c.cond, outcome, conn, current, depth + 1);
    case 'and':
      if (!Array.isArray(c.conds)) throw new ProtocolError('and.conds must be an array');
      return c.conds.every((x) => evaluate(x, outcome, conn, current, depth + 1));
    case 'or':
      if (!Array.isArray(c.conds)) throw new ProtocolError('or.conds must be an array');
      return c.conds.some((x) => evaluate(x, outcome, conn, current, depth + 1));
    case 'is_autocommit':
      return !conn.inTransaction;
    default:
      throw new ProtocolError(`unknown condition type ${JSON.stringify((c as { type: unknown }).type)}`);
  }
}

/**
 * A `v3/cursor` request as the one-request pipeline it runs as: `{ baton, batch }` becomes
 * `{ baton, requests: [{ type: 'batch', batch }] }`, so a cursor goes through the same stream,
 * baton and sandbox rules as any pipeline.
 */
export function cursorAsPipeline(body: unknown): { baton: unknown; requests: unknown[] } {
  if (!isObject(body) || !isObject(body.batch)) throw new ProtocolError('the body must be {"baton": null, "batch": {"steps": [...]}}');
  return { baton: body.baton ?? null, requests: [{ type: 'batch', batch: body.batch }] };
}

/**
 * The cursor answer for a pipeline run by `cursorAsPipeline`: newline-separated JSON, first
 * `{ baton, base_url }`, then for each step that ran `step_begin`, its rows, `step_end` (or
 * `step_error`). The batch has run in full before the first line is written.
 */
export function cursorAnswer(response: PipelineResponse): string {
  const lines: unknown[] = [{ baton: response.baton, base_url: response.base_url }];
  const result = response.results[0];
  if (result?.type === 'error') lines.push({ type: 'error', error: result.error });
  else if (result?.response.type === 'batch') {
    const { step_results: results, step_errors: errors } = result.response.result;
    for (const [step, r] of results.entries()) {
      const error = errors[step];
      if (error) lines.push({ type: 'step_error', step, error });
      if (!r) continue;
      lines.push({ type: 'step_begin', step, cols: r.cols });
      for (const row of r.rows) lines.push({ type: 'row', row });
      lines.push({ type: 'step_end', affected_row_count: r.affected_row_count, last_insert_rowid: r.last_insert_rowid });
    }
  }
  return `${lines.map((l) => JSON.stringify(l)).join('\n')}\n`;
}
