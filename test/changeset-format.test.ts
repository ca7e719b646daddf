/**
 * The plain-JS changeset reader and writer (src/engine/changeset-format.ts) against SQLite's own
 * session extension: generated transactions over generated tables, every changeset SQLite
 * writes decoded, re-encoded byte for byte, and its inserted values checked against what SQLite
 * holds; damaged changesets fail with `ChangesetFormatError` and nothing else.
 */
import { expect, test } from 'vitest';
import { Connection } from '../src/engine/connection.js';
import { type ChangesetRow, ChangesetFormatError, decodeChangeset, encodeChangeset } from '../src/engine/changeset-format.js';
import type { StoredValue } from '../src/engine/stored-value.js';
import { MemoryDirectory } from '../src/opfs-vfs/storage/memory.js';
import { CHANGES_TABLE, ChangeLog, decodeRecord } from '../src/sync/change-log.js';
import { type Random, int, pick, rng, testSeed } from './support/generate.js';

const TABLES = [
  'CREATE TABLE a(id INTEGER PRIMARY KEY, x, y REAL, z TEXT)',
  'CREATE TABLE b(x, y, z)',
  'CREATE TABLE c(k TEXT PRIMARY KEY, j INTEGER, x BLOB, y NUMERIC) WITHOUT ROWID',
  'CREATE TABLE "d e"(k1 NOT NULL, k2 NOT NULL, x, PRIMARY KEY (k2, k1))',
];
const COLUMNS: Record<string, string[]> = { a: ['x', 'y', 'z'], b: ['x', 'y', 'z'], c: ['j', 'x', 'y'], 'd e': ['x'] };

/** A SQL expression for a value of any storage class, edge cases often. */
function literal(random: Random): string {
  return pick(random, [
    () => String(int(random, -1000, 1000)),
    () => pick(random, ['9223372036854775807', '-9223372036854775808', '4294967296', '-1']),
    () => pick(random, ['CAST(3 AS REAL)', '-0.0', '1e308 * 10', '-1e308 * 10', '4.9e-324', '1e21', '0.1']),
    () => `'${'ü€x'.repeat(int(random, 0, 40))}'`,
    () => pick(random, ["CAST(x'ff00fe' AS TEXT)", "CAST(x'610062' AS TEXT)", "''"]),
    () => pick(random, ["x''", `randomblob(${int(random, 1, 300)})`, `zeroblob(${int(random, 0, 20_000)})`]),
    () => 'NULL',
  ])();
}

async function capturing(): Promise<Connection> {
  const { conn } = await ChangeLog.capturing(
    (capture) => Connection.open(new MemoryDirectory(`memory:format-${Math.random()}`), { durability: 'normal', intMode: 'bigint', checkpoint: 'manual', capture }),
    () => 0,
  );
  conn.withoutCapture(() => conn.exec(TABLES.join(';')));
  return conn;
}

/** The changesets of every stored change record, in order. */
function changesets(conn: Connection): Uint8Array[] {
  // The change log's table appears with the first record.
  if (conn.value(`SELECT count(*) FROM sqlite_schema WHERE name = '${CHANGES_TABLE}'`) === 0n) return [];
  const rows = conn.execute(`SELECT ddl, changeset FROM ${CHANGES_TABLE} ORDER BY id`, undefined).rows;
  return rows.flatMap(([ddl, cs]) => decodeRecord(ddl as string | null, cs as Uint8Array).flatMap((s) => ('ddl' in s ? [] : [s.changeset])));
}

/** One random statement: inserts use fresh keys (`next`), so an insert's values are the row's. */
function statement(random: Random, next: () => number): string {
  const table = pick(random, ['a', 'b', 'c', 'd e']);
  const q = `"${table}"`;
  const op = int(random, 0, 9);
  if (op < 6) {
    const k = next();
    const values = COLUMNS[table]!.map(() => literal(random));
    if (table === 'a') return `INSERT INTO a(id, x, y, z) VALUES (${k}, ${values.join(', ')})`;
    if (table === 'b') return `INSERT INTO b(rowid, x, y, z) VALUES (${k}, ${values.join(', ')})`;
    if (table === 'c') return `INSERT INTO c(k, j, x, y) VALUES ('k${k}', ${values.join(', ')})`;
    return `INSERT INTO "d e"(k1, k2, x) VALUES (${k}, coalesce(${literal(random)}, 0), ${values[0]})`;
  }
  const column = pick(random, COLUMNS[table]!);
  if (op < 9) return `UPDATE ${q} SET "${column}" = ${literal(random)} WHERE rowid % 3 = ${int(random, 0, 2)}`.replace('WHERE rowid', table === 'c' ? 'WHERE length(k)' : 'WHERE rowid');
  return `DELETE FROM ${q} WHERE ${table === 'c' ? 'length(k)' : 'rowid'} % 5 = ${int(random, 0, 4)}`;
}

/** A column as SQLite holds it, as a StoredValue, read back through SQL that loses nothing. */
function held(conn: Connection, table: string, where: string, column: string): StoredValue {
  const [type, text, hex] = conn.execute(`SELECT typeof("${column}"), CAST("${column}" AS TEXT), hex(CAST("${column}" AS BLOB)) FROM "${table}" WHERE ${where}`, undefined).rows[0]!;
  if (type === 'null') return { type: 'null' };
  if (type === 'integer') return { type: 'integer', value: BigInt(text as string) };
  if (type === 'real') return { type: 'real', value: conn.execute(`SELECT "${column}" FROM "${table}" WHERE ${where}`, undefined).rows[0]![0] as number };
  const bytes = Uint8Array.from((hex as string).match(/../g) ?? [], (h) => parseInt(h, 16));
  return type === 'text' ? { type: 'text', bytes } : { type: 'blob', bytes };
}

/** Where-clause for the row a change names, by its key values. */
function whereKey(change: ChangesetRow): string {
  const key = (i: number): string => {
    const v = change.after[i]!;
    if (v.type === 'integer') return v.value.toString();
    if (v.type === 'text') return `CAST(x'${[...v.bytes].map((b) => b.toString(16).padStart(2, '0')).join('')}' AS TEXT)`;
    throw new Error(`unexpected key ${v.type}`);
  };
  if (change.table === 'a' || change.table === 'b') return `rowid = ${key(0)}`;
  if (change.table === 'c') return `k = ${key(0)}`;
  return `k1 = ${key(0)} AND k2 IS (SELECT k2 FROM "d e" WHERE k1 = ${key(0)})`;
}

test('every changeset SQLite writes decodes to what SQLite holds and re-encodes byte for byte (generated)', async () => {
  const seed = testSeed();
  console.log(`changeset-format seed ${seed} (OUTPOST_SEED=${seed} replays)`);
  const random = rng(seed);
  const conn = await capturing();
  let key = 0;
  let checkedValues = 0;
  for (let t = 0; t < 60; t++) {
    const statements = Array.from({ length: int(random, 1, 8) }, () => statement(random, () => ++key));
    const before = changesets(conn).length;
    conn.exec(`BEGIN; ${statements.join(';\n')}; COMMIT;`);
    for (const cs of changesets(conn).slice(before)) {
      const rows = decodeChangeset(cs);
      expect(encodeChangeset(rows), `seed ${seed}: re-encoded changeset differs`).toEqual(cs);
      for (const change of rows) {
        if (change.op !== 'insert') continue;
        // An insert later updated in the same transaction carries the final values too.
        const columns = change.table === 'a' ? ['id', 'x', 'y', 'z'] : change.table === 'b' ? ['rowid', 'x', 'y', 'z'] : change.table === 'c' ? ['k', 'j', 'x', 'y'] : ['k1', 'k2', 'x'];
        columns.forEach((column, i) => expect(change.after[i], `seed ${seed}: ${change.table}.${column}`).toEqual(held(conn, change.table, whereKey(change), column)));
        checkedValues += columns.length;
      }
    }
  }
  expect(checkedValues).toBeGreaterThan(100);
  await conn.close();
});

test('changes a trigger made are marked indirect', async () => {
  const conn = await capturing();
  conn.withoutCapture(() => conn.exec('CREATE TRIGGER log AFTER INSERT ON a BEGIN INSERT INTO b(x) VALUES (new.id); END'));
  conn.exec('INSERT INTO a(id, x) VALUES (1, 2)');
  const rows = changesets(conn).flatMap(decodeChangeset);
  expect(rows.map((r) => [r.table, r.indirect ?? false])).toEqual([
    ['a', false],
    ['b', true],
  ]);
  expect(encodeChangeset(rows)).toEqual(changesets(conn)[0]);
  await conn.close();
});

test('a damaged changeset fails with ChangesetFormatError, never another error (generated)', async () => {
  const seed = testSeed();
  console.log(`changeset-format damage seed ${seed}`);
  const random = rng(seed);
  const conn = await capturing();
  let key = 0;
  for (let t = 0; t < 10; t++) conn.exec(`BEGIN; ${Array.from({ length: 5 }, () => statement(random, () => ++key)).join(';')}; COMMIT;`);
  const originals = changesets(conn);
  await conn.close();
  let failed = 0;
  for (let i = 0; i < 3000; i++) {
    const damaged = Uint8Array.from(pick(random, originals));
    if (random() < 0.5) {
      for (let n = int(random, 1, 4); n > 0; n--) damaged[int(random, 0, damaged.length - 1)] = int(random, 0, 255);
    }
    const cut = random() < 0.5 ? damaged.subarray(0, int(random, 0, damaged.length - 1)) : damaged;
    try {
      decodeChangeset(cut);
    } catch (e) {
      expect(e, `seed ${seed}, case ${i}`).toBeInstanceOf(ChangesetFormatError);
      failed++;
    }
  }
  expect(failed).toBeGreaterThan(100);
});
