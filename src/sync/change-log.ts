/**
 * The change log: `_outpost_changes(id INTEGER PRIMARY KEY, ddl TEXT, changeset BLOB NOT NULL)`,
 * one row per committed local write transaction that the server does not have yet. This file
 * is the only one that names the table. It also decides which tables are tracked: every table
 * but Outpost's own (`_outpost_*`), Turso's protocol table (`turso_sync_*`) and SQLite's
 * (`sqlite_*`).
 *
 * Records arrive from the engine's capture hooks (engine/capture.ts), inside the committing
 * transaction, so a record and its commit are atomic. `ddl` is a JSON array of the
 * transaction's DDL statements (NULL when there were none), applied before its row changes on
 * replay and push.
 *
 * Change ids only grow: a new id is one more than the larger of the table's largest id and the
 * floor the sync state keeps (ids it has seen acknowledged or dropped), so an id is never
 * reused after acknowledged records are deleted. Replay puts records back with their own ids.
 */
import type { CaptureHooks, CapturedTransaction } from '../engine/capture.js';
import type { Connection } from '../engine/connection.js';
import { TURSO_SYNC_TABLE } from '../protocol/turso-tables.js';
import { invariant } from './invariant.js';
import { tableExists } from './schema.js';

export const CHANGES_TABLE = '_outpost_changes';

/** One committed local transaction, as the change log keeps it. */
export interface ChangeRecord extends CapturedTransaction {
  id: number;
}

/** Whether a table's row changes are captured and pushed. */
export function isTrackedTable(name: string): boolean {
  const lower = name.toLowerCase();
  // Exactly the sync layer's own tables, not every name that looks like them: a user's
  // `_outpost_notes` or `turso_sync_log` is user data and syncs like any other table.
  return !(lower === CHANGES_TABLE || lower === TURSO_SYNC_TABLE || lower.startsWith('sqlite_'));
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
    const conn = await open({
      tracks: isTrackedTable,
      onCommit: (record) => {
        invariant(changes !== null, 'a transaction committed before the change log was bound');
        changes.append(record);
      },
    });
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
    this.insert({ id, ddl: change.ddl, changeset: change.changeset });
    return id;
  }

  /** Puts a record back with its own id (replay after a pull). */
  restore(record: ChangeRecord): void {
    this.insert(record);
  }

  private insert(record: ChangeRecord): void {
    this.ensure();
    this.conn.run(`INSERT INTO ${CHANGES_TABLE}(id, ddl, changeset) VALUES (?, ?, ?)`, [
      record.id,
      record.ddl.length ? JSON.stringify(record.ddl) : null,
      record.changeset,
    ]);
  }

  /** Every record, oldest first. */
  readAll(): ChangeRecord[] {
    if (!this.exists()) return [];
    const rows = this.conn.execute(`SELECT id, ddl, changeset FROM ${CHANGES_TABLE} ORDER BY id`, undefined).rows;
    return rows.map(([id, ddl, cs]) => ({
      id: Number(id),
      ddl: ddl ? (JSON.parse(String(ddl)) as string[]) : [],
      changeset: cs instanceof Uint8Array ? cs : new Uint8Array(0),
    }));
  }

  count(): number {
    return this.exists() ? Number(this.conn.value(`SELECT count(*) FROM ${CHANGES_TABLE}`)) : 0;
  }

  /** The largest id in the log (0 when empty); the floor is not considered. */
  maxId(): number {
    return this.exists() ? Number(this.conn.value(`SELECT coalesce(max(id), 0) FROM ${CHANGES_TABLE}`)) : 0;
  }

  /** Deletes one record; its deletion is not itself captured. */
  delete(id: number): void {
    this.conn.withoutCapture(() => this.conn.run(`DELETE FROM ${CHANGES_TABLE} WHERE id = ?`, [id]));
  }
}
