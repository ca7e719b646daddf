/**
 * Push batches (src/sync/push-batch.ts): statements from decoded row changes, the gated Hrana
 * batch with its step → change map, and the reading of the server's answer. Pure: built from
 * row changes and table descriptions, with no SQLite and no server.
 */
import { describe, expect, test } from 'vitest';
import { OutpostError, SyncError, isTransient } from '../../src/errors.js';
import type { HranaBatchStep, HranaStmtResult, PipelineResponse } from '../../src/protocol/hrana.js';
import { PUSH_GATE, TURSO_SYNC_TABLE, isReplayablePush } from '../../src/protocol/turso-tables.js';
import { type StoredValue, textValue } from '../../src/engine/stored-value.js';
import type { RowChange } from '../../src/sync/changeset.js';
import { type DecodedRecord, ackRequest, applyTransform, buildPushBatch, pushSteps, readAck, readPushResult } from '../../src/sync/push-batch.js';
import type { TableInfo } from '../../src/sync/push-sql.js';

const tables: Record<string, TableInfo> = {
  t: { columns: ['id', 'v'], pk: [0], rowidAlias: 'rowid' },
  r: { columns: ['a', 'b'], pk: [], rowidAlias: 'rowid' },
};
const info = (table: string): TableInfo | null => tables[table] ?? null;
/** A stored value from a JS integer or string. */
const v = (x: number | string): StoredValue => (typeof x === 'number' ? { type: 'integer', value: BigInt(x) } : textValue(x));
const insertT = (id: number, text: string): RowChange => ({ table: 't', op: 'insert', pk: [true, false], before: [], after: [v(id), v(text)] });
/** Records of the change log's first format: DDL first, changes named by the schema at push time. */
const records: DecodedRecord[] = [
  { id: 7, segments: [{ ddl: 'CREATE TABLE t(id INTEGER PRIMARY KEY, v)' }, { changes: [insertT(1, 'a')], columns: null }] },
  {
    id: 8,
    segments: [
      {
        changes: [insertT(2, 'b'), { table: 'gone', op: 'insert', pk: [true], before: [], after: [v(1)] }, { table: 'turso_sync_last_change_id', op: 'insert', pk: [true], before: [], after: [v('x')] }],
        columns: null,
      },
    ],
  },
  { id: 9, segments: [{ ddl: 'ALTER TABLE t ADD COLUMN w' }, { changes: [{ table: 'r', op: 'delete', pk: [true, false, false], before: [v(5), v('x'), v('y')], after: [] }], columns: null }] },
];

const okResult: HranaStmtResult = { cols: [], rows: [], affected_row_count: 0, last_insert_rowid: null, replication_index: null, rows_read: 0, rows_written: 0, query_duration_ms: 0 };
/** The server's answer to a batch of `n` steps, with errors at some steps and skipped others. */
function answer(n: number, errors: Record<number, string> = {}, skipped: number[] = []): PipelineResponse {
  const step_results = Array.from({ length: n }, (_, i) => (errors[i] !== undefined || skipped.includes(i) ? null : okResult));
  const step_errors = Array.from({ length: n }, (_, i) => (errors[i] !== undefined ? { message: errors[i]!, code: 'SQLITE_ERROR' } : null));
  return { baton: null, base_url: null, results: [{ type: 'ok', response: { type: 'batch', result: { step_results, step_errors, replication_index: null } } }] };
}
const stepsOf = (batch: ReturnType<typeof buildPushBatch>): HranaBatchStep[] => {
  const request = batch.request.requests[0];
  if (request?.type !== 'batch') throw new Error('not a batch');
  return request.batch.steps;
};

describe('pushSteps', () => {
  const planned = pushSteps(records, info, true);
  test('DDL first, rewritten to be idempotent; row changes in order; untracked and vanished tables left out', () => {
    expect(planned.steps.map((s) => [s.changeId, s.table, s.ignorable, s.sql])).toEqual([
      [7, null, false, 'CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v)'],
      [7, 't', false, `INSERT INTO "t"("id", "v") VALUES (?,?) ON CONFLICT("id") DO UPDATE SET "id" = json_extract('{}', 'outpost: insert key taken')`],
      [8, 't', false, `INSERT INTO "t"("id", "v") VALUES (?,?) ON CONFLICT("id") DO UPDATE SET "id" = json_extract('{}', 'outpost: insert key taken')`],
      [9, null, true, 'ALTER TABLE t ADD COLUMN w'],
      [9, 'r', false, 'DELETE FROM "r" WHERE "rowid" = ?'],
    ]);
    expect(planned.steps[2]!.args).toEqual([{ type: 'integer', value: '2' }, { type: 'text', value: 'b' }]);
  });
  test('one mutation per row statement, only when asked for', () => {
    expect(planned.mutations.map((m) => m.mutation)).toEqual([
      { changeId: 7, table: 't', op: 'insert', before: {}, after: { id: 1, v: 'a' } },
      { changeId: 8, table: 't', op: 'insert', before: {}, after: { id: 2, v: 'b' } },
      { changeId: 9, table: 'r', op: 'delete', before: { rowid: 5, a: 'x', b: 'y' }, after: {} },
    ]);
    expect(pushSteps(records, info, false).mutations).toEqual([]);
  });
});

describe('pushSteps with recorded columns', () => {
  // A table rebuilt in one transaction: rows go to the new table, which is then renamed; then
  // an update of a column that the schema at push time (`info`: t(id, v)) no longer has.
  const rebuilt: DecodedRecord[] = [
    {
      id: 20,
      segments: [
        { ddl: 'CREATE TABLE t_new(id INTEGER PRIMARY KEY, old, v)' },
        { changes: [{ table: 't_new', op: 'insert', pk: [true, false, false], before: [], after: [v(1), v('o'), v('a')] }], columns: { t_new: ['id', 'old', 'v'] } },
        { ddl: 'DROP TABLE t' },
        { ddl: 'ALTER TABLE t_new RENAME TO t' },
      ],
    },
    { id: 21, segments: [{ changes: [{ table: 't', op: 'update', pk: [true, false, false], before: [v(1), v('o'), v('a')], after: [undefined, v('p'), undefined] }], columns: { t: ['id', 'old', 'v'] } }] },
    { id: 22, segments: [{ ddl: 'ALTER TABLE t DROP COLUMN old' }] },
  ];
  const planned = pushSteps(rebuilt, info, true);

  test('segments keep statement order, and changes are named by the columns recorded with them', () => {
    expect(planned.steps.map((s) => [s.changeId, s.sql])).toEqual([
      [20, 'CREATE TABLE IF NOT EXISTS t_new(id INTEGER PRIMARY KEY, old, v)'],
      [20, `INSERT INTO "t_new"("id", "old", "v") VALUES (?,?,?) ON CONFLICT("id") DO UPDATE SET "id" = json_extract('{}', 'outpost: insert key taken')`],
      [20, 'DROP TABLE IF EXISTS t'],
      [20, 'ALTER TABLE t_new RENAME TO t'],
      [21, 'UPDATE "t" SET "old" = ? WHERE "id" IS ?'],
      [22, 'ALTER TABLE t DROP COLUMN old'],
    ]);
    expect(planned.steps[4]!.args).toEqual([{ type: 'text', value: 'p' }, { type: 'integer', value: '1' }]);
  });

  test('the mutations a transform sees name the recorded columns too', () => {
    expect(planned.mutations.map((m) => m.mutation)).toEqual([
      { changeId: 20, table: 't_new', op: 'insert', before: {}, after: { id: 1, old: 'o', v: 'a' } },
      { changeId: 21, table: 't', op: 'update', before: { id: 1, old: 'o', v: 'a' }, after: { old: 'p' } },
    ]);
  });

  test('a rowid table without a key: its rowid first, then the recorded columns', () => {
    const steps = pushSteps([{ id: 30, segments: [{ changes: [{ table: 'r', op: 'insert', pk: [true, false], before: [], after: [v(3), v('x')] }], columns: { r: ['rowid_shadow'] } }] }], info, false).steps;
    expect(steps.map((s) => s.sql)).toEqual([`INSERT INTO "r"("rowid", "rowid_shadow") VALUES (CASE WHEN EXISTS (SELECT 1 FROM "r" WHERE "rowid" = ?) THEN json_extract('{}', 'outpost: insert key taken') ELSE ? END,?)`]);
    expect(steps[0]!.args).toEqual([{ type: 'integer', value: '3' }, { type: 'integer', value: '3' }, { type: 'text', value: 'x' }]);
    expect(steps[0]!.guarded).toEqual({ key: 'rowid = 3', rowid: 3n });
  });
});

describe('guarded inserts', () => {
  test('a table in upsertTables keeps the last-push-wins upsert, and its insert is not guarded', () => {
    const [step] = pushSteps([{ id: 1, segments: [{ changes: [insertT(4, 'd')], columns: { t: ['id', 'v'] } }] }], info, false, ['T']).steps;
    expect(step!.sql).toBe('INSERT INTO "t"("id", "v") VALUES (?,?) ON CONFLICT("id") DO UPDATE SET "id" = excluded."id","v" = excluded."v"');
    expect(step!.guarded).toBeUndefined();
  });
  test('a guarded insert names its key; a table with a primary key has no rowid to re-key', () => {
    const [step] = pushSteps([{ id: 1, segments: [{ changes: [insertT(4, 'd')], columns: { t: ['id', 'v'] } }] }], info, false).steps;
    expect(step!.guarded).toEqual({ key: 'id = 4', rowid: null });
  });
  test('a transform rewrite is not guarded any more', () => {
    const planned = pushSteps([{ id: 1, segments: [{ changes: [insertT(4, 'd')], columns: { t: ['id', 'v'] } }] }], info, true);
    const [step] = applyTransform(planned, [{ sql: 'INSERT INTO t VALUES (9, ?)', args: ['d'] }]);
    expect(step!.guarded).toBeUndefined();
  });
  test("the server's collision error is a collision naming the change, its table and its key", () => {
    const steps = pushSteps([{ id: 5, segments: [{ changes: [insertT(4, 'd')], columns: { t: ['id', 'v'] } }] }], info, false).steps;
    const batch = buildPushBatch('client-1', 5, 5, steps);
    const n = stepsOf(batch).length;
    // Turso's wording; SQLite says "bad JSON path: 'outpost: insert key taken'".
    const result = readPushResult(batch, answer(n, { 3: 'Parse error: Bad json path: outpost: insert key taken' }, [4, 5, 6]));
    expect(result).toMatchObject({ type: 'collision', changeId: 5, table: 't', key: 'id = 4', rowid: null });
    expect(result.type === 'collision' && result.reason).toMatch(/^insert collision: table t already has a row with id = 4/);
  });
});

describe('applyTransform', () => {
  const planned = pushSteps(records, info, true);
  test('keep, skip and rewrite', () => {
    const steps = applyTransform(planned, ['skip', 'keep', { sql: 'DELETE FROM r WHERE a = ?', args: ['x'] }]);
    expect(steps.map((s) => [s.changeId, s.sql])).toEqual([
      [7, 'CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v)'],
      [8, planned.steps[2]!.sql],
      [9, 'ALTER TABLE t ADD COLUMN w'],
      [9, 'DELETE FROM r WHERE a = ?'],
    ]);
    expect(steps[3]!.args).toEqual([{ type: 'text', value: 'x' }]);
    // The planned steps are not changed in place.
    expect(planned.steps[4]!.sql).toBe('DELETE FROM "r" WHERE "rowid" = ?');
  });
  test('a rewrite whose arguments cannot be sent (an infinity) is INVALID_ARGUMENT, not a malformed request', () => {
    expect(() => applyTransform(planned, ['keep', 'keep', { sql: 'DELETE FROM r WHERE a = ?', args: [Number.POSITIVE_INFINITY] }])).toThrow(/cannot be sent/);
  });
  test('a result per mutation, or INVALID_ARGUMENT', () => {
    expect(() => applyTransform(planned, ['keep'])).toThrow(OutpostError);
    expect(() => applyTransform(planned, 'keep')).toThrow(/one result per mutation/);
  });
});

describe('buildPushBatch', () => {
  const steps = pushSteps(records, info, false).steps;
  const batch = buildPushBatch('client-1', 7, 9, steps);
  const hrana = stepsOf(batch);

  test('BEGIN, the protocol table, the gate, the statements, the acknowledgement, COMMIT, ROLLBACK', () => {
    expect(hrana.map((s) => s.stmt.sql)).toEqual([
      'BEGIN IMMEDIATE',
      expect.stringContaining(`CREATE TABLE IF NOT EXISTS ${TURSO_SYNC_TABLE}`),
      PUSH_GATE,
      ...steps.map((s) => s.sql),
      expect.stringContaining(`INSERT INTO ${TURSO_SYNC_TABLE}`),
      'COMMIT',
      'ROLLBACK',
    ]);
    expect(hrana.at(-3)!.stmt.args).toEqual([{ type: 'text', value: 'client-1' }, { type: 'integer', value: '1' }, { type: 'integer', value: '9' }]);
    expect(hrana[2]!.stmt.args).toEqual([{ type: 'text', value: 'client-1' }, { type: 'integer', value: '7' }]);
    expect(batch.commitStep).toBe(hrana.length - 2);
  });

  test('the step → change map is data: framing steps map to null, statements to their step', () => {
    expect(batch.stepAt).toEqual([null, null, null, ...steps, null, null, null]);
  });

  test('each step is gated on the last step that must succeed; an ignorable step moves no gate', () => {
    const gates = hrana.map((s) => (s.condition?.type === 'and' && s.condition.conds[0]?.type === 'ok' ? s.condition.conds[0].step : null));
    // 0 BEGIN, 1 the protocol table, 2 the gate, 3-7 the statements (6 is the ignorable
    // ALTER), 8 the acknowledgement, 9 COMMIT, 10 ROLLBACK
    expect(gates).toEqual([null, 0, 1, 2, 3, 4, 5, 5, 7, 8, null]);
    expect(hrana[9]!.condition).toEqual({ type: 'and', conds: [{ type: 'ok', step: 8 }, { type: 'not', cond: { type: 'is_autocommit' } }] });
    expect(hrana.at(-1)!.condition).toEqual({ type: 'not', cond: { type: 'is_autocommit' } });
  });
});

describe('isReplayablePush', () => {
  const batch = buildPushBatch('client-1', 7, 9, pushSteps(records, info, false).steps);
  test('a whole push batch may be replayed', () => {
    expect(isReplayablePush(JSON.parse(JSON.stringify(batch.request)))).toBe(true);
  });
  test('an acknowledgement query, a batch with a baton or with another request is not', () => {
    expect(isReplayablePush(ackRequest('client-1'))).toBe(false);
    expect(isReplayablePush({ ...batch.request, baton: 'b1' })).toBe(false);
    expect(isReplayablePush({ ...batch.request, requests: [...batch.request.requests, { type: 'close' }] })).toBe(false);
    expect(isReplayablePush(null)).toBe(false);
  });
});

describe('readPushResult', () => {
  const steps = pushSteps(records, info, false).steps;
  const batch = buildPushBatch('client-1', 7, 9, steps);
  const n = stepsOf(batch).length;

  test('ok when every step ran', () => {
    expect(readPushResult(batch, answer(n))).toEqual({ type: 'ok' });
  });
  test("a change's statement failed: refused, naming the change, its table and the statement", () => {
    const result = readPushResult(batch, answer(n, { 5: 'UNIQUE constraint failed: t.id' }, [6, 7, 8, 9, 10]));
    expect(result).toEqual({
      type: 'refused',
      reason: `UNIQUE constraint failed: t.id (change 8, table t: ${steps[2]!.sql})`,
      changeId: 8,
      table: 't',
    });
  });
  test('a failed DDL statement names its change but no table', () => {
    expect(readPushResult(batch, answer(n, { 3: 'syntax error' }))).toMatchObject({ type: 'refused', changeId: 7, table: null });
  });
  test('an ignorable step that failed does not refuse the batch', () => {
    expect(readPushResult(batch, answer(n, { 6: 'duplicate column name: w' }))).toEqual({ type: 'ok' });
  });
  test('a failed framing step refuses without naming a change', () => {
    expect(readPushResult(batch, answer(n, { 0: 'database is locked' }))).toEqual({ type: 'refused', reason: 'database is locked', changeId: null, table: null });
  });
  test.each(['SQLITE_FULL', 'SQLITE_IOERR_WRITE', 'SQLITE_BUSY', 'SQLITE_NOMEM', 'SQLITE_INTERRUPT'])(
    "the server's own condition (%s) is a transient error to retry, never a refusal",
    (code) => {
      const response = answer(n, { 5: 'the server failed' });
      const r = response.results[0];
      if (r?.type !== 'ok' || r.response.type !== 'batch') throw new Error('unexpected answer shape');
      r.response.result.step_errors[5] = { message: 'database or disk is full', code };
      let thrown: unknown = null;
      try {
        readPushResult(batch, response);
      } catch (e) {
        thrown = e;
      }
      expect(thrown).toBeInstanceOf(SyncError);
      expect(isTransient(thrown)).toBe(true);
    },
  );
  test('a failed gate is stale: the server already has these changes, and nothing was applied', () => {
    const result = readPushResult(batch, answer(n, { 2: "bad JSON path: 'outpost: batch already applied up to change 9'" }, [3, 4, 5, 6, 7, 8, 9]));
    expect(result).toEqual({ type: 'stale', reason: "bad JSON path: 'outpost: batch already applied up to change 9'" });
  });
  test('an answer with fewer step results than statements, or none, is a PROTOCOL error, never a commit', () => {
    // An outside adversary's server answered with empty step lists: push() reported the change pushed.
    for (const steps of [0, 1, n - 1]) expect(() => readPushResult(batch, answer(steps))).toThrow(expect.objectContaining({ code: 'PROTOCOL' }));
    // A result without its step lists, which the type does not allow and a server may still send.
    const noLists: PipelineResponse = { baton: null, base_url: null, results: [{ type: 'ok', response: { type: 'batch', result: {} as never } }] };
    expect(() => readPushResult(batch, noLists)).toThrow(expect.objectContaining({ code: 'PROTOCOL' }));
  });
  test('a COMMIT skipped with no step failing is a PROTOCOL error, never a refusal', () => {
    // An outside adversary's server answered so: the change was recorded refused for good.
    expect(() => readPushResult(batch, answer(n, {}, [batch.commitStep]))).toThrow(expect.objectContaining({ code: 'PROTOCOL' }));
  });
  test('a stream error is HTTP, another shape is PROTOCOL', () => {
    const streamError: PipelineResponse = { baton: null, base_url: null, results: [{ type: 'error', error: { message: 'boom', code: 'X' } }] };
    expect(() => readPushResult(batch, streamError)).toThrow(expect.objectContaining({ code: 'HTTP' }));
    const wrong: PipelineResponse = { baton: null, base_url: null, results: [{ type: 'ok', response: { type: 'close' } }] };
    expect(() => readPushResult(batch, wrong)).toThrow(SyncError);
    expect(() => readPushResult(batch, wrong)).toThrow(expect.objectContaining({ code: 'PROTOCOL' }));
  });
});

describe('the acknowledgement', () => {
  const rows = (r: HranaStmtResult['rows']): PipelineResponse => ({
    baton: null,
    base_url: null,
    results: [{ type: 'ok', response: { type: 'batch', result: { step_results: [{ ...okResult, rows: r }], step_errors: [null], replication_index: null } } }],
  });
  test('asks for this client', () => {
    const request = ackRequest('client-1').requests[0];
    expect(request?.type === 'batch' && request.batch.steps[0]?.stmt.args).toEqual([{ type: 'text', value: 'client-1' }]);
  });
  test('reads the change id, 0 without a row or without the table', () => {
    expect(readAck(rows([[{ type: 'integer', value: '1' }, { type: 'integer', value: '42' }]]))).toBe(42);
    expect(readAck(rows([]))).toBe(0);
    expect(readAck(answer(1, { 0: 'no such table: turso_sync_last_change_id' }))).toBe(0);
  });
  test('another error or another shape fails', () => {
    expect(() => readAck(answer(1, { 0: 'disk I/O error' }))).toThrow(expect.objectContaining({ code: 'HTTP' }));
    expect(() => readAck(rows([[{ type: 'text', value: '1' }, { type: 'integer', value: '42' }]]))).toThrow(expect.objectContaining({ code: 'PROTOCOL' }));
  });
});
