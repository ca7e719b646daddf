/**
 * Replaying one pending change record on top of newly pulled data (apply step f, and crash
 * recovery): its segments in statement order, DDL as a push sends it (`rewriteDdl`), and row
 * changes applied to the columns they were made to.
 *
 * Row changes go through `sqlite3changeset_apply` with the local-wins policy (changeset.ts)
 * when every table of the segment has exactly the columns recorded with it: a changeset is
 * positional, and that is when positions mean the same columns. Otherwise (another client
 * dropped, renamed, reordered or added columns, or rebuilt the table) each change is applied
 * by column name, as the same statements a push sends (push-sql.ts), with the same policy: an
 * insert replaces the row with its key, an update of a row that is gone changes nothing, a
 * constraint violation refuses the record.
 *
 * A record applied by name is kept rewritten to what it did: its changes with the columns of
 * the table as it is now (an insert no longer names a column that was dropped while it held
 * NULL), so that its push, on a server that has the same schema, runs the same statements.
 *
 * A record applies whole or not at all (a savepoint around it). It is refused when one of its
 * changes would need a table or a column that no longer exists (a value would have to land in
 * another column, or be lost), breaks a constraint of the pulled data, or when its DDL or SQL
 * fails: it then stays in the change log
 * as it was, its effects absent locally, and the caller reports it. A storage failure is not a
 * refusal: it propagates, and the pull fails as a whole.
 */
import type { Connection } from '../engine/connection.js';
import { encodeChangeset } from '../engine/changeset-format.js';
import type { StoredValue } from '../engine/stored-value.js';
import { SqliteError } from '../errors.js';
import type { ChangeRecord } from './change-log.js';
import { ConstraintBroken, type RowChange, type RecordSegment, decodeChangeset, replayChangeset } from './changeset.js';
import { type TableInfo, recordedTableInfo, rewriteDdl, rowChangeSql } from './push-sql.js';
import { readTableInfo } from './schema.js';

/** Why a record could not be replayed, and the table it concerns when one does. */
export interface ReplayRefusal {
  reason: string;
  table: string | null;
}

class Refused extends Error {
  constructor(
    message: string,
    readonly table: string | null,
  ) {
    super(message);
  }
}

/** SQLite's primary codes of a failure to store or read, not of the statement: never a refusal. */
const STORAGE_CODES = new Set([5, 6, 7, 8, 9, 10, 11, 13, 14, 26]);

const primaryCode = (e: SqliteError): number => e.resultCode & 0xff;

/** What became of a replayed record: applied (and kept as `record`, maybe rewritten), or refused. */
export type ReplayOutcome = { applied: ChangeRecord } | { refused: ReplayRefusal };

type RowSegment = Extract<RecordSegment, { changeset: Uint8Array }>;

/** Replays one record inside the open transaction: all of it, or none of it and why. */
export function replayRecord(conn: Connection, record: ChangeRecord): ReplayOutcome {
  conn.exec('SAVEPOINT outpost_replay');
  try {
    const segments = record.segments.map((segment) => {
      if (!('ddl' in segment)) return replayRows(conn, segment);
      replayDdl(conn, segment.ddl);
      return segment;
    });
    conn.exec('RELEASE outpost_replay');
    return { applied: segments.every((s, i) => s === record.segments[i]) ? record : { id: record.id, segments } };
  } catch (e) {
    conn.exec('ROLLBACK TO outpost_replay');
    conn.exec('RELEASE outpost_replay');
    if (e instanceof Refused) return { refused: { reason: e.message, table: e.table } };
    if (e instanceof ConstraintBroken) return { refused: { reason: e.message, table: null } };
    if (e instanceof SqliteError && !STORAGE_CODES.has(primaryCode(e))) return { refused: { reason: e.message, table: null } };
    throw e;
  }
}

function replayDdl(conn: Connection, ddl: string): void {
  const { sql, ignorable } = rewriteDdl(ddl);
  try {
    conn.exec(sql);
  } catch (e) {
    if (!ignorable) throw e;
  }
}

/** Replays a segment's row changes; returns the segment as it applied (rewritten when by name). */
function replayRows(conn: Connection, segment: RowSegment): RowSegment {
  const recorded = segment.columns;
  if (recorded === null || Object.entries(recorded).every(([table, columns]) => sameColumns(readTableInfo(conn, table), columns))) {
    replayChangeset(conn, segment.changeset);
    return segment;
  }
  const current = new Map<string, TableInfo | null>();
  const applied: RowChange[] = [];
  const columns: Record<string, string[]> = {};
  for (const change of decodeChangeset(segment.changeset)) {
    const names = recorded[change.table];
    if (!names) throw new Refused(`no columns were recorded for table ${change.table}`, change.table);
    if (!current.has(change.table)) current.set(change.table, readTableInfo(conn, change.table));
    const byName = replayByName(conn, change, recordedTableInfo(names, change.pk), current.get(change.table) ?? null);
    applied.push(byName.change);
    columns[change.table] = byName.columns;
  }
  return { changeset: encodeChangeset(applied), columns };
}

function sameColumns(info: TableInfo | null, columns: readonly string[]): boolean {
  return info !== null && info.columns.length === columns.length && info.columns.every((c, i) => c === columns[i]);
}

/**
 * One change by column name. The columns it needs are its key and the values it sets (an
 * insert's NULLs excepted: a column that was dropped loses nothing by not receiving NULL).
 * Returns the change as it applied: only the columns that still exist, and their names.
 */
function replayByName(conn: Connection, change: RowChange, recorded: TableInfo, current: TableInfo | null): { change: RowChange; columns: string[] } {
  if (!current) throw new Refused(`table ${change.table} no longer exists`, change.table);
  const rowidTable = recorded.pk.length === 0;
  // Value i of the change is column names[i]; a rowid table's first value is its rowid.
  const names = rowidTable ? [null, ...recorded.columns] : recorded.columns;
  const present = new Set(current.columns.map((c) => c.toLowerCase()));
  const keep: number[] = [];
  names.forEach((name, i) => {
    const key = change.pk[i] === true;
    const value = change.op === 'delete' ? undefined : change.after[i];
    const needed = key || (value !== undefined && (change.op === 'update' || value.type !== 'null'));
    if (name === null || present.has(name.toLowerCase())) keep.push(i);
    else if (needed) throw new Refused(`column ${name} of table ${change.table} no longer exists (change to ${change.table}.${name})`, change.table);
  });
  const projected: RowChange = {
    table: change.table,
    op: change.op,
    pk: keep.map((i) => change.pk[i]!),
    // Key columns are never dropped, so their places in the key stay as recorded.
    ...(change.keyPositions ? { keyPositions: keep.map((i) => change.keyPositions![i]!) } : {}),
    before: change.before.length > 0 ? keep.map((i) => change.before[i]) : [],
    after: change.after.length > 0 ? keep.map((i) => change.after[i]) : [],
  };
  const columns = keep.filter((i) => names[i] !== null).map((i) => names[i]!);
  const info: TableInfo = { columns, pk: rowidTable ? [] : projected.pk.flatMap((k, i) => (k ? [i] : [])), rowidAlias: current.rowidAlias };
  const args: StoredValue[] = [];
  const sql = rowChangeSql(projected, info, (v) => {
    args.push(v);
    return '?';
  });
  if (sql !== null) {
    // A change that breaks a constraint fails the statement, and with it the record (refused
    // and reported by replayRecord), as the server would refuse its push.
    conn.run(sql, args);
  }
  return { change: projected, columns };
}
