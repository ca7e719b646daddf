/**
 * Outpost's sync client against real servers on 127.0.0.1: the reference `turso --sync-server`
 * and the Outpost server, and alongside the official client (@tursodatabase/sync).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@tursodatabase/sync';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { open } from '../../src/node/index.js';
import type { OutpostServer } from '../../src/server/server.js';
import { PullStreamReader } from '../../src/protocol/pull-updates.js';
import type { Database } from '../../src/types.js';
import { rawPull, startServer, startTursoServer, tempDir } from '../support/server.js';

interface Peer {
  name: string;
  /** The reference server (Turso's engine) has no WITHOUT ROWID tables. */
  withoutRowid: boolean;
  start(): Promise<{ base: string; stop(): Promise<void> }>;
  /** Database URL for a database name (the reference server hosts one database). */
  dbUrl(base: string, db: string): string;
}

const peers: Peer[] = [
  {
    name: 'turso --sync-server',
    withoutRowid: false,
    start: async () => {
      const t = await startTursoServer();
      return { base: t.url, stop: t.stop };
    },
    dbUrl: (base) => base,
  },
  {
    name: 'Outpost server',
    withoutRowid: true,
    start: async () => {
      const { server, url } = await startServer({ auth: false });
      return { base: url, stop: () => (server as OutpostServer).close() };
    },
    dbUrl: (base, db) => `${base}/db/${db}`,
  },
];

for (const peer of peers) {
  describe(`Outpost client with ${peer.name}`, () => {
    let base: string;
    let stop: () => Promise<void>;
    const dir = tempDir('outpost-interop-');
    const opened: Database[] = [];
    const officials: Awaited<ReturnType<typeof connect>>[] = [];
    let n = 0;

    beforeAll(async () => {
      ({ base, stop } = await peer.start());
    }, 60_000);
    afterAll(async () => {
      for (const db of opened) if (!db.closed) await db.close();
      for (const o of officials) await o.close();
      await stop();
    });

    async function client(db: string): Promise<{ db: Database; path: string }> {
      const path = join(dir, `o${++n}.db`);
      const handle = await open(path, { sync: { url: peer.dbUrl(base, db) } });
      opened.push(handle);
      return { db: handle, path };
    }

    async function official(db: string): Promise<Awaited<ReturnType<typeof connect>>> {
      const o = await connect({ path: join(dir, `t${++n}.db`), url: peer.dbUrl(base, db), clientName: `official${n}` });
      officials.push(o);
      return o;
    }

    test('bootstraps an image byte-identical to the server, then writes, pushes, pulls and converges', async () => {
      const { db: a } = await client('conv');
      await a.exec('CREATE TABLE items(id INTEGER PRIMARY KEY, label TEXT, qty INTEGER)');
      await a.batch(["INSERT INTO items(label, qty) VALUES ('apple', 1)", "INSERT INTO items(label, qty) VALUES ('pear', 2)"]);
      expect(await a.push()).toBeGreaterThan(0);
      const { db: b, path: bPath } = await client('conv');
      expect(await b.query('SELECT label, qty FROM items ORDER BY id')).toEqual([
        { label: 'apple', qty: 1 },
        { label: 'pear', qty: 2 },
      ]);
      // No local changes in b: its file is the server's image, page for page.
      await b.close();
      const reader = new PullStreamReader();
      const serverPages = reader.push((await rawPull(peer.dbUrl(base, 'conv'), {})).body);
      reader.finish();
      const local = readFileSync(bPath);
      expect(local.length).toBe(serverPages.length * 4096);
      for (const p of serverPages) expect(Buffer.compare(local.subarray(p.pageId * 4096, (p.pageId + 1) * 4096), Buffer.from(p.page)), `page ${p.pageId}`).toBe(0);

      const { db: c } = await client('conv');
      await c.run("UPDATE items SET qty = 10 WHERE label = 'apple'");
      await c.run("DELETE FROM items WHERE label = 'pear'");
      await c.run("INSERT INTO items(label, qty) VALUES ('plum', 3)");
      await c.push();
      await a.run("UPDATE items SET label = 'green apple' WHERE id = 1");
      await a.sync();
      await c.sync();
      const expected = [
        { label: 'green apple', qty: 10 },
        { label: 'plum', qty: 3 },
      ];
      expect(await a.query('SELECT label, qty FROM items ORDER BY id')).toEqual(expected);
      expect(await c.query('SELECT label, qty FROM items ORDER BY id')).toEqual(expected);
      expect(await a.get('PRAGMA integrity_check')).toEqual({ integrity_check: 'ok' });
    });

    test('the official client and Outpost clients see each other’s inserts, updates and deletes', async () => {
      const o = await official('mixed');
      await o.exec('CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT)');
      await o.exec("INSERT INTO kv VALUES ('a', 'official'), ('b', 'official'), ('c', 'official')");
      await o.push();
      const { db: x } = await client('mixed');
      expect(await x.query('SELECT k, v FROM kv ORDER BY k')).toHaveLength(3);
      await x.run("UPDATE kv SET v = 'outpost' WHERE k = 'a'");
      await x.run("DELETE FROM kv WHERE k = 'b'");
      await x.run("INSERT INTO kv VALUES ('d', 'outpost')");
      await x.push();
      await o.pull();
      const stmt = await o.prepare('SELECT k, v FROM kv ORDER BY k');
      expect(await stmt.all()).toEqual([
        { k: 'a', v: 'outpost' },
        { k: 'c', v: 'official' },
        { k: 'd', v: 'outpost' },
      ]);
      await o.exec("UPDATE kv SET v = 'official again' WHERE k = 'd'");
      await o.exec("DELETE FROM kv WHERE k = 'c'");
      await o.push();
      expect(await x.pull()).toBe(true);
      expect(await x.query('SELECT k, v FROM kv ORDER BY k')).toEqual([
        { k: 'a', v: 'outpost' },
        { k: 'd', v: 'official again' },
      ]);
    });

    test('rowid tables and WITHOUT ROWID tables push and converge', async () => {
      const { db: a } = await client('kinds');
      await a.exec(`CREATE TABLE plain(a, b); CREATE TABLE wr(k TEXT PRIMARY KEY, n INTEGER)${peer.withoutRowid ? ' WITHOUT ROWID' : ''};`);
      await a.exec("INSERT INTO plain VALUES (1, 'x'), (2, 'y'); INSERT INTO wr VALUES ('k1', 1), ('k2', 2);");
      await a.push();
      const { db: b } = await client('kinds');
      await b.exec("UPDATE plain SET b = 'Y' WHERE a = 2; DELETE FROM wr WHERE k = 'k1'; UPDATE wr SET n = 20 WHERE k = 'k2';");
      await b.push();
      await a.pull();
      expect(await a.query('SELECT rowid, a, b FROM plain ORDER BY rowid')).toEqual([
        { rowid: 1, a: 1, b: 'x' },
        { rowid: 2, a: 2, b: 'Y' },
      ]);
      expect(await a.query('SELECT k, n FROM wr')).toEqual([{ k: 'k2', n: 20 }]);
    });

    test('a sync before anything was written to the server, then writes, converge', async () => {
      // A new turso --sync-server's database has no pages at all: applying that image must not
      // try to truncate the local file below page 1 (SqliteError "bad page value" before).
      const { db: a } = await client('empty-first');
      const { db: b } = await client('empty-first');
      await a.sync();
      await b.sync();
      await a.exec('CREATE TABLE e(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO e VALUES (1, \'x\')');
      await a.sync();
      expect(await b.pull()).toBe(true);
      expect(await b.query('SELECT id, v FROM e')).toEqual([{ id: 1, v: 'x' }]);
      expect(await b.get('PRAGMA integrity_check')).toEqual({ integrity_check: 'ok' });
    });

    test('a pull with nothing new returns false', async () => {
      const { db } = await client('quiet');
      await db.exec('CREATE TABLE q(v)');
      await db.push();
      await db.pull();
      expect(await db.pull()).toBe(false);
    });

    test('user_version and application_id set in a migration reach the server and other replicas', async () => {
      const { db: a } = await client('header');
      await a.exec('BEGIN; CREATE TABLE m(id INTEGER PRIMARY KEY); PRAGMA user_version = 3; PRAGMA application_id = 77; COMMIT');
      await a.push();
      const { db: b } = await client('header');
      expect(await b.get('PRAGMA user_version')).toEqual({ user_version: 3 });
      expect(await b.get('PRAGMA application_id')).toEqual({ application_id: 77 });
      await a.pull();
      expect(await a.get('PRAGMA user_version')).toEqual({ user_version: 3 });
    });

    // Pushed changes already hold what the client's triggers did. The Outpost server applies
    // them with triggers off; turso --sync-server fires them again (its documented limit).
    test(`a BEFORE trigger's write is applied ${peer.name === 'Outpost server' ? 'once' : 'twice (turso --sync-server fires triggers on pushed changes)'}`, async () => {
      const { db: a } = await client('triggers');
      await a.exec(`CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE counter(id INTEGER PRIMARY KEY, n INTEGER);
        INSERT INTO counter VALUES (1, 0);
        CREATE TRIGGER t_bi BEFORE INSERT ON t BEGIN UPDATE counter SET n = n + 1 WHERE id = 1; END;`);
      await a.push();
      await a.exec("INSERT INTO t(v) VALUES ('x')");
      await a.sync();
      expect(await a.get('SELECT n FROM counter')).toEqual({ n: peer.name === 'Outpost server' ? 1 : 2 });
    });
  });
}
