/**
 * Rows whose primary key holds a NULL. SQLite lets a column of a rowid table's PRIMARY KEY (any
 * but an INTEGER PRIMARY KEY, which is the rowid) hold NULL unless it is declared NOT NULL,
 * and the session extension skips such rows: they would stay local and silently never sync.
 * So a commit that leaves one in a table it wrote is refused, with the table named, and
 * nothing of it is written.
 *
 * The check costs one query per commit and table written, only for tables whose key columns
 * are nullable: `SELECT 1 ... WHERE k IS NULL LIMIT 1`, which the key's index answers at once
 * for a one-column key (or the first column of a composite key; the others may scan).
 */
import type { Connection } from '../engine/connection.js';
import { OutpostError } from '../errors.js';
import { quoteIdent } from './push-sql.js';

export class NullKeys {
  /** Per table: the query that finds a row with a NULL key, or null when its key cannot hold one. */
  private readonly checks = new Map<string, string | null>();

  constructor(private readonly conn: () => Connection | null) {}

  /** The schema may have changed: what was read about keys is forgotten. */
  forget(): void {
    this.checks.clear();
  }

  /** Throws when one of `tables` holds a row whose primary key has a NULL. */
  check(tables: readonly string[]): void {
    const conn = this.conn();
    if (!conn) return;
    for (const table of tables) {
      const sql = this.checkOf(conn, table);
      if (sql !== null && conn.value(sql) !== null) {
        throw new OutpostError(`table ${table}: a row with a NULL primary key cannot be synced; declare the key NOT NULL (nothing of this transaction was written)`, 'INVALID_ARGUMENT');
      }
    }
  }

  private checkOf(conn: Connection, table: string): string | null {
    const cached = this.checks.get(table);
    if (cached !== undefined) return cached;
    let sql: string | null = null;
    const listed = conn.execute("SELECT type, wr FROM pragma_table_list WHERE schema = 'main' AND name = ?", [table]).rows[0];
    // WITHOUT ROWID tables refuse NULL keys themselves; a table without a primary key, or whose
    // key is the rowid, has no index of origin 'pk'.
    if (listed && listed[0] === 'table' && Number(listed[1]) === 0 && Number(conn.value("SELECT count(*) FROM pragma_index_list(?) WHERE origin = 'pk'", [table])) > 0) {
      const keys = conn.execute('SELECT name FROM pragma_table_info(?) WHERE pk > 0 AND "notnull" = 0 ORDER BY pk', [table]).rows.map((r) => String(r[0]));
      if (keys.length > 0) sql = `SELECT 1 FROM main.${quoteIdent(table)} WHERE ${keys.map((k) => `${quoteIdent(k)} IS NULL`).join(' OR ')} LIMIT 1`;
    }
    this.checks.set(table, sql);
    return sql;
  }
}
