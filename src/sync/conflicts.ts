/**
 * Insert collisions: two clients that insert offline can give different rows the same key
 * (SQLite hands out the next rowid, or the next INTEGER PRIMARY KEY, on each of them). A push
 * never overwrites a row this way: its inserts are guarded (push-sql.ts) and fail on the
 * server when their key is taken, and then, by the kind of table (README, "Conflicts"):
 *
 * - A table without a primary key: its rowid is SQLite's bookkeeping, not the application's
 *   data. The colliding insert and every later pending insert into that table are re-keyed
 *   here (`rekeyInserts`): each gets a fresh rowid above every rowid the server, the local
 *   database and the pending changes use; the pending changes of the same row follow it (its
 *   updates, and its delete, which ends the row); the local rows move to their new rowids in
 *   the same local transaction as the rewritten change records. The push then starts over.
 *   Both rows survive, and a pull brings the other client's row in at the rowid it has on
 *   the server.
 * - A table with a primary key (an INTEGER PRIMARY KEY included): the key is the
 *   application's, other rows or other systems may hold it, so it is never changed behind
 *   the application's back. The change is refused and reported (push.ts records it), kept
 *   locally with its values, and every later pending change to a row it inserted is refused
 *   too, as waiting for it (`heldBehindRejected`): pushed alone, such an update or delete
 *   would land on the other client's row. (Every refusal holds back the later changes to the
 *   rows it wrote the same way: they were made on top of it, README "A change built on a
 *   refused one".) Both kinds stay local and reported, kept by every
 *   pull, until the application gives the row a new key (a `transform` rewrite, then
 *   `retryRejectedChange`) or drops the changes.
 *
 * A re-push of this client's own insert is not a collision: a push first reads this client's
 * acknowledged change id from the server and sends only what comes after it, and a batch's
 * rows and its acknowledgement commit together, so an insert the server has is never sent
 * again, whatever answers were lost or whenever the client crashed.
 */
import { encodeChangeset } from '../engine/changeset-format.js';
import type { StoredValue } from '../engine/stored-value.js';
import { SyncError } from '../errors.js';
import type { PipelineRequest, PipelineResponse } from '../protocol/hrana.js';
import type { SyncTransport } from '../protocol/transport.js';
import type { ChangeRecord } from './change-log.js';
import { type DecodedSegment, type RecordSegment, type RowChange, decodeSegments } from './changeset.js';
import type { LocalDatabase } from './local.js';
import { type TableInfo, changeTableInfo, quoteIdent } from './push-sql.js';
import { readTableInfo, tableInfoLookup } from './schema.js';

/** How a refusal's reason starts when the refused change is an insert collision. */
export const COLLISION_REASON_PREFIX = 'insert collision:';

/** A record with its changesets decoded, as the planners here read it. */
export interface DecodedChangeRecord {
  id: number;
  segments: DecodedSegment[];
}

type TableLookup = (table: string) => TableInfo | null;

/** A row's identity across change records: its table and the values of its key. */
function rowIdentity(change: RowChange, info: TableInfo): string {
  const values = change.op === 'insert' ? change.after : change.before;
  const keyIdx = info.pk.length === 0 ? [0] : info.pk;
  return `${change.table.toLowerCase()}\u0000${keyIdx.map((i) => valueIdentity(values[i])).join('\u0000')}`;
}

function valueIdentity(v: StoredValue | undefined): string {
  if (!v || v.type === 'null') return 'n';
  if (v.type === 'integer' || v.type === 'real') return `${v.type[0]}${String(v.value)}`;
  return `${v.type[0]}${Array.from(v.bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** Each row change of a record with the table description it is named by. */
function* rowChanges(record: DecodedChangeRecord, current: TableLookup): Generator<{ change: RowChange; info: TableInfo }> {
  for (const segment of record.segments) {
    if ('ddl' in segment) continue;
    for (const change of segment.changes) {
      const info = changeTableInfo(change, segment.columns, current);
      if (info) yield { change, info };
    }
  }
}

/**
 * The records that must wait because a refused record wrote a row they write (README,
 * "Conflicts"): a change is made on top of the rows as its client saw them, and carries only
 * the columns it changed there, so pushed without the refused change it would not carry what
 * that one set (an UPDATE setting a column to the value the refused change had given it changes
 * nothing in that column), and after an insert collision it would land on the other client's
 * row with the same key. Maps each to the record it waits for (a refused one, or one that
 * waits itself: its rows then wait for it in turn). A delete ends the row: an insert of the
 * same key after it is another row, pushed on its own (the server refuses it if the key is
 * taken). Pure; `records` oldest first.
 */
export function heldBehindRejected(records: readonly DecodedChangeRecord[], rejectionOf: (changeId: number) => string | undefined, current: TableLookup): Map<number, number> {
  const waiting = new Map<string, number>();
  const held = new Map<number, number>();
  for (const record of records) {
    const changes = [...rowChanges(record, current)].map(({ change, info }) => ({ op: change.op, row: rowIdentity(change, info) }));
    if (rejectionOf(record.id) === undefined) {
      const blocker = changes.find((c) => c.op !== 'insert' && waiting.has(c.row));
      if (!blocker) {
        for (const c of changes) if (c.op === 'delete') waiting.delete(c.row);
        continue;
      }
      held.set(record.id, waiting.get(blocker.row)!);
    }
    // Refused, or held: the rows it wrote wait for it, until a delete ends them.
    for (const c of changes) {
      if (c.op === 'delete') waiting.delete(c.row);
      else waiting.set(c.row, record.id);
    }
  }
  return held;
}

/**
 * What moves with a retried record that needs a new id (it goes after every record there is):
 * the retried one, then each later record, oldest first, that writes a row the records taken so
 * far write. Without them its older values would land after their newer ones. `rowsOf` gives a
 * record's rows (table and key); `later` holds only records the server cannot have (refused, or
 * never sent), oldest first, for a record the server has keeps its id. Pure.
 */
export function retryGroup(retriedId: number, later: readonly number[], rowsOf: (id: number) => ReadonlySet<string>): number[] {
  const group = [retriedId];
  const rows = new Set(rowsOf(retriedId));
  for (const id of later) {
    if (id <= retriedId) continue;
    const theirs = rowsOf(id);
    let shares = false;
    for (const row of theirs) {
      if (rows.has(row)) {
        shares = true;
        break;
      }
    }
    if (!shares) continue;
    group.push(id);
    for (const row of theirs) rows.add(row);
  }
  return group;
}

/** The rows (table and key) each record writes, for `touchesAny`. */
export function rowsOfRecords(records: readonly DecodedChangeRecord[], current: TableLookup): Map<number, Set<string>> {
  return new Map(records.map((record) => [record.id, new Set([...rowChanges(record, current)].map(({ change, info }) => rowIdentity(change, info)))]));
}

/** What a re-key does: the records it rewrites and the local rows it moves. */
export interface RekeyPlan {
  records: Map<number, DecodedSegment[]>;
  /** Local rowid moves, old to new. */
  moves: [bigint, bigint][];
}

/**
 * Pure: gives every insert into `table` (a table without a primary key) in the records from
 * `fromId` on a fresh rowid, from `firstFree` up and above every rowid the records use, and
 * makes the later changes of the same row follow it until its delete.
 */
export function planRekey(records: readonly DecodedChangeRecord[], table: string, fromId: number, firstFree: bigint, current: TableLookup): RekeyPlan {
  let next = firstFree;
  for (const record of records) {
    for (const { change, info } of rowChanges(record, current)) {
      if (change.table !== table || info.pk.length !== 0) continue;
      for (const v of [change.before[0], change.after[0]]) if (v?.type === 'integer' && v.value >= next) next = v.value + 1n;
    }
  }
  const moved = new Map<bigint, bigint>();
  const rewritten = new Map<number, DecodedSegment[]>();
  for (const record of records) {
    if (record.id < fromId) continue;
    let changed = false;
    const segments = record.segments.map((segment): DecodedSegment => {
      if ('ddl' in segment) return segment;
      const changes = segment.changes.map((change) => {
        const info = changeTableInfo(change, segment.columns, current);
        if (change.table !== table || !info || info.pk.length !== 0) return change;
        const rowid = (change.op === 'insert' ? change.after[0] : change.before[0]) as StoredValue | undefined;
        if (rowid?.type !== 'integer') return change;
        let to: bigint | undefined;
        if (change.op === 'insert') moved.set(rowid.value, (to = next++));
        else to = moved.get(rowid.value);
        if (to === undefined) return change;
        if (change.op === 'delete') moved.delete(rowid.value);
        changed = true;
        const value: StoredValue = { type: 'integer', value: to };
        return {
          ...change,
          before: change.before.length > 0 ? [value, ...change.before.slice(1)] : change.before,
          after: change.after.length > 0 && change.after[0] !== undefined ? [value, ...change.after.slice(1)] : change.after,
        };
      });
      return { changes, columns: segment.columns };
    });
    if (changed) rewritten.set(record.id, segments);
  }
  return { records: rewritten, moves: [...moved] };
}

/**
 * Re-keys the pending inserts into `table` from record `fromId` on (see the header): asks the
 * server for the table's largest rowid, then rewrites the change records and moves the local
 * rows in one local transaction, with capture off (the rewrite is not a new change).
 */
export async function rekeyInserts(local: LocalDatabase, transport: SyncTransport, table: string, fromId: number): Promise<void> {
  const { conn, changes } = local;
  const info = readTableInfo(conn, table);
  if (!info || info.pk.length !== 0) return;
  const serverMax = readMaxRowid(await transport.pipeline(maxRowidRequest(table, info.rowidAlias)));
  // The application may have opened a transaction while the request was out: the rows cannot
  // move under it. A 503-like error makes the push retry later, nothing changed.
  if (conn.inTransaction) throw new SyncError(`a pending insert into ${table} must be re-keyed, and a local transaction is open; the push will be retried`, 'HTTP', 503);
  conn.withoutCapture(() => {
    conn.exec('BEGIN IMMEDIATE');
    try {
      const localMax = BigInt(String(conn.value(`SELECT coalesce(max(${info.rowidAlias}), 0) FROM ${quoteIdent(table)}`)));
      const records = changes.readAll();
      const decoded = records.map((r) => ({ id: r.id, segments: decodeSegments(r.segments) }));
      const firstFree = (serverMax > localMax ? serverMax : localMax) + 1n;
      const plan = planRekey(decoded, table, fromId, firstFree, tableInfoLookup(conn));
      for (const [id, segments] of plan.records) changes.rewrite({ id, segments: segments.map(encodeSegment) } satisfies ChangeRecord);
      // Every new rowid is above every rowid in the table, so no move meets another row.
      for (const [from, to] of plan.moves) conn.run(`UPDATE ${quoteIdent(table)} SET ${info.rowidAlias} = ? WHERE ${info.rowidAlias} = ?`, [to, from]);
      conn.exec('COMMIT');
    } catch (e) {
      conn.rollbackQuietly();
      throw e;
    }
  });
}

function encodeSegment(segment: DecodedSegment): RecordSegment {
  return 'ddl' in segment ? segment : { changeset: encodeChangeset(segment.changes), columns: segment.columns };
}

function maxRowidRequest(table: string, rowidAlias: string): PipelineRequest {
  const sql = `SELECT coalesce(max(${rowidAlias}), 0) FROM ${quoteIdent(table)}`;
  return { baton: null, requests: [{ type: 'batch', batch: { steps: [{ stmt: { sql, args: [], want_rows: true } }] } }] };
}

function readMaxRowid(response: PipelineResponse): bigint {
  const r = response.results[0];
  if (r?.type !== 'ok' || r.response.type !== 'batch') throw new SyncError('v2/pipeline: unexpected answer to the largest-rowid query', 'PROTOCOL');
  const error = r.response.result.step_errors[0];
  if (error) throw new SyncError(`reading the server's largest rowid failed: ${error.message}`, 'HTTP');
  const v = r.response.result.step_results[0]?.rows[0]?.[0];
  if (v?.type !== 'integer') throw new SyncError("the server's largest rowid has an unexpected shape", 'PROTOCOL');
  return BigInt(v.value);
}
