/**
 * Offline writes, lost answers and servers that answer garbage. A fetch wrapper stands
 * between the client and a real Outpost server on 127.0.0.1 and injects the fault.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { SyncError } from '../../src/errors.js';
import { open } from '../../src/node/index.js';
import type { OutpostServer } from '../../src/server/server.js';
import { encodePage, encodePullHeader } from '../../src/protocol/pull-updates.js';
import type { Database } from '../../src/types.js';
import { batch, rawPipeline, startServer, tempDir } from '../support/server.js';

type Mode = 'pass' | 'down' | 'lose-push-answer' | 'truncated' | 'wrong-page-size' | 'html' | '5xx' | 'hang' | 'not-json';

function faultyFetch(): { fetch: typeof fetch; mode: Mode } {
  const state = { mode: 'pass' as Mode, fetch: undefined as unknown as typeof fetch };
  state.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input);
    const isPull = url.endsWith('/pull-updates');
    switch (state.mode) {
      case 'down':
        throw new TypeError('fetch failed: connect ECONNREFUSED');
      case 'lose-push-answer': {
        const res = await fetch(input, init);
        const body = await res.arrayBuffer();
        // The server applied the batch; the client never hears back.
        const sent = new TextDecoder().decode(init?.body as Uint8Array);
        if (!isPull && sent.includes('BEGIN IMMEDIATE')) throw new TypeError('fetch failed: socket hang up');
        return new Response(body, { status: res.status, headers: res.headers });
      }
      case 'truncated': {
        if (!isPull) break;
        const res = await fetch(input, init);
        const body = new Uint8Array(await res.arrayBuffer());
        return new Response(body.subarray(0, Math.max(1, body.length - 1000)) as BodyInit, { status: 200 });
      }
      case 'wrong-page-size':
        if (!isPull) break;
        return new Response(Buffer.concat([encodePullHeader({ serverRevision: 'bogus.1', dbSize: 2, applyMode: 0 }), encodePage(0, new Uint8Array(100))]), { status: 200 });
      case 'html':
        return new Response('<!doctype html><html><body><h1>502 Bad Gateway</h1></body></html>', { status: 502, headers: { 'content-type': 'text/html' } });
      case '5xx':
        return new Response(JSON.stringify({ error: 'database is restarting' }), { status: 503 });
      case 'not-json':
        if (isPull) break;
        return new Response('{"results": [', { status: 200 });
      case 'hang':
        return new Promise<Response>((_, reject) => {
          init?.signal?.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
        });
      default:
        break;
    }
    return fetch(input, init);
  }) as typeof fetch;
  return state;
}

let server: OutpostServer;
let base: string;
const dir = tempDir('outpost-offline-');
let n = 0;

beforeAll(async () => {
  ({ server, url: base } = await startServer({ auth: false }));
});
afterAll(() => server.close());

async function setup(db: string): Promise<{ client: Database; faults: ReturnType<typeof faultyFetch>; path: string; url: string }> {
  const url = `${base}/db/${db}`;
  await rawPipeline(url, batch('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)', 'CREATE TABLE IF NOT EXISTS audit(id INTEGER PRIMARY KEY, row_id INTEGER, v TEXT)'));
  // Counts the server's own applications (tenants may not create TEMP objects: the test is the server here).
  await server.execTrusted(db, 'CREATE TEMP TRIGGER IF NOT EXISTS t_audit AFTER INSERT ON main.t BEGIN INSERT INTO audit(row_id, v) VALUES (new.id, new.v); END');
  const faults = faultyFetch();
  const path = join(dir, `c${++n}.db`);
  const client = await open(path, { sync: { url, fetch: faults.fetch, timeoutMs: 500, retries: 0 } });
  await untilBootstrapped(client);
  return { client, faults, path, url };
}

/**
 * open() stays usable offline: a first pull that outlives the 500 ms limit on a loaded machine
 * leaves an empty replica instead of failing. The tests need the server's schema, so pull
 * until it is there (each attempt is bounded by the same limit).
 */
async function untilBootstrapped(client: Database): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const [row] = await client.query<{ n: number }>("SELECT count(*) AS n FROM sqlite_schema WHERE name = 't'");
    if (row?.n === 1) return;
    if (attempt === 20) throw new Error('the replica never received the server schema');
    await client.pull().catch(() => undefined);
  }
}

async function serverRows(url: string, sql: string): Promise<unknown[][]> {
  const res = await rawPipeline(url, batch(sql));
  return res.json.results[0].response.result.step_results[0].rows.map((r: { value?: unknown }[]) => r.map((v) => v.value ?? null));
}

describe('offline', () => {
  test('writes work while the server is down and reach it when it is back', async () => {
    const { client, faults, url } = await setup('down');
    faults.mode = 'down';
    await client.run("INSERT INTO t(v) VALUES ('offline 1')");
    await client.run("INSERT INTO t(v) VALUES ('offline 2')");
    const error = await client.push().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SyncError);
    expect((error as SyncError).code).toBe('NETWORK');
    const status = await client.syncStatus();
    expect(status?.pendingChanges).toBe(2);
    expect(status?.lastError?.code).toBe('NETWORK');
    faults.mode = 'pass';
    await client.sync();
    expect(await serverRows(url, 'SELECT v FROM t ORDER BY id')).toEqual([['offline 1'], ['offline 2']]);
    expect((await client.syncStatus())?.pendingChanges).toBe(0);
    await client.close();
  });

  test('pending changes survive closing and reopening the database', async () => {
    const { client, faults, path, url } = await setup('reopen');
    faults.mode = 'down';
    await client.run("INSERT INTO t(v) VALUES ('kept across restarts')");
    await client.close();
    const offlineAgain = faultyFetch();
    offlineAgain.mode = 'down';
    const reopened = await open(path, { sync: { url, fetch: offlineAgain.fetch } });
    expect((await reopened.syncStatus())?.pendingChanges).toBe(1);
    expect(await reopened.query('SELECT v FROM t')).toEqual([{ v: 'kept across restarts' }]);
    offlineAgain.mode = 'pass';
    await reopened.sync();
    expect(await serverRows(url, 'SELECT v FROM t')).toEqual([['kept across restarts']]);
    await reopened.close();
  });

  test('a push whose answer is lost is not applied twice', async () => {
    const { client, faults, url } = await setup('lost');
    await client.run("INSERT INTO t(v) VALUES ('exactly once')");
    faults.mode = 'lose-push-answer';
    await expect(client.push()).rejects.toMatchObject({ code: 'NETWORK' });
    faults.mode = 'pass';
    expect(await client.push()).toBe(0);
    await client.pull();
    await client.run("INSERT INTO t(v) VALUES ('after')");
    await client.sync();
    expect(await serverRows(url, 'SELECT v FROM audit ORDER BY id')).toEqual([['exactly once'], ['after']]);
    await client.close();
  });
});

test('a transient failure is retried with backoff', async () => {
  const url = `${base}/db/retried`;
  await rawPipeline(url, batch('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)'));
  let failures = 2;
  const flaky = (async (input: RequestInfo | URL, init?: RequestInit) => {
    if (String(input).endsWith('/v2/pipeline') && failures > 0) {
      failures--;
      return new Response('{"error":"busy"}', { status: 503 });
    }
    return fetch(input, init);
  }) as typeof fetch;
  const client = await open(join(dir, `c${++n}.db`), { sync: { url, fetch: flaky } });
  await client.run("INSERT INTO t(v) VALUES ('eventually')");
  expect(await client.push()).toBe(1);
  expect(failures).toBe(0);
  expect(await serverRows(url, 'SELECT v FROM t')).toEqual([['eventually']]);
  await client.close();
});

describe('bad servers', () => {
  const cases: [Mode, string][] = [
    ['truncated', 'PROTOCOL'],
    ['wrong-page-size', 'PROTOCOL'],
    ['html', 'HTTP'],
    ['5xx', 'HTTP'],
    ['hang', 'TIMEOUT'],
  ];
  for (const [mode, code] of cases) {
    test(`a pull answered with ${mode} fails with ${code}, leaves the database untouched, and a later pull succeeds`, async () => {
      const { client, faults, url } = await setup(`bad-${mode}`);
      await client.run("INSERT INTO t(id, v) VALUES (100, 'local')");
      await rawPipeline(url, batch("INSERT INTO t(id, v) VALUES (200, 'remote')"));
      const before = await client.query('SELECT id, v FROM t ORDER BY id');
      faults.mode = mode;
      const error = await client.pull().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SyncError);
      expect((error as SyncError).code).toBe(code);
      expect((error as Error).message.length).toBeGreaterThan(10);
      expect(await client.query('SELECT id, v FROM t ORDER BY id')).toEqual(before);
      expect(await client.get('PRAGMA integrity_check')).toEqual({ integrity_check: 'ok' });
      faults.mode = 'pass';
      await client.sync();
      expect((await client.query('SELECT v FROM t ORDER BY v')).map((r) => r.v)).toEqual(['local', 'remote']);
      await client.close();
    });
  }

  test('a pipeline answer that is not JSON fails with PROTOCOL and the change stays pending', async () => {
    const { client, faults, url } = await setup('bad-json');
    await client.run("INSERT INTO t(v) VALUES ('pending')");
    faults.mode = 'not-json';
    await expect(client.push()).rejects.toMatchObject({ code: 'PROTOCOL' });
    faults.mode = 'pass';
    await client.sync();
    expect(await serverRows(url, 'SELECT v FROM t')).toEqual([['pending']]);
    await client.close();
  });

  test('a change the server refuses stays local, names its table, and later changes still push', async () => {
    const { client, url } = await setup('refused');
    await rawPipeline(url, batch('CREATE TABLE uniq(k TEXT PRIMARY KEY, owner TEXT)', "CREATE UNIQUE INDEX uniq_owner ON uniq(owner)", "INSERT INTO uniq VALUES ('server', 'alice')"));
    await client.pull();
    await client.run("INSERT INTO uniq VALUES ('mine', 'alice')").catch(() => undefined);
    // The local copy enforces the index too, so make the conflict arrive from the server side:
    await client.run("INSERT INTO uniq VALUES ('mine', 'bob')");
    await rawPipeline(url, batch("INSERT INTO uniq VALUES ('theirs', 'bob')"));
    await client.run("INSERT INTO t(v) VALUES ('later change')");
    const error = await client.push().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SyncError);
    expect((error as SyncError).code).toBe('REJECTED');
    expect((error as SyncError).table).toBe('uniq');
    expect(await serverRows(url, 'SELECT v FROM t')).toEqual([['later change']]);
    const pending = await client.pendingChanges();
    const refused = pending.find((p) => p.rejected !== null);
    expect(refused?.mutations[0]).toMatchObject({ table: 'uniq', op: 'insert', after: { k: 'mine', owner: 'bob' } });
    await client.dropPendingChange(refused!.changeId);
    await client.sync();
    expect((await client.syncStatus())?.rejectedChanges).toEqual([]);
    expect(await client.query('SELECT k FROM uniq ORDER BY k')).toEqual([{ k: 'server' }, { k: 'theirs' }]);
    await client.close();
  });
});

test('a dropped refused change leaves the local database at the next pull, even with nothing new on the server', async () => {
  // Found by the differential fuzzer (seed 5025): a pull had already replayed the refused
  // change; once dropped, its rows stayed in the replica, with nothing pending, because the
  // next pulls found no new revision and so never rebased.
  const url = `${base}/db/dropped-refused`;
  await rawPipeline(url, batch('CREATE TABLE uniq(k TEXT PRIMARY KEY, owner TEXT UNIQUE)', 'CREATE TABLE marks(tx INTEGER PRIMARY KEY)'));
  const client = await open(join(dir, `c${++n}.db`), { sync: { url } });
  await client.exec("BEGIN; INSERT INTO uniq VALUES ('mine', 'bob'); INSERT INTO marks VALUES (13); COMMIT");
  await rawPipeline(url, batch("INSERT INTO uniq VALUES ('theirs', 'bob')"));
  expect(((await client.push().catch((e: unknown) => e)) as SyncError).code).toBe('REJECTED');
  await client.pull(); // replays the refused change: it stays local until dropped
  const refused = (await client.pendingChanges()).find((p) => p.rejected !== null);
  await client.dropPendingChange(refused!.changeId);
  await client.sync();
  expect(await client.pendingChanges()).toEqual([]);
  expect(await client.query('SELECT k FROM uniq ORDER BY k')).toEqual([{ k: 'theirs' }]);
  expect(await client.query('SELECT tx FROM marks')).toEqual([]);
  expect(await client.get('PRAGMA integrity_check')).toEqual({ integrity_check: 'ok' });
  await client.close();
});

test('a database that shrank on the server is truncated locally', async () => {
  const url = `${base}/db/shrink`;
  await rawPipeline(url, batch('CREATE TABLE big(v BLOB)', 'INSERT INTO big SELECT randomblob(3000) FROM (WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < 200) SELECT i FROM s)', 'CREATE TABLE small(v)'));
  const client = await open(join(dir, `c${++n}.db`), { sync: { url } });
  const before = (await client.get<{ page_count: number }>('PRAGMA page_count'))!.page_count;
  expect(before).toBeGreaterThan(150);
  await rawPipeline(url, batch('DROP TABLE big'));
  await rawPipeline(url, batch('VACUUM'));
  expect(await client.pull()).toBe(true);
  const after = (await client.get<{ page_count: number }>('PRAGMA page_count'))!.page_count;
  expect(after).toBeLessThan(10);
  expect(await client.query("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'turso%' ORDER BY name")).toEqual([{ name: 'small' }]);
  expect(await client.get('PRAGMA integrity_check')).toEqual({ integrity_check: 'ok' });
  await client.close();
});
