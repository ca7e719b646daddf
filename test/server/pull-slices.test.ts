/**
 * A pull answer is built in slices that yield to other requests and are charged to the
 * pulling database's share of the server (HostedDatabase.pull): while one tenant's full pulls
 * of a large database are built, other tenants' requests are answered before the build ends, and each pulled answer
 * is still the whole database at one revision. The server here makes every page a slice, so a
 * build yields hundreds of times; the assertions are on the order of events, not on times.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { open } from '../../src/node/index.js';
import { PAGE_BYTES, PullStreamReader } from '../../src/protocol/pull-updates.js';
import { mintToken } from '../../src/server/auth.js';
import type { OutpostServer } from '../../src/server/server.js';
import { int, rng, testSeed } from '../support/generate.js';
import { SECRET, rawPipeline, rawPull, runBatch, startServer, tempDir } from '../support/server.js';

const exec = (sql: string): unknown => ({ type: 'execute', stmt: { sql, want_rows: true } });

/** The database a full pull answer describes, as a file image. */
function imageOf(body: Uint8Array): { revision: string; image: Uint8Array } {
  const reader = new PullStreamReader();
  const pages = reader.push(body);
  const header = reader.finish();
  const image = new Uint8Array(header.dbSize * PAGE_BYTES);
  for (const page of pages) image.set(page.page, page.pageId * PAGE_BYTES);
  return { revision: header.serverRevision, image };
}

describe('pull answers built in slices', () => {
  let server: OutpostServer;
  let url = '';
  let token = '';
  const events: string[] = [];
  /** Called on the next slice of the big database's pull (then forgotten). */
  let onSlice: (() => void) | null = null;
  const dir = tempDir('outpost-pull-slices-');

  beforeAll(async () => {
    // The whole server's time is this test's share, so the pulls' charges never refuse it.
    ({ server, url } = await startServer({
      shareOfServer: 1,
      pullSlices: { groupPages: 1, sliceMs: 0 },
      pullEvents: (event, database) => {
        if (database !== 'big') return;
        events.push(event);
        const run = onSlice;
        onSlice = null;
        run?.();
      },
    }));
    token = await mintToken(SECRET, { db: '*', role: 'write' });
  });
  afterAll(async () => {
    await server.close();
  });

  test('generated: other tenants are answered while full pulls of a large database are built, and each pull is byte-correct', async () => {
    const seed = testSeed();
    const random = rng(seed);
    const big = `${url}/db/big`;
    // A few MiB of rows (about a thousand pages), written in requests under the body limit.
    expect((await runBatch(big, token, 'CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)')).status).toBe(200);
    let rows = 0;
    const tenants = ['a', 'b', 'c', 'd', 'e'];
    for (const name of tenants) expect((await runBatch(`${url}/db/${name}`, token, 'CREATE TABLE n(x)')).status, `seed ${seed}`).toBe(200);
    const rounds = 3;
    let answeredDuringBuilds = 0;
    for (let round = 0; round < rounds; round++) {
      const add = int(random, 200, 400);
      const size = int(random, 2000, 6000);
      const outcome = await runBatch(big, token, `WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < ${add}) INSERT INTO t SELECT ${rows} + i, randomblob(${size}) FROM c`);
      expect(outcome.status, `seed ${seed}`).toBe(200);
      rows += add;
      // Other tenants' requests start on the pull's first slice; each must be answered before the pull.
      events.length = 0;
      const others: Promise<void>[] = [];
      const count = int(random, 2, tenants.length);
      onSlice = () => {
        for (let i = 0; i < count; i++) {
          const name = tenants[i]!;
          const sql = random() < 0.5 ? `INSERT INTO n VALUES (${round})` : 'SELECT count(*) FROM n';
          others.push(
            rawPipeline(`${url}/db/${name}`, { baton: null, requests: [exec(sql)] }, token).then((answer) => {
              expect(answer.status, `seed ${seed}: ${name} ${sql}`).toBe(200);
              events.push(`answered ${name}`);
            }),
          );
        }
      };
      const pulled = await rawPull(big, { clientRevision: '' }, token);
      await Promise.all(others);
      expect(pulled.status, `seed ${seed}`).toBe(200);
      const pullAt = events.indexOf('built');
      expect(pullAt, `seed ${seed}`).toBeGreaterThan(0);
      for (let i = 0; i < count; i++) expect(events.indexOf(`answered ${tenants[i]}`), `seed ${seed} round ${round}: ${events.join(', ').slice(0, 400)}`).toBeLessThan(pullAt);
      answeredDuringBuilds += count;
      // Byte-correct: the pulled image is a sound database with exactly the server's rows.
      const { image } = imageOf(pulled.body);
      const file = join(dir, `pulled-${round}.db`);
      writeFileSync(file, image);
      const copy = await open(file, { engine: 'inline' });
      try {
        expect(await copy.query('PRAGMA integrity_check'), `seed ${seed}`).toEqual([{ integrity_check: 'ok' }]);
        const local = await copy.query<{ id: number; h: string }>('SELECT id, hex(v) AS h FROM t ORDER BY id');
        const remote = await rawPipeline(big, { baton: null, requests: [exec('SELECT id, hex(v) FROM t ORDER BY id')] }, token);
        expect(remote.status, `seed ${seed}: ${JSON.stringify(remote.json).slice(0, 300)}`).toBe(200);
        const serverRows = (remote.json.results[0].response.result.rows as { value: string }[][]).map(([id, h]) => ({ id: Number(id!.value), h: h!.value }));
        expect(local.length, `seed ${seed}`).toBe(rows);
        expect(local, `seed ${seed} round ${round}`).toEqual(serverRows);
      } finally {
        await copy.close();
      }
    }
    console.log(`pull slices: seed ${seed}, ${rounds} full pulls of up to ${rows} rows, ${answeredDuringBuilds} other tenants' requests answered while they were built`);
  });

  test("a pull's build is charged to its database's share: once used up, its next pull that needs a build and its pipeline get 429 BUSY with Retry-After, other databases go on", async () => {
    // A 16 MiB database made before the server starts, so no statement has been charged yet;
    // a burst of 5 ms (the statement limit) and a tiny share, so that one full pull of it
    // (4,000 pages read, well over 5 ms of work) uses the share up for a long while.
    const dataDir = tempDir('outpost-pull-share-');
    const made = await open(join(dataDir, 'heavy.db'), { engine: 'inline' });
    await made.exec('CREATE TABLE t(v); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 4000) INSERT INTO t SELECT randomblob(4000) FROM c');
    await made.close();
    const { server: tight, url: tightUrl } = await startServer({ dataDir, shareOfServer: 0.0001, statementTimeoutMs: 5 });
    try {
      const db = `${tightUrl}/db/heavy`;
      const first = await rawPull(db, { clientRevision: '' }, token);
      expect(first.status).toBe(200);
      // A pull that needs a build of its own (ReplaceBase: a revision the server does not know).
      const second = await rawPull(db, { clientRevision: 'gone.1' }, token);
      expect(second.status).toBe(429);
      // An identical whole pull needs no build: it is answered from the kept answer (pull-share.ts).
      const identical = await rawPull(db, { clientRevision: '' }, token);
      expect(identical.status).toBe(200);
      expect(Buffer.compare(identical.body, first.body)).toBe(0);
      const third = await rawPipeline(db, { baton: null, requests: [exec('SELECT 1')] }, token);
      expect(third.status).toBe(429);
      expect(third.json.code).toBe('BUSY');
      expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
      expect((await rawPipeline(`${tightUrl}/db/light`, { baton: null, requests: [exec('SELECT 1')] }, token)).status).toBe(200);
    } finally {
      await tight.close();
    }
  });
});
