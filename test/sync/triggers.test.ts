/**
 * Triggers and sync: a pushed transaction is what it did, its triggers' writes included, so the
 * server applies it with triggers off, and so does replay after a pull (engine/effects.ts); a
 * trigger that keeps an FTS5 index over external content current still fires wherever rows are
 * applied. The oracle is plain SQLite (better-sqlite3) running the same transactions in the
 * order the server accepted them: every replica must equal it, nothing applied twice.
 */
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, describe, expect, test } from 'vitest';
import { connectionDriver } from '../../src/driver.js';
import { Database } from '../../src/database.js';
import type { PipelineRequest } from '../../src/protocol/hrana.js';
import { openSynced } from '../../src/sync/open.js';
import { CrashDisk } from '../support/crash-disk.js';
import { int, pick, rng, testSeed } from '../support/generate.js';
import { type Endpoint, inProcessNetwork, scratchDataDir } from '../support/networks.js';

const network = inProcessNetwork(scratchDataDir('outpost-triggers-'));
const endpoints: Endpoint[] = [];
afterAll(async () => {
  for (const e of endpoints) await e.close();
});

/**
 * Triggers of every kind over rows each client owns (ids start with its name), so that several
 * clients can write offline at once without touching the same rows: BEFORE triggers that keep
 * per-owner totals, AFTER triggers that append to an audit log, a cascade (deleting an item
 * deletes its notes, whose own trigger audits that), and an FTS5 index over the notes.
 */
const OWNED_SCHEMA = `
  CREATE TABLE items(id TEXT PRIMARY KEY NOT NULL, owner TEXT NOT NULL, qty INTEGER NOT NULL);
  CREATE TABLE totals(owner TEXT PRIMARY KEY NOT NULL, n INTEGER NOT NULL, qty INTEGER NOT NULL);
  CREATE TABLE audit(id TEXT PRIMARY KEY NOT NULL, item TEXT NOT NULL, action TEXT NOT NULL, qty INTEGER);
  CREATE TABLE notes(id INTEGER PRIMARY KEY, item TEXT NOT NULL, body TEXT NOT NULL);
  CREATE VIRTUAL TABLE notes_fts USING fts5(body, content='notes', content_rowid='id');
  CREATE TRIGGER items_bi BEFORE INSERT ON items BEGIN
    INSERT OR IGNORE INTO totals(owner, n, qty) VALUES (NEW.owner, 0, 0);
    UPDATE totals SET n = n + 1, qty = qty + NEW.qty WHERE owner = NEW.owner;
  END;
  CREATE TRIGGER items_ai AFTER INSERT ON items BEGIN
    INSERT INTO audit VALUES (NEW.id || '#' || (SELECT count(*) FROM audit WHERE item = NEW.id), NEW.id, 'insert', NEW.qty);
  END;
  CREATE TRIGGER items_bu BEFORE UPDATE OF qty ON items BEGIN
    UPDATE totals SET qty = qty - OLD.qty + NEW.qty WHERE owner = NEW.owner;
  END;
  CREATE TRIGGER items_au AFTER UPDATE OF qty ON items BEGIN
    INSERT INTO audit VALUES (NEW.id || '#' || (SELECT count(*) FROM audit WHERE item = NEW.id), NEW.id, 'update', NEW.qty);
  END;
  CREATE TRIGGER items_ad AFTER DELETE ON items BEGIN
    DELETE FROM notes WHERE item = OLD.id;
    UPDATE totals SET n = n - 1, qty = qty - OLD.qty WHERE owner = OLD.owner;
    INSERT INTO audit VALUES (OLD.id || '#' || (SELECT count(*) FROM audit WHERE item = OLD.id), OLD.id, 'delete', OLD.qty);
  END;
  CREATE TRIGGER notes_ad AFTER DELETE ON notes BEGIN
    INSERT INTO audit VALUES (OLD.item || '#' || (SELECT count(*) FROM audit WHERE item = OLD.item), OLD.item, 'note gone', NULL);
    INSERT INTO notes_fts(notes_fts, rowid, body) VALUES ('delete', OLD.id, OLD.body);
  END;
  CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN
    INSERT INTO notes_fts(rowid, body) VALUES (NEW.id, NEW.body);
  END;
`;

const COMPARED = ['SELECT * FROM items ORDER BY id', 'SELECT * FROM totals ORDER BY owner', 'SELECT * FROM audit ORDER BY id', 'SELECT * FROM notes ORDER BY id'];
const WORDS = ['apple', 'pear', 'plum', 'fig'];
const SEARCHES = WORDS.map((w) => `SELECT rowid FROM notes_fts WHERE notes_fts MATCH '${w}' ORDER BY rowid`);

interface Client {
  name: string;
  index: number;
  db: Database;
  /** Transactions committed locally and not pushed yet, as SQL. */
  pending: string[];
  /** This client's items that exist (only it writes them). */
  items: Map<string, number>;
  notes: number;
}

async function openClient(server: Endpoint, name: string): Promise<Database> {
  const { conn, engine } = await openSynced(new CrashDisk().process(), { durability: 'normal', intMode: 'number' }, { url: server.url, clientName: name, retries: 0 }, server.client());
  return new Database(name, connectionDriver(conn, engine));
}

/** A random transaction over a client's own rows, as one SQL script. */
function transaction(c: Client, random: () => number, step: number): string {
  const statements: string[] = [];
  for (let i = int(random, 1, 3); i > 0; i--) {
    const own = [...c.items.keys()];
    const r = random();
    if (r < 0.35 || own.length === 0) {
      const id = `${c.name}-${step}-${i}`;
      const qty = int(random, 1, 50);
      statements.push(`INSERT INTO items VALUES ('${id}', '${c.name}', ${qty})`);
      c.items.set(id, qty);
    } else if (r < 0.6) {
      const id = pick(random, own);
      const qty = int(random, 1, 50);
      statements.push(`UPDATE items SET qty = ${qty} WHERE id = '${id}'`);
      c.items.set(id, qty);
    } else if (r < 0.85) {
      const id = c.index * 1_000_000 + ++c.notes;
      statements.push(`INSERT INTO notes VALUES (${id}, '${pick(random, own)}', '${pick(random, WORDS)} ${pick(random, WORDS)}')`);
    } else {
      const id = pick(random, own);
      statements.push(`DELETE FROM items WHERE id = '${id}'`);
      c.items.delete(id);
    }
  }
  return statements.join(';\n');
}

async function replicaRows(db: Database): Promise<string> {
  const out: unknown[] = [];
  for (const sql of [...COMPARED, ...SEARCHES]) out.push(await db.query(sql));
  return JSON.stringify(out);
}

function oracleRows(oracle: BetterSqlite3.Database): string {
  return JSON.stringify([...COMPARED, ...SEARCHES].map((sql) => oracle.prepare(sql).all()));
}

async function run(seed: number): Promise<void> {
  const server = await network.open(`triggers-${seed}`);
  endpoints.push(server);
  const random = rng(seed);
  const oracle = new BetterSqlite3(':memory:');
  const fail = (what: string): never => {
    throw new Error(`triggers seed ${seed}: ${what} (replay: OUTPOST_SEED=${seed})`);
  };
  const clients: Client[] = [];
  try {
    const first = await openClient(server, 'c0');
    await first.exec(OWNED_SCHEMA);
    await first.sync();
    oracle.exec(OWNED_SCHEMA);
    clients.push({ name: 'c0', index: 0, db: first, pending: [], items: new Map(), notes: 0 });
    for (let i = 1; i < 3; i++) clients.push({ name: `c${i}`, index: i, db: await openClient(server, `c${i}`), pending: [], items: new Map(), notes: 0 });
    const push = async (c: Client): Promise<void> => {
      await c.db.sync();
      // The server applied c's transactions now, after everything pushed before.
      for (const sql of c.pending) oracle.transaction(() => oracle.exec(sql))();
      c.pending = [];
      const [mine, theirs] = [await replicaRows(c.db), oracleRows(oracle)];
      if (mine !== theirs) fail(`${c.name} differs from the oracle right after its sync:\n${mine}\n${theirs}`);
    };
    for (let step = 0; step < 30; step++) {
      const c = pick(random, clients);
      if (random() < 0.7) {
        const sql = transaction(c, random, step);
        await c.db.exec(`BEGIN; ${sql}; COMMIT`);
        c.pending.push(sql);
      } else await push(c);
    }
    for (let round = 0; round < 2; round++) for (const c of clients) await push(c);
    for (const c of clients) {
      if ((await replicaRows(c.db)) !== oracleRows(oracle)) fail(`${c.name} differs from the oracle`);
      const check = await c.db.get<{ integrity_check: string }>('PRAGMA integrity_check');
      if (check?.integrity_check !== 'ok') fail(`${c.name} fails integrity_check`);
      const fts = await c.db.query("INSERT INTO notes_fts(notes_fts, rank) VALUES ('integrity-check', 1)").then(
        () => 'ok',
        (e: unknown) => String(e),
      );
      if (fts !== 'ok') fail(`${c.name}'s FTS index does not match its notes: ${fts}`);
    }
  } finally {
    for (const c of clients) await c.db.close();
    oracle.close();
  }
}

async function serverRows(server: Endpoint, sql: string): Promise<unknown[]> {
  const request: PipelineRequest = { baton: null, requests: [{ type: 'batch', batch: { steps: [{ stmt: { sql, args: [], want_rows: true } }] } }] };
  const [result] = (await server.admin.pipeline(request)).results;
  if (result?.type !== 'ok' || result.response.type !== 'batch') throw new Error(`the server refused: ${JSON.stringify(result)}`);
  return (result.response.result.step_results[0]?.rows ?? []).map((row) => row.map((v) => ('value' in v ? v.value : null)));
}

describe('triggers: pushed and replayed changes are effects, applied with triggers off', () => {
  test('several clients writing offline through BEFORE, AFTER and cascading triggers equal a plain SQLite oracle (generated)', async () => {
    const first = testSeed();
    const seeds = process.env.OUTPOST_SEED ? [first] : Array.from({ length: 10 }, (_, i) => first + i);
    console.log(`triggers: seeds ${seeds[0]}..${seeds[seeds.length - 1]}`);
    for (const seed of seeds) await run(seed);
  }, 240_000);

  test('an AUTOINCREMENT audit log and a shared counter, clients taking turns, equal the oracle', async () => {
    const server = await network.open('triggers-autoincrement');
    endpoints.push(server);
    const schema = `
      CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
      CREATE TABLE counter(id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
      INSERT INTO counter VALUES (1, 0);
      CREATE TABLE log(id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT);
      CREATE TRIGGER t_bi BEFORE INSERT ON t BEGIN UPDATE counter SET n = n + 1 WHERE id = 1; END;
      CREATE TRIGGER t_ai AFTER INSERT ON t BEGIN INSERT INTO log(what) VALUES ('insert ' || NEW.v); END;
      CREATE TRIGGER t_bd BEFORE DELETE ON t BEGIN UPDATE counter SET n = n - 1 WHERE id = 1; INSERT INTO log(what) VALUES ('delete ' || OLD.v); END;`;
    const oracle = new BetterSqlite3(':memory:');
    oracle.exec(schema);
    const a = await openClient(server, 'a');
    await a.exec(schema);
    await a.sync();
    const b = await openClient(server, 'b');
    const turns: [Database, string[]][] = [
      [a, ["INSERT INTO t(v) VALUES ('a1')", "INSERT INTO t(v) VALUES ('a2')"]],
      [b, ["INSERT INTO t(v) VALUES ('b1')", 'DELETE FROM t WHERE id = 1']],
      [a, ["INSERT INTO t(v) VALUES ('a3')"]],
      [b, ["INSERT INTO t(v) VALUES ('b2')", "INSERT INTO t(v) VALUES ('b3')"]],
    ];
    for (const [db, statements] of turns) {
      await db.pull();
      // Offline now: each statement is its own transaction.
      for (const sql of statements) {
        await db.exec(sql);
        oracle.exec(sql);
      }
      await db.sync();
    }
    await a.sync();
    const expected = ['SELECT * FROM t ORDER BY id', 'SELECT * FROM counter', 'SELECT * FROM log ORDER BY id', "SELECT seq FROM sqlite_sequence WHERE name = 'log'"].map((sql) =>
      oracle.prepare(sql).all(),
    );
    for (const db of [a, b]) {
      expect([await db.query('SELECT * FROM t ORDER BY id'), await db.query('SELECT * FROM counter'), await db.query('SELECT * FROM log ORDER BY id'), await db.query("SELECT seq FROM sqlite_sequence WHERE name = 'log'")]).toEqual(expected);
    }
    expect(await serverRows(server, 'SELECT n FROM counter')).toEqual([['5']]);
    await a.close();
    await b.close();
    oracle.close();
  });

  test('a BEFORE trigger that another client pulls while it has pending changes is not replayed twice', async () => {
    const server = await network.open('triggers-replay');
    endpoints.push(server);
    const a = await openClient(server, 'a');
    await a.exec(`CREATE TABLE t(id TEXT PRIMARY KEY NOT NULL);
      CREATE TABLE counter(who TEXT PRIMARY KEY NOT NULL, n INTEGER NOT NULL);
      CREATE TRIGGER t_bi BEFORE INSERT ON t BEGIN INSERT INTO counter VALUES (substr(NEW.id, 1, 1), 1) ON CONFLICT(who) DO UPDATE SET n = n + 1; END;`);
    await a.sync();
    const b = await openClient(server, 'b');
    await b.exec("INSERT INTO t VALUES ('b1'); INSERT INTO t VALUES ('b2')");
    await a.exec("INSERT INTO t VALUES ('a1')");
    await a.sync();
    // b replays its two inserts on top of a's: the counter rows they carry, not the trigger again.
    await b.pull();
    expect(await b.query('SELECT * FROM counter ORDER BY who')).toEqual([
      { who: 'a', n: 1 },
      { who: 'b', n: 2 },
    ]);
    await b.sync();
    await a.pull();
    expect(await a.query('SELECT * FROM counter ORDER BY who')).toEqual([
      { who: 'a', n: 1 },
      { who: 'b', n: 2 },
    ]);
    // Triggers still fire for the app's own writes after a sync.
    await a.exec("INSERT INTO t VALUES ('a2')");
    expect(await a.get("SELECT n FROM counter WHERE who = 'a'")).toEqual({ n: 2 });
    await a.close();
    await b.close();
  });
});
