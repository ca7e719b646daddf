/**
 * Turns captured change records into the parameterised SQL the server runs, in the shape
 * Turso's own client sends (values are always bound, never spliced into SQL text):
 * - insert: `INSERT INTO "t"("a", "b") VALUES (?,?) ON CONFLICT("a") DO UPDATE SET "a" = excluded."a", "b" = excluded."b"`
 *   (tables without a primary key: `INSERT OR REPLACE` naming the rowid explicitly);
 * - update: only the changed columns, the row matched by primary key with `IS`;
 * - delete: by primary key;
 * - DDL as captured, CREATE rewritten to `IF NOT EXISTS` and DROP to `IF EXISTS` so that a
 *   schema another client already pushed does not fail the batch; an `ALTER TABLE ... ADD
 *   COLUMN` that finds the column present is ignorable.
 * Last push wins per row and changed column, as in Turso.
 */
import type { RowChange } from './changeset.js';
import type { Mutation, SqlValue } from '../types.js';
import { type HranaValue, toHranaValue } from '../protocol/hrana.js';

export interface TableInfo {
  columns: string[];
  /** Indexes into `columns` of the primary key, in key order; empty for a rowid table without one. */
  pk: number[];
  /** A name for the rowid that no column shadows. */
  rowidAlias: string;
}

export interface PushStep {
  sql: string;
  args: HranaValue[];
  changeId: number;
  table: string | null;
  /** A failure of this step does not fail the batch (ALTER TABLE ADD COLUMN of a present column). */
  ignorable: boolean;
}

export const quoteIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`;

export function rewriteDdl(sql: string): { sql: string; ignorable: boolean } {
  const text = sql.trim().replace(/;\s*$/, '');
  const create = /^CREATE\s+(UNIQUE\s+)?(TABLE|INDEX|VIEW|TRIGGER|VIRTUAL\s+TABLE)\s+(?!IF\s+NOT\s+EXISTS\b)/i.exec(text);
  if (create) return { sql: `${create[0]}IF NOT EXISTS ${text.slice(create[0].length)}`, ignorable: false };
  const drop = /^DROP\s+(TABLE|INDEX|VIEW|TRIGGER)\s+(?!IF\s+EXISTS\b)/i.exec(text);
  if (drop) return { sql: `${drop[0]}IF EXISTS ${text.slice(drop[0].length)}`, ignorable: false };
  return { sql: text, ignorable: /^ALTER\s+TABLE\s+.+\s+ADD\s+(COLUMN\s+)?/i.test(text) };
}

/** The columns of a row change, by name (a rowid table's column 0 is its rowid alias). */
export function namedColumns(change: RowChange, info: TableInfo): string[] {
  const rowidTable = info.pk.length === 0;
  const n = change.pk.length;
  return rowidTable ? [info.rowidAlias, ...info.columns.slice(0, n - 1)] : info.columns.slice(0, n);
}

export function toMutation(changeId: number, change: RowChange, info: TableInfo): Mutation {
  const names = namedColumns(change, info);
  const pick = (values: (SqlValue | undefined)[]): Record<string, SqlValue> => {
    const out: Record<string, SqlValue> = {};
    values.forEach((v, i) => {
      if (v !== undefined) out[names[i]!] = v;
    });
    return out;
  };
  return { changeId, table: change.table, op: change.op, before: pick(change.before), after: pick(change.after) };
}

/** The SQL of one captured row change. Returns null when there is nothing to send. */
export function rowChangeSql(change: RowChange, info: TableInfo): { sql: string; args: SqlValue[] } | null {
  const table = quoteIdent(change.table);
  const names = namedColumns(change, info).map(quoteIdent);
  const rowidTable = info.pk.length === 0;
  const keyIdx = rowidTable ? [0] : info.pk.filter((i) => i < names.length);
  const where = (values: (SqlValue | undefined)[]): { sql: string; args: SqlValue[] } => ({
    sql: keyIdx.map((i) => (rowidTable ? `${names[i]} = ?` : `${names[i]} IS ?`)).join(' AND '),
    args: keyIdx.map((i) => values[i] ?? null),
  });
  switch (change.op) {
    case 'insert': {
      const args = change.after.map((v) => v ?? null);
      const placeholders = names.map(() => '?').join(',');
      if (rowidTable) return { sql: `INSERT OR REPLACE INTO ${table}(${names.join(', ')}) VALUES (${placeholders})`, args };
      const conflict = keyIdx.map((i) => names[i]).join(',');
      const set = names.map((n) => `${n} = excluded.${n}`).join(',');
      return { sql: `INSERT INTO ${table}(${names.join(', ')}) VALUES (${placeholders}) ON CONFLICT(${conflict}) DO UPDATE SET ${set}`, args };
    }
    case 'update': {
      const changed = change.after.map((v, i) => (v !== undefined && !keyIdx.includes(i) ? i : -1)).filter((i) => i >= 0);
      if (changed.length === 0) return null;
      const w = where(change.before);
      return {
        sql: `UPDATE ${table} SET ${changed.map((i) => `${names[i]} = ?`).join(', ')} WHERE ${w.sql}`,
        args: [...changed.map((i) => change.after[i] ?? null), ...w.args],
      };
    }
    case 'delete': {
      const w = where(change.before);
      return { sql: `DELETE FROM ${table} WHERE ${w.sql}`, args: w.args };
    }
  }
}

export function hranaArgs(values: SqlValue[]): HranaValue[] {
  return values.map(toHranaValue);
}
