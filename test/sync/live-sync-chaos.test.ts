/**
 * Live sync under chaos, generated: two live clients write (inserts, and updates of shared
 * keys, some in transactions) while each one's network goes down and comes back at random and
 * the server restarts (same folder and port), all seeded. No sync call is made by the test.
 *
 * What must hold: once everything is back, both clients converge to the server's rows with
 * nothing pending or refused; every insert is on the server exactly once; the status events
 * stay sane (never a negative pending count, nothing refused). Every wait is on an event.
 */
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { open } from '../../src/node/index.js';
import type { OutpostServer } from '../../src/server/server.js';
import type { Database, SyncStatus } from '../../src/types.js';
import { watchUntil as until } from '../support/watch.js';
import { int, pick, rng, testSeed } from '../support/generate.js';
import { freePort, startServer, tempDir } from '../support/server.js';

const dir = tempDir('outpost-live-chaos-');
const opened: Database[] = [];
let server: OutpostServer | null = null;

afterAll(async () => {
  for (const db of opened) if (!db.closed) await db.close();
  await server?.close();
});

/** A client's network: its fetch fails as a dropped connection while `down`. */
interface Net {
  down: boolean;
  fetch: typeof fetch;
}

function net(): Net {
  const state: Net = {
    down: false,
    fetch: (async (input: RequestInfo | URL, init?: RequestInit) => {
      if (state.down) throw new TypeError('fetch failed: connect ENETUNREACH');
      return fetch(input, init);
    }) as typeof fetch,
  };
  return state;
}

/** Resolves once the status says nothing is pending. */
function drained(db: Database): Promise<void> {
  return new Promise((resolve) => {
    const check = (s: SyncStatus | null): void => {
      if (s?.pendingChanges !== 0) return;
      stop();
      resolve();
    };
    const stop = db.onSyncStatus(check);
    void db.syncStatus().then(check);
  });
}

const LOG = 'SELECT who, seq FROM log ORDER BY who, seq';
const KV = 'SELECT k, v FROM kv ORDER BY k';

test('generated: two live clients converge through random network drops and server restarts', { timeout: 300_000 }, async () => {
  const seed = testSeed();
  console.log(`live chaos seed ${seed} (OUTPOST_SEED replays it)`);
  const random = rng(seed);
  const port = await freePort();
  const dataDir = tempDir('outpost-live-chaos-server-');
  const start = async (): Promise<void> => {
    ({ server } = await startServer({ auth: false, port, dataDir }));
  };
  await start();
  const url = `http://127.0.0.1:${port}/db/chaos`;
  const clients = ['a', 'b'].map((who) => ({ who, net: net(), db: null as unknown as Database, seq: 0, statuses: [] as SyncStatus[] }));
  for (const c of clients) {
    c.db = await open(join(dir, `${c.who}-${seed}.db`), { sync: { url, live: true, fetch: c.net.fetch } });
    opened.push(c.db);
    c.db.onSyncStatus((s) => c.statuses.push(s));
  }
  const [a, b] = clients as [(typeof clients)[0], (typeof clients)[0]];
  // Keys both clients update: made once, before either writes (two inserts of one key would be
  // an insert collision, which is refused by rule: README "Conflicts").
  await a.db.exec("CREATE TABLE IF NOT EXISTS log(who TEXT, seq INTEGER); CREATE TABLE IF NOT EXISTS kv(k INTEGER PRIMARY KEY, v TEXT); INSERT INTO kv VALUES (1, ''), (2, ''), (3, ''), (4, '')");
  await until(b.db, 'SELECT k FROM kv', (rows) => rows.length === 4);

  let serverUp = true;
  const steps = 30;
  for (let step = 0; step < steps; step++) {
    const roll = random();
    if (roll < 0.12) {
      const c = pick(random, clients);
      c.net.down = !c.net.down;
      console.log(`live chaos seed ${seed} step ${step}: ${c.who} network ${c.net.down ? 'down' : 'up'}`);
    } else if (roll < 0.22) {
      if (serverUp) await server!.close();
      else await start();
      serverUp = !serverUp;
      console.log(`live chaos seed ${seed} step ${step}: server ${serverUp ? 'up' : 'down'}`);
    } else {
      const c = pick(random, clients);
      const writes = int(random, 1, 3);
      const statements: { sql: string; args: (string | number)[] }[] = [];
      for (let i = 0; i < writes; i++) {
        statements.push(random() < 0.6 ? { sql: 'INSERT INTO log(who, seq) VALUES (?, ?)', args: [c.who, c.seq++] } : { sql: 'UPDATE kv SET v = ? WHERE k = ?', args: [`${c.who}${step}.${i}`, int(random, 1, 4)] });
      }
      if (random() < 0.5) {
        await c.db.transaction(async (tx) => {
          for (const s of statements) await tx.run(s.sql, s.args);
        });
      } else {
        for (const s of statements) await c.db.run(s.sql, s.args);
      }
    }
    // Let the loops run a little between steps: one event-loop turn per client's round trip.
    if (random() < 0.3) await Promise.all(clients.map((c) => c.db.query('SELECT 1')));
  }
  if (!serverUp) await start();
  for (const c of clients) c.net.down = false;
  await Promise.all(clients.map((c) => drained(c.db)));

  // The server's rows, read by a fresh client.
  const judge = await open(join(dir, `judge-${seed}.db`), { sync: { url } });
  opened.push(judge);
  await judge.pull();
  const serverLog = await judge.query<{ who: string; seq: number }>(LOG);
  const serverKv = await judge.query(KV);
  const expectedLog = clients.flatMap((c) => Array.from({ length: c.seq }, (_, seq) => ({ who: c.who, seq })));
  expect(serverLog, `seed ${seed}: every insert on the server exactly once`).toEqual(expectedLog);
  const same = (expected: unknown[]) => (rows: unknown[]) => JSON.stringify(rows) === JSON.stringify(expected);
  for (const c of clients) {
    await until(c.db, LOG, same(serverLog));
    await until(c.db, KV, same(serverKv));
    const status = (await c.db.syncStatus())!;
    expect(status.pendingChanges, `seed ${seed}: ${c.who} pending`).toBe(0);
    expect(status.rejectedChanges, `seed ${seed}: ${c.who} refused`).toEqual([]);
    expect(c.statuses.every((s) => s.pendingChanges >= 0 && s.rejectedChanges.length === 0), `seed ${seed}: ${c.who} status events`).toBe(true);
    expect(await c.db.query('PRAGMA integrity_check')).toEqual([{ integrity_check: 'ok' }]);
  }
  console.log(`live chaos seed ${seed}: ${a.seq + b.seq} inserts, ${serverKv.length} keys, ${a.statuses.length + b.statuses.length} status events`);
});
