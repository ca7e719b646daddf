/**
 * Sync from a real browser worker on OPFS against servers on 127.0.0.1 (started by
 * global-setup.ts): the Outpost server and `turso --sync-server`. And a worker terminated in
 * the middle of a pull.
 */
import { describe, expect, inject, test } from 'vitest';
import { open } from '../src/index.js';
import { Database } from '../src/database.js';
import { openInWorker } from '../src/worker/client.js';

const unique = (p: string): string => `${p}-${crypto.randomUUID()}`;

async function remote(url: string, sql: string[]): Promise<unknown> {
  const res = await fetch(`${url}/v2/pipeline`, {
    method: 'POST',
    body: JSON.stringify({ baton: null, requests: [{ type: 'batch', batch: { steps: sql.map((s) => ({ stmt: { sql: s } })) } }] }),
  });
  return res.json();
}

for (const [server, dbUrl] of [
  ['Outpost server', (db: string) => `${inject('outpostServerUrl')}/db/${db}`],
  ['turso --sync-server', () => inject('tursoServerUrl')],
] as const) {
  describe(`browser client with ${server}`, () => {
    test('bootstraps, writes, pushes, pulls and converges between two databases', async () => {
      const url = dbUrl(unique('b'));
      const table = `notes_${Math.random().toString(36).slice(2, 8)}`;
      const a = await open(unique('sync-a'), { sync: { url } });
      await a.exec(`CREATE TABLE ${table}(id INTEGER PRIMARY KEY, body TEXT)`);
      await a.run(`INSERT INTO ${table}(body) VALUES (?)`, ['from the browser']);
      expect(await a.push()).toBeGreaterThan(0);
      const b = await open(unique('sync-b'), { sync: { url } });
      expect(await b.query(`SELECT body FROM ${table}`)).toEqual([{ body: 'from the browser' }]);
      await b.run(`UPDATE ${table} SET body = 'edited in b' WHERE id = 1`);
      await b.run(`INSERT INTO ${table}(body) VALUES ('second')`);
      await b.push();
      expect(await a.pull()).toBe(true);
      expect(await a.query(`SELECT body FROM ${table} ORDER BY id`)).toEqual([{ body: 'edited in b' }, { body: 'second' }]);
      const status = await a.syncStatus();
      expect(status?.pendingChanges).toBe(0);
      expect(status?.revision).not.toBeNull();
      expect(status?.bytesReceived).toBeGreaterThan(0);
      await a.close();
      await b.close();
    });
  });
}

test('a worker terminated in the middle of a pull leaves a database that recovers, loses nothing and applies nothing twice', async () => {
  // Tables t and applied, and a TEMP trigger counting the server's inserts into t, were made by
  // the global setup (as the server: tenants may not create TEMP objects).
  const url = `${inject('outpostServerUrl')}/db/${inject('countingDatabase')}`;
  for (let attempt = 0; attempt < 6; attempt++) {
    const name = unique('killed');
    const opts = { name, storage: 'opfs' as const, durability: 'normal' as const, intMode: 'number' as const, lockTimeoutMs: 10_000, sync: { url } };
    const first = await openInWorker(opts);
    const db = new Database(name, first.driver, first.terminate);
    // Negative ids never collide with the server's own rowids.
    const localId = -1 - attempt;
    await db.run('INSERT INTO t(id, v) VALUES (?, ?)', [localId, `local ${attempt}`]);
    // A remote change big enough that applying it takes a while.
    await remote(url, [`INSERT INTO t(v) SELECT hex(randomblob(2000)) FROM (WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i < 300) SELECT i FROM s)`]);
    const ticket = await first.driver.fetchPull();
    expect(ticket).not.toBeNull();
    const applying = first.driver.applyPull(ticket!).catch(() => 'killed');
    await new Promise((r) => setTimeout(r, attempt * 3));
    first.terminate();
    await Promise.race([applying, new Promise((r) => setTimeout(r, 50))]);

    const again = await open(name, { sync: { url }, lockTimeoutMs: 10_000 });
    expect(await again.get('PRAGMA integrity_check')).toEqual({ integrity_check: 'ok' });
    expect(await again.get('SELECT v FROM t WHERE id = ?', [localId])).toEqual({ v: `local ${attempt}` });
    await again.sync();
    expect((await again.syncStatus())?.pendingChanges).toBe(0);
    await again.close();
  }
  const counts = (await remote(url, ['SELECT id, count(*) FROM applied WHERE id < 0 GROUP BY id ORDER BY id DESC'])) as {
    results: { response: { result: { step_results: { rows: { value: string }[][] }[] } } }[];
  };
  const rows = counts.results[0]!.response.result.step_results[0]!.rows;
  expect(rows.map((r) => [Number(r[0]!.value), Number(r[1]!.value)])).toEqual([0, 1, 2, 3, 4, 5].map((i) => [-1 - i, 1]));
  // Six opens, kills, reopens and syncs: about 10 s on an idle machine, past a minute at load 30.
}, 240_000);
