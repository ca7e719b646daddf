/**
 * Virtual tables through push and pull, with two Node clients on one database:
 * - on Outpost's server, seeded steps of inserts, updates and deletes by either client (each
 *   inserts under keys of its own) into a table indexed by an external-content FTS5 table kept
 *   in step by triggers, syncs in between; R*Tree and FTS5-with-its-own-content writes among
 *   them, each refused at its COMMIT (their data lives only in shadow tables) with nothing
 *   else lost. At the end each replica and the server hold the same rows and full-text
 *   answers, and pass FTS5's own integrity check;
 * - on `turso --sync-server`, whose engine has no FTS5 or R*Tree: the push of an FTS5 table is
 *   refused by the server, reported, and kept pending, and the ordinary rows still sync;
 * - however a virtual table's statement is spelled (module name quoted or in any case, comments,
 *   `content=''`), a write whose data would live only in shadow tables is refused at once,
 *   and an external-content FTS5 table syncs (regression: such writes committed, never synced
 *   and were lost at the next pull).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { open } from '../../src/node/index.js';
import type { OutpostServer } from '../../src/server/server.js';
import type { Database } from '../../src/types.js';
import { int, pick, rng, testSeed } from '../support/generate.js';
import { batch, rawPipeline, startServer, startTursoServer, tempDir } from '../support/server.js';

const seed = testSeed();
const STEPS = 60;
const SPELLINGS = 40;
const WORDS = ['alpha', 'beta', 'gamma', 'delta', 'sync', 'outpost', 'ünïcode', 'tree'];
const dir = tempDir('outpost-vtab-');
let outpost: OutpostServer;
let outpostBase = '';
let files = 0;

beforeAll(async () => {
  console.log(`virtual tables seed ${seed} (OUTPOST_SEED=${seed} replays it)`);
  ({ server: outpost, url: outpostBase } = await startServer({ auth: false }));
});
afterAll(async () => {
  await outpost?.close();
});

const SCHEMA = [
  'CREATE VIRTUAL TABLE r USING rtree(id, minX, maxX, minY, maxY)',
  'CREATE TABLE docs(id INTEGER PRIMARY KEY, body TEXT)',
  "CREATE VIRTUAL TABLE docs_fts USING fts5(body, content='docs', content_rowid='id')",
  'CREATE TRIGGER docs_ai AFTER INSERT ON docs BEGIN INSERT INTO docs_fts(rowid, body) VALUES (new.id, new.body); END',
  "CREATE TRIGGER docs_ad AFTER DELETE ON docs BEGIN INSERT INTO docs_fts(docs_fts, rowid, body) VALUES ('delete', old.id, old.body); END",
  "CREATE TRIGGER docs_au AFTER UPDATE ON docs BEGIN INSERT INTO docs_fts(docs_fts, rowid, body) VALUES ('delete', old.id, old.body); INSERT INTO docs_fts(rowid, body) VALUES (new.id, new.body); END",
  'CREATE VIRTUAL TABLE notes USING fts5(title, body)',
];

/** What a replica (or the server) holds: rows and query answers, as comparable text. */
const PROBES = [
  'SELECT id, body FROM docs ORDER BY id',
  "SELECT rowid FROM docs_fts WHERE docs_fts MATCH 'alpha OR sync' ORDER BY rowid",
  "SELECT rowid FROM docs_fts WHERE docs_fts MATCH 'beta AND tree' ORDER BY rowid",
  'SELECT count(*) FROM r',
  'SELECT count(*) FROM notes',
];

const text = (random: () => number): string => Array.from({ length: int(random, 1, 6) }, () => pick(random, WORDS)).join(' ');

async function localView(db: Database): Promise<string[]> {
  const out: string[] = [];
  for (const sql of PROBES) out.push(JSON.stringify((await db.query(sql)).map((r) => Object.values(r).map(String))));
  return out;
}

async function serverView(url: string): Promise<string[]> {
  const { json } = await rawPipeline(url, batch(...PROBES));
  const r = json.results[0].response.result;
  return r.step_results.map((s: { rows: { value?: string }[][] } | null, i: number) => {
    if (!s) throw new Error(`the server failed ${PROBES[i]}: ${JSON.stringify(r.step_errors[i])}`);
    return JSON.stringify(s.rows.map((row) => row.map((v) => String(v.value))));
  });
}

const client = (url: string): Promise<Database> => open(join(dir, `c${++files}.db`), { sync: { url, retries: 0 } });

test("external-content FTS5 converges through push and pull on Outpost's server; R*Tree and own-content FTS5 writes are refused, losing nothing else", async () => {
  const url = `${outpostBase}/db/vtab${seed}`;
  const clients = [await client(url), await client(url)] as const;
  try {
    const [a, b] = clients;
    await a.pull();
    await a.exec(SCHEMA.join(';\n'));
    await a.sync();
    await b.pull();
    const random = rng(seed);
    const next = [1, 1];
    const counts: Record<string, number> = {};
    for (let step = 0; step < STEPS; step++) {
      const who = int(random, 0, 1);
      const db = clients[who]!;
      const what = `seed ${seed} step ${step}`;
      const key = (): number => who * 100_000 + next[who]!++;
      const any = (): number => pick(random, [0, 100_000]) + int(random, 1, Math.max(1, next[who]! - 1));
      const op = pick(random, ['d+', 'd+', 'd~', 'd-', 'refused', 'sync', 'sync'] as const);
      counts[op] = (counts[op] ?? 0) + 1;
      switch (op) {
        case 'd+':
          await db.run('INSERT INTO docs VALUES (?, ?)', [key(), text(random)]);
          break;
        case 'd~':
          await db.run('UPDATE docs SET body = ? WHERE id = ?', [text(random), any()]);
          break;
        case 'd-':
          await db.run('DELETE FROM docs WHERE id = ?', [any()]);
          break;
        case 'refused': {
          // A transaction that writes docs and then a table whose data cannot sync: all of it
          // is refused, and the database is as it was before.
          const before = await localView(db);
          const pending = (await db.syncStatus())?.pendingChanges;
          const write = pick(random, ['INSERT INTO r VALUES (?, 1, 2, 3, 4)', "INSERT INTO notes(rowid, title, body) VALUES (?, 'a', 'b')"]);
          const id = key();
          const refused = db.transaction(async (tx) => {
            await tx.run('INSERT INTO docs VALUES (?, ?)', [id, text(random)]);
            await tx.run(write, [id]);
          });
          await expect(refused, what).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
          expect(await localView(db), what).toEqual(before);
          expect((await db.syncStatus())?.pendingChanges, what).toBe(pending);
          break;
        }
        case 'sync':
          await db.sync();
          break;
      }
    }
    for (let round = 0; round < 2; round++) for (const db of clients) await db.sync();
    const expected = await serverView(url);
    for (const [i, db] of clients.entries()) {
      const what = `seed ${seed} client ${i}`;
      expect(await localView(db), what).toEqual(expected);
      expect(await db.get('PRAGMA integrity_check'), what).toEqual({ integrity_check: 'ok' });
      await db.run("INSERT INTO docs_fts(docs_fts) VALUES ('integrity-check')");
    }
    console.log(`virtual tables on Outpost: ${STEPS} steps ${JSON.stringify(counts)}`);
  } finally {
    for (const db of clients) await db.close();
  }
}, 300_000);

test('on turso --sync-server (no FTS5 in its engine), a pushed FTS5 table is refused and kept pending, and ordinary rows still sync', async () => {
  const turso = await startTursoServer();
  const clients: Database[] = [];
  try {
    clients.push(await client(turso.url), await client(turso.url));
    const [a, b] = clients as [Database, Database];
    await a.pull();
    await a.exec('CREATE TABLE docs(id INTEGER PRIMARY KEY, body TEXT)');
    await a.sync();
    await a.exec("CREATE VIRTUAL TABLE docs_fts USING fts5(body, content='docs', content_rowid='id')");
    await a.run("INSERT INTO docs VALUES (1, 'alpha')");
    await expect(a.sync()).rejects.toMatchObject({ code: 'REJECTED', message: expect.stringContaining('fts5') });
    const pending = await a.pendingChanges();
    expect(pending.length).toBeGreaterThan(0);
    expect(pending[0]!.rejected).toContain('fts5');
    expect(await a.query("SELECT rowid FROM docs_fts WHERE docs_fts MATCH 'alpha'")).toEqual([]);
    // The insert is a transaction of its own, pushed after the refused one (push.ts isolates it).
    await b.pull();
    expect(await b.query('SELECT * FROM docs')).toEqual([{ id: 1, body: 'alpha' }]);
  } finally {
    for (const db of clients) await db.close();
    await turso.stop();
  }
}, 300_000);

/** A random spelling of a CREATE VIRTUAL TABLE statement: case, quotes and comments vary. */
function spelling(random: () => number, name: string, module: string, args: string[]): string {
  const gap = (): string => pick(random, [' ', '  ', '\n', ' /* c */ ', '/**/', ' -- c\n']);
  const cased = (s: string): string => [...s].map((ch) => (random() < 0.5 ? ch.toUpperCase() : ch.toLowerCase())).join('');
  const quoted = (s: string): string => pick(random, [s, `"${s}"`, `\`${s}\``, `[${s}]`]);
  const head = `${cased('CREATE')}${gap()}${cased('VIRTUAL')}${gap()}${cased('TABLE')}${gap()}${quoted(name)}${gap()}${cased('USING')}${gap()}${quoted(cased(module))}`;
  return `${head}${pick(random, ['', ' ', gap()])}(${args.join(`,${gap()}`)})`;
}

test('a write to a virtual table whose data lives in its shadow tables is refused however its statement is spelled; external-content FTS5 syncs', async () => {
  const random = rng(seed + 1);
  const url = `${outpostBase}/db/vtabspell${seed}`;
  const [a, b] = [await client(url), await client(url)];
  const counts = { refused: 0, synced: 0 };
  try {
    await a.pull();
    await a.exec('CREATE TABLE docs(id INTEGER PRIMARY KEY, body TEXT)');
    for (let i = 0; i < SPELLINGS; i++) {
      const name = `v${i}`;
      const empty = pick(random, ["''", '""']);
      const kinds = [
        { module: 'fts5', args: ['body'], insert: `INSERT INTO ${name}(rowid, body) VALUES (1, 'alpha')`, syncs: false },
        { module: 'fts5', args: ['body', `${pick(random, ['content', 'CONTENT', 'Content'])}=${empty}`], insert: `INSERT INTO ${name}(rowid, body) VALUES (1, 'alpha')`, syncs: false },
        { module: 'fts5', args: ['body', `content=${empty}`, 'contentless_delete=1'], insert: `INSERT INTO ${name}(rowid, body) VALUES (1, 'alpha')`, syncs: false },
        { module: 'rtree', args: ['id', 'x0', 'x1'], insert: `INSERT INTO ${name} VALUES (1, 2, 3)`, syncs: false },
        { module: 'rtree_i32', args: ['id', 'x0', 'x1'], insert: `INSERT INTO ${name} VALUES (1, 2, 3)`, syncs: false },
        { module: 'fts5', args: ['body', `content=${pick(random, ["'docs'", '"docs"', 'docs', '[docs]'])}`, "content_rowid='id'"], insert: `INSERT INTO docs VALUES (${i + 1}, 'alpha'); INSERT INTO ${name}(rowid, body) VALUES (${i + 1}, 'alpha')`, syncs: true },
      ];
      const kind = pick(random, kinds);
      const sql = spelling(random, name, kind.module, kind.args);
      const what = `seed ${seed} spelling ${i}: ${sql}`;
      await a.exec(sql);
      if (kind.syncs) {
        await a.exec(kind.insert);
        counts.synced++;
      } else {
        await expect(a.exec(kind.insert), what).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
        counts.refused++;
      }
    }
    await a.sync();
    await b.pull();
    expect(await b.query('SELECT id, body FROM docs ORDER BY id')).toEqual(await a.query('SELECT id, body FROM docs ORDER BY id'));
    expect((await a.syncStatus())?.pendingChanges).toBe(0);
  } finally {
    await a.close();
    await b.close();
  }
  console.log(`virtual table spellings: ${SPELLINGS} cases ${JSON.stringify(counts)}`);
}, 300_000);
