/**
 * The change log: `_outpost_changes(id INTEGER PRIMARY KEY, ddl TEXT, changeset BLOB NOT NULL)`,
 * one row per committed local write transaction that the server does not have yet. This file
 * is the only one that names the table. It also decides which tables are tracked: every table
 * but Outpost's own (`_outpost_*`), Turso's protocol table (`turso_sync_*`) and SQLite's
 * (`sqlite_*`).
 *
 * Records arrive from the engine's capture hooks (engine/capture.ts), inside the committing
 * transaction, so a record and its commit are atomic. There, too, a transaction that could
 * not sync is refused before it commits: a write to a self-contained virtual table
 * (`ShadowTables` below) or a row left with a NULL primary key (null-keys.ts). A record is the transaction's segments
 * in statement order: DDL statements, and the row changes between them, each changeset with
 * the column names of its tables as they were when the changes were made, so that a change is
 * pushed and replayed to the columns it was made to, whatever the schema became later.
 *
 * Two formats, both read (`decodeRecord`); new records are always written in the second:
 * - 1 (before segments): `ddl` NULL or a JSON array of the DDL statements, `changeset` one
 *   changeset. Meaning: the DDL first, then the row changes, by the columns of the schema at
 *   push or replay time (`columns: null`).
 * - 2: `ddl` a JSON object `{"v":2,"segments":[{"ddl":"CREATE ..."},{"bytes":n,"columns":{"t":["a","b"]}},...]}`,
 *   `changeset` the segments' changesets concatenated in order, each `bytes` long.
 * (The column keeps its first format's name: renaming it would need a migration of every
 * existing log for no gain.)
 *
 * Change ids only grow: a new id is one more than the larger of the table's largest id and the
 * floor the sync state keeps (ids it has seen acknowledged or dropped), so an id is never
 * reused after acknowledged records are deleted. Replay puts records back with their own ids.
 */
import type { CaptureHooks, CapturedTransaction } from '../engine/capture.js';
import type { Connection } from '../engine/connection.js';
import { TURSO_SYNC_TABLE } from '../protocol/turso-tables.js';
import { CALLS_TABLE } from './calls-table.js';
import type { RecordSegment } from './changeset.js';
import { OutpostError } from '../errors.js';
import { invariant } from './invariant.js';
import { NullKeys } from './null-keys.js';
import { rowidAliasFor } from './push-sql.js';
import { tableExists } from './schema.js';
import { shadowDataIsDerived } from './virtual-table-sql.js';

export const CHANGES_TABLE = '_outpost_changes';

/** One committed local transaction, as the change log keeps it. */
export interface ChangeRecord {
  id: number;
  segments: RecordSegment[];
}

/** A record as stored: the `ddl` and `changeset` columns (see the header). */
export interface StoredRecord {
  ddl: string | null;
  changeset: Uint8Array;
}

/** The DDL statements of a record, in order. */
export function recordDdl(record: Pick<ChangeRecord, 'segments'>): string[] {
  return record.segments.flatMap((s) => ('ddl' in s ? [s.ddl] : []));
}

/** A record in the second format. */
export function encodeRecord(record: Pick<ChangeRecord, 'segments'>): StoredRecord {
  const layout: ({ ddl: string } | { bytes: number; columns: Record<string, string[]> | null })[] = [];
  const parts: Uint8Array[] = [];
  for (const s of record.segments) {
    if ('ddl' in s) layout.push({ ddl: s.ddl });
    else {
      layout.push({ bytes: s.changeset.length, columns: s.columns });
      parts.push(s.changeset);
    }
  }
  const changeset = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    changeset.set(p, at);
    at += p.length;
  }
  return { ddl: JSON.stringify({ v: 2, segments: layout }), changeset };
}

/**
 * A stored record's segments, in either format. `ddl` is the column's text, or (from a replay
 * file of the first format) the array it held.
 */
export function decodeRecord(ddl: string | readonly string[] | null, changeset: Uint8Array): RecordSegment[] {
  const parsed: unknown = typeof ddl === 'string' ? JSON.parse(ddl) : ddl;
  if (parsed === null || Array.isArray(parsed)) {
    const statements = (parsed ?? []) as string[];
    const segments: RecordSegment[] = statements.map((sql) => ({ ddl: String(sql) }));
    if (changeset.length > 0) segments.push({ changeset, columns: null });
    return segments;
  }
  const layout = (parsed as { v?: unknown; segments?: unknown }).segments;
  invariant((parsed as { v?: unknown }).v === 2 && Array.isArray(layout), `a change record of an unknown format: ${String(ddl).slice(0, 80)}`);
  const segments: RecordSegment[] = [];
  let at = 0;
  for (const entry of layout as ({ ddl: string } | { bytes: number; columns: Record<string, string[]> | null })[]) {
    if ('ddl' in entry) segments.push({ ddl: entry.ddl });
    else {
      segments.push({ changeset: changeset.subarray(at, at + entry.bytes), columns: entry.columns });
      at += entry.bytes;
    }
  }
  invariant(at === changeset.length, `a change record's segments hold ${at} of its ${changeset.length} changeset bytes`);
  return segments;
}

/** Whether a table's row changes are captured and pushed. */
export function isTrackedTable(name: string): boolean {
  const lower = name.toLowerCase();
  // Exactly the sync layer's own tables, not every name that looks like them: a user's
  // `_outpost_notes` or `turso_sync_log` is user data and syncs like any other table.
  return !(lower === CHANGES_TABLE || lower === CALLS_TABLE || lower === TURSO_SYNC_TABLE || lower.startsWith('sqlite_'));
}

/** Records from rows of (id, ddl, changeset). */
function recordsOf(rows: readonly (readonly unknown[])[]): ChangeRecord[] {
  return rows.map(([id, ddl, cs]) => ({
    id: Number(id),
    segments: decodeRecord(ddl === null ? null : String(ddl), cs instanceof Uint8Array ? cs : new Uint8Array(0)),
  }));
}

export class ChangeLog {
  private constructor(
    private readonly conn: Connection,
    /** Change ids at or below this are never reused. */
    private readonly idFloor: () => number,
  ) {}

  /**
   * Opens a connection whose capture hooks append to a change log over that same connection.
   * `open` receives the hooks to pass as `ConnectionOptions.capture`.
   */
  static async capturing(open: (capture: CaptureHooks) => Promise<Connection>, idFloor: () => number): Promise<{ conn: Connection; changes: ChangeLog }> {
    // The hooks need the log, and the log needs the connection the hooks are installed on: the
    // log is bound as soon as the connection exists. Nothing commits before open returns.
    let changes: ChangeLog | null = null;
    let connection: Connection | null = null;
    const shadows = new ShadowTables(() => connection);
    const nullKeys = new NullKeys(() => connection);
    const conn = await open({
      tracks: (table) => isTrackedTable(table) && shadows.tracks(table),
      onCommit: (record) => {
        invariant(changes !== null, 'a transaction committed before the change log was bound');
        shadows.checkCommit(record.segments, record.tables);
        nullKeys.check(record.tables);
        // A transaction whose only rows the session skipped leaves nothing to record.
        if (record.segments.length > 0) changes.append(record);
      },
      // What was read about tables may be stale: a rolled-back CREATE VIRTUAL TABLE must not
      // leave its shadow tables' names classified (a later table of that name would be skipped).
      schemaMayHaveChanged: () => {
        shadows.forget();
        nullKeys.forget();
      },
    });
    connection = conn;
    changes = new ChangeLog(conn, idFloor);
    return { conn, changes };
  }

  /** Whether this database ever captured a change (the table is created by the first one). */
  exists(): boolean {
    return tableExists(this.conn, CHANGES_TABLE);
  }

  ensure(): void {
    this.conn.run(`CREATE TABLE IF NOT EXISTS ${CHANGES_TABLE}(id INTEGER PRIMARY KEY, ddl TEXT, changeset BLOB NOT NULL)`, undefined);
  }

  /** Appends a captured transaction under the next change id; returns the id. */
  append(change: CapturedTransaction): number {
    const id = Math.max(this.maxId(), this.idFloor()) + 1;
    this.insert({ id, segments: change.segments });
    return id;
  }

  /** Puts a record back with its own id (replay after a pull). */
  restore(record: ChangeRecord): void {
    this.insert(record);
  }

  /** Replaces a record's segments under its own id (a re-key, conflicts.ts); not itself captured. */
  rewrite(record: ChangeRecord): void {
    this.conn.withoutCapture(() => {
      this.conn.run(`DELETE FROM ${CHANGES_TABLE} WHERE id = ?`, [record.id]);
      this.insert(record);
    });
  }

  private insert(record: ChangeRecord): void {
    this.ensure();
    const stored = encodeRecord(record);
    this.conn.run(`INSERT INTO ${CHANGES_TABLE}(id, ddl, changeset) VALUES (?, ?, ?)`, [record.id, stored.ddl, stored.changeset]);
  }

  /** Every record, oldest first. */
  readAll(): ChangeRecord[] {
    if (!this.exists()) return [];
    return recordsOf(this.conn.execute(`SELECT id, ddl, changeset FROM ${CHANGES_TABLE} ORDER BY id`, undefined).rows);
  }

  count(): number {
    return this.exists() ? Number(this.conn.value(`SELECT count(*) FROM ${CHANGES_TABLE}`)) : 0;
  }

  /** The largest id in the log (0 when empty); the floor is not considered. */
  maxId(): number {
    return this.exists() ? Number(this.conn.value(`SELECT coalesce(max(id), 0) FROM ${CHANGES_TABLE}`)) : 0;
  }

  /**
   * Gives record `id` the next change id (one statement, so atomically); returns the new id.
   * A retried change whose id the server's acknowledgement may have passed needs it.
   */
  renumber(id: number): number {
    const next = Math.max(this.maxId(), this.idFloor()) + 1;
    this.conn.withoutCapture(() => this.conn.run(`UPDATE ${CHANGES_TABLE} SET id = ? WHERE id = ?`, [next, id]));
    return next;
  }

  /**
   * Gives `ids` the next change ids, in the order given, in one statement (so atomically);
   * returns each old id's new one. A retried change and the later changes of its rows need it
   * together, to keep their order.
   */
  moveToEnd(ids: readonly number[]): Map<number, number> {
    const next = Math.max(this.maxId(), this.idFloor()) + 1;
    const order = JSON.stringify(ids);
    this.conn.withoutCapture(() =>
      this.conn.run(
        `UPDATE ${CHANGES_TABLE} SET id = ? + (SELECT CAST(key AS INTEGER) FROM json_each(?) WHERE value = ${CHANGES_TABLE}.id) WHERE id IN (SELECT value FROM json_each(?))`,
        [next, order, order],
      ),
    );
    return new Map(ids.map((id, i) => [id, next + i]));
  }

  /** The records among `ids` that exist, oldest first. */
  readSome(ids: readonly number[]): ChangeRecord[] {
    if (!this.exists() || ids.length === 0) return [];
    return recordsOf(this.conn.execute(`SELECT id, ddl, changeset FROM ${CHANGES_TABLE} WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id`, [JSON.stringify(ids)]).rows);
  }

  /** The ids of the records above `id`, oldest first. */
  idsAbove(id: number): number[] {
    if (!this.exists()) return [];
    return this.conn.execute(`SELECT id FROM ${CHANGES_TABLE} WHERE id > ? ORDER BY id`, [id]).rows.map(([v]) => Number(v));
  }

  /** Deletes one record; its deletion is not itself captured. */
  delete(id: number): void {
    this.conn.withoutCapture(() => this.conn.run(`DELETE FROM ${CHANGES_TABLE} WHERE id = ?`, [id]));
  }
}

/**
 * Virtual tables keep their data in shadow tables, which the session sees as ordinary tables.
 * Their rows are never pushed as rows: a server (and another replica) rebuilds them from the
 * rows of the tables they index. An FTS5 table with external content (`content='notes'`, kept
 * up to date by triggers) therefore syncs through its content table. Where the shadow tables
 * hold the only copy of the data (an FTS5 table with its own content or contentless, an
 * R*Tree, any other module), there is no row to sync it by: such a write is refused at its
 * COMMIT, with the reason, rather than kept locally, never synced and lost at the next pull.
 * Only external-content FTS5 is skipped, read from its statement as SQLite reads it
 * (virtual-table-sql.ts); anything else with shadow tables is refused.
 *
 * The same holds for a table without a primary key, whose rows sync by their rowid, when a
 * column takes the rowid's names: SQLite's session records no row of such a table that has a
 * column named `_rowid_` after its first (found by the outside adversary: its writes committed
 * and never synced), and when columns take every name (`rowid`, `_rowid_`, `oid`, a generated
 * column included) no SQL can name the rowid. Its writes are refused too; a column named
 * `_rowid_` is refused wherever it stands, so the rule does not hang on column order.
 */
class ShadowTables {
  /** What to do with each table asked about: capture it, skip it (derived), or refuse it. */
  private readonly known = new Map<string, 'track' | 'skip' | 'refuse' | 'no-rowid-name'>();
  /** The virtual table each classified shadow table belongs to, for the refusal's message. */
  private readonly owners = new Map<string, string>();

  constructor(private readonly conn: () => Connection | null) {}

  /** Forgets every classification (the schema may have changed). */
  forget(): void {
    this.known.clear();
    this.owners.clear();
  }

  /** The session's question; a table to refuse is tracked, so its commit can be seen and refused. */
  tracks(table: string): boolean {
    return this.classify(table) !== 'skip';
  }

  /**
   * At a commit: refuses a transaction that wrote a virtual table's own data (an R*Tree is
   * refused at its creation, which writes its first node).
   */
  checkCommit(segments: readonly RecordSegment[], written: readonly string[]): void {
    // Classified afresh where needed: a ROLLBACK TO since the write may have cleared the cache.
    const tables = segments.flatMap((s) => ('ddl' in s || !s.columns ? [] : Object.keys(s.columns)));
    // The session records no row of such a table, so it is found among the tables written.
    const unnamed = written.find((t) => this.classify(t) === 'no-rowid-name');
    if (unnamed !== undefined) {
      throw new OutpostError(
        `table ${unnamed} has no primary key, and a column named _rowid_, or columns (generated ones too) taking every name of its rowid (rowid, _rowid_, oid), leave sync no way to record or name its rows: rename the column or declare a primary key`,
        'INVALID_ARGUMENT',
      );
    }
    const refused = tables.filter((t) => this.classify(t) === 'refuse');
    if (refused.length > 0) {
      const owner = this.owners.get(refused[0]!) ?? refused[0]!;
      throw new OutpostError(
        `${owner} keeps its data in its own shadow tables, which sync cannot carry: in a synced database, use an FTS5 table with external content (content='your_table', kept current by triggers), and keep R*Tree indexes out of synced databases (rebuild them locally from synced rows)`,
        'INVALID_ARGUMENT',
      );
    }
  }

  private classify(table: string): 'track' | 'skip' | 'refuse' | 'no-rowid-name' {
    const cached = this.known.get(table);
    if (cached !== undefined) return cached;
    const conn = this.conn();
    if (!conn) return 'track';
    let kind: 'track' | 'skip' | 'refuse' | 'no-rowid-name' = rowidUnnamed(conn, table) ? 'no-rowid-name' : 'track';
    if (Number(conn.value("SELECT count(*) FROM pragma_table_list WHERE schema = 'main' AND type = 'shadow' AND name = ?", [table])) > 0) {
      // The owner is the virtual table whose name, then `_`, starts the shadow table's (the
      // longest such). Only derived data may be skipped; a table whose owner cannot be read
      // is refused rather than left to be lost at the next pull.
      const owners = conn
        .execute("SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'", undefined)
        .rows.filter((row) => table.toLowerCase().startsWith(`${String(row[0]).toLowerCase()}_`))
        .sort((a, b) => String(b[0]).length - String(a[0]).length);
      const owner = owners[0];
      kind = owner && shadowDataIsDerived(String(owner[1])) ? 'skip' : 'refuse';
      if (owner) this.owners.set(table, String(owner[0]));
    }
    this.known.set(table, kind);
    return kind;
  }
}

/**
 * Whether `table` is a rowid table without a primary key (its rows sync by rowid) with a column
 * named `_rowid_`, or whose rowid alias, chosen from its visible columns as push-sql.ts chooses
 * it, names a column after all (a generated one is hidden from `table_info`, not from
 * `table_xinfo`).
 */
function rowidUnnamed(conn: Connection, table: string): boolean {
  const columns = conn.execute('SELECT name, pk, hidden FROM pragma_table_xinfo(?)', [table]).rows;
  if (columns.length === 0 || columns.some((c) => Number(c[1]) > 0)) return false;
  if (Number(conn.value("SELECT count(*) FROM pragma_table_list WHERE schema = 'main' AND name = ? AND type = 'table' AND wr = 0", [table])) === 0) return false;
  const alias = rowidAliasFor(columns.filter((c) => Number(c[2]) === 0).map((c) => String(c[0])));
  return columns.some((c) => ['_rowid_', alias].includes(String(c[0]).toLowerCase()));
}
