/**
 * Applying effects: changes that already hold what triggers did. A captured transaction is
 * what it did to rows, its triggers' writes included (the session extension records them like
 * any other write), so wherever it is applied again (a pushed transaction on the server, a
 * pending record replayed after a pull) the main schema's triggers must stay off, or each
 * trigger's write would happen twice (a BEFORE trigger's counter update, an audit row).
 *
 * Writes to virtual tables are the exception: a trigger's statements that write one (an FTS5
 * index over external content, kept current by triggers on its content table) still run. A
 * virtual table's data lives in shadow tables that are never carried as rows (their row ids
 * are allocated locally and would collide), so the index is rebuilt wherever its content rows
 * are applied, by those statements. SQLite has no switch per trigger, but TEMP triggers fire
 * whatever SQLITE_DBCONFIG_ENABLE_TRIGGER says: for the duration, each trigger that writes a
 * virtual table gets a TEMP copy holding only the statements of its body that do.
 */
import type { Connection } from './connection.js';

/** A name (bare, or quoted in one of SQLite's three ways), optionally qualified. */
const NAME = String.raw`(?:"(?:[^"]|"")*"|\x60[^\x60]*\x60|\[[^\]]*\]|[\w$]+)`;
const TRIGGER_HEAD = new RegExp(String.raw`^\s*CREATE\s+(?:TEMP\s+|TEMPORARY\s+)?TRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?${NAME}(?:\s*\.\s*${NAME})?`, 'i');

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Whether a trigger's SQL writes the table `name` (INSERT INTO, REPLACE INTO, UPDATE, DELETE FROM). */
function writesTable(sql: string, name: string): boolean {
  const quoted = String.raw`(?:"${escapeRegExp(name.replace(/"/g, '""'))}"|\x60${escapeRegExp(name)}\x60|\[${escapeRegExp(name)}\]|${escapeRegExp(name)}(?![\w$]))`;
  const write = String.raw`(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM)`;
  return new RegExp(String.raw`\b${write}\s+(?:main\s*\.\s*)?${quoted}`, 'i').test(sql);
}

/**
 * A trigger's SQL cut into its head (through BEGIN) and its body's statements, by a scan that
 * skips quoted names, strings and comments (a WHEN clause cannot hold the keyword BEGIN, and
 * a body statement ends at a semicolon outside them). Null when there is no BEGIN.
 */
function triggerParts(sql: string): { head: string; statements: string[] } | null {
  let bodyAt = -1;
  const cuts: number[] = [];
  for (let i = 0; i < sql.length; ) {
    const ch = sql[i]!;
    const closer = ch === "'" || ch === '"' || ch === '`' ? ch : ch === '[' ? ']' : sql.startsWith('--', i) ? '\n' : sql.startsWith('/*', i) ? '*/' : null;
    if (closer !== null) {
      const end = sql.indexOf(closer, i + (closer.length === 2 ? 2 : 1));
      i = end < 0 ? sql.length : end + closer.length;
    } else if (/[A-Za-z_]/.test(ch)) {
      const word = /^[\w$]+/.exec(sql.slice(i))![0];
      if (bodyAt < 0 && word.toUpperCase() === 'BEGIN') bodyAt = i + word.length;
      i += word.length;
    } else {
      if (bodyAt >= 0 && ch === ';') cuts.push(i);
      i++;
    }
  }
  if (bodyAt < 0) return null;
  const statements = cuts.map((cut, k) => sql.slice(k === 0 ? bodyAt : cuts[k - 1]! + 1, cut).trim()).filter((s) => s.length > 0);
  return { head: sql.slice(0, bodyAt), statements };
}

/**
 * TEMP copies, under names of their own, of the main schema's triggers that write a virtual
 * table, each with only the statements that do.
 */
function virtualTableWrites(conn: Connection): { name: string; sql: string }[] {
  const rows = conn.execute("SELECT name, sql, type FROM sqlite_schema WHERE type = 'trigger' OR (type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%')", undefined).rows;
  const virtualTables = rows.filter((r) => r[2] === 'table').map((r) => String(r[0]));
  const copies: { name: string; sql: string }[] = [];
  for (const [, sql, type] of rows) {
    if (type !== 'trigger' || typeof sql !== 'string' || !virtualTables.some((t) => writesTable(sql, t))) continue;
    const parts = triggerParts(sql);
    const kept = parts?.statements.filter((s) => virtualTables.some((t) => writesTable(s, t))) ?? [];
    if (!parts || kept.length === 0 || !TRIGGER_HEAD.test(parts.head)) continue;
    const name = `outpost_effects_${copies.length}`;
    copies.push({ name, sql: `${parts.head.replace(TRIGGER_HEAD, `CREATE TEMP TRIGGER ${name}`)} ${kept.join('; ')}; END` });
  }
  return copies;
}

/**
 * Turns the main schema's triggers off, except those that write a virtual table (see the
 * header), until the returned function is called; for effects applied across several calls
 * (a push streamed over several requests). `execTrusted` runs the server's own statements
 * where tenants' statements are sandboxed (TEMP triggers are refused to tenants).
 */
export function beginEffects(conn: Connection, execTrusted: (sql: string) => void = (sql) => conn.exec(sql)): () => void {
  // Most databases have no trigger: then there is nothing to switch (and switching would
  // expire every prepared statement).
  if (Number(conn.value("SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'")) === 0) return () => {};
  const copies = conn.withoutCapture(() => virtualTableWrites(conn));
  conn.setTriggersEnabled(false);
  try {
    if (copies.length > 0) conn.withoutCapture(() => execTrusted(copies.map((c) => c.sql).join(';\n')));
  } catch (e) {
    conn.setTriggersEnabled(true);
    throw e;
  }
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    try {
      if (copies.length > 0) conn.withoutCapture(() => execTrusted(copies.map((c) => `DROP TRIGGER IF EXISTS temp.${c.name}`).join(';\n')));
    } finally {
      conn.setTriggersEnabled(true);
    }
  };
}

/** Runs `fn` (which applies effects) between `beginEffects` and its end. */
export function applyingEffects<T>(conn: Connection, fn: () => T, execTrusted?: (sql: string) => void): T {
  const end = beginEffects(conn, execTrusted);
  try {
    return fn();
  } finally {
    end();
  }
}
