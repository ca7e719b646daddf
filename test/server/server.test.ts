/**
 * The Outpost sync server against the official client (@tursodatabase/sync), its auth matrix,
 * and hostile input. Every server runs on 127.0.0.1 with a throwaway data folder.
 */
import { connect } from '@tursodatabase/sync';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mintToken } from '../../src/server/auth.js';
import type { OutpostServer } from '../../src/server/server.js';
import { PullStreamReader } from '../../src/protocol/pull-updates.js';
import { SECRET, batch, rawPipeline, rawPull, startServer, tempDir } from '../support/server.js';

type Official = Awaited<ReturnType<typeof connect>>;

async function rows(db: Official, sql: string): Promise<unknown[]> {
  const stmt = await db.prepare(sql);
  return stmt.all();
}

function readPull(body: Uint8Array): { revision: string; dbSize: number; pages: number[]; applyMode: number } {
  const reader = new PullStreamReader();
  const pages = reader.push(body).map((p) => p.pageId);
  const header = reader.finish();
  return { revision: header.serverRevision, dbSize: header.dbSize, pages, applyMode: header.applyMode };
}

describe('official client against the Outpost server', () => {
  let server: OutpostServer;
  let base: string;
  const dir = tempDir('outpost-official-');
  const opened: Official[] = [];
  let n = 0;

  beforeAll(async () => {
    ({ server, url: base } = await startServer({ auth: false }));
  });
  afterAll(async () => {
    for (const db of opened) await db.close();
    await server.close();
  });

  async function client(dbName: string): Promise<Official> {
    const db = await connect({ path: join(dir, `c${++n}.db`), url: `${base}/db/${dbName}`, clientName: `c${n}` });
    opened.push(db);
    return db;
  }

  test('bootstraps, pushes and pulls', async () => {
    const a = await client('basic');
    await a.exec('CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)');
    await a.exec("INSERT INTO notes(body) VALUES ('first'), ('second')");
    await a.push();
    const b = await client('basic');
    expect(await rows(b, 'SELECT id, body FROM notes ORDER BY id')).toEqual([
      { id: 1, body: 'first' },
      { id: 2, body: 'second' },
    ]);
  });

  test('two official clients converge on updates and deletes of the same rows', async () => {
    const a = await client('converge');
    await a.exec('CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT)');
    await a.exec("INSERT INTO kv VALUES ('x', 'a1'), ('y', 'a1'), ('z', 'a1')");
    await a.push();
    const b = await client('converge');
    await b.exec("UPDATE kv SET v = 'b2' WHERE k = 'x'");
    await b.exec("DELETE FROM kv WHERE k = 'z'");
    await b.push();
    await a.exec("UPDATE kv SET v = 'a3' WHERE k = 'y'");
    await a.push();
    await a.pull();
    await b.pull();
    const expected = [
      { k: 'x', v: 'b2' },
      { k: 'y', v: 'a3' },
    ];
    expect(await rows(a, 'SELECT k, v FROM kv ORDER BY k')).toEqual(expected);
    expect(await rows(b, 'SELECT k, v FROM kv ORDER BY k')).toEqual(expected);
  });

  test('a long poll wakes up when a write commits', async () => {
    const a = await client('longpoll');
    await a.exec('CREATE TABLE t(v)');
    await a.push();
    const url = `${base}/db/longpoll`;
    const current = readPull((await rawPull(url, {})).body).revision;
    const started = Date.now();
    const poll = rawPull(url, { clientRevision: current, longPollTimeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 200));
    await a.exec("INSERT INTO t VALUES ('wake up')");
    await a.push();
    const woke = readPull((await poll).body);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(woke.revision).not.toBe(current);
    expect(woke.pages.length).toBeGreaterThan(0);
  });

  test('a long poll with nothing new returns empty when it times out', async () => {
    const url = `${base}/db/quiet`;
    await rawPipeline(url, batch('CREATE TABLE t(v)'));
    const current = readPull((await rawPull(url, {})).body).revision;
    const started = Date.now();
    const res = readPull((await rawPull(url, { clientRevision: current, longPollTimeoutMs: 300 })).body);
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(res).toMatchObject({ revision: current, pages: [] });
  });

  test('an incremental pull sends only the pages changed since the revision', async () => {
    const url = `${base}/db/incremental`;
    await rawPipeline(url, batch('CREATE TABLE t(id INTEGER PRIMARY KEY, v)', "INSERT INTO t(v) SELECT hex(randomblob(500)) FROM (WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < 200) SELECT i FROM s)"));
    const full = readPull((await rawPull(url, {})).body);
    expect(full.pages.length).toBe(full.dbSize);
    await rawPipeline(url, batch("UPDATE t SET v = 'small' WHERE id = 200"));
    const inc = readPull((await rawPull(url, { clientRevision: full.revision })).body);
    expect(inc.pages.length).toBeGreaterThan(0);
    expect(inc.pages.length).toBeLessThan(full.pages.length / 4);
    expect(inc.applyMode).toBe(0);
  });

  test('an unknown revision gets ReplaceBase with every page', async () => {
    const url = `${base}/db/incremental`;
    const res = readPull((await rawPull(url, { clientRevision: 'not-a-real-generation.5' })).body);
    expect(res.applyMode).toBe(1);
    expect(res.pages.length).toBe(res.dbSize);
  });
});

describe('auth', () => {
  let server: OutpostServer;
  let base: string;
  let write: string;

  beforeAll(async () => {
    ({ server, url: base } = await startServer());
    write = await mintToken(SECRET, { db: 'secured', role: 'write' });
    const res = await rawPipeline(`${base}/db/secured`, batch('CREATE TABLE t(v)', "INSERT INTO t VALUES ('seed')"), write);
    expect(res.status).toBe(200);
  });
  afterAll(() => server.close());

  async function count(): Promise<unknown> {
    const res = await rawPipeline(`${base}/db/secured`, batch('SELECT count(*) FROM t'), write);
    return res.json.results[0].response.result.step_results[0].rows[0][0].value;
  }

  test('a request with no token gets 401 and changes nothing', async () => {
    expect((await rawPipeline(`${base}/db/secured`, batch("INSERT INTO t VALUES ('x')"))).status).toBe(401);
    expect((await rawPull(`${base}/db/secured`, {})).status).toBe(401);
    expect(await count()).toBe('1');
  });

  test('a token for another database gets 403', async () => {
    const other = await mintToken(SECRET, { db: 'elsewhere', role: 'write' });
    expect((await rawPipeline(`${base}/db/secured`, batch("INSERT INTO t VALUES ('x')"), other)).status).toBe(403);
    expect((await rawPull(`${base}/db/secured`, {}, other)).status).toBe(403);
    expect(await count()).toBe('1');
  });

  test('a read token may pull but not push', async () => {
    const read = await mintToken(SECRET, { db: 'secured', role: 'read' });
    expect((await rawPull(`${base}/db/secured`, {}, read)).status).toBe(200);
    const push = batch('BEGIN', "INSERT INTO turso_sync_last_change_id VALUES ('c', 1, 1)", "INSERT INTO t VALUES ('x')", 'COMMIT');
    expect((await rawPipeline(`${base}/db/secured`, push, read)).status).toBe(403);
    expect(await count()).toBe('1');
  });

  test('a read token may not push through the v3 cursor either (the role check sees the cursor as a pipeline)', async () => {
    const read = await mintToken(SECRET, { db: 'secured', role: 'read' });
    const push = batch('BEGIN', "INSERT INTO turso_sync_last_change_id VALUES ('c', 1, 1)", "INSERT INTO t VALUES ('x')", 'COMMIT') as { requests: { batch: unknown }[] };
    const res = await fetch(`${base}/db/secured/v3/cursor`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${read}` },
      body: JSON.stringify({ baton: null, batch: push.requests[0]!.batch }),
    });
    expect(res.status).toBe(403);
    await res.arrayBuffer();
    expect(await count()).toBe('1');
  });

  test("a read token's pipeline reads, and its write fails with SQLITE_READONLY and changes nothing", async () => {
    const read = await mintToken(SECRET, { db: 'secured', role: 'read' });
    const res = await rawPipeline(`${base}/db/secured`, batch('SELECT count(*) FROM t', "INSERT INTO t VALUES ('x')"), read);
    expect(res.status).toBe(200);
    const result = res.json.results[0].response.result;
    expect(result.step_results[0].rows[0][0].value).toBe('1');
    expect(result.step_errors[1].code).toBe('SQLITE_READONLY');
    expect(result.step_errors[1].message).toContain('role is "read"');
    expect(await count()).toBe('1');
  });

  test('a read token cannot turn query_only off', async () => {
    const read = await mintToken(SECRET, { db: 'secured', role: 'read' });
    const res = await rawPipeline(`${base}/db/secured`, batch('PRAGMA query_only = 0', "INSERT INTO t VALUES ('x')"), read);
    const errors = res.json.results[0].response.result.step_errors;
    expect(errors[0].code).toBe('SQLITE_AUTH');
    expect(errors[1].code).toBe('SQLITE_READONLY');
    expect(await count()).toBe('1');
  });

  test('a read token cannot turn query_only off with a statement a write token ran before (no cached statement skips the rules)', async () => {
    const read = await mintToken(SECRET, { db: 'secured', role: 'read' });
    await rawPipeline(`${base}/db/secured`, batch('PRAGMA query_only = 0', 'SELECT 1'), write);
    const res = await rawPipeline(`${base}/db/secured`, batch('PRAGMA query_only = 0', "INSERT INTO t VALUES ('x')"), read);
    const errors = res.json.results[0].response.result.step_errors;
    expect(errors[0].code).toBe('SQLITE_AUTH');
    expect(errors[1].code).toBe('SQLITE_READONLY');
    expect(await count()).toBe('1');
  });

  test("a write token's next request may write again after a read token's", async () => {
    const read = await mintToken(SECRET, { db: 'secured', role: 'read' });
    await rawPipeline(`${base}/db/secured`, batch('SELECT 1'), read);
    const res = await rawPipeline(`${base}/db/secured`, batch("INSERT INTO t VALUES ('y')", "DELETE FROM t WHERE v = 'y'"), write);
    expect(res.json.results[0].response.result.step_errors).toEqual([null, null]);
    expect(await count()).toBe('1');
  });

  test('a read token cannot create a database through a pipeline', async () => {
    const read = await mintToken(SECRET, { db: '*', role: 'read' });
    expect((await rawPipeline(`${base}/db/never-made`, batch('SELECT 1'), read)).status).toBe(404);
  });

  test('an expired token gets 401', async () => {
    const expired = await mintToken(SECRET, { db: 'secured', role: 'write', expires: '-1m' });
    const res = await rawPipeline(`${base}/db/secured`, batch("INSERT INTO t VALUES ('x')"), expired);
    expect(res.status).toBe(401);
    expect(res.json.error).toMatch(/expired/);
    expect(await count()).toBe('1');
  });

  test('a forged token gets 401', async () => {
    const forged = await mintToken('some-other-secret-0123456789', { db: 'secured', role: 'write' });
    expect((await rawPipeline(`${base}/db/secured`, batch("INSERT INTO t VALUES ('x')"), forged)).status).toBe(401);
    expect((await rawPipeline(`${base}/db/secured`, batch("INSERT INTO t VALUES ('x')"), `${write}x`)).status).toBe(401);
    expect(await count()).toBe('1');
  });

  test('a read token cannot create a database; an admin token can', async () => {
    const read = await mintToken(SECRET, { db: '*', role: 'read' });
    expect((await rawPull(`${base}/db/nonexistent`, {}, read)).status).toBe(404);
    const admin = await mintToken(SECRET, { db: '*', role: 'admin' });
    const res = await fetch(`${base}/admin/databases`, { method: 'POST', headers: { authorization: `Bearer ${admin}` }, body: JSON.stringify({ name: 'made' }) });
    expect(res.status).toBe(201);
    expect((await rawPull(`${base}/db/made`, {}, read)).status).toBe(200);
    const writeRes = await fetch(`${base}/admin/databases`, { method: 'POST', headers: { authorization: `Bearer ${write}` }, body: JSON.stringify({ name: 'secured' }) });
    expect(writeRes.status).toBe(403);
  });
});

describe('hostile input', () => {
  let server: OutpostServer;
  let base: string;

  beforeAll(async () => {
    ({ server, url: base } = await startServer({ auth: false, maxBodyBytes: 64 * 1024 }));
    await rawPipeline(`${base}/db/h`, batch('CREATE TABLE t(v UNIQUE)', "INSERT INTO t VALUES ('kept')"));
  });
  afterAll(() => server.close());

  async function health(): Promise<void> {
    expect((await fetch(`${base}/health`)).status).toBe(200);
  }

  test('malformed protobuf is a 400 with a JSON error', async () => {
    const res = await fetch(`${base}/db/h/pull-updates`, { method: 'POST', body: new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0x01, 0x02]) });
    expect(res.status).toBe(400);
    expect((await res.json()).code).toBe('PROTOCOL_ERROR');
    await health();
  });

  test('malformed JSON and wrong shapes are 400s', async () => {
    for (const body of ['{not json', '[]', '{"requests": "nope"}', JSON.stringify({ baton: null, requests: [{ type: 'execute', stmt: { sql: 1 } }] })]) {
      const res = await rawPipeline(`${base}/db/h`, body);
      expect(res.status).toBe(400);
      expect(typeof res.json.error).toBe('string');
    }
    await health();
  });

  test('a body over the limit is a 413', async () => {
    const res = await fetch(`${base}/db/h/v2/pipeline`, { method: 'POST', body: 'x'.repeat(200 * 1024) }).catch((e: unknown) => e);
    if (res instanceof Response) expect(res.status).toBe(413);
    await health();
  });

  test('path tricks in names are refused', async () => {
    for (const path of ['/db/..%2Fetc/pull-updates', '/db/a%2Fb/v2/pipeline', '/db/%2e%2e/v2/pipeline', '/db/.hidden/v2/pipeline']) {
      const res = await fetch(`${base}${path}`, { method: 'POST', body: '{}' });
      expect([400, 404]).toContain(res.status);
    }
    await health();
  });

  test('an SQL error in a batch applies nothing of it', async () => {
    const body = {
      baton: null,
      requests: [
        {
          type: 'batch',
          batch: {
            steps: [
              { stmt: { sql: 'BEGIN' } },
              { stmt: { sql: "INSERT INTO t VALUES ('new')" }, condition: { type: 'ok', step: 0 } },
              { stmt: { sql: "INSERT INTO t VALUES ('kept')" }, condition: { type: 'ok', step: 1 } },
              { stmt: { sql: 'COMMIT' }, condition: { type: 'ok', step: 2 } },
            ],
          },
        },
      ],
    };
    const res = await rawPipeline(`${base}/db/h`, body);
    expect(res.status).toBe(200);
    const result = res.json.results[0].response.result;
    expect(result.step_errors[2].code).toBe('SQLITE_CONSTRAINT_UNIQUE');
    expect(result.step_results[3]).toBeNull();
    const after = await rawPipeline(`${base}/db/h`, batch('SELECT v FROM t ORDER BY v'));
    expect(after.json.results[0].response.result.step_results[0].rows).toEqual([[{ type: 'text', value: 'kept' }]]);
  });

  test('zstd is refused clearly', async () => {
    const res = await rawPull(`${base}/db/h`, { encoding: 1 });
    expect(res.status).toBe(400);
    expect(new TextDecoder().decode(res.body)).toMatch(/zstd/);
  });
});

describe('write rules', () => {
  let server: OutpostServer;
  let url: string;
  beforeAll(async () => {
    // The schema comes from an unruled server (an operator's migration); then the rules apply.
    const dataDir = tempDir('outpost-rules-');
    const setup = await startServer({ auth: false, dataDir });
    await rawPipeline(`${setup.url}/db/ruled`, batch('CREATE TABLE notes(v)', 'CREATE TABLE secrets(v)'));
    await setup.server.close();
    let base: string;
    ({ server, url: base } = await startServer({ auth: false, dataDir, writeRules: { ruled: ['notes'] } }));
    url = `${base}/db/ruled`;
  });
  afterAll(() => server.close());

  const errors = (res: { json: any }): (string | null)[] => res.json.results[0].response.result.step_errors.map((e: { code: string } | null) => e?.code ?? null);

  test('pushed writes reach only the allowed tables', async () => {
    expect(errors(await rawPipeline(url, batch("INSERT INTO notes VALUES ('ok')", "UPDATE notes SET v = 'still ok'")))).toEqual([null, null]);
    expect(errors(await rawPipeline(url, batch("INSERT INTO secrets VALUES ('no')", 'DELETE FROM secrets')))).toEqual(['SQLITE_AUTH', 'SQLITE_AUTH']);
  });

  test('DDL is refused, except the sync protocol table', async () => {
    expect(errors(await rawPipeline(url, batch('CREATE TABLE extra(v)', 'DROP TABLE notes', 'ALTER TABLE notes ADD COLUMN w')))).toEqual(['SQLITE_AUTH', 'SQLITE_AUTH', 'SQLITE_AUTH']);
    const protocol = await rawPipeline(
      url,
      batch(
        'CREATE TABLE IF NOT EXISTS turso_sync_last_change_id (client_id TEXT PRIMARY KEY, pull_gen INTEGER, change_id INTEGER)',
        { sql: 'INSERT INTO turso_sync_last_change_id VALUES (?, 1, 1)', args: [{ type: 'text', value: 'c' }] },
      ),
    );
    expect(errors(protocol)).toEqual([null, null]);
    const reads = await rawPipeline(url, batch('SELECT count(*) FROM secrets'));
    expect(errors(reads)).toEqual([null]);
  });
});
