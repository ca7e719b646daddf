/**
 * The real `@libsql/client` (Hrana over HTTP, v2 pipelines with batons) against the Outpost
 * server: execute, every batch mode, interactive transactions, executeMultiple, migrate,
 * blobs, bigints, error codes, the URL forms (path, host name, token) and the auth matrix.
 */
import { type Client, LibsqlError, createClient } from '@libsql/client';
import * as http from 'node:http';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mintToken } from '../../src/server/auth.js';
import type { OutpostServer } from '../../src/server/server.js';
import { rng, sqlValue, testSeed } from '../support/generate.js';
import { SECRET, startServer } from '../support/server.js';

let server: OutpostServer;
let base: string;
let admin: string;
const clients: Client[] = [];

beforeAll(async () => {
  // A short idle limit, so the idle-timeout test ends soon; the other tests never idle that long.
  ({ server, url: base } = await startServer({ streamIdleMs: 1000, baseHost: 'db.outpost.test' }));
  admin = await mintToken(SECRET, { db: '*', role: 'admin' });
});
afterAll(async () => {
  for (const c of clients) c.close();
  await server.close();
});

function client(db: string, options: { intMode?: 'number' | 'bigint' | 'string'; authToken?: string } = {}): Client {
  const c = createClient({ url: `${base}/db/${db}/`, authToken: options.authToken ?? admin, intMode: options.intMode ?? 'number' });
  clients.push(c);
  return c;
}

/** The LibsqlError `promise` rejects with. */
async function failure(promise: Promise<unknown>): Promise<LibsqlError> {
  const e = await promise.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(LibsqlError);
  return e as LibsqlError;
}

async function count(c: Client, table: string): Promise<number> {
  return Number((await c.execute(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n);
}

describe('statements and batches', () => {
  test('execute returns columns, rows, changes and the last rowid', async () => {
    const c = client('exec');
    await c.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL)');
    const ins = await c.execute({ sql: 'INSERT INTO t(name, score) VALUES (?, ?)', args: ['ada', 1.5] });
    expect(ins.rowsAffected).toBe(1);
    expect(ins.lastInsertRowid).toBe(1n);
    const named = await c.execute({ sql: 'INSERT INTO t(name, score) VALUES (:name, :score)', args: { name: 'bob', score: 3 } });
    expect(named.lastInsertRowid).toBe(2n);
    const rs = await c.execute('SELECT id, name, score FROM t ORDER BY id');
    expect(rs.columns).toEqual(['id', 'name', 'score']);
    expect(rs.columnTypes).toEqual(['INTEGER', 'TEXT', 'REAL']);
    expect(rs.rows.map((r) => [r.id, r.name, r.score])).toEqual([
      [1, 'ada', 1.5],
      [2, 'bob', 3],
    ]);
  });

  test.each(['write', 'read', 'deferred'] as const)('a %s batch runs its statements in one transaction', async (mode) => {
    const c = client(`batch-${mode}`);
    await c.execute('CREATE TABLE t(v)');
    await c.execute("INSERT INTO t VALUES ('seed')");
    const statements = mode === 'read' ? ['SELECT count(*) AS n FROM t', 'SELECT v FROM t'] : ["INSERT INTO t VALUES ('a')", "INSERT INTO t VALUES ('b')", 'SELECT count(*) AS n FROM t'];
    const results = await c.batch(statements, mode);
    expect(results).toHaveLength(statements.length);
    expect(results[mode === 'read' ? 0 : 2]!.rows[0]!.n).toBe(mode === 'read' ? 1 : 3);
  });

  test('a read batch refuses a write with SQLITE_READONLY and changes nothing', async () => {
    const c = client('batch-read-write');
    await c.execute('CREATE TABLE t(v)');
    const e = await failure(c.batch(["INSERT INTO t VALUES ('no')"], 'read'));
    expect(e.code).toMatch(/^SQLITE_READONLY/);
    expect(await count(c, 't')).toBe(0);
    // The read-only state ended with the batch: the next request writes.
    await c.execute("INSERT INTO t VALUES ('yes')");
    expect(await count(c, 't')).toBe(1);
  });

  test.each(['write', 'deferred'] as const)('a failing statement rolls back the whole %s batch', async (mode) => {
    const c = client(`batch-fail-${mode}`);
    await c.execute('CREATE TABLE t(id INTEGER PRIMARY KEY)');
    await c.execute('INSERT INTO t VALUES (1)');
    const e = await failure(c.batch(['INSERT INTO t VALUES (2)', 'INSERT INTO t VALUES (1)', 'INSERT INTO t VALUES (3)'], mode));
    expect(e.code).toBe('SQLITE_CONSTRAINT_PRIMARYKEY');
    expect(await count(c, 't')).toBe(1);
  });

  test('a batch that repeats statements (stored SQL) gives each its own result', async () => {
    const c = client('batch-repeat');
    await c.execute('CREATE TABLE t(v)');
    const stmts = Array.from({ length: 40 }, (_, i) => ({ sql: 'INSERT INTO t VALUES (?)', args: [i] }));
    const results = await c.batch([...stmts, 'SELECT sum(v) AS s FROM t'], 'write');
    expect(results.slice(0, 40).every((r) => r.rowsAffected === 1)).toBe(true);
    expect(results[40]!.rows[0]!.s).toBe((39 * 40) / 2);
  });

  test('executeMultiple runs every statement; a failure stops it there', async () => {
    const c = client('multiple');
    await c.executeMultiple("CREATE TABLE t(v); INSERT INTO t VALUES ('a'); -- a comment\nINSERT INTO t VALUES ('b');");
    expect(await count(c, 't')).toBe(2);
    const e = await failure(c.executeMultiple("INSERT INTO t VALUES ('c'); INSERT INTO nope VALUES (1); INSERT INTO t VALUES ('d');"));
    expect(e.code).toBe('SQLITE_ERROR');
    expect(e.message).toContain('no such table: nope');
    // Like sqlite3_exec: the statements before the failure stay (no transaction was asked for).
    expect(await count(c, 't')).toBe(3);
  });

  test('migrate runs with foreign keys off and leaves the connection as it found it', async () => {
    const c = client('migrate');
    const before = (await c.execute('PRAGMA foreign_keys')).rows[0]![0];
    await c.migrate(['CREATE TABLE parent(id INTEGER PRIMARY KEY)', 'CREATE TABLE child(p REFERENCES parent(id))', 'INSERT INTO child VALUES (42)']);
    expect(await count(c, 'child')).toBe(1);
    expect((await c.execute('PRAGMA foreign_keys')).rows[0]![0]).toBe(before);
  });
});

describe('interactive transactions', () => {
  test('commit makes every statement visible at once', async () => {
    const c = client('tx-commit');
    await c.execute('CREATE TABLE t(v)');
    const tx = await c.transaction('write');
    await tx.execute("INSERT INTO t VALUES ('a')");
    await tx.batch(["INSERT INTO t VALUES ('b')", "INSERT INTO t VALUES ('c')"]);
    expect(Number((await tx.execute('SELECT count(*) AS n FROM t')).rows[0]!.n)).toBe(3);
    await tx.executeMultiple("INSERT INTO t VALUES ('d'); INSERT INTO t VALUES ('e');");
    await tx.commit();
    expect(await count(c, 't')).toBe(5);
  });

  test('rollback undoes every statement', async () => {
    const c = client('tx-rollback');
    await c.execute('CREATE TABLE t(v)');
    const tx = await c.transaction('write');
    await tx.execute("INSERT INTO t VALUES ('a')");
    await tx.execute("INSERT INTO t VALUES ('b')");
    await tx.rollback();
    expect(await count(c, 't')).toBe(0);
  });

  test('a read transaction reads and refuses writes', async () => {
    const c = client('tx-read');
    await c.execute('CREATE TABLE t(v)');
    await c.execute("INSERT INTO t VALUES ('x')");
    const tx = await c.transaction('read');
    expect(Number((await tx.execute('SELECT count(*) AS n FROM t')).rows[0]!.n)).toBe(1);
    const e = await failure(tx.execute("INSERT INTO t VALUES ('no')"));
    expect(e.code).toMatch(/^SQLITE_READONLY/);
    await tx.rollback();
    await c.execute("INSERT INTO t VALUES ('after')");
    expect(await count(c, 't')).toBe(2);
  });

  test('another request waits for an open transaction, then sees its commit', async () => {
    const c = client('tx-wait');
    await c.execute('CREATE TABLE t(v)');
    const tx = await c.transaction('write');
    await tx.execute("INSERT INTO t VALUES ('a')");
    const other = client('tx-wait').execute('SELECT count(*) AS n FROM t');
    await tx.execute("INSERT INTO t VALUES ('b')");
    await tx.commit();
    expect(Number((await other).rows[0]!.n)).toBe(2);
  });

  test('a transaction left idle is rolled back, and its next statement says the stream ended', async () => {
    const c = client('tx-idle');
    await c.execute('CREATE TABLE t(v)');
    const tx = await c.transaction('write');
    await tx.execute("INSERT INTO t VALUES ('lost')");
    // This request waits for the open transaction; it runs once the server rolls it back.
    expect(await count(client('tx-idle'), 't')).toBe(0);
    const e = await failure(tx.execute("INSERT INTO t VALUES ('late')"));
    expect(e.code).toBe('STREAM_ENDED');
    tx.close();
    expect(await count(c, 't')).toBe(0);
  });

  test('transactions on two databases run side by side', async () => {
    const a = client('tx-side-a');
    const b = client('tx-side-b');
    await a.execute('CREATE TABLE t(v)');
    await b.execute('CREATE TABLE t(v)');
    const ta = await a.transaction('write');
    const tb = await b.transaction('write');
    await ta.execute("INSERT INTO t VALUES ('a')");
    await tb.execute("INSERT INTO t VALUES ('b')");
    await tb.commit();
    await ta.commit();
    expect([await count(a, 't'), await count(b, 't')]).toEqual([1, 1]);
  });
});

describe('values', () => {
  test('blobs round-trip byte for byte (seeded)', async () => {
    const seed = testSeed();
    console.log(`blob seed ${seed}`);
    const random = rng(seed);
    const c = client('blobs');
    await c.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)');
    const blobs = Array.from({ length: 20 }, (_, i) => Uint8Array.from({ length: i === 0 ? 0 : Math.floor(random() * 5000) }, () => Math.floor(random() * 256)));
    await c.batch(
      blobs.map((b, i) => ({ sql: 'INSERT INTO t VALUES (?, ?)', args: [i, b] })),
      'write',
    );
    const rs = await c.execute('SELECT b FROM t ORDER BY id');
    expect(rs.rows.map((r) => new Uint8Array(r.b as ArrayBuffer))).toEqual(blobs);
  });

  test('64-bit integers round-trip as bigints with intMode bigint', async () => {
    const c = client('bigints', { intMode: 'bigint' });
    await c.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER)');
    const values = [2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n, 0n, -1n];
    await c.batch(
      values.map((v, i) => ({ sql: 'INSERT INTO t VALUES (?, ?)', args: [i, v] })),
      'write',
    );
    const rs = await c.execute('SELECT v, typeof(v) AS t FROM t ORDER BY id');
    expect(rs.rows.map((r) => r.v)).toEqual(values);
    expect(rs.rows.every((r) => r.t === 'integer')).toBe(true);
    const s = await client('bigints', { intMode: 'string' }).execute('SELECT v FROM t WHERE id = 0');
    expect(s.rows[0]!.v).toBe('9223372036854775807');
  });

  test('generated values of every kind come back as they were bound (seeded)', async () => {
    const seed = testSeed();
    console.log(`values seed ${seed}`);
    const random = rng(seed);
    const c = client('generated', { intMode: 'bigint' });
    await c.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, v)');
    const values = Array.from({ length: 300 }, () => sqlValue(random));
    await c.batch(
      values.map((v, i) => ({ sql: 'INSERT INTO t VALUES (?, ?)', args: [i, v] })),
      'write',
    );
    const rows = (await c.execute('SELECT v, typeof(v) AS t FROM t ORDER BY id')).rows;
    // The client sends every JS number as a float (REAL) and a bigint as an integer.
    const expected = values.map((v) => [v instanceof Uint8Array ? [...v] : v, v === null ? 'null' : typeof v === 'number' ? 'real' : typeof v === 'bigint' ? 'integer' : typeof v === 'string' ? 'text' : 'blob']);
    const actual = rows.map((r) => [r.v instanceof ArrayBuffer ? [...new Uint8Array(r.v)] : r.v, r.t]);
    expect(actual, `seed ${seed}`).toEqual(expected);
  });

  test('a float stays a float and text keeps every character', async () => {
    const c = client('floats');
    const rs = await c.execute({ sql: 'SELECT ? AS f, typeof(?) AS t, ? AS s', args: [3.0, 2.5, 'nul\u0000 ünï 🎉'] });
    expect(rs.rows[0]!.t).toBe('real');
    expect(rs.rows[0]!.s).toBe('nul\u0000 ünï 🎉');
    // A whole REAL comes back as a float, not as an INTEGER (a bigint in this mode).
    const whole = await client('floats', { intMode: 'bigint' }).execute('SELECT 2.0 AS r, 2 AS i');
    expect([whole.rows[0]!.r, whole.rows[0]!.i]).toEqual([2, 2n]);
  });
});

describe('errors carry their codes', () => {
  test('constraint, syntax, missing table and sandbox refusals', async () => {
    const c = client('errors');
    await c.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, u TEXT UNIQUE NOT NULL)');
    await c.execute("INSERT INTO t VALUES (1, 'a')");
    expect((await failure(c.execute("INSERT INTO t VALUES (1, 'b')"))).code).toBe('SQLITE_CONSTRAINT_PRIMARYKEY');
    expect((await failure(c.execute("INSERT INTO t VALUES (2, 'a')"))).code).toBe('SQLITE_CONSTRAINT_UNIQUE');
    expect((await failure(c.execute('INSERT INTO t VALUES (3, NULL)'))).code).toBe('SQLITE_CONSTRAINT_NOTNULL');
    expect((await failure(c.execute('SELEKT 1'))).code).toBe('SQLITE_ERROR');
    expect((await failure(c.execute('SELECT * FROM missing'))).code).toBe('SQLITE_ERROR');
    expect((await failure(c.execute("ATTACH 'other.db' AS o"))).code).toBe('SQLITE_AUTH');
    expect((await failure(c.execute('CREATE TEMP TABLE x(v)'))).code).toBe('SQLITE_AUTH');
  });

  test('a request the server refuses reports its code, not a bare HTTP status', async () => {
    const c = client('-bad-name-');
    expect((await failure(c.execute('SELECT 1'))).code).toBe('INVALID_NAME');
  });
});

/** A fetch that connects to the server but sends `host` as the Host header (as DNS would route it). */
function fetchAs(host: string): (request: Request) => Promise<Response> {
  const target = new URL(base);
  return async (request: Request) => {
    const body = Buffer.from(await request.arrayBuffer());
    const headers: Record<string, string> = { host };
    request.headers.forEach((value, name) => (headers[name] = value));
    headers.host = host;
    return new Promise((resolve, reject) => {
      const url = new URL(request.url);
      const req = http.request({ host: target.hostname, port: target.port, method: request.method, path: url.pathname, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const out = new Headers();
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') out.set(k, v);
          resolve(new Response(res.statusCode === 204 ? null : Buffer.concat(chunks), { status: res.statusCode ?? 500, headers: out }));
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  };
}

describe('every request kind passes the sandbox', () => {
  let limited: OutpostServer;
  let url: string;
  beforeAll(async () => {
    ({ server: limited, url } = await startServer({ auth: false, statementTimeoutMs: 200 }));
  });
  afterAll(() => limited.close());
  const endless = 'WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r';

  // Each test has its own database: one interrupted statement uses a database's burst of the
  // server's time (time-share.ts), and its next request would wait.
  function guarded(db: string): Client {
    const c = createClient({ url: `${url}/db/${db}/` });
    clients.push(c);
    return c;
  }

  test('executeMultiple: refusals apply to each statement', async () => {
    const c = guarded('guarded-refusals');
    expect((await failure(c.executeMultiple("SELECT 1; ATTACH 'x.db' AS x;"))).code).toBe('SQLITE_AUTH');
    expect((await failure(c.executeMultiple('PRAGMA cache_size = 5; SELECT 1;'))).code).toBe('SQLITE_AUTH');
    expect((await failure(c.executeMultiple('SELECT 1; CREATE TEMP VIEW v AS SELECT 1;'))).code).toBe('SQLITE_AUTH');
  });

  test('executeMultiple: the time limit interrupts a statement', async () => {
    const e = await failure(guarded('guarded-time').executeMultiple(`SELECT 1; ${endless};`));
    expect(e.code).toBe('SQLITE_INTERRUPT');
    expect(e.message).toContain('200 ms');
  });

  test('a transaction: the time limit interrupts a statement and the stream goes on', async () => {
    const c = guarded('guarded-tx');
    await c.execute('CREATE TABLE t(v)');
    const tx = await c.transaction('write');
    await tx.execute("INSERT INTO t VALUES ('kept')");
    expect((await failure(tx.execute(endless))).code).toBe('SQLITE_INTERRUPT');
    expect((await failure(tx.execute('CREATE TEMP TABLE x(v)'))).code).toBe('SQLITE_AUTH');
    // A stream's later requests are not held back by the time share: it would only idle out.
    expect(Number((await tx.execute('SELECT count(*) AS n FROM t')).rows[0]!.n)).toBe(1);
    await tx.commit();
  });

  test('foreign keys set by a request hold for it and are gone for the next', async () => {
    const c = guarded('guarded-fk');
    await c.executeMultiple('CREATE TABLE IF NOT EXISTS p(id INTEGER PRIMARY KEY); CREATE TABLE IF NOT EXISTS ch(p REFERENCES p(id));');
    expect((await failure(c.executeMultiple('PRAGMA foreign_keys = ON; INSERT INTO ch VALUES (99);'))).code).toBe('SQLITE_CONSTRAINT_FOREIGNKEY');
    await c.execute('INSERT INTO ch VALUES (99)');
    expect((await c.execute('PRAGMA foreign_keys')).rows[0]![0]).toBe(0);
  });
});

describe('URL forms', () => {
  test('without the trailing slash, the one database the token names is used', async () => {
    await client('dropped').execute('CREATE TABLE t(v)');
    const token = await mintToken(SECRET, { db: 'dropped', role: 'write' });
    const c = createClient({ url: `${base}/db/dropped`, authToken: token });
    clients.push(c);
    await c.execute("INSERT INTO t VALUES ('via token')");
    expect(await count(client('dropped'), 't')).toBe(1);
  });

  test('without the trailing slash and a token for many databases, the error says to add it', async () => {
    const c = createClient({ url: `${base}/db/anything`, authToken: admin });
    clients.push(c);
    const e = await failure(c.execute('SELECT 1'));
    expect(e.code).toBe('DATABASE_NAME_MISSING');
    expect(e.message).toContain('trailing slash');
  });

  test('the host name {name}.{baseHost} names the database', async () => {
    await client('byhost').execute('CREATE TABLE t(v)');
    const c = createClient({ url: 'http://byhost.db.outpost.test', authToken: admin, fetch: fetchAs('byhost.db.outpost.test:80') });
    clients.push(c);
    await c.execute("INSERT INTO t VALUES ('via host')");
    const deeper = createClient({ url: 'http://byhost.eu.db.outpost.test', authToken: admin, fetch: fetchAs('byhost.eu.db.outpost.test') });
    clients.push(deeper);
    await deeper.execute("INSERT INTO t VALUES ('via a longer host')");
    expect(await count(client('byhost'), 't')).toBe(2);
  });
});

describe('auth matrix for libsql requests', () => {
  let write: string;
  beforeAll(async () => {
    write = await mintToken(SECRET, { db: 'secured', role: 'write' });
    await client('secured', { authToken: write }).execute('CREATE TABLE t(v)');
  });

  test.each([
    ['no token', async (): Promise<string | undefined> => undefined, 'UNAUTHORIZED'],
    ['a forged token', async () => mintToken('some-other-secret-0123456789', { db: 'secured', role: 'write' }), 'UNAUTHORIZED'],
    ['an expired token', async () => mintToken(SECRET, { db: 'secured', role: 'write', expires: '-1m' }), 'UNAUTHORIZED'],
    ['a token for another database', async () => mintToken(SECRET, { db: 'elsewhere', role: 'write' }), 'FORBIDDEN'],
    ['a read token', async () => mintToken(SECRET, { db: 'secured', role: 'read' }), 'SQLITE_READONLY'],
  ] as const)('%s is refused and writes nothing', async (_label, token, code) => {
    const t = await token();
    const c = createClient({ url: `${base}/db/secured/`, ...(t ? { authToken: t } : {}) });
    clients.push(c);
    expect((await failure(c.execute("INSERT INTO t VALUES ('x')"))).code).toBe(code);
    expect((await failure(c.batch(["INSERT INTO t VALUES ('x')"], 'write'))).code).toBe(code);
    expect(await count(client('secured', { authToken: write }), 't')).toBe(0);
  });
});

describe('read tokens run reads only', () => {
  let read: string;
  let write: string;
  beforeAll(async () => {
    read = await mintToken(SECRET, { db: 'readable', role: 'read' });
    write = await mintToken(SECRET, { db: 'readable', role: 'write' });
    await client('readable', { authToken: write }).batch(['CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)', "INSERT INTO t(v) VALUES ('a'), ('b')"], 'write');
  });

  test('execute, a read batch and a read transaction return rows', async () => {
    const c = client('readable', { authToken: read });
    expect((await c.execute('SELECT v FROM t ORDER BY id')).rows.map((r) => r.v)).toEqual(['a', 'b']);
    const [n] = await c.batch(['SELECT count(*) AS n FROM t'], 'read');
    expect(n!.rows[0]!.n).toBe(2);
    const tx = await c.transaction('read');
    expect((await tx.execute('SELECT v FROM t WHERE id = 2')).rows[0]!.v).toBe('b');
    await tx.commit();
  });

  test.each([
    ['an INSERT', "INSERT INTO t(v) VALUES ('no')"],
    ['a DELETE', 'DELETE FROM t'],
    ['DDL', 'CREATE TABLE u(v)'],
    ['BEGIN IMMEDIATE', 'BEGIN IMMEDIATE'],
  ])('%s fails with SQLITE_READONLY and a message naming the role', async (_label, sql) => {
    const e = await failure(client('readable', { authToken: read }).execute(sql));
    expect(e.code).toBe('SQLITE_READONLY');
    expect(e.message).toContain('role is "read"');
    expect(await count(client('readable', { authToken: write }), 't')).toBe(2);
  });

  test('a write batch, a deferred transaction and executeMultiple cannot write either', async () => {
    const c = client('readable', { authToken: read });
    expect((await failure(c.batch(["INSERT INTO t(v) VALUES ('no')"], 'deferred'))).code).toBe('SQLITE_READONLY');
    const tx = await c.transaction('deferred');
    expect((await failure(tx.execute("UPDATE t SET v = 'no'"))).code).toBe('SQLITE_READONLY');
    await tx.rollback();
    expect((await failure(c.executeMultiple("SELECT 1; INSERT INTO t(v) VALUES ('no');"))).code).toBe('SQLITE_READONLY');
    expect((await c.execute('SELECT group_concat(v) AS vs FROM t')).rows[0]!.vs).toBe('a,b');
  });

  test('settings, ATTACH and VACUUM are refused; the write token writes as before', async () => {
    const c = client('readable', { authToken: read });
    for (const sql of ['PRAGMA query_only = 0', 'PRAGMA foreign_keys = OFF', "ATTACH 'x.db' AS x", 'VACUUM']) {
      expect((await failure(c.execute(sql))).code).toBe('SQLITE_AUTH');
    }
    const w = client('readable', { authToken: write });
    await w.execute("INSERT INTO t(v) VALUES ('c')");
    await w.execute("DELETE FROM t WHERE v = 'c'");
    expect(await count(w, 't')).toBe(2);
  });
});

describe('Hrana requests the client does not send on its own', () => {
  async function pipeline(db: string, body: unknown, token = admin): Promise<{ status: number; json: any }> {
    const res = await fetch(`${base}/db/${db}/v3/pipeline`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify(body) });
    return { status: res.status, json: await res.json() };
  }
  const exec = (sql: string): unknown => ({ type: 'execute', stmt: { sql, want_rows: true } });

  test('describe reports parameters and columns without running the statement', async () => {
    await client('raw').execute('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)');
    const { json } = await pipeline('raw', { baton: null, requests: [{ type: 'describe', sql: 'DELETE FROM t WHERE id = :id RETURNING v' }, { type: 'describe', sql: 'SELECT v FROM t' }, { type: 'close' }] });
    expect(json.results[0].response.result).toEqual({ params: [{ name: ':id' }], cols: [{ name: 'v', decltype: 'TEXT' }], is_explain: false, is_readonly: false });
    expect(json.results[1].response.result.is_readonly).toBe(true);
  });

  test('get_autocommit follows the transaction; stored SQL serves later requests of the stream', async () => {
    await client('raw').execute('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)');
    const first = await pipeline('raw', {
      baton: null,
      requests: [{ type: 'get_autocommit' }, { type: 'store_sql', sql_id: 7, sql: "INSERT INTO t(v) VALUES ('stored')" }, exec('BEGIN'), { type: 'get_autocommit' }],
    });
    expect(first.json.results.map((r: any) => r.response.is_autocommit)).toEqual([true, undefined, undefined, false]);
    const baton = first.json.baton as string;
    expect(typeof baton).toBe('string');
    const second = await pipeline('raw', { baton, requests: [{ type: 'execute', stmt: { sql_id: 7 } }, { type: 'close_sql', sql_id: 7 }, exec('COMMIT'), { type: 'close' }] });
    expect(second.json.results.map((r: any) => r.type)).toEqual(['ok', 'ok', 'ok', 'ok']);
    expect(second.json.baton).toBeNull();
    const unknown = await pipeline('raw', { baton: null, requests: [{ type: 'execute', stmt: { sql_id: 7 } }] });
    expect(unknown.status).toBe(400);
    expect(unknown.json.message).toContain('sql_id 7');
  });

  test('a baton is refused with a token of another subject, and the transaction rolls back', async () => {
    await client('raw').execute('CREATE TABLE IF NOT EXISTS s(v)');
    const alice = await mintToken(SECRET, { db: 'raw', role: 'write', subject: 'alice' });
    const mallory = await mintToken(SECRET, { db: 'raw', role: 'write', subject: 'mallory' });
    const opened = await pipeline('raw', { baton: null, requests: [exec('BEGIN'), exec("INSERT INTO s VALUES ('alice')")] }, alice);
    const stolen = await pipeline('raw', { baton: opened.json.baton, requests: [exec('COMMIT')] }, mallory);
    expect(stolen.status).toBe(400);
    expect(stolen.json.code).toBe('STREAM_ENDED');
    await pipeline('raw', { baton: opened.json.baton, requests: [exec('ROLLBACK'), { type: 'close' }] }, alice);
    expect(await count(client('raw'), 's')).toBe(0);
  });

  test('a v3 cursor answers a batch as JSON lines: step_begin, rows, step_end, step_error', async () => {
    await client('raw').execute('CREATE TABLE IF NOT EXISTS c(v)');
    const res = await fetch(`${base}/db/raw/v3/cursor`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}` },
      body: JSON.stringify({
        baton: null,
        batch: { steps: [{ stmt: { sql: "INSERT INTO c VALUES ('x'), ('y')" } }, { stmt: { sql: 'SELECT v FROM c ORDER BY v' } }, { stmt: { sql: 'SELECT nope' } }] },
      }),
    });
    expect(res.status).toBe(200);
    const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines[0]).toEqual({ baton: null, base_url: null });
    expect(lines.slice(1).map((l) => l.type)).toEqual(['step_begin', 'step_end', 'step_begin', 'row', 'row', 'step_end', 'step_error']);
    expect(lines[2].affected_row_count).toBe(2);
    expect(lines[4].row).toEqual([{ type: 'text', value: 'x' }]);
    expect(lines[7]).toMatchObject({ step: 2, error: { code: 'SQLITE_ERROR' } });
  });
});
