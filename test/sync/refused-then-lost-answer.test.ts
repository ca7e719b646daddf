/**
 * A change the server refused stays refused when the answer to a later batch of the same push
 * is lost. The push isolates the refused change (one transaction at a time) and sends the next
 * one, which the server commits, moving this client's acknowledgement past the refused change;
 * its answer never arrives. The refusal must already be in the rejection log then: the next
 * pull drops every pending change at or below the acknowledgement that is not marked refused,
 * so an unmarked one would vanish without a report. (Differential fuzzer seed 708079 before the
 * rng scrambled its seeds: a change writing a column another client's table rebuild dropped.)
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Database } from '../../src/database.js';
import { connectionDriver } from '../../src/driver.js';
import type { NetworkFault, TransportRoute } from '../../src/server/in-process-transport.js';
import { openSynced } from '../../src/sync/open.js';
import { CrashDisk } from '../support/crash-disk.js';
import { type Endpoint, inProcessNetwork, scratchDataDir } from '../support/networks.js';
import { serverRows } from './simulation.js';

let server: Endpoint;

beforeAll(async () => {
  server = await inProcessNetwork(scratchDataDir('outpost-refused-lost-')).open('refused-lost');
  await server.execTrusted('CREATE TABLE t(id INTEGER PRIMARY KEY, reason TEXT)');
});
afterAll(async () => {
  await server.close();
});

test('a refused change stays pending and reported when the next batch commits and its answer is lost', async () => {
  // Loses the answer of the `loseAt`-th pipeline request counted from `pipelines = 0`.
  let pipelines = 0;
  let loseAt = 0;
  const faults = (route: TransportRoute): NetworkFault => (route === 'v2/pipeline' && ++pipelines === loseAt ? 'lose-answer' : 'deliver');
  const disk = new CrashDisk();
  const { conn, engine } = await openSynced(disk.process(), { durability: 'normal', intMode: 'number' }, { url: server.url, clientName: 'refused-lost', retries: 0 }, server.client(faults));
  const db = new Database('refused-lost', connectionDriver(conn, engine));
  try {
    await db.pull();
    await db.run("INSERT INTO t(id, reason) VALUES (1, 'not allowed')");
    await db.run('INSERT INTO t(id, reason) VALUES (2, NULL)');
    await server.execTrusted('CREATE TEMP TRIGGER refuse BEFORE INSERT ON main.t WHEN NEW.reason IS NOT NULL BEGIN SELECT RAISE(ABORT, NEW.reason); END');
    const [refused, accepted] = (await db.pendingChanges()).map((p) => p.changeId);

    // The push's requests: 1 reads the acknowledgement, 2 sends both changes (refused), 3 the
    // first alone (refused), 4 the second alone: committed, its answer lost.
    pipelines = 0;
    loseAt = 4;
    await expect(db.push()).rejects.not.toMatchObject({ code: 'REJECTED' });
    loseAt = 0;
    const [onServer] = await serverRows(server, 'SELECT id FROM t ORDER BY id');
    expect(onServer, 'the second change went through although its answer was lost').toBe('[["2"]]');

    await db.pull();
    const pending = await db.pendingChanges();
    expect(pending.map((p) => p.changeId)).toEqual([refused]);
    expect(pending[0]!.rejected).toContain('not allowed');
    expect(accepted).toBeGreaterThan(refused!);
    expect(await db.query('SELECT id, reason FROM t ORDER BY id')).toEqual([
      { id: 1, reason: 'not allowed' },
      { id: 2, reason: null },
    ]);
  } finally {
    await db.close();
  }
});
