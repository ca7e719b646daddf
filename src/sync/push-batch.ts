/**
 * Pure: change records → the Hrana batch that pushes them, and the server's answer → ok or
 * refused. Nothing here needs SQLite or a connection: records arrive with their changesets
 * decoded (`DecodedRecord`), so a push batch can be built wherever change records and a
 * decoder are available.
 *
 * A batch is one server transaction:
 *
 *   step 0       BEGIN IMMEDIATE
 *   step 1       CREATE TABLE IF NOT EXISTS turso_sync_last_change_id ...
 *   step 2       the gate: fails when the server already acknowledges this batch's first change
 *   (step 2b)    only in a background push's later batches: fails when the server does not yet
 *                acknowledge the last change of the batch before (`PUSH_AFTER_GATE`)
 *   steps 3..    the row statements and DDL of the records, in order
 *   step n-3     upsert of this client's last change id (the acknowledgement)
 *   step n-2     COMMIT
 *   step n-1     ROLLBACK, only while a transaction is still open
 *
 * Each step from step 1 on runs only if the last step that must succeed did, and a transaction
 * is open (Hrana `ok` and `is_autocommit` conditions). One failure skips the rest, COMMIT
 * included, and the final ROLLBACK undoes the batch: the server applies all of it or nothing,
 * whether or not its SQL errors roll back by themselves. Steps a failure of which is harmless
 * (`ignorable`: an ALTER TABLE ADD COLUMN of a present column) do not move that gate.
 *
 * Every batch gates itself on the server's `turso_sync_last_change_id` row for this client
 * (step 2): when that row already reaches the batch's first change id, some push of these
 * changes went through before (the tab's, or a service worker's replay of a queued copy), and
 * the batch applies nothing (`stale`). So the same request sent twice, or a batch built before
 * the server's acknowledgement moved, is never applied twice, without the client reading the
 * acknowledgement first: a service worker can replay a stored batch without SQLite.
 *
 * A transaction too large for one request (over `REQUEST_BYTES_MAX` of statements or
 * `REQUEST_STEPS_MAX` steps) goes as one server transaction over several requests of one Hrana
 * stream (`buildStreamBatches`): BEGIN, the gate and the first part in the first request, the
 * acknowledgement and COMMIT in the last. Every part gates its steps as above and ends with a
 * ROLLBACK that runs only when one of its steps failed (so a refused part ends the
 * transaction there); the middle parts end with a gated `SELECT 1` that says they went through.
 */
import { OutpostError, ProtocolError, SyncError } from '../errors.js';
import type { HranaBatchStep, HranaCondition, HranaError, HranaValue, PipelineRequest, PipelineResponse } from '../protocol/hrana.js';
import { BATCH_ALREADY_APPLIED, BATCH_WAITS_FOR, CREATE_TURSO_SYNC_TABLE, PULL_GEN, PUSH_AFTER_GATE, PUSH_GATE, SELECT_TURSO_SYNC, UPSERT_TURSO_SYNC } from '../protocol/turso-tables.js';
import type { Mutation, MutationResult, SqlValue } from '../types.js';
import { isTrackedTable } from './change-log.js';
import type { DecodedSegment, RowChange } from './changeset.js';
import { invariant } from './invariant.js';
import { INSERT_COLLISION, type PushStep, type TableInfo, changeTableInfo, describeKey, hranaArgs, hranaParameter, rewriteDdl, rowChangeSql, toMutation } from './push-sql.js';

/** A change record with its changesets decoded. */
export interface DecodedRecord {
  id: number;
  segments: DecodedSegment[];
}

/** The statements that push some records, and the mutations a transform sees (one per row statement). */
export interface PushSteps {
  steps: PushStep[];
  mutations: { step: PushStep; mutation: Mutation }[];
}

/**
 * The push statements of `records`, in order: each record's segments in statement order, DDL
 * rewritten to be idempotent and row changes named by the columns recorded with them, so that
 * the server, applying the records in order, applies each change to the table and columns it
 * was made to, whatever the schema became later. `tableInfo` describes a table as it is now;
 * only records of the change log's first format (no recorded columns) use it, and a table that
 * no longer exists then sends no rows. With `withMutations`, each row statement comes with the
 * mutation a transform sees. Inserts are guarded (push-sql.ts): one whose key is taken on the
 * server fails instead of overwriting that row, except in `upsertTables`, where it replaces it.
 */
export function pushSteps(records: readonly DecodedRecord[], tableInfo: (table: string) => TableInfo | null, withMutations: boolean, upsertTables: readonly string[] = []): PushSteps {
  const upserts = new Set(upsertTables.map((t) => t.toLowerCase()));
  const steps: PushStep[] = [];
  const mutations: PushSteps['mutations'] = [];
  for (const r of records) {
    for (const segment of r.segments) {
      if ('ddl' in segment) {
        const { sql, ignorable } = rewriteDdl(segment.ddl);
        steps.push({ sql, args: [], changeId: r.id, table: null, ignorable });
        continue;
      }
      for (const change of inApplyOrder(segment.changes)) {
        if (!isTrackedTable(change.table)) continue;
        const info = changeTableInfo(change, segment.columns, tableInfo);
        if (!info) continue;
        const args: HranaValue[] = [];
        const guard = change.op === 'insert' && !upserts.has(change.table.toLowerCase());
        const sql = rowChangeSql(change, info, hranaParameter(args), guard ? 'guard' : 'replace');
        if (sql === null) continue;
        const step: PushStep = { sql, args, changeId: r.id, table: change.table, ignorable: false };
        if (guard) step.guarded = { key: describeKey(change, info), rowid: info.pk.length === 0 ? rowidOf(change) : null };
        steps.push(step);
        if (withMutations) mutations.push({ step, mutation: toMutation(r.id, change, info) });
      }
    }
  }
  return { steps, mutations };
}

const APPLY_ORDER = { delete: 0, update: 1, insert: 2 } as const;

/**
 * A segment's row changes in the order the server applies them: deletes, then updates, then
 * inserts, each kind in changeset order. A changeset lists rows by table and hash, not in
 * statement order, and the server checks UNIQUE after each statement: a transaction that frees
 * a unique value (a delete, an update away from it) and gives it to a new row would otherwise
 * fail there when the insert came first. Each row appears once in a changeset, so no row's own
 * changes are reordered. Updates that swap unique values between rows can still fail; they
 * are refused and reported.
 */
function inApplyOrder(changes: readonly RowChange[]): RowChange[] {
  return [...changes].sort((a, b) => APPLY_ORDER[a.op] - APPLY_ORDER[b.op]);
}

/** The rowid of an insert into a table without a primary key (its first value). */
function rowidOf(change: RowChange): bigint | null {
  const v = change.after[0];
  return v?.type === 'integer' ? v.value : null;
}

/** The steps after a transform's answer: each mutation's statement kept, skipped, or replaced by other SQL. */
export function applyTransform(planned: PushSteps, results: unknown): PushStep[] {
  if (!Array.isArray(results) || results.length !== planned.mutations.length) {
    throw new OutpostError('sync.transform must return one result per mutation', 'INVALID_ARGUMENT');
  }
  const replaced = new Map<PushStep, PushStep | null>();
  planned.mutations.forEach(({ step }, i) => {
    // The transform is the application's code; its results are trusted to have the declared shape.
    const result = results[i] as MutationResult;
    if (result === 'skip') replaced.set(step, null);
    // A rewrite is the application's SQL: not a guarded insert any more.
    else if (result !== 'keep') replaced.set(step, { sql: result.sql, args: transformArgs(result.args ?? []), changeId: step.changeId, table: step.table, ignorable: step.ignorable });
  });
  return planned.steps.flatMap((s) => {
    const r = replaced.get(s);
    return r === undefined ? [s] : r === null ? [] : [r];
  });
}

/** A rewrite's arguments as Hrana values; one that cannot be sent (an infinity) is the transform's error. */
function transformArgs(args: readonly unknown[]): HranaValue[] {
  try {
    return hranaArgs(args as SqlValue[]);
  } catch (e) {
    if (e instanceof ProtocolError) throw new OutpostError(`sync.transform returned an argument that cannot be sent: ${e.message}`, 'INVALID_ARGUMENT');
    throw e;
  }
}

export interface PushBatch {
  request: PipelineRequest;
  /** For each Hrana step, the push step it runs; null for the framing steps (see the header). */
  stepAt: (PushStep | null)[];
  /** The index of the step whose result says the batch went through: COMMIT, or a middle part's `SELECT 1`. */
  commitStep: number;
}

/** The most statement bytes (SQL and arguments as JSON) one push request carries; servers accept 32 MiB by default. */
export const REQUEST_BYTES_MAX = 8 * 1024 * 1024;
/** The most statements one push request carries; Outpost's server accepts 100,000 steps a batch. */
export const REQUEST_STEPS_MAX = 20_000;

/** The bytes a step adds to a request: its SQL and arguments as JSON, and room for its condition. */
export function stepBytes(step: Pick<PushStep, 'sql' | 'args'>): number {
  return new TextEncoder().encode(JSON.stringify({ sql: step.sql, args: step.args })).length + 200;
}

/**
 * Splits a transaction's steps into parts that each fit one request. A single step over
 * `bytesMax` cannot be sent at all: it comes back as `oversized`.
 */
export function splitSteps(
  steps: readonly PushStep[],
  bytesMax = REQUEST_BYTES_MAX,
  stepsMax = REQUEST_STEPS_MAX,
): { parts: PushStep[][]; bytes: number } | { oversized: PushStep; bytes: number } {
  const parts: PushStep[][] = [];
  let part: PushStep[] = [];
  let partBytes = 0;
  let total = 0;
  for (const s of steps) {
    const bytes = stepBytes(s);
    if (bytes > bytesMax) return { oversized: s, bytes };
    total += bytes;
    if (part.length > 0 && (partBytes + bytes > bytesMax || part.length >= stepsMax)) {
      parts.push(part);
      part = [];
      partBytes = 0;
    }
    part.push(s);
    partBytes += bytes;
  }
  parts.push(part);
  return { parts, bytes: total };
}

/**
 * The requests that push `parts` (from `splitSteps`, two or more) as one server transaction on
 * one stream; the caller sets each request's baton from the answer before it.
 */
export function buildStreamBatches(clientId: string, firstId: number, ackedAfter: number, parts: readonly (readonly PushStep[])[]): PushBatch[] {
  invariant(parts.length >= 2, 'a stream has two parts or more');
  return parts.map((steps, i) => {
    const first = i === 0;
    const last = i === parts.length - 1;
    const hrana: HranaBatchStep[] = [];
    const stepAt: (PushStep | null)[] = [];
    let gate = -1;
    const gated = (): HranaCondition =>
      gate < 0 ? { type: 'not', cond: { type: 'is_autocommit' } } : { type: 'and', conds: [{ type: 'ok', step: gate }, { type: 'not', cond: { type: 'is_autocommit' } }] };
    const add = (sql: string, args: HranaValue[], ignorable: boolean, step: PushStep | null): void => {
      hrana.push({ stmt: { sql, args, want_rows: false }, ...(hrana.length === 0 && first ? {} : { condition: gated() }) });
      stepAt.push(step);
      if (!ignorable) gate = hrana.length - 1;
    };
    if (first) {
      add('BEGIN IMMEDIATE', [], false, null);
      add(CREATE_TURSO_SYNC_TABLE, [], false, null);
      add(PUSH_GATE, hranaArgs([clientId, firstId]), false, null);
    }
    for (const s of steps) add(s.sql, s.args, s.ignorable, s);
    if (last) {
      add(UPSERT_TURSO_SYNC, hranaArgs([clientId, PULL_GEN, ackedAfter]), false, null);
      add('COMMIT', [], false, null);
    } else add('SELECT 1', [], false, null);
    const commitStep = hrana.length - 1;
    // The last part rolls back whatever did not commit; the others only after a failure.
    const rollback: HranaCondition = last
      ? { type: 'not', cond: { type: 'is_autocommit' } }
      : { type: 'and', conds: [{ type: 'not', cond: { type: 'ok', step: commitStep } }, { type: 'not', cond: { type: 'is_autocommit' } }] };
    hrana.push({ stmt: { sql: 'ROLLBACK', args: [], want_rows: false }, condition: rollback });
    stepAt.push(null);
    const requests: PipelineRequest['requests'] = [{ type: 'batch', batch: { steps: hrana } }];
    if (last) requests.push({ type: 'close' });
    return { request: { baton: null, requests }, stepAt, commitStep };
  });
}

/**
 * The batch that pushes `steps` as one server transaction and records `ackedAfter` (the last
 * change id it carries, or the acknowledged id when larger) as this client's acknowledgement,
 * unless the server already acknowledges `firstId` (the first change id it carries). With
 * `afterId` (a later batch of a background push), also unless the server does not yet
 * acknowledge `afterId`, the last change of the batch before it.
 */
export function buildPushBatch(clientId: string, firstId: number, ackedAfter: number, steps: readonly PushStep[], afterId = 0): PushBatch {
  const hrana: HranaBatchStep[] = [{ stmt: { sql: 'BEGIN IMMEDIATE', args: [], want_rows: false } }];
  const stepAt: (PushStep | null)[] = [null];
  let gate = 0;
  const gated = (): HranaCondition => ({ type: 'and', conds: [{ type: 'ok', step: gate }, { type: 'not', cond: { type: 'is_autocommit' } }] });
  const add = (sql: string, args: HranaValue[], ignorable: boolean, step: PushStep | null): void => {
    hrana.push({ stmt: { sql, args, want_rows: false }, condition: gated() });
    stepAt.push(step);
    if (!ignorable) gate = hrana.length - 1;
  };
  add(CREATE_TURSO_SYNC_TABLE, [], false, null);
  add(PUSH_GATE, hranaArgs([clientId, firstId]), false, null);
  if (afterId > 0) add(PUSH_AFTER_GATE, hranaArgs([clientId, afterId]), false, null);
  for (const s of steps) add(s.sql, s.args, s.ignorable, s);
  add(UPSERT_TURSO_SYNC, hranaArgs([clientId, PULL_GEN, ackedAfter]), false, null);
  add('COMMIT', [], false, null);
  const commitStep = hrana.length - 1;
  hrana.push({ stmt: { sql: 'ROLLBACK', args: [], want_rows: false }, condition: { type: 'not', cond: { type: 'is_autocommit' } } });
  stepAt.push(null);
  invariant(stepAt.length === hrana.length, 'every Hrana step has its entry in stepAt');
  return { request: { baton: null, requests: [{ type: 'batch', batch: { steps: hrana } }] }, stepAt, commitStep };
}

export type PushResult =
  | { type: 'ok' }
  /**
   * The server applied nothing of the batch: the guarded insert of change `changeId` found its
   * key taken by a row this client has not pulled (another client's). `rowid` is set when the
   * table has no primary key.
   */
  /**
   * The server applied nothing of the batch: it already acknowledges the batch's first change
   * (another push of these changes went through). Read the acknowledgement again and go on.
   */
  | { type: 'stale'; reason: string }
  | { type: 'collision'; changeId: number; table: string; key: string; rowid: bigint | null; reason: string }
  /** The server applied nothing of the batch; `changeId` and `table` name the failing statement's change when a change's statement failed. */
  | { type: 'refused'; reason: string; changeId: number | null; table: string | null };

/**
 * Reads the server's answer to a push batch: ok when it committed, refused (with the first
 * failing statement's error) when it applied nothing. Throws `SyncError` when the answer is
 * not a batch result at all (HTTP for a stream error, PROTOCOL for another shape).
 */
/**
 * SQLite result codes that describe the server's condition, not the pushed change: out of disk,
 * I/O errors, locks, memory, an interrupted (timed out) statement.
 */
const SERVER_CONDITION = /^SQLITE_(FULL|IOERR|BUSY|LOCKED|NOMEM|INTERRUPT|READONLY|CANTOPEN|PROTOCOL)(_|$)/;

export function readPushResult(batch: PushBatch, response: PipelineResponse): PushResult {
  const r = response.results[0];
  if (r?.type === 'error') throw new SyncError(`v2/pipeline: ${r.error.message}`, 'HTTP');
  if (r?.type !== 'ok' || r.response.type !== 'batch') throw new SyncError('v2/pipeline: unexpected answer to a push', 'PROTOCOL');
  const errors = batchOutcome(r.response.result, batch.stepAt.length, 'a push');
  for (let i = 0; i < errors.length; i++) {
    const e = errors[i];
    if (!e) continue;
    const step = batch.stepAt[i] ?? null;
    if (step?.ignorable) continue;
    if (step === null && (e.message.includes(BATCH_ALREADY_APPLIED) || e.message.includes(BATCH_WAITS_FOR))) return { type: 'stale', reason: e.message };
    if (step?.guarded && step.table !== null && e.message.includes(INSERT_COLLISION)) {
      const reason = `insert collision: table ${step.table} already has a row with ${step.guarded.key} on the server, which another client inserted`;
      return { type: 'collision', changeId: step.changeId, table: step.table, key: step.guarded.key, rowid: step.guarded.rowid, reason };
    }
    if (e.code !== undefined && e.code !== null && SERVER_CONDITION.test(e.code)) {
      // The server could not apply the batch right now (its disk is full, it is busy, it ran
      // out of memory or time): nothing is wrong with the change. The whole batch was rolled
      // back; it is retried later, never recorded as refused.
      throw new SyncError(`the server could not apply a push batch right now (${e.code}: ${e.message}); it will be retried`, 'HTTP', 503);
    }
    const where = step ? ` (change ${step.changeId}${step.table ? `, table ${step.table}` : ''}: ${step.sql})` : '';
    return { type: 'refused', reason: `${e.message}${where}`, changeId: step?.changeId ?? null, table: step?.table ?? null };
  }
  if (r.response.result.step_results[batch.commitStep] === null) {
    // Every step runs only after the one before it succeeded, so a COMMIT skipped with no step
    // failing is an answer no server gives for this batch (a proxy's or a broken server's):
    // the changes are not at fault and stay pending, never recorded as refused.
    throw new SyncError('v2/pipeline: the answer to a push skipped its COMMIT with no step failing', 'PROTOCOL');
  }
  return { type: 'ok' };
}

/**
 * The step errors of a batch answer, after checking that it has one result and one error entry
 * per step: an answer cut short or of another shape must not read as a batch that committed.
 */
function batchOutcome(result: unknown, steps: number, what: string): (HranaError | null)[] {
  // The answer is parsed JSON from the network; its shape is what is checked here.
  const r = result as { step_results?: unknown; step_errors?: unknown } | null;
  const wellFormed =
    r !== null &&
    typeof r === 'object' &&
    Array.isArray(r.step_results) &&
    Array.isArray(r.step_errors) &&
    r.step_results.length === steps &&
    r.step_errors.length === steps &&
    r.step_errors.every((e) => e === null || (typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string'));
  if (!wellFormed) throw new SyncError(`v2/pipeline: the answer to ${what} does not have one result and one error per statement (${steps})`, 'PROTOCOL');
  return r.step_errors as (HranaError | null)[];
}

/** The request that reads this client's acknowledged change id from the server. */
export function ackRequest(clientId: string): PipelineRequest {
  return {
    baton: null,
    requests: [{ type: 'batch', batch: { steps: [{ stmt: { sql: SELECT_TURSO_SYNC, args: [{ type: 'text', value: clientId }], want_rows: true } }] } }],
  };
}

/** The acknowledged change id in the answer to `ackRequest` (0 when the server has none). */
export function readAck(response: PipelineResponse): number {
  const r = response.results[0];
  if (r?.type !== 'ok' || r.response.type !== 'batch') throw new SyncError('v2/pipeline: unexpected answer to the acknowledgement query', 'PROTOCOL');
  const error = batchOutcome(r.response.result, 1, 'the acknowledgement query')[0];
  if (error) {
    // A server that never saw a push has no protocol table yet.
    if (/no such table/i.test(error.message)) return 0;
    throw new SyncError(`reading this client's acknowledged change failed: ${error.message}`, 'HTTP');
  }
  const row = r.response.result.step_results[0]?.rows[0];
  if (!row) return 0;
  const [gen, id] = row as [HranaValue, HranaValue];
  if (gen?.type !== 'integer' || id?.type !== 'integer') throw new SyncError('the acknowledgement row has an unexpected shape', 'PROTOCOL');
  return Number(id.value);
}
