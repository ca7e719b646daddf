/**
 * Executes Hrana pipeline requests (`v2/pipeline`) on one connection: `execute`, `batch` with
 * conditions, and `close`. A pipeline is one stream: requests run in order on the same
 * connection. A transaction left open at the end is rolled back, unless the caller lets the
 * stream go on (`keepOpen`: the pipeline ended with a transaction open and no `close`); then
 * the transaction stays open for the stream's next request, which the caller (hosted-database.ts)
 * identifies by its baton.
 *
 * Malformed requests throw `ProtocolError` (HTTP 400, nothing executed after the bad part, and
 * an open transaction is rolled back). SQL errors are per-statement results, as Hrana defines.
 */
import type { BindParam, BindParams } from '../engine/binding.js';
import type { Connection, ExecuteResult } from '../engine/connection.js';
import { type StoredValue, textValue } from '../engine/stored-value.js';
import { OutpostError, ProtocolError, SqliteError } from '../errors.js';
import {
  type HranaBatchStep,
  type HranaCondition,
  type HranaError,
  type HranaStmt,
  type HranaStmtResult,
  type HranaStreamResult,
  type PipelineResponse,
  decodeHranaValue,
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

/** A statement's failure as a Hrana error; anything else (a ProtocolError, a bug) propagates. */
function errorOf(e: unknown, clock: StatementClock): HranaError {
  if (e instanceof SqliteError && e.code === 'SQLITE_INTERRUPT' && clock.expired) {
    return { message: `the statement ran longer than the server's limit of ${clock.limitMs} ms and was interrupted`, code: e.code };
  }
  if (e instanceof SqliteError || e instanceof OutpostError) return { message: e.message, code: e.code };
  throw e;
}

function toResult(r: ExecuteResult, wantRows: boolean): HranaStmtResult {
  return {
    cols: r.columns.map((name, i) => ({ name, decltype: r.decltypes[i] ?? null })),
    rows: wantRows ? r.rows.map((row) => row.map(toHranaValue)) : [],
    affected_row_count: r.changes,
    last_insert_rowid: r.lastInsertRowid.toString(),
    replication_index: null,
    rows_read: 0,
    rows_written: 0,
    query_duration_ms: 0,
  };
}

function checkStmt(stmt: unknown): HranaStmt {
  if (!isObject(stmt)) throw new ProtocolError('stmt must be an object');
  if (typeof stmt.sql !== 'string') throw new ProtocolError(stmt.sql_id != null ? 'stored statements (sql_id) are not supported' : 'stmt.sql must be a string');
  return stmt as HranaStmt;
}

/** Whether a pipeline body is well formed at its top level (the baton is the caller's to check). */
export function checkPipelineBody(body: unknown): asserts body is { baton?: unknown; requests: unknown[] } {
  if (!isObject(body) || !Array.isArray(body.requests)) throw new ProtocolError('the body must be {"baton": null, "requests": [...]}');
}

/**
 * Runs a pipeline. Returns the answer (its baton null: the caller sets it) and whether the
 * stream stays open: only when `keepOpen` allows it, a transaction is open at the end and no
 * `close` request came. Otherwise nothing stays half-applied.
 */
export function executePipeline(conn: Connection, body: unknown, clock: StatementClock, keepOpen = false): { response: PipelineResponse; open: boolean } {
  checkPipelineBody(body);
  const results: HranaStreamResult[] = [];
  let closed = false;
  let completed = false;
  const run = (stmt: HranaStmt, args: BindParams | undefined): ExecuteResult => {
    clock.start(stmt.sql!);
    try {
      return conn.execute(stmt.sql!, args);
    } finally {
      clock.stop();
    }
  };
  try {
    for (const request of body.requests as unknown[]) {
      if (!isObject(request)) throw new ProtocolError('a request must be an object');
      switch (request.type) {
        case 'execute': {
          const stmt = checkStmt(request.stmt);
          const args = params(stmt);
          try {
            results.push({ type: 'ok', response: { type: 'execute', result: toResult(run(stmt, args), stmt.want_rows !== false) } });
          } catch (e) {
            results.push({ type: 'error', error: errorOf(e, clock) });
          }
          break;
        }
        case 'batch': {
          if (!isObject(request.batch) || !Array.isArray(request.batch.steps)) throw new ProtocolError('batch.steps must be an array');
          const steps = request.batch.steps as unknown[];
          if (steps.length > MAX_STEPS) throw new ProtocolError(`a batch may have at most ${MAX_STEPS} steps`);
          // Every statement and argument is read before the first step runs: a malformed value
          // anywhere refuses the whole batch (400) with nothing of it executed.
          const checked = steps.map((raw, i) => {
            if (!isObject(raw)) throw new ProtocolError(`step ${i} must be an object`);
            const step = raw as unknown as HranaBatchStep;
            const stmt = checkStmt(step.stmt);
            return { step, stmt, args: params(stmt) };
          });
          const outcome: ('ok' | 'error' | 'skipped')[] = [];
          const stepResults: (HranaStmtResult | null)[] = [];
          const stepErrors: (HranaError | null)[] = [];
          for (const [i, { step, stmt, args }] of checked.entries()) {
            if (step.condition != null && !evaluate(step.condition, outcome, conn, i)) {
              outcome.push('skipped');
              stepResults.push(null);
              stepErrors.push(null);
              continue;
            }
            try {
              stepResults.push(toResult(run(stmt, args), stmt.want_rows !== false));
              stepErrors.push(null);
              outcome.push('ok');
            } catch (e) {
              stepResults.push(null);
              stepErrors.push(errorOf(e, clock));
              outcome.push('error');
            }
          }
          results.push({ type: 'ok', response: { type: 'batch', result: { step_results: stepResults, step_errors: stepErrors, replication_index: null } } });
          break;
        }
        case 'close':
          closed = true;
          conn.rollbackQuietly();
          results.push({ type: 'ok', response: { type: 'close' } });
          break;
        default:
          throw new ProtocolError(`unknown request type ${JSON.stringify(request.type)}`);
      }
    }
    completed = true;
  } finally {
    // Unless the stream goes on, it ends with the HTTP request: nothing may stay half-applied.
    // A malformed request (ProtocolError) ends it too.
    if (!(completed && keepOpen && !closed && conn.inTransaction)) conn.rollbackQuietly();
  }
  return { response: { baton: null, base_url: null, results }, open: keepOpen && !closed && conn.inTransaction };
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
