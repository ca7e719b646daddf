/**
 * Turns captured change records into the parameterised SQL the server runs, in the shape
 * Turso's own client sends. Values keep their storage class and bytes: they are bound as
 * exactly typed Hrana arguments, except the few that Hrana's JSON cannot carry exactly, which
 * are written into the SQL text as expressions that compute them (see `hranaParameter`):
 * - insert, as a push sends it (`guardInserts`): an insert that fails with `INSERT_COLLISION`
 *   in its message when its key is taken on the server, so that a row another client inserted
 *   is never overwritten (conflicts.ts says what happens next):
 *   `INSERT INTO "t"("a", "b") VALUES (?,?) ON CONFLICT("a") DO UPDATE SET "a" = json_extract('{}', '<marker>')`,
 *   and for tables without a primary key, the rowid named explicitly and checked first:
 *   `INSERT INTO "t"("rowid", "a") VALUES (CASE WHEN EXISTS (SELECT 1 FROM "t" WHERE "rowid" = ?) THEN json_extract(...) ELSE ? END, ?)`;
 *   the tables the application lists in `sync.upsertTables` keep Turso's shape instead:
 *   `... ON CONFLICT("a") DO UPDATE SET "a" = excluded."a", "b" = excluded."b"` (last push wins);
 * - insert, as replay applies it by name (local wins): the upsert, or `INSERT OR REPLACE`
 *   naming the rowid explicitly for tables without a primary key;
 * - update: only the changed columns, the row matched by primary key with `IS`;
 * - delete: by primary key;
 * - DDL as captured, CREATE rewritten to `IF NOT EXISTS` and DROP to `IF EXISTS` so that a
 *   schema another client already pushed does not fail the batch; an `ALTER TABLE ... ADD
 *   COLUMN` that finds the column present is ignorable.
 * Updates and deletes: last push wins per row and changed column, as in Turso.
 */
import type { RowChange } from './changeset.js';
import { invariant } from './invariant.js';
import { NULL_VALUE, type StoredValue, textOf, toSqlValue } from '../engine/stored-value.js';
import type { Mutation, SqlValue } from '../types.js';
import { type HranaValue, toBase64, toHranaValue } from '../protocol/hrana.js';

export interface TableInfo {
  columns: string[];
  /** Indexes into `columns` of the primary key, in key order; empty for a rowid table without one. */
  pk: number[];
  /** A name for the rowid that no column shadows. */
  rowidAlias: string;
}

/** A name for the rowid that none of `columns` shadows. */
export function rowidAliasFor(columns: readonly string[]): string {
  const lower = new Set(columns.map((c) => c.toLowerCase()));
  return ['rowid', '_rowid_', 'oid'].find((a) => !lower.has(a)) ?? 'rowid';
}

/**
 * A table as a change recorded it: the column names it had when the change was made, and the
 * key the changeset marks. A rowid table without a primary key has its rowid first in the
 * changeset, so one value more than it has columns.
 */
export function recordedTableInfo(columns: readonly string[], pk: readonly boolean[]): TableInfo {
  const rowidTable = pk.length === columns.length + 1;
  invariant(rowidTable || pk.length === columns.length, `a change has ${pk.length} values for a table recorded with ${columns.length} columns`);
  return { columns: [...columns], pk: rowidTable ? [] : pk.flatMap((key, i) => (key ? [i] : [])), rowidAlias: rowidAliasFor(columns) };
}

/**
 * How to name a change's columns: by the columns recorded with it, or (records of the change
 * log's first format, `recorded` null) by the schema as it is now.
 */
export function changeTableInfo(change: RowChange, recorded: Readonly<Record<string, string[]>> | null, current: (table: string) => TableInfo | null): TableInfo | null {
  const columns = recorded?.[change.table];
  return columns ? recordedTableInfo(columns, change.pk) : current(change.table);
}

export interface PushStep {
  sql: string;
  args: HranaValue[];
  changeId: number;
  table: string | null;
  /** A failure of this step does not fail the batch (ALTER TABLE ADD COLUMN of a present column). */
  ignorable: boolean;
  /**
   * A guarded insert (it fails with `INSERT_COLLISION` when its key is taken): its key for
   * messages, and its rowid when the table has no primary key (a rowid that may be re-keyed).
   */
  guarded?: { key: string; rowid: bigint | null };
}

/**
 * How a statement takes one value: it records the value and returns the SQL text that stands
 * for it (`?`, or a literal where the value cannot be bound).
 */
export type Parameter = (value: StoredValue) => string;

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

/** What a transform sees of a row change: values as the engine returns them to JS. */
export function toMutation(changeId: number, change: RowChange, info: TableInfo): Mutation {
  const names = namedColumns(change, info);
  const pick = (values: (StoredValue | undefined)[]): Record<string, SqlValue> => {
    const out: Record<string, SqlValue> = {};
    values.forEach((v, i) => {
      if (v !== undefined) out[names[i]!] = toSqlValue(v);
    });
    return out;
  };
  return { changeId, table: change.table, op: change.op, before: pick(change.before), after: pick(change.after) };
}

/**
 * The text a guarded insert fails with when its key is taken (see the header). It is a JSON
 * path that is not one: json_extract fails on it, on SQLite and Turso alike, with the path in
 * its message, and only when the CASE or the ON CONFLICT clause evaluates it.
 */
export const INSERT_COLLISION = 'outpost: insert key taken';
const FAIL_COLLISION = `json_extract('{}', '${INSERT_COLLISION}')`;

/** How an insert treats a row that has its key: replace it (replay, upsert tables) or fail (`INSERT_COLLISION`). */
export type InsertPolicy = 'replace' | 'guard';

/** The key of a row change, as `"id" = 5` or `rowid = 3` (for messages). */
export function describeKey(change: RowChange, info: TableInfo): string {
  const names = namedColumns(change, info);
  const values = change.op === 'insert' ? change.after : change.before;
  const keyIdx = info.pk.length === 0 ? [0] : info.pk.filter((i) => i < names.length);
  return keyIdx.map((i) => `${names[i]} = ${showValue(values[i])}`).join(', ');
}

function showValue(v: StoredValue | undefined): string {
  if (!v || v.type === 'null') return 'NULL';
  if (v.type === 'text') return `'${(textOf(v.bytes) ?? '(not UTF-8)').slice(0, 60)}'`;
  if (v.type === 'blob') return `x'${hex(v.bytes.subarray(0, 30))}${v.bytes.length > 30 ? '...' : ''}'`;
  return String(v.value);
}

/**
 * The SQL of one captured row change, each value taken through `param`. Returns null when
 * there is nothing to send. `inserts` says what an insert does to a row that has its key.
 */
export function rowChangeSql(change: RowChange, info: TableInfo, param: Parameter, inserts: InsertPolicy = 'replace'): string | null {
  const table = quoteIdent(change.table);
  const names = namedColumns(change, info).map(quoteIdent);
  const rowidTable = info.pk.length === 0;
  const keyIdx = rowidTable ? [0] : info.pk.filter((i) => i < names.length);
  const value = (v: StoredValue | undefined): string => param(v ?? NULL_VALUE);
  const where = (values: (StoredValue | undefined)[]): string =>
    keyIdx.map((i) => (rowidTable ? `${names[i]} = ${value(values[i])}` : `${names[i]} IS ${value(values[i])}`)).join(' AND ');
  switch (change.op) {
    case 'insert': {
      if (rowidTable && inserts === 'guard') {
        // The rowid twice, in text order: once for the check, once as the value.
        const rowid = `CASE WHEN EXISTS (SELECT 1 FROM ${table} WHERE ${names[0]} = ${value(change.after[0])}) THEN ${FAIL_COLLISION} ELSE ${value(change.after[0])} END`;
        const rest = change.after.slice(1).map(value);
        return `INSERT INTO ${table}(${names.join(', ')}) VALUES (${[rowid, ...rest].join(',')})`;
      }
      const values = change.after.map(value).join(',');
      if (rowidTable) return `INSERT OR REPLACE INTO ${table}(${names.join(', ')}) VALUES (${values})`;
      const conflict = keyIdx.map((i) => names[i]).join(',');
      const set = inserts === 'guard' ? `${names[keyIdx[0]!]} = ${FAIL_COLLISION}` : names.map((n) => `${n} = excluded.${n}`).join(',');
      return `INSERT INTO ${table}(${names.join(', ')}) VALUES (${values}) ON CONFLICT(${conflict}) DO UPDATE SET ${set}`;
    }
    case 'update': {
      const changed = change.after.map((v, i) => (v !== undefined && !keyIdx.includes(i) ? i : -1)).filter((i) => i >= 0);
      if (changed.length === 0) return null;
      // Values are taken in the order they appear in the text, so that `?` binds in order.
      const set = changed.map((i) => `${names[i]} = ${value(change.after[i])}`).join(', ');
      return `UPDATE ${table} SET ${set} WHERE ${where(change.before)}`;
    }
    case 'delete':
      return `DELETE FROM ${table} WHERE ${where(change.before)}`;
  }
}

/**
 * A `Parameter` for a push: values become Hrana arguments in `args`, exactly typed (a whole
 * REAL is a float, a 64-bit integer a string of digits). Values that Hrana's JSON cannot carry,
 * or that a server would not read back exactly from it, are written into the SQL text instead,
 * as expressions every SQLite and Turso evaluate to the same value (`realLiteral`,
 * `textLiteral`).
 */
export function hranaParameter(args: HranaValue[]): Parameter {
  return (v) => {
    const arg = hranaValue(v);
    if (arg === null) return v.type === 'text' ? textLiteral(v.bytes) : realLiteral((v as { value: number }).value);
    args.push(arg);
    return '?';
  };
}

/** A stored value as a Hrana argument; null when it must go into the SQL text (see `hranaParameter`). */
function hranaValue(v: StoredValue): HranaValue | null {
  switch (v.type) {
    case 'null':
      return { type: 'null' };
    case 'integer':
      return { type: 'integer', value: v.value.toString() };
    case 'real':
      return exactInJson(v.value) ? { type: 'float', value: v.value } : null;
    case 'text': {
      const text = textOf(v.bytes);
      return text === null ? null : { type: 'text', value: text };
    }
    case 'blob':
      return { type: 'blob', base64: toBase64(v.bytes) };
  }
}

/**
 * Whether a server reads the JSON number of `x` back as exactly `x`. JSON has no form for
 * ±Infinity, and writes -0.0 as 0. And not every server parses JSON numbers correctly rounded:
 * Turso's (serde_json's default parser) multiplies the decimal significand by a power of ten,
 * which is exact only when the significand fits in 53 bits and the power is at most 10^22
 * (measured: about one random double in six came back one unit in the last place off).
 * JavaScript writes the shortest decimal that reads back as `x`, so that test is made on it.
 */
function exactInJson(x: number): boolean {
  if (!Number.isFinite(x) || Object.is(x, -0)) return false;
  const m = /^-?(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/.exec(String(Math.abs(x)));
  if (!m) return false;
  const fraction = m[2] ?? '';
  const digits = `${m[1]}${fraction}`.replace(/^0+/, '');
  const significand = digits.replace(/0+$/, '');
  const exponent = Number(m[3] ?? 0) - fraction.length + (digits.length - significand.length);
  return BigInt(significand || '0') <= 2n ** 53n && exponent >= -22 && exponent <= 22;
}

/**
 * A REAL that JSON cannot carry exactly, as SQL that computes exactly it: ±Infinity as
 * `9e999` / `-9e999` (they overflow to infinity), -0.0 as the literal `-0.0`, and any other
 * double as its binary form m * 2^e, with m an integer of at most 53 bits (converting it to
 * REAL is exact) multiplied or divided by powers of two of at most 2^62 written as integers
 * (each step exact in IEEE arithmetic, and the steps move monotonically from m to the value, so
 * none overflows or loses bits on the way). Decimal float literals are not used: parsers round
 * them differently.
 */
function realLiteral(x: number): string {
  if (x === Number.POSITIVE_INFINITY) return '9e999';
  if (x === Number.NEGATIVE_INFINITY) return '-9e999';
  if (Object.is(x, -0)) return '-0.0';
  // SQLite never stores NaN (it becomes NULL), so a changeset cannot hold one.
  if (Number.isNaN(x)) throw new Error('a REAL value is NaN');
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const biased = (view.getUint32(0) >>> 20) & 0x7ff;
  const fraction = (BigInt(view.getUint32(0) & 0xfffff) << 32n) | BigInt(view.getUint32(4));
  // Subnormals have no implicit leading bit and the smallest exponent.
  let mantissa = biased === 0 ? fraction : fraction | (1n << 52n);
  let exponent = biased === 0 ? -1074 : biased - 1075;
  while (mantissa !== 0n && (mantissa & 1n) === 0n) {
    mantissa >>= 1n;
    exponent++;
  }
  let sql = `CAST(${x < 0 ? '-' : ''}${mantissa} AS REAL)`;
  for (; exponent > 0; exponent -= Math.min(exponent, 62)) sql += ` * ${1n << BigInt(Math.min(exponent, 62))}`;
  for (; exponent < 0; exponent += Math.min(-exponent, 62)) sql += ` / ${1n << BigInt(Math.min(-exponent, 62))}`;
  return `(${sql})`;
}

/**
 * Text that is not valid UTF-8 (a JSON string holds only Unicode) as `CAST(x'..' AS TEXT)`,
 * which keeps its bytes in SQLite. A server whose engine cannot hold such text (turso
 * --sync-server replaces the bytes with U+FFFD) must not store it altered: the cast is
 * guarded, and where it would change the bytes the statement fails (json_extract with a path
 * that is not one fails, on SQLite and Turso alike, with the path in its message), so the
 * server refuses the change and it stays local, reported.
 */
function textLiteral(bytes: Uint8Array): string {
  const h = hex(bytes);
  return `(CASE WHEN hex(CAST(x'${h}' AS TEXT)) = '${h.toUpperCase()}' THEN CAST(x'${h}' AS TEXT) ELSE json_extract('{}', 'this server cannot store text that is not UTF-8') END)`;
}

function hex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

export function hranaArgs(values: SqlValue[]): HranaValue[] {
  return values.map(toHranaValue);
}
