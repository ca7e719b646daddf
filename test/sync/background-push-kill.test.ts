/**
 * Background push storage under kills, generated (seeded; `OUTPOST_SEED` replays a run): random
 * offline backlogs (commits of 1–3 rows, batch sizes 1–3), with the service worker killed at a
 * random write while it stores a batch or while it replays, the network back now and then, and
 * the tab reopened (a new session offers everything again). After each kill during a store, the
 * queue's live batches are those before the store or those after it, never fewer. At the end a
 * replay and one tab push bring every change to the server exactly once (counted by a trigger
 * on the server), and when no store was killed the replay alone brings them all.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { open } from '../../src/node/index.js';
import { isReplayablePush } from '../../src/protocol/turso-tables.js';
import type { OutpostServer } from '../../src/server/server.js';
import { PushQueue, type StoredPush, liveBatches } from '../../src/sw/queue.js';
import type { Database } from '../../src/types.js';
import { rng, testSeed } from '../support/generate.js';
import { Killed, MemoryStore } from '../support/push-store.js';
import { batch, rawPipeline, startServer, tempDir } from '../support/server.js';

const CASES = 12;
let server: OutpostServer;
let base: string;
const dir = tempDir('outpost-background-push-kill-');

beforeAll(async () => {
  ({ server, url: base } = await startServer({ auth: false }));
});
afterAll(() => server.close());

/** The live batches of a store, by what they carry (store ids differ between copies). */
function live(entries: readonly StoredPush[]): string[] {
  return liveBatches(entries).map((e) => JSON.stringify(e.metadata));
}

async function serverValues(url: string): Promise<string[]> {
  const res = await rawPipeline(url, batch('SELECT v FROM audit ORDER BY v'));
  return res.json.results[0].response.result.step_results[0].rows.map((r: { value: string }[]) => r[0]!.value);
}

async function runCase(seed: number): Promise<{ killedStores: number }> {
  const random = rng(seed);
  const pick = (n: number): number => Math.floor(random() * n);
  const db = `kill${seed}`;
  const url = `${base}/db/${db}`;
  await rawPipeline(url, batch('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)', 'CREATE TABLE IF NOT EXISTS audit(id INTEGER PRIMARY KEY, row_id INTEGER, v TEXT)'));
  await server.execTrusted(db, 'CREATE TEMP TRIGGER IF NOT EXISTS t_audit AFTER INSERT ON main.t BEGIN INSERT INTO audit(row_id, v) VALUES (new.id, new.v); END');

  const store = new MemoryStore();
  const token = async (): Promise<null> => null;
  let queue = new PushQueue(store, { token });
  let offline = false;
  let killedStores = 0;
  /** The service worker: while offline, stores each push batch it is handed, sometimes killed at a random write. */
  const swFetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    if (!offline) return fetch(input, init);
    const body = init?.body instanceof Uint8Array ? new TextDecoder().decode(init.body) : '';
    if (String(input).endsWith('/v2/pipeline') && isReplayablePush(JSON.parse(body || 'null'))) {
      const request = (): Request => new Request(String(input), { method: 'POST', body });
      const kill = random() < 0.3;
      if (kill) {
        const before = live(store.entries);
        const copy = new MemoryStore();
        copy.entries = [...store.entries];
        await new PushQueue(copy, { token }).keep(request());
        const after = live(copy.entries);
        store.killAfter = pick(3);
        try {
          await queue.keep(request());
        } catch (e) {
          if (!(e instanceof Killed)) throw e;
          killedStores++;
          // The service worker starts again over what was written.
          queue = new PushQueue(store, { token });
        }
        store.killAfter = Infinity;
        expect([before, after], `seed ${seed}: the live batches after a kill during a store`).toContainEqual(live(store.entries));
      } else {
        await queue.keep(request());
      }
    }
    throw new TypeError('Failed to fetch');
  }) as typeof fetch;

  const file = join(dir, `${db}.db`);
  const pushBatchSize = 1 + pick(3);
  const openClient = (): Promise<Database> => open(file, { sync: { url, fetch: swFetch, retries: 0, backgroundPush: true, pushBatchSize } });
  let client = await openClient();
  await client.pull();
  const written: string[] = [];
  const steps = 4 + pick(6);
  for (let step = 0; step < steps; step++) {
    const what = random();
    if (what < 0.7) {
      offline = true;
      const values = Array.from({ length: 1 + pick(3) }, () => `s${seed}-${written.length}-${pick(1e6)}`);
      written.push(...new Set(values));
      await client.transaction(async (tx) => {
        for (const v of new Set(values)) await tx.run('INSERT INTO t(v) VALUES (?)', [v]);
      });
      await expect(client.push()).rejects.toMatchObject({ code: 'NETWORK' });
    } else if (what < 0.85) {
      // A replay with the network back, killed at a random write now and then.
      offline = false;
      store.killAfter = random() < 0.5 ? pick(3) : Infinity;
      await queue.replay().catch((e: unknown) => {
        if (!(e instanceof Killed)) throw e;
        queue = new PushQueue(store, { token });
      });
      store.killAfter = Infinity;
    } else {
      await client.close();
      client = await openClient();
    }
  }
  offline = false;
  queue = new PushQueue(store, { token });
  await queue.replay();
  if (killedStores === 0) expect(await client.push(), `seed ${seed}: the replay alone pushed everything`).toBe(0);
  else await client.push();
  expect(await serverValues(url), `seed ${seed}: every change on the server exactly once`).toEqual([...written].sort());
  await client.close();
  return { killedStores };
}

test('kills while the service worker stores or replays batches lose no stored batch, and every change reaches the server exactly once', async () => {
  const seed = testSeed();
  console.log(`background-push-kill seed ${seed} (${CASES} cases)`);
  let killed = 0;
  for (let i = 0; i < CASES; i++) killed += (await runCase(seed + i)).killedStores;
  console.log(`background-push-kill: ${CASES} cases, ${killed} stores killed`);
}, 300_000);
