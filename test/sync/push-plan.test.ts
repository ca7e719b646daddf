/**
 * The push plan (src/sync/push-plan.ts): which records a push sends and how it splits them into
 * batches on transaction boundaries. Pure: no SQLite, no server.
 */
import { describe, expect, test } from 'vitest';
import type { ChangeRecord } from '../../src/sync/change-log.js';
import { InvariantError } from '../../src/sync/invariant.js';
import { CHANGESET_BYTES_PER_ROW, estimatedRows, recordsToPush, splitIntoBatches } from '../../src/sync/push-plan.js';

/** A record whose changeset has `bytes` bytes and whose transaction ran `ddl` DDL statements. */
const record = (id: number, bytes: number, ddl = 0): ChangeRecord => ({
  id,
  segments: [...Array.from({ length: ddl }, (_, i) => ({ ddl: `CREATE TABLE x${i}(a)` })), ...(bytes > 0 ? [{ changeset: new Uint8Array(bytes), columns: {} }] : [])],
});
const ids = (batches: ChangeRecord[][]): number[][] => batches.map((b) => b.map((r) => r.id));

describe('estimatedRows', () => {
  const cases: [string, ChangeRecord, number][] = [
    ['an empty record counts as one row', record(1, 0), 1],
    ['up to 64 changeset bytes are one row', record(1, CHANGESET_BYTES_PER_ROW), 1],
    ['one byte more is two', record(1, CHANGESET_BYTES_PER_ROW + 1), 2],
    ['each DDL statement is one row', record(1, 0, 3), 3],
    ['DDL and rows add up', record(1, 2 * CHANGESET_BYTES_PER_ROW, 2), 4],
  ];
  for (const [name, r, rows] of cases) test(name, () => expect(estimatedRows(r)).toBe(rows));
});

describe('recordsToPush', () => {
  const records = [1, 2, 3, 4, 5].map((id) => record(id, 10));
  test('skips what the server acknowledged', () => {
    expect(recordsToPush(records, 2, () => false).map((r) => r.id)).toEqual([3, 4, 5]);
  });
  test('skips what the server refused', () => {
    expect(recordsToPush(records, 0, (id) => id === 2 || id === 4).map((r) => r.id)).toEqual([1, 3, 5]);
  });
  test('nothing after the last acknowledged change', () => {
    expect(recordsToPush(records, 5, () => false)).toEqual([]);
  });
});

describe('splitIntoBatches', () => {
  const cases: [string, ChangeRecord[], number, number[][]][] = [
    ['nothing to push, no batch', [], 10, []],
    ['everything fits in one batch', [record(1, 10), record(2, 10)], 10, [[1, 2]]],
    ['a batch closes once it reaches the budget', [1, 2, 3, 4, 5].map((id) => record(id, 10)), 2, [[1, 2], [3, 4], [5]]],
    ['a record is never split, even past the budget', [record(1, 10), record(2, 64 * 10), record(3, 10)], 3, [[1, 2], [3]]],
    ['a record over the budget alone is a batch of its own', [record(1, 64 * 10), record(2, 10)], 3, [[1], [2]]],
    ['a budget below one counts as one', [record(1, 10), record(2, 10)], 0, [[1], [2]]],
    ['DDL counts toward the budget', [record(1, 0, 2), record(2, 10), record(3, 10)], 3, [[1, 2], [3]]],
  ];
  for (const [name, records, budget, expected] of cases) test(name, () => expect(ids(splitIntoBatches(records, budget))).toEqual(expected));

  test('change ids must strictly increase', () => {
    expect(() => splitIntoBatches([record(2, 1), record(2, 1)], 10)).toThrow(InvariantError);
    expect(() => splitIntoBatches([record(3, 1), record(1, 1)], 10)).toThrow(InvariantError);
  });
});
