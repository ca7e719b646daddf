/**
 * Comparing two replicas' user tables (every table but SQLite's, Outpost's and the sync
 * protocol's): their columns as `pragma_table_xinfo` describes them, and their rows by rowid
 * with each value's storage class. For the schema-change tests.
 */
import type { Database } from '../../src/types.js';

const quoteIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/** The user tables, by name. */
export async function userTables(db: Database): Promise<string[]> {
  const rows = await db.query<{ name: string }>(
    "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_outpost\\_%' ESCAPE '\\' AND name NOT LIKE 'turso\\_sync\\_%' ESCAPE '\\' ORDER BY name",
  );
  return rows.map((r) => r.name);
}

/** Each table's columns: name, declared type, NOT NULL, default, key position. */
export async function schemaOf(db: Database, tables?: string[]): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const t of tables ?? (await userTables(db))) {
    const columns = await db.query<{ d: string }>("SELECT name || ' ' || type || ' ' || \"notnull\" || ' ' || coalesce(dflt_value, '-') || ' ' || pk AS d FROM pragma_table_xinfo(?) ORDER BY cid", [t]);
    out[t] = columns.map((c) => c.d);
  }
  return out;
}

/**
 * Each table's rows, every value as `class:quoted` (so 1 and 1.0 differ): by rowid, rowid
 * included, for tables whose rowid is their key (none declared, or an INTEGER PRIMARY KEY);
 * by the declared key otherwise, whose hidden rowid is not synced.
 */
export async function contents(db: Database, tables?: string[]): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const t of tables ?? (await userTables(db))) {
    const info = await db.query<{ name: string; type: string; pk: number }>('SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid', [t]);
    const key = info.filter((c) => c.pk > 0).sort((x, y) => x.pk - y.pk);
    const byRowid = key.length === 0 || (key.length === 1 && key[0]!.type.toUpperCase() === 'INTEGER');
    const columns = [...(byRowid ? ['rowid'] : []), ...info.map((c) => quoteIdent(c.name))];
    const cells = columns.map((c) => `typeof(${c}) || ':' || quote(${c})`).join(" || ' | ' || ");
    const order = byRowid ? 'rowid' : key.map((c) => quoteIdent(c.name)).join(', ');
    const rows = await db.query<{ r: string }>(`SELECT ${cells} AS r FROM ${quoteIdent(t)} ORDER BY ${order}`);
    out[t] = rows.map((r) => r.r);
  }
  return out;
}
