/**
 * What sync reads of the local schema: whether a table exists, and a table's columns and key
 * (which the push SQL and the mutations a transform sees are built from).
 */
import type { Connection } from '../engine/connection.js';
import { type TableInfo, rowidAliasFor } from './push-sql.js';

export function tableExists(conn: Connection, name: string): boolean {
  return Number(conn.value("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?", [name])) > 0;
}

/** A table's columns and primary key; null when the table does not exist. */
export function readTableInfo(conn: Connection, table: string): TableInfo | null {
  const rows = conn.execute('SELECT name, pk FROM pragma_table_info(?) ORDER BY cid', [table]).rows;
  if (rows.length === 0) return null;
  const columns = rows.map((r) => String(r[0]));
  const pk = rows
    .map((r, i) => ({ i, k: Number(r[1]) }))
    .filter((x) => x.k > 0)
    .sort((a, b) => a.k - b.k)
    .map((x) => x.i);
  return { columns, pk, rowidAlias: rowidAliasFor(columns) };
}

/** `readTableInfo` looking each table up once: for one pass over many changes. */
export function tableInfoLookup(conn: Connection): (table: string) => TableInfo | null {
  const infos = new Map<string, TableInfo | null>();
  return (table) => {
    let info = infos.get(table);
    if (info === undefined) infos.set(table, (info = readTableInfo(conn, table)));
    return info;
  };
}
