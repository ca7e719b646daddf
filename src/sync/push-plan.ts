/**
 * Pure: which change records a push sends, and how it splits them into batches. Each batch is
 * one server transaction and ends on a transaction boundary (a record is never split).
 *
 * `pushBatchSize` counts row changes, but counting them exactly means decoding every
 * changeset before the push starts. The plan estimates instead, from the changeset's size: a
 * changeset row is an operation byte, a flag byte, and per column a type byte and the value (8
 * bytes for a number, a length and the bytes for text and blobs; an update carries old and new
 * values), so a row of a typical small table takes a few dozen bytes. `CHANGESET_BYTES_PER_ROW`
 * rounds that up to 64: wide rows count as several, which only makes their batches smaller.
 * Each DDL statement counts as one row, and a record as at least one.
 */
import type { ChangeRecord } from './change-log.js';
import { invariant } from './invariant.js';

/** The estimated changeset bytes of one row change (see the header). */
export const CHANGESET_BYTES_PER_ROW = 64;

/** The estimated row changes of a record. */
export function estimatedRows(record: Pick<ChangeRecord, 'segments'>): number {
  const rows = record.segments.reduce((n, s) => n + ('ddl' in s ? 1 : Math.ceil(s.changeset.length / CHANGESET_BYTES_PER_ROW)), 0);
  return Math.max(1, rows);
}

/** The records to send: those after the server's acknowledged id that it has not refused. */
export function recordsToPush<R extends Pick<ChangeRecord, 'id'>>(records: readonly R[], ackedChangeId: number, isRejected: (changeId: number) => boolean): R[] {
  return records.filter((r) => r.id > ackedChangeId && !isRejected(r.id));
}

/**
 * Splits records, oldest first, into batches: a batch closes once its estimated rows reach
 * `rowBudget` (so it may pass the budget by its last record).
 */
export function splitIntoBatches<R extends Pick<ChangeRecord, 'id' | 'segments'>>(records: readonly R[], rowBudget: number): R[][] {
  const budget = Math.max(1, rowBudget);
  const batches: R[][] = [];
  let batch: R[] = [];
  let rows = 0;
  let lastId = -Infinity;
  for (const r of records) {
    invariant(r.id > lastId, `change ids strictly increase (${r.id} after ${lastId})`);
    lastId = r.id;
    batch.push(r);
    rows += estimatedRows(r);
    if (rows >= budget) {
      batches.push(batch);
      batch = [];
      rows = 0;
    }
  }
  if (batch.length > 0) batches.push(batch);
  return batches;
}
