/**
 * Background push (README, "Background push"): with `sync.backgroundPush`, a push that cannot
 * reach the server still sends its batches, for a service worker to queue and send later.
 * Here a fetch wrapper plays the service worker: while "offline" it keeps the push batches it
 * is handed and fails; the test then sends the stored requests itself, as the service worker's
 * replay would, or replays them through `outpost/sw`'s `PushQueue` over an in-memory store. Every batch gates itself on the server's acknowledgement, so however often and
 * in whatever order the tab and the replay send it, the server applies each change once
 * (counted by a trigger on the server), and the client drops what the server has.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, onTestFinished, test } from 'vitest';
import { open } from '../../src/node/index.js';
import { SyncError } from '../../src/errors.js';
import { type ReplayablePush, isReplayablePush, replayablePush } from '../../src/protocol/turso-tables.js';
import type { OutpostServer } from '../../src/server/server.js';
import { PushQueue, liveBatches } from '../../src/sw/queue.js';
import { MemoryStore } from '../support/push-store.js';
import type { Database } from '../../src/types.js';
import { batch, rawPipeline, startServer, tempDir } from '../support/server.js';

let server: OutpostServer;
let base: string;
const dir = tempDir('outpost-background-push-');
let n = 0;

beforeAll(async () => {
  ({ server, url: base } = await startServer({ auth: false }));
});
afterAll(() => server.close());

/** A fetch that, while offline, stores the push batches it is handed (as a service worker would) and fails. */
function serviceWorkerFetch(): { fetch: typeof fetch; offline: boolean; queued: string[] } {
  const state = { offline: false, queued: [] as string[], fetch: undefined as unknown as typeof fetch };
  state.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    if (!state.offline) return fetch(input, init);
    const body = init?.body instanceof Uint8Array ? new TextDecoder().decode(init.body) : '';
    if (String(input).endsWith('/v2/pipeline') && isReplayablePush(JSON.parse(body || 'null'))) state.queued.push(body);
    throw new TypeError('Failed to fetch');
  }) as typeof fetch;
  return state;
}

async function setup(db: string, pushBatchSize?: number, on = { server, base }): Promise<{ client: Database; sw: ReturnType<typeof serviceWorkerFetch>; url: string }> {
  const { server, base } = on;
  const url = `${base}/db/${db}`;
  await rawPipeline(url, batch('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)', 'CREATE TABLE IF NOT EXISTS audit(id INTEGER PRIMARY KEY, row_id INTEGER, v TEXT)'));
  // Counts the server's own applications of each row (tenants may not create TEMP objects).
  await server.execTrusted(db, 'CREATE TEMP TRIGGER IF NOT EXISTS t_audit AFTER INSERT ON main.t BEGIN INSERT INTO audit(row_id, v) VALUES (new.id, new.v); END');
  const sw = serviceWorkerFetch();
  const client = await open(join(dir, `c${++n}.db`), { sync: { url, fetch: sw.fetch, retries: 0, backgroundPush: true, ...(pushBatchSize ? { pushBatchSize } : {}) } });
  await client.pull();
  return { client, sw, url };
}

async function serverRows(url: string, sql: string): Promise<unknown[][]> {
  const res = await rawPipeline(url, batch(sql));
  return res.json.results[0].response.result.step_results[0].rows.map((r: { value?: unknown }[]) => r.map((v) => v.value ?? null));
}

/** Sends a stored push batch as the service worker replays it; the step errors of its answer. */
async function replay(url: string, body: string): Promise<string[]> {
  const res = await rawPipeline(url, JSON.parse(body));
  expect(res.status).toBe(200);
  return (res.json.results[0].response.result.step_errors as ({ message: string } | null)[]).flatMap((e) => (e ? [e.message] : []));
}

/** Writes each value in its own transaction offline; the batches the push hands over, one per transaction. */
async function writeOffline(client: Database, sw: ReturnType<typeof serviceWorkerFetch>, ...values: string[]): Promise<string[]> {
  sw.offline = true;
  for (const v of values) await client.run('INSERT INTO t(v) VALUES (?)', [v]);
  await expect(client.push()).rejects.toMatchObject({ code: 'NETWORK' });
  sw.offline = false;
  expect(sw.queued).toHaveLength(values.length);
  return sw.queued.splice(0);
}

test('offline, a push hands over a self-gated batch of every pending transaction', async () => {
  const { client, sw } = await setup('handed');
  const bodies = await writeOffline(client, sw, 'a', 'b');
  for (const body of bodies) expect(body).toContain('outpost: batch already applied');
  expect((await client.syncStatus())?.pendingChanges).toBe(2);
  await client.close();
});

test('a stored batch sent twice is applied once', async () => {
  const { client, sw, url } = await setup('twice');
  const body = (await writeOffline(client, sw, 'once'))[0]!;
  expect(await replay(url, body)).toEqual([]);
  const second = await replay(url, body);
  expect(second.join()).toContain('outpost: batch already applied up to change');
  expect(await serverRows(url, 'SELECT v FROM audit ORDER BY id')).toEqual([['once']]);
  await client.close();
});

test('after the replay, the client pushes nothing again and its pull drops what the server has', async () => {
  const { client, sw, url } = await setup('after-replay');
  for (const body of await writeOffline(client, sw, 'x', 'y')) await replay(url, body);
  expect(await client.push()).toBe(0);
  await client.pull();
  expect((await client.syncStatus())?.pendingChanges).toBe(0);
  expect(await serverRows(url, 'SELECT v FROM audit ORDER BY id')).toEqual([['x'], ['y']]);
  await client.close();
});

test('a batch the tab already pushed is skipped when the service worker replays it later', async () => {
  const { client, sw, url } = await setup('tab-first');
  const body = (await writeOffline(client, sw, 'tab'))[0]!;
  await client.sync();
  expect((await replay(url, body)).join()).toContain('outpost: batch already applied');
  expect(await serverRows(url, 'SELECT v FROM audit ORDER BY id')).toEqual([['tab']]);
  expect((await client.syncStatus())?.pendingChanges).toBe(0);
  await client.close();
});

test('a replay that lands after the client read the acknowledgement makes its own batch stale, not a duplicate', async () => {
  const { client, sw, url } = await setup('race');
  const bodies = await writeOffline(client, sw, 'r1', 'r2');
  await client.run("INSERT INTO t(v) VALUES ('r3')");
  // The replay lands between the client's read of the acknowledgement and its batch.
  let replayed = false;
  sw.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const sent = init?.body instanceof Uint8Array ? new TextDecoder().decode(init.body) : '';
    if (!replayed && sent.includes('BEGIN IMMEDIATE')) {
      replayed = true;
      for (const body of bodies) await replay(url, body);
    }
    return fetch(input, init);
  }) as typeof fetch;
  await client.close();
  const reopened = await open(join(dir, `c${n}.db`), { sync: { url, fetch: sw.fetch, retries: 0, backgroundPush: true } });
  expect(await reopened.push()).toBe(1);
  expect(replayed).toBe(true);
  await reopened.pull();
  expect(await serverRows(url, 'SELECT v FROM audit ORDER BY id')).toEqual([['r1'], ['r2'], ['r3']]);
  expect((await reopened.syncStatus())?.pendingChanges).toBe(0);
  await reopened.close();
});

test('without backgroundPush, nothing is sent while the server cannot be reached', async () => {
  const url = `${base}/db/off`;
  await rawPipeline(url, batch('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)'));
  const sw = serviceWorkerFetch();
  const client = await open(join(dir, `c${++n}.db`), { sync: { url, fetch: sw.fetch, retries: 0 } });
  await client.pull();
  sw.offline = true;
  await client.run("INSERT INTO t(v) VALUES ('kept')");
  await expect(client.push()).rejects.toMatchObject({ code: 'NETWORK' });
  expect(sw.queued).toEqual([]);
  await client.close();
});

/** Writes `count` rows offline with a batch size of 2 and keeps what the push hands over in a `PushQueue`. */
async function offlineBatches(db: string, count: number): Promise<{ client: Database; url: string; store: MemoryStore; queue: PushQueue; bodies: string[] }> {
  const { client, sw, url } = await setup(db, 2);
  const store = new MemoryStore();
  const queue = new PushQueue(store, { token: async () => null });
  sw.offline = true;
  for (let i = 1; i <= count; i++) await client.run('INSERT INTO t(v) VALUES (?)', [`v${i}`]);
  await expect(client.push()).rejects.toMatchObject({ code: 'NETWORK' });
  sw.offline = false;
  const bodies = sw.queued.splice(0);
  for (const body of bodies) expect(await queue.keep(new Request(`${url}/v2/pipeline`, { method: 'POST', body }))).toBe(true);
  return { client, url, store, queue, bodies };
}

test('offline, a push hands over every pending change, one gated batch per transaction whatever pushBatchSize says, and a replay applies them all once, in order', async () => {
  const { client, url, store, queue } = await offlineBatches('all-batches', 5);
  expect(store.entries).toHaveLength(5);
  await queue.replay();
  expect(store.entries).toEqual([]);
  expect(await serverRows(url, 'SELECT v FROM audit ORDER BY id')).toEqual([['v1'], ['v2'], ['v3'], ['v4'], ['v5']]);
  expect(await client.push()).toBe(0);
  await client.pull();
  expect((await client.syncStatus())?.pendingChanges).toBe(0);
  await client.close();
});

test('batches replayed twice apply once', async () => {
  const { client, url, bodies } = await offlineBatches('all-twice', 5);
  for (const body of [...bodies, ...bodies]) await replay(url, body);
  expect(await serverRows(url, 'SELECT v FROM audit ORDER BY id')).toEqual([['v1'], ['v2'], ['v3'], ['v4'], ['v5']]);
  await client.close();
});

test('a later batch whose batch before is lost applies nothing, and the tab pushes the rest once', async () => {
  const { client, url, bodies } = await offlineBatches('lost-middle', 5);
  expect(bodies).toHaveLength(5);
  expect(await replay(url, bodies[0]!)).toEqual([]);
  // The second batch is lost: the third must not move the acknowledgement past it.
  expect((await replay(url, bodies[2]!)).join()).toContain('outpost: batch waits for the batch before it');
  expect(await serverRows(url, 'SELECT v FROM audit ORDER BY id')).toEqual([['v1']]);
  expect(await client.push()).toBe(4);
  expect(await serverRows(url, 'SELECT v FROM audit ORDER BY id')).toEqual([['v1'], ['v2'], ['v3'], ['v4'], ['v5']]);
  await client.close();
});

test("a new offer replaces the queue's batches of its client and database, and keeps the others", async () => {
  const first = await offlineBatches('offer-a', 3);
  const other = await offlineBatches('offer-b', 1);
  // The same store: the other database's batch, then a second offer of the first client with one more change.
  const store = new MemoryStore();
  const queue = new PushQueue(store, { token: async () => null });
  for (const body of first.bodies) await queue.keep(new Request(`${first.url}/v2/pipeline`, { method: 'POST', body }));
  for (const body of other.bodies) await queue.keep(new Request(`${other.url}/v2/pipeline`, { method: 'POST', body }));
  const again = await (async () => {
    const sw = serviceWorkerFetch();
    await first.client.close();
    const reopened = await open(join(dir, `c${n - 1}.db`), { sync: { url: first.url, fetch: sw.fetch, retries: 0, backgroundPush: true, pushBatchSize: 2 } });
    sw.offline = true;
    await reopened.run("INSERT INTO t(v) VALUES ('v4')");
    await expect(reopened.push()).rejects.toMatchObject({ code: 'NETWORK' });
    return { reopened, bodies: sw.queued.splice(0) };
  })();
  for (const body of again.bodies) await queue.keep(new Request(`${first.url}/v2/pipeline`, { method: 'POST', body }));
  expect(liveBatches(store.entries).map((e) => e.request.url)).toEqual([`${other.url}/v2/pipeline`, ...Array<string>(4).fill(`${first.url}/v2/pipeline`)]);
  await queue.replay();
  expect(await serverRows(first.url, 'SELECT v FROM audit ORDER BY id')).toEqual([['v1'], ['v2'], ['v3'], ['v4']]);
  expect(await serverRows(other.url, 'SELECT v FROM audit ORDER BY id')).toEqual([['v1']]);
  await again.reopened.close();
  await other.client.close();
});

test('a replay that cannot reach the server keeps the batch and every one after it, in order', async () => {
  const { client, url, store, queue } = await offlineBatches('replay-offline', 3);
  const urls = store.entries.map((e) => e.request.url);
  const failing = new PushQueue(store, { token: async () => null, fetch: (async () => { throw new TypeError('Failed to fetch'); }) as typeof fetch });
  await expect(failing.replay()).rejects.toThrow('Failed to fetch');
  expect(store.entries.map((e) => e.request.url)).toEqual(urls);
  await queue.replay();
  expect(await serverRows(url, 'SELECT v FROM audit ORDER BY id')).toEqual([['v1'], ['v2'], ['v3']]);
  await client.close();
});

test('each offline commit offers only its own batch, gated on the batch before, and a replay applies them all once', async () => {
  const { client, sw, url } = await setup('incremental');
  const store = new MemoryStore();
  const queue = new PushQueue(store, { token: async () => null });
  sw.offline = true;
  const offers: string[][] = [];
  for (const v of ['i1', 'i2', 'i3']) {
    await client.run('INSERT INTO t(v) VALUES (?)', [v]);
    await expect(client.push()).rejects.toMatchObject({ code: 'NETWORK' });
    offers.push(sw.queued.splice(0));
  }
  sw.offline = false;
  // The second offer is a full one (the pending changes doubled); the third, only its own.
  expect(offers.map((o) => o.length)).toEqual([1, 2, 1]);
  expect(replayablePush(JSON.parse(offers[2]![0]!))).toMatchObject({ firstId: 3, lastId: 3, afterId: 2 });
  const writes: number[] = [];
  for (const offer of offers) {
    const from = store.writes;
    for (const body of offer) await queue.keep(new Request(`${url}/v2/pipeline`, { method: 'POST', body }));
    writes.push(store.writes - from);
  }
  // One add per batch; the full offer's first batch also removes the stored batch it replaces.
  expect(writes).toEqual([1, 3, 1]);
  await queue.replay();
  expect(await serverRows(url, 'SELECT v FROM audit ORDER BY id')).toEqual([['i1'], ['i2'], ['i3']]);
  expect(await client.push()).toBe(0);
  await client.close();
});

test('once the pending changes have doubled since the last full offer, a commit offers them all again', async () => {
  const { client, sw } = await setup('doubling');
  sw.offline = true;
  const offers: (ReplayablePush | null)[][] = [];
  for (let i = 1; i <= 4; i++) {
    await client.run('INSERT INTO t(v) VALUES (?)', [`d${i}`]);
    await expect(client.push()).rejects.toMatchObject({ code: 'NETWORK' });
    offers.push(sw.queued.splice(0).map((body) => replayablePush(JSON.parse(body))));
  }
  // A full offer at 1 pending change, again at 2 (doubled), incremental at 3, full again at 4.
  expect(offers.map((o) => o.map((b) => [b?.firstId, b?.lastId, b?.afterId]))).toEqual([
    [[1, 1, 0]],
    [[1, 1, 0], [2, 2, 1]],
    [[3, 3, 2]],
    [[1, 1, 0], [2, 2, 1], [3, 3, 2], [4, 4, 3]],
  ]);
  sw.offline = false;
  await client.close();
});

test('a transaction too large for one request ends the offer before it, and the tab pushes it and the rest once', async () => {
  // Its own server, with no fair-share limit: the large push takes seconds of server time,
  // which the default share answers with 429.
  const own = await startServer({ auth: false, shareOfServer: 1 });
  onTestFinished(() => own.server.close());
  const { client, sw, url } = await setup('too-large', undefined, { server: own.server, base: own.url });
  const store = new MemoryStore();
  const queue = new PushQueue(store, { token: async () => null });
  sw.offline = true;
  await client.run("INSERT INTO t(v) VALUES ('before')");
  // 24,000 statements in one transaction: more than one request carries (20,000).
  await client.run("WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 23999) INSERT INTO t(v) SELECT 'big-' || i FROM c");
  await client.run("INSERT INTO t(v) VALUES ('after')");
  await expect(client.push()).rejects.toMatchObject({ code: 'NETWORK' });
  sw.offline = false;
  const bodies = sw.queued.splice(0);
  expect(bodies.map((b) => replayablePush(JSON.parse(b))?.firstId)).toEqual([1]);
  for (const body of bodies) await queue.keep(new Request(`${url}/v2/pipeline`, { method: 'POST', body }));
  // The server runs in this test's process: its 20,000-statement requests hold the event loop for
  // seconds on a busy machine, and a kept-alive socket may then close under the next request
  // (ECONNRESET). The service worker's replay then fails with fetch's TypeError and its entries
  // stay queued for Background Sync's next try; the tab's push meets a NETWORK error an app
  // retries. Both are retried here the same way: every batch is gated on the server's
  // acknowledgement, so a retry never applies anything twice.
  for (let attempt = 1; ; attempt++) {
    const error = await queue.replay().then(() => null, (e: unknown) => e);
    if (error === null) break;
    if (attempt === 3 || !(error instanceof TypeError)) throw error;
  }
  expect(await serverRows(url, 'SELECT v FROM audit ORDER BY id')).toEqual([['before']]);
  for (let attempt = 1; ; attempt++) {
    const error = await client.push().then(() => null, (e: unknown) => e);
    if (error === null) break;
    if (attempt === 3 || !(error instanceof SyncError) || error.code !== 'NETWORK') throw error;
  }
  expect(await serverRows(url, 'SELECT count(*), count(DISTINCT v) FROM audit')).toEqual([['24002', '24002']]);
  await client.close();
});
