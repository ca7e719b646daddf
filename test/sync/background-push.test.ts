/**
 * Background push (README, "Background push"): with `sync.backgroundPush`, a push that cannot
 * reach the server still sends its first batch, for a service worker to queue and send later.
 * Here a fetch wrapper plays the service worker: while "offline" it keeps the push batch it is
 * handed and fails; the test then sends that stored request itself, as the service worker's
 * replay would. Every batch gates itself on the server's acknowledgement, so however often and
 * in whatever order the tab and the replay send it, the server applies each change once
 * (counted by a trigger on the server), and the client drops what the server has.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { open } from '../../src/node/index.js';
import { isReplayablePush } from '../../src/protocol/turso-tables.js';
import type { OutpostServer } from '../../src/server/server.js';
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

async function setup(db: string): Promise<{ client: Database; sw: ReturnType<typeof serviceWorkerFetch>; url: string }> {
  const url = `${base}/db/${db}`;
  await rawPipeline(url, batch('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)', 'CREATE TABLE IF NOT EXISTS audit(id INTEGER PRIMARY KEY, row_id INTEGER, v TEXT)'));
  // Counts the server's own applications of each row (tenants may not create TEMP objects).
  await server.execTrusted(db, 'CREATE TEMP TRIGGER IF NOT EXISTS t_audit AFTER INSERT ON main.t BEGIN INSERT INTO audit(row_id, v) VALUES (new.id, new.v); END');
  const sw = serviceWorkerFetch();
  const client = await open(join(dir, `c${++n}.db`), { sync: { url, fetch: sw.fetch, retries: 0, backgroundPush: true } });
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

async function writeOffline(client: Database, sw: ReturnType<typeof serviceWorkerFetch>, ...values: string[]): Promise<string> {
  sw.offline = true;
  for (const v of values) await client.run('INSERT INTO t(v) VALUES (?)', [v]);
  await expect(client.push()).rejects.toMatchObject({ code: 'NETWORK' });
  sw.offline = false;
  expect(sw.queued).toHaveLength(1);
  return sw.queued.pop()!;
}

test('offline, a push hands over one self-gated batch of every pending change', async () => {
  const { client, sw } = await setup('handed');
  const body = await writeOffline(client, sw, 'a', 'b');
  expect(body).toContain('outpost: batch already applied');
  expect((await client.syncStatus())?.pendingChanges).toBe(2);
  await client.close();
});

test('a stored batch sent twice is applied once', async () => {
  const { client, sw, url } = await setup('twice');
  const body = await writeOffline(client, sw, 'once');
  expect(await replay(url, body)).toEqual([]);
  const second = await replay(url, body);
  expect(second.join()).toContain('outpost: batch already applied up to change');
  expect(await serverRows(url, 'SELECT v FROM audit ORDER BY id')).toEqual([['once']]);
  await client.close();
});

test('after the replay, the client pushes nothing again and its pull drops what the server has', async () => {
  const { client, sw, url } = await setup('after-replay');
  const body = await writeOffline(client, sw, 'x', 'y');
  await replay(url, body);
  expect(await client.push()).toBe(0);
  await client.pull();
  expect((await client.syncStatus())?.pendingChanges).toBe(0);
  expect(await serverRows(url, 'SELECT v FROM audit ORDER BY id')).toEqual([['x'], ['y']]);
  await client.close();
});

test('a batch the tab already pushed is skipped when the service worker replays it later', async () => {
  const { client, sw, url } = await setup('tab-first');
  const body = await writeOffline(client, sw, 'tab');
  await client.sync();
  expect((await replay(url, body)).join()).toContain('outpost: batch already applied');
  expect(await serverRows(url, 'SELECT v FROM audit ORDER BY id')).toEqual([['tab']]);
  expect((await client.syncStatus())?.pendingChanges).toBe(0);
  await client.close();
});

test('a replay that lands after the client read the acknowledgement makes its own batch stale, not a duplicate', async () => {
  const { client, sw, url } = await setup('race');
  const body = await writeOffline(client, sw, 'r1', 'r2');
  await client.run("INSERT INTO t(v) VALUES ('r3')");
  // The replay lands between the client's read of the acknowledgement and its batch.
  let replayed = false;
  sw.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const sent = init?.body instanceof Uint8Array ? new TextDecoder().decode(init.body) : '';
    if (!replayed && sent.includes('BEGIN IMMEDIATE')) {
      replayed = true;
      await replay(url, body);
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
