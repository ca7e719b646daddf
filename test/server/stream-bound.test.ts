/**
 * No client keeps a database from the others for longer than a bound, whatever it does with
 * Hrana streams (batons): a read token's stream yields to any request, a write token's stream
 * is rolled back after `streamLifetimeMs` however often it pings, and a request that waited
 * behind a stream runs before the next stream may open.
 */
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { open } from '../../src/node/index.js';
import { mintToken } from '../../src/server/auth.js';
import { HostedDatabase } from '../../src/server/hosted-database.js';
import { HttpError } from '../../src/server/http.js';
import type { OutpostServer } from '../../src/server/server.js';
import type { Database } from '../../src/types.js';
import { scratchDataDir } from '../support/networks.js';
import { SECRET, rawPipeline, startServer, tempDir } from '../support/server.js';

const exec = (sql: string): unknown => ({ type: 'execute', stmt: { sql, want_rows: true } });

/**
 * Opens a stream with `first`, then presents its baton with `SELECT 1` every 100 ms until the
 * server refuses it or `stop` is called; resolves with the refusal's status and code.
 */
async function pinger(url: string, token: string, first: string[]): Promise<{ ended: Promise<{ status: number; code: unknown }>; stop: () => void }> {
  const opened = await rawPipeline(url, { baton: null, requests: first.map(exec) }, token);
  expect(opened.status).toBe(200);
  let baton = opened.json.baton as string;
  expect(typeof baton).toBe('string');
  let stopped = false;
  const ended = (async () => {
    while (!stopped) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const ping = await rawPipeline(url, { baton, requests: [exec('SELECT 1')] }, token);
      if (ping.status !== 200) return { status: ping.status, code: ping.json.code };
      baton = ping.json.baton as string;
    }
    await rawPipeline(url, { baton, requests: [exec('ROLLBACK'), { type: 'close' }] }, token);
    return { status: 0, code: 'stopped' };
  })();
  return { ended, stop: () => void (stopped = true) };
}

describe('over HTTP, a sync push beside a client that pings its baton', () => {
  // The idle limit is short, so a push that had to wait for a pinged stream would be refused
  // (503 after the wait, with no retry). The read-token server's streams live ten minutes, so
  // there the push can only go through because the read stream yields (else the test times
  // out); the write-token server's live 2 s.
  let readServer: OutpostServer;
  let writeServer: OutpostServer;
  const base = { read: '', write: '' };
  let read: string;
  let write: string;
  const dir = tempDir('outpost-stream-bound-');
  const opened: Database[] = [];

  beforeAll(async () => {
    ({ server: readServer, url: base.read } = await startServer({ streamIdleMs: 1000, streamLifetimeMs: 600_000 }));
    ({ server: writeServer, url: base.write } = await startServer({ streamIdleMs: 1000, streamLifetimeMs: 2000 }));
    read = await mintToken(SECRET, { db: '*', role: 'read' });
    write = await mintToken(SECRET, { db: '*', role: 'write' });
  });
  afterEach(async () => {
    for (const db of opened.splice(0)) await db.close();
  });
  afterAll(async () => {
    await readServer.close();
    await writeServer.close();
  });

  async function replica(url: string, name: string): Promise<Database> {
    const db = await open(join(dir, `${name}.db`), { engine: 'inline', sync: { url: `${url}/db/${name}`, authToken: write, retries: 0 } });
    opened.push(db);
    await db.exec('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)');
    await db.push();
    return db;
  }

  test("a read token's pinged stream (deferred BEGIN) yields to the push, and its next request says it ended", async () => {
    const db = await replica(base.read, 'read-hold');
    const hold = await pinger(`${base.read}/db/read-hold`, read, ['BEGIN', 'SELECT count(*) FROM t']);
    await db.exec("INSERT INTO t(v) VALUES ('pushed')");
    const pushed = await db.push().finally(hold.stop);
    expect(pushed).toBeGreaterThan(0);
    expect(await hold.ended).toEqual({ status: 400, code: 'STREAM_ENDED' });
    const rows = await rawPipeline(`${base.read}/db/read-hold`, { baton: null, requests: [exec('SELECT v FROM t')] }, read);
    expect(rows.json.results[0].response.result.rows).toEqual([[{ type: 'text', value: 'pushed' }]]);
  });

  test("a write token's pinged stream is rolled back at its lifetime, and the push that waited for it goes through", async () => {
    const db = await replica(base.write, 'write-hold');
    const hold = await pinger(`${base.write}/db/write-hold`, write, ['BEGIN', "INSERT INTO t(v) VALUES ('held')"]);
    await db.exec("INSERT INTO t(v) VALUES ('pushed')");
    const pushed = await db.push().finally(hold.stop);
    expect(pushed).toBeGreaterThan(0);
    expect(await hold.ended).toEqual({ status: 400, code: 'STREAM_ENDED' });
    const rows = await rawPipeline(`${base.write}/db/write-hold`, { baton: null, requests: [exec('SELECT v FROM t')] }, read);
    expect(rows.json.results[0].response.result.rows).toEqual([[{ type: 'text', value: 'pushed' }]]);
  });
});

describe('on one hosted database', () => {
  const dbs: HostedDatabase[] = [];
  afterEach(async () => {
    for (const db of dbs.splice(0)) await db.close();
  });

  async function hosted(lifetimeMs: number): Promise<HostedDatabase> {
    const db = await HostedDatabase.open(scratchDataDir('outpost-stream-bound-'), 'bound', {
      durability: 'normal',
      cacheKiB: 1024,
      limits: { statementTimeoutMs: 2000, valueBytesMax: 1024 * 1024, shareOfServer: 1 },
      streams: { idleMs: 60_000, lifetimeMs, slots: { open: 0, max: 4 } },
    });
    dbs.push(db);
    db.execTrusted('CREATE TABLE t(v TEXT)');
    return db;
  }

  function values(db: HostedDatabase): unknown {
    const r = db.pipeline({ baton: null, requests: [exec('SELECT v FROM t ORDER BY v')] }).results[0];
    if (r?.type !== 'ok' || r.response.type !== 'execute') throw new Error('select failed');
    return r.response.result.rows.map((row) => row[0]);
  }

  test('a request that waited runs before a stream queued ahead of it may open: that one is refused with BUSY', async () => {
    const db = await hosted(300);
    const first = db.pipeline({ baton: null, requests: [exec('BEGIN'), exec("INSERT INTO t VALUES ('first')")] });
    expect(first.baton).not.toBeNull();
    const reopenBody = { baton: null, requests: [exec('BEGIN'), exec("INSERT INTO t VALUES ('reopened')")] };
    const reopen = db.inTurn(reopenBody, () => db.pipeline(reopenBody));
    const writeBody = { baton: null, requests: [exec("INSERT INTO t VALUES ('waited')")] };
    const waited = db.inTurn(writeBody, () => db.pipeline(writeBody));
    const [reopened, wrote] = await Promise.allSettled([reopen, waited]);
    expect(reopened.status).toBe('rejected');
    const refusal = (reopened as PromiseRejectedResult).reason as HttpError;
    expect(refusal).toBeInstanceOf(HttpError);
    expect([refusal.status, refusal.code]).toEqual([503, 'BUSY']);
    expect(wrote.status).toBe('fulfilled');
    expect(db.streaming).toBe(false);
    expect(values(db)).toEqual([{ type: 'text', value: 'waited' }]);
  });

  test('a BEGIN TRANSACTION READONLY stream of a write token yields to a write, which then writes', async () => {
    const db = await hosted(60_000);
    const readonly = db.pipeline({ baton: null, requests: [exec('BEGIN TRANSACTION READONLY'), exec('SELECT count(*) FROM t')] });
    expect(readonly.baton).not.toBeNull();
    const body = { baton: null, requests: [exec("INSERT INTO t VALUES ('written')")] };
    const answer = await db.inTurn(body, () => db.pipeline(body));
    expect(answer.results[0]?.type).toBe('ok');
    expect(values(db)).toEqual([{ type: 'text', value: 'written' }]);
    const late = { baton: readonly.baton, requests: [exec('SELECT 1')] };
    await expect(db.inTurn(late, () => db.pipeline(late))).rejects.toMatchObject({ status: 400, code: 'STREAM_ENDED' });
  });
});
