/**
 * A power loss at any change of a sync, under both durabilities (crash.test.ts covers a process
 * crash, which keeps every write that reached the storage; this loses what was not flushed).
 * Each case: a replica with pushed and pending changes is settled on its device; a new process
 * writes a few transactions and syncs while the server moves on; the power goes at a seeded
 * change of that process, and the device keeps its flushed bytes plus a random subset of the
 * rest (test/support/power-loss-disk.ts). A new process then opens the files and syncs. It must
 * hold:
 * - the reopened database passes integrity_check;
 * - under `durability: 'full'`, every transaction whose commit returned before the loss is
 *   there; under 'normal', the last ones may be gone, but only if the server never took them;
 * - the server applied every change at most once (a TEMP trigger counts its applications), and
 *   every local row the replica holds after syncing exactly once;
 * - a write made after the reopen reaches the server (its change id was never acknowledged
 *   before), and replica and server end with the same rows.
 */
import { beforeAll, expect, test } from 'vitest';
import { Database } from '../../src/database.js';
import { connectionDriver } from '../../src/driver.js';
import type { StorageDirectory } from '../../src/opfs-vfs/storage/backend.js';
import { openSynced } from '../../src/sync/open.js';
import { int, rng, testSeed } from '../support/generate.js';
import { type Endpoint, type Network, inProcessNetwork, scratchDataDir } from '../support/networks.js';
import { PowerLossDisk } from '../support/power-loss-disk.js';
import { serverRows } from './simulation.js';

const seed = testSeed();
const CASES = 24;
let network: Network;

beforeAll(() => {
  console.log(`power loss seed ${seed} (OUTPOST_SEED=${seed} replays it)`);
  network = inProcessNetwork(scratchDataDir('outpost-power-loss-'));
});

type Durability = 'normal' | 'full';

/** A replica over `directory`; once `directory` is dead (the power went), its process reaches no server either. */
async function openAt(directory: StorageDirectory & { readonly dead: boolean }, durability: Durability, endpoint: Endpoint): Promise<Database> {
  const transport = endpoint.client(() => (directory.dead ? 'offline' : 'deliver'));
  const { conn, engine } = await openSynced(directory, { durability, intMode: 'number' }, { url: endpoint.url, clientName: 'power', retries: 0 }, transport);
  return new Database(directory.label, connectionDriver(conn, engine));
}

async function rows(db: Database): Promise<string> {
  return JSON.stringify((await db.query<{ id: number; v: string }>('SELECT id, v FROM t ORDER BY id')).map((r) => [String(r.id), r.v]));
}

/** How many times the server applied each id: [[id, count], ...]. */
async function applied(endpoint: Endpoint): Promise<[number, number][]> {
  const [json] = await serverRows(endpoint, 'SELECT id, count(*) FROM audit GROUP BY id ORDER BY id');
  return (JSON.parse(json!) as string[][]).map(([id, n]) => [Number(id), Number(n)]);
}

for (const durability of ['normal', 'full'] as const) {
  test(`a power loss at any change of a sync, durability '${durability}': nothing acknowledged lost, nothing applied twice, no change id reused`, async () => {
    // The number of changes a whole crashed phase makes, measured by the first case (no loss).
    let phaseChanges = 0;
    let losses = 0;
    for (let c = 0; c < CASES; c++) {
      const random = rng(seed + c * 7919 + (durability === 'full' ? 1 : 0));
      const what = `seed ${seed} case ${c} (${durability})`;
      const endpoint = await network.open(`power-${durability}-${c}`);
      await endpoint.execTrusted('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE audit(n INTEGER PRIMARY KEY, id INTEGER)');
      await endpoint.execTrusted('CREATE TEMP TRIGGER t_audit AFTER INSERT ON main.t BEGIN INSERT INTO audit(id) VALUES (new.id); END');
      await endpoint.execTrusted("INSERT INTO t VALUES (1, 'server')");
      const disk = new PowerLossDisk(rng(seed ^ (c + 1)));

      // The replica before: some changes pushed, some pending, all on its device.
      const setup = await openAt(disk.process(), durability, endpoint);
      await setup.pull();
      let id = 100;
      for (let i = int(random, 0, 3); i > 0; i--) await setup.run('INSERT INTO t VALUES (?, ?)', [id++, 'pushed']);
      await setup.push();
      for (let i = int(random, 0, 3); i > 0; i--) await setup.run('INSERT INTO t VALUES (?, ?)', [id++, 'pending']);
      await setup.close();
      disk.settle();
      const before = id;
      await endpoint.execTrusted(`INSERT INTO t VALUES (2, 'server later')`);

      // The crashed process: writes, then syncs; the power goes at a seeded change.
      const lossPoint = int(random, 1, Math.max(1, phaseChanges));
      if (c > 0) disk.lossAt(lossPoint);
      const startChanges = disk.changes;
      const crashed = disk.process();
      const committed: number[] = [];
      let db: Database | null = null;
      try {
        db = await openAt(crashed, durability, endpoint);
        for (let i = int(random, 1, 3); i > 0; i--) {
          const first = id;
          await db.transaction(async (tx) => {
            for (let j = int(random, 1, 2); j > 0; j--) await tx.run('INSERT INTO t VALUES (?, ?)', [id++, 'crashed phase']);
          });
          if (!crashed.dead) for (let k = first; k < id; k++) committed.push(k);
        }
        if (random() < 0.5) await db.push();
        await db.sync();
      } catch (e) {
        if (!crashed.dead) throw e;
      } finally {
        await db?.close().catch(() => {});
      }
      if (c === 0) phaseChanges = disk.changes - startChanges;
      if (!crashed.dead) {
        // No loss this time (the loss point lay past the phase's end): the power goes after it.
        disk.loseNow();
      }
      losses++;

      const after = await openAt(disk.process(), durability, endpoint);
      try {
        expect(await after.get('PRAGMA integrity_check'), what).toEqual({ integrity_check: 'ok' });
        const heldIds = (await after.query<{ id: number }>('SELECT id FROM t WHERE id >= 100 ORDER BY id')).map((r) => r.id);
        for (let k = 100; k < before; k++) expect(heldIds, `${what}: settled row ${k}`).toContain(k);
        if (durability === 'full') for (const k of committed) expect(heldIds, `${what}: committed row ${k}`).toContain(k);
        await after.sync().catch((e: Error) => {
          throw new Error(`${what}: ${e.message}`);
        });
        await after.run("INSERT INTO t VALUES (900, 'after the loss')");
        await after.sync();
        expect((await after.syncStatus())?.pendingChanges, what).toBe(0);
        const [onServer] = await serverRows(endpoint, 'SELECT id, v FROM t ORDER BY id');
        expect(await rows(after), what).toBe(onServer);
        const local = (await after.query<{ id: number }>('SELECT id FROM t WHERE id >= 100 ORDER BY id')).map((r) => r.id);
        expect(local, what).toContain(900);
        for (const k of committed) if (durability === 'full') expect(local, `${what}: committed row ${k} on the server`).toContain(k);
        const counts = await applied(endpoint);
        expect(
          counts.filter(([, n]) => n !== 1),
          `${what}: applied more than once`,
        ).toEqual([]);
        expect(counts.map(([k]) => k).filter((k) => k >= 100), `${what}: applied ids`).toEqual(local);
      } finally {
        await after.close();
        await endpoint.close();
      }
    }
    console.log(`power loss (${durability}): ${CASES} cases, ${losses} losses, ${phaseChanges} changes in a whole phase`);
  }, 600_000);
}

