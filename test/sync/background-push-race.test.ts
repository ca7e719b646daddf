/**
 * Background push replays racing the tab, generated (seeded; `OUTPOST_SEED` replays a run): an
 * offline backlog is queued as the service worker would queue it, then, with the network back,
 * the tab's own pushes and one or two replays of the queue (the `outpost-push` sync event and a
 * tab start, or two service-worker instances over one store) run AT THE SAME TIME, each request
 * held back a random number of turns so they interleave differently. Every batch gates itself on
 * the server's acknowledgement, so each change must reach the server exactly once (counted by a
 * trigger on the server), and afterwards the tab has nothing pending.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { open } from '../../src/node/index.js';
import { isReplayablePush } from '../../src/protocol/turso-tables.js';
import type { OutpostServer } from '../../src/server/server.js';
import { PushQueue } from '../../src/sw/queue.js';
import type { Database } from '../../src/types.js';
import { int, rng, testSeed } from '../support/generate.js';
import { MemoryStore } from '../support/push-store.js';
import { batch, rawPipeline, startServer, tempDir } from '../support/server.js';

const CASES = 10;
let server: OutpostServer;
let base: string;
const dir = tempDir('outpost-background-push-race-');

beforeAll(async () => {
  ({ server, url: base } = await startServer({ auth: false }));
});
afterAll(() => server.close());

async function serverValues(url: string): Promise<string[]> {
  const res = await rawPipeline(url, batch('SELECT v FROM audit ORDER BY v'));
  return res.json.results[0].response.result.step_results[0].rows.map((r: { value: string }[]) => r[0]!.value);
}

async function runCase(seed: number): Promise<void> {
  const random = rng(seed);
  const db = `race${seed}`;
  const url = `${base}/db/${db}`;
  await rawPipeline(url, batch('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)', 'CREATE TABLE IF NOT EXISTS audit(id INTEGER PRIMARY KEY, row_id INTEGER, v TEXT)'));
  await server.execTrusted(db, 'CREATE TEMP TRIGGER IF NOT EXISTS t_audit AFTER INSERT ON main.t BEGIN INSERT INTO audit(row_id, v) VALUES (new.id, new.v); END');

  /** Holds a request back a random number of event-loop turns, so the racers interleave by seed. */
  const jittered = (async (input: RequestInfo | URL, init?: RequestInit) => {
    for (let turns = int(random, 0, 6); turns > 0; turns--) await new Promise((resolve) => setTimeout(resolve, 0));
    return fetch(input, init);
  }) as typeof fetch;
  const store = new MemoryStore();
  const token = async (): Promise<null> => null;
  const queue = new PushQueue(store, { token, fetch: jittered });
  let offline = false;
  const swFetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    if (!offline) return jittered(input, init);
    const body = init?.body instanceof Uint8Array ? new TextDecoder().decode(init.body) : '';
    if (String(input).endsWith('/v2/pipeline') && isReplayablePush(JSON.parse(body || 'null'))) {
      await queue.keep(new Request(String(input), { method: 'POST', body }));
    }
    throw new TypeError('Failed to fetch');
  }) as typeof fetch;

  const pushBatchSize = int(random, 1, 3);
  const client: Database = await open(join(dir, `${db}.db`), { sync: { url, fetch: swFetch, retries: 0, backgroundPush: true, pushBatchSize } });
  try {
    await client.pull();
    const written: string[] = [];
    offline = true;
    for (let commit = int(random, 1, 6); commit > 0; commit--) {
      const values = Array.from({ length: int(random, 1, 3) }, (_, i) => `s${seed}-${written.length + i}`);
      written.push(...values);
      await client.transaction(async (tx) => {
        for (const v of values) await tx.run('INSERT INTO t(v) VALUES (?)', [v]);
      });
      await expect(client.push()).rejects.toMatchObject({ code: 'NETWORK' });
    }
    offline = false;
    // One commit made online while the racers run, so the tab has a batch the queue lacks.
    const online = `s${seed}-online`;
    const racers: Promise<unknown>[] = [queue.replay()];
    if (random() < 0.5) racers.push(new PushQueue(store, { token, fetch: jittered }).replay());
    for (let pushes = int(random, 1, 2); pushes > 0; pushes--) racers.push(client.push());
    if (random() < 0.5) racers.push(client.run('INSERT INTO t(v) VALUES (?)', [online]).then(() => written.push(online)));
    const settled = await Promise.allSettled(racers);
    const failures = settled.flatMap((s) => (s.status === 'rejected' ? [String(s.reason)] : []));
    expect(failures, `seed ${seed}: a racer failed`).toEqual([]);
    await client.push();
    await client.pull();
    expect(await serverValues(url), `seed ${seed}: every change on the server exactly once`).toEqual([...written].sort());
    expect((await client.syncStatus())?.pendingChanges, `seed ${seed}: pending after sync`).toBe(0);
  } finally {
    await client.close();
  }
}

test('replays racing the tab push apply every change exactly once', async () => {
  const seed = testSeed();
  console.log(`background-push-race seed ${seed} (${CASES} cases, OUTPOST_SEED replays it)`);
  for (let i = 0; i < CASES; i++) await runCase(seed + i);
}, 300_000);
