/**
 * Rows with a NULL primary key (the session extension skips them, so they would never sync)
 * are refused at COMMIT with an OutpostError naming the table, nothing written; every row that
 * is accepted syncs. And a refused write to a self-contained FTS5 table, rolled back, leaves
 * the next transactions unaffected.
 */
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, describe, expect, test } from 'vitest';
import { connectionDriver } from '../../src/driver.js';
import { Database } from '../../src/database.js';
import { OutpostError, SqliteError } from '../../src/errors.js';
import { openSynced } from '../../src/sync/open.js';
import { CrashDisk } from '../support/crash-disk.js';
import { int, pick, rng, testSeed } from '../support/generate.js';
import { type Endpoint, inProcessNetwork, scratchDataDir } from '../support/networks.js';

const network = inProcessNetwork(scratchDataDir('outpost-nullkeys-'));
const endpoints: Endpoint[] = [];
afterAll(async () => {
  for (const e of endpoints) await e.close();
});

async function openClient(server: Endpoint, name: string): Promise<Database> {
  const { conn, engine } = await openSynced(new CrashDisk().process(), { durability: 'normal', intMode: 'number' }, { url: server.url, clientName: name, retries: 0 }, server.client());
  return new Database(name, connectionDriver(conn, engine));
}

/** Tables by how their key is declared, and whether it can hold NULL in SQLite. */
const TABLES: { name: string; ddl: string; keys: string[]; nullable: boolean }[] = [
  { name: 't_text', ddl: 'CREATE TABLE t_text(k TEXT PRIMARY KEY, v)', keys: ['k'], nullable: true },
  { name: 't_text_nn', ddl: 'CREATE TABLE t_text_nn(k TEXT PRIMARY KEY NOT NULL, v)', keys: ['k'], nullable: false },
  { name: 't_pair', ddl: 'CREATE TABLE t_pair(a, b, v, PRIMARY KEY(a, b))', keys: ['a', 'b'], nullable: true },
  { name: 't_pair_half', ddl: 'CREATE TABLE t_pair_half(a NOT NULL, b, v, PRIMARY KEY(a, b))', keys: ['a', 'b'], nullable: true },
  { name: 't_int', ddl: 'CREATE TABLE t_int(k INTEGER PRIMARY KEY, v)', keys: ['k'], nullable: false },
  { name: 't_int_desc', ddl: 'CREATE TABLE t_int_desc(k INTEGER PRIMARY KEY DESC, v)', keys: ['k'], nullable: true },
  { name: 't_norowid', ddl: 'CREATE TABLE t_norowid(a, b, v, PRIMARY KEY(a, b)) WITHOUT ROWID', keys: ['a', 'b'], nullable: false },
];

async function contents(db: Database | BetterSqlite3.Database): Promise<string> {
  const out: unknown[] = [];
  for (const t of TABLES) {
    const sql = `SELECT * FROM ${t.name} ORDER BY ${[...t.keys, 'v'].join(', ')}`;
    out.push(db instanceof Database ? await db.query(sql) : db.prepare(sql).all());
  }
  return JSON.stringify(out);
}

async function run(seed: number): Promise<number> {
  const server = await network.open(`nullkeys-${seed}`);
  endpoints.push(server);
  const random = rng(seed);
  const a = await openClient(server, 'a');
  const oracle = new BetterSqlite3(':memory:');
  const fail = (what: string): never => {
    throw new Error(`null keys seed ${seed}: ${what} (replay: OUTPOST_SEED=${seed})`);
  };
  let refusals = 0;
  try {
    for (const t of TABLES) {
      await a.exec(t.ddl);
      oracle.exec(t.ddl);
    }
    for (let step = 0; step < 40; step++) {
      const t = pick(random, TABLES);
      const keyValue = (): string => (random() < 0.3 ? 'NULL' : String(int(random, 1, 6)));
      const statements = Array.from({ length: int(random, 1, 3) }, () =>
        random() < 0.8 ? `INSERT OR REPLACE INTO ${t.name}(${[...t.keys, 'v'].join(', ')}) VALUES (${t.keys.map(keyValue).join(', ')}, ${step})` : `UPDATE ${t.name} SET ${t.keys[0]} = ${keyValue()} WHERE v = ${int(random, 0, step)}`,
      );
      // The oracle: the same statements in plain SQLite, and whether a NULL key remains.
      let expected: 'ok' | 'refused' | 'error' = 'ok';
      oracle.exec('BEGIN');
      try {
        for (const sql of statements) oracle.exec(sql);
        const nullLeft = oracle.prepare(`SELECT 1 FROM ${t.name} WHERE ${t.keys.map((k) => `${k} IS NULL`).join(' OR ')}`).get() !== undefined;
        if (nullLeft && !t.nullable) fail(`plain SQLite stored a NULL key in ${t.name}`);
        expected = nullLeft ? 'refused' : 'ok';
      } catch {
        expected = 'error';
      }
      if (expected === 'ok') oracle.exec('COMMIT');
      else oracle.exec('ROLLBACK');
      const before = await contents(a);
      const outcome = await (statements.length === 1 && random() < 0.5 ? a.exec(statements[0]!) : a.transaction(async (tx) => void (await tx.exec(statements.join(';\n'))))).then(
        () => 'ok',
        (e: unknown) => {
          if (e instanceof OutpostError && e.code === 'INVALID_ARGUMENT') {
            if (!e.message.startsWith(`table ${t.name}: a row with a NULL primary key cannot be synced`)) fail(`unexpected refusal: ${e.message}`);
            return 'refused';
          }
          if (e instanceof SqliteError) return 'error';
          throw e;
        },
      );
      if (outcome !== expected) fail(`${statements.join('; ')}: ${outcome}, expected ${expected}`);
      if (outcome === 'refused') {
        refusals++;
        if ((await contents(a)) !== before) fail(`a refused transaction left something behind in ${t.name}`);
      }
      if ((await contents(a)) !== (await contents(oracle))) fail(`the replica differs from plain SQLite after ${statements.join('; ')}`);
    }
    await a.sync();
    const b = await openClient(server, 'b');
    const [mine, theirs] = [await contents(a), await contents(b)];
    await b.close();
    if (mine !== theirs) fail(`a row did not sync:\n${mine}\n${theirs}`);
    return refusals;
  } finally {
    await a.close();
    oracle.close();
  }
}

describe('NULL primary keys', () => {
  test('a commit that leaves a NULL key is refused naming the table, nothing written; everything accepted syncs (generated)', async () => {
    const first = testSeed();
    const seeds = process.env.OUTPOST_SEED ? [first] : Array.from({ length: 15 }, (_, i) => first + i);
    let refusals = 0;
    for (const seed of seeds) refusals += await run(seed);
    console.log(`null keys: seeds ${seeds[0]}..${seeds[seeds.length - 1]}, ${refusals} refusals`);
    expect(refusals).toBeGreaterThan(0);
  }, 240_000);
});

describe('refused writes to self-contained virtual tables', () => {
  test('a refused FTS5 write, rolled back, leaves the next transactions unaffected', async () => {
    const server = await network.open('shadow-linger');
    endpoints.push(server);
    const a = await openClient(server, 'a');
    await a.exec('CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)');
    // Created and refused in one transaction, then rolled back: the name is free again.
    await expect(a.transaction(async (tx) => void (await tx.exec("CREATE VIRTUAL TABLE docs USING fts5(body); INSERT INTO docs VALUES ('x')")))).rejects.toThrow(/shadow tables/);
    await a.exec("INSERT INTO notes(body) VALUES ('after the refusal')");
    // Ordinary tables named like the rolled-back table's shadow tables sync like any other.
    await a.exec("CREATE TABLE docs_data(id INTEGER PRIMARY KEY, v); INSERT INTO docs_data(v) VALUES ('mine')");
    await a.exec("CREATE TABLE docs_content(id INTEGER PRIMARY KEY, v); INSERT INTO docs_content(v) VALUES ('mine too')");
    // A refused write inside BEGIN ... COMMIT: the refused COMMIT rolls the transaction back
    // (as SQLite does when a commit hook vetoes one), so no ROLLBACK is left to run.
    await a.exec('CREATE VIRTUAL TABLE fts USING fts5(body)').catch(() => {});
    await a.exec('BEGIN');
    await expect(a.exec("INSERT INTO notes(body) VALUES ('rolled back'); INSERT INTO fts VALUES ('y'); COMMIT")).rejects.toThrow(/shadow tables.*rolled back/);
    await expect(a.exec('ROLLBACK')).rejects.toThrow(/no transaction is active/);
    await a.exec("INSERT INTO notes(body) VALUES ('next')");
    await a.sync();
    const b = await openClient(server, 'b');
    expect(await b.query('SELECT body FROM notes ORDER BY id')).toEqual([{ body: 'after the refusal' }, { body: 'next' }]);
    expect(await b.query('SELECT v FROM docs_data')).toEqual([{ v: 'mine' }]);
    expect(await b.query('SELECT v FROM docs_content')).toEqual([{ v: 'mine too' }]);
    expect((await a.pendingChanges()).length).toBe(0);
    await a.close();
    await b.close();
  });
});
