/**
 * The client's own disk fills up (a full Node disk, an exhausted OPFS quota) in the middle of
 * commits, pushes and pulls. disk-full.test.ts fills the server; this fills the replica's
 * storage, shared by the database, its WAL and the sync layer's side files
 * (test/support/full-disk.ts), at a seeded room above what the replica holds, while the server
 * has moved on with rows the pull must write. Each case then runs a seeded mix of transactions,
 * pushes, pulls and syncs on the full disk. It must hold:
 * - every failure is a clear one: a SqliteError SQLITE_FULL, or a SyncError whose message says
 *   the disk is full; never a crash, a wedged database or a generic error;
 * - nothing is lost: once there is room again (in the same process, or after a restart), a sync
 *   succeeds, every transaction whose commit returned is in the replica and on the server, each
 *   applied there exactly once, no failed commit left a row, replica and server hold the same
 *   rows, and integrity_check is ok.
 * Each run prints its seed; OUTPOST_SEED=<seed> replays it.
 */
import { beforeAll, expect, test } from 'vitest';
import { Database } from '../../src/database.js';
import { connectionDriver } from '../../src/driver.js';
import { SqliteError, SyncError } from '../../src/errors.js';
import { openSynced } from '../../src/sync/open.js';
import { int, pick, rng, testSeed } from '../support/generate.js';
import { FullDisk } from '../support/full-disk.js';
import { type Endpoint, type Network, inProcessNetwork, scratchDataDir } from '../support/networks.js';
import { serverRows } from './simulation.js';

const seed = testSeed();
const CASES = Number(process.env.OUTPOST_DISK_FULL_CASES ?? 30);
let network: Network;

beforeAll(() => {
  console.log(`client disk full: seed ${seed}, ${CASES} cases (OUTPOST_SEED=${seed} replays it)`);
  network = inProcessNetwork(scratchDataDir('outpost-client-full-'));
});

async function openAt(disk: FullDisk, endpoint: Endpoint, durability: 'normal' | 'full', maxLocalWalBytes?: number): Promise<Database> {
  const directory = disk.directory();
  const sync = { url: endpoint.url, clientName: 'full', retries: 0, ...(maxLocalWalBytes ? { maxLocalWalBytes } : {}) };
  const { conn, engine } = await openSynced(directory, { durability, intMode: 'number' }, sync, endpoint.client());
  return new Database(directory.label, connectionDriver(conn, engine));
}

/** Whether `e` says plainly that the disk is full. */
function isDiskFull(e: unknown): boolean {
  if (e instanceof SqliteError) return e.code === 'SQLITE_FULL';
  if (e instanceof SyncError) return /full/i.test(e.message);
  return false;
}

const describeError = (e: unknown): string => (e instanceof Error ? `${e.name}${'code' in e ? ` ${String((e as { code: unknown }).code)}` : ''}: ${e.message}` : String(e));

test('a full client disk in the middle of commits, pushes and pulls: clear errors, nothing lost once there is room', async () => {
  let refusals = 0;
  let failedOps = 0;
  for (let c = 0; c < CASES; c++) {
    const random = rng(seed + c * 7919);
    const durability = pick(random, ['normal', 'full'] as const);
    const restart = random() < 0.5;
    let what = `seed ${seed} case ${c} (${durability}, ${restart ? 'restart' : 'same process'}`;
    /** What the case did, for the failure message. */
    const trace: string[] = [];
    const endpoint = await network.open(`full-${seed}-${c}`);
    await endpoint.execTrusted('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB); CREATE TABLE audit(n INTEGER PRIMARY KEY, id INTEGER)');
    await endpoint.execTrusted('CREATE TEMP TRIGGER t_audit AFTER INSERT ON main.t BEGIN INSERT INTO audit(id) VALUES (new.id); END');
    const disk = new FullDisk(random() < 0.5);
    // A small local WAL bound: local checkpoints (pre-images saved, then folded) happen offline.
    const maxLocalWalBytes = random() < 0.5 ? 16 * 1024 : undefined;
    what += `${disk.partialWrites ? ', partial writes' : ''}${maxLocalWalBytes ? ', local checkpoints' : ''})`;
    let db = await openAt(disk, endpoint, durability, maxLocalWalBytes);
    /** Rows of transactions whose commit returned. */
    const committed: number[] = [];
    /** Rows of transactions whose commit failed. */
    const failed: number[] = [];
    let id = 1000;
    const transaction = async (): Promise<void> => {
      const ids = Array.from({ length: int(random, 1, 4) }, () => id++);
      const sizes = ids.map(() => pick(random, [0, 10, 3000, 20_000, 120_000]));
      try {
        await db.transaction(async (tx) => {
          for (let i = 0; i < ids.length; i++) await tx.run(`INSERT INTO t VALUES (?, randomblob(${sizes[i]}))`, [ids[i]!]);
        });
        committed.push(...ids);
        trace.push(`commit ${ids.join(',')} (${sizes.join(',')} bytes)`);
      } catch (e) {
        trace.push(`commit ${ids.join(',')} failed: ${describeError(e)}`);
        expect(isDiskFull(e), `${what}: a commit failed unclearly: ${describeError(e)}`).toBe(true);
        failed.push(...ids);
        failedOps++;
      }
    };
    try {
      await db.pull();
      for (let i = int(random, 1, 3); i > 0; i--) await transaction();
      if (random() < 0.7) await db.push();
      for (let i = int(random, 0, 2); i > 0; i--) await transaction();
      // The server moves on: the next pull has pages to write.
      for (let i = int(random, 0, 3); i > 0; i--) await endpoint.execTrusted(`INSERT INTO t VALUES (${id++}, randomblob(${int(random, 100, 150_000)}))`);

      disk.roomBytes = disk.usedBytes() + pick(random, [0, 4096, 30_000, 100_000, 300_000]);
      trace.push(`disk full at ${disk.roomBytes} bytes`);
      for (let i = int(random, 2, 6); i > 0; i--) {
        const op = pick(random, ['commit', 'commit', 'push', 'pull', 'sync'] as const);
        if (op === 'commit') {
          await transaction();
          continue;
        }
        try {
          await db[op]();
          trace.push(op);
        } catch (e) {
          trace.push(`${op} failed: ${describeError(e)}`);
          expect(isDiskFull(e), `${what}: ${op} failed unclearly: ${describeError(e)}`).toBe(true);
          failedOps++;
        }
      }
      refusals += disk.refusals;
      // Still full: the open database holds every committed row and is sound, whatever failed.
      const whileFull = (await db.query<{ id: number }>('SELECT id FROM t ORDER BY id')).map((r) => r.id);
      for (const k of committed) expect(whileFull, `${what}\n  ${trace.join('\n  ')}\nwhile full: committed row ${k}`).toContain(k);
      expect(await db.get('PRAGMA integrity_check'), `${what}\n  ${trace.join('\n  ')}\nwhile full`).toEqual({ integrity_check: 'ok' });

      // Room again.
      disk.roomBytes = null;
      what += `\n  ${trace.join('\n  ')}`;
      if (restart) {
        await db.close().catch(() => {});
        db = await openAt(disk, endpoint, durability, maxLocalWalBytes);
      }
      expect(await db.get('PRAGMA integrity_check'), what).toEqual({ integrity_check: 'ok' });
      await db.sync().catch((e: unknown) => {
        throw new Error(`${what}: the sync once there was room failed: ${describeError(e)}`);
      });
      expect((await db.syncStatus())?.pendingChanges, `${what}: pending after the sync`).toBe(0);
      const local = (await db.query<{ id: number }>('SELECT id FROM t ORDER BY id')).map((r) => r.id);
      for (const k of committed) expect(local, `${what}: committed row ${k}`).toContain(k);
      for (const k of failed) expect(local, `${what}: row ${k} of a failed commit`).not.toContain(k);
      const [onServer, counts] = await serverRows(endpoint, 'SELECT id, length(v), hex(substr(v, 1, 16)) FROM t ORDER BY id', 'SELECT id, count(*) FROM audit GROUP BY id HAVING count(*) > 1');
      const mine = await db.query<Record<string, unknown>>('SELECT id, length(v) AS l, hex(substr(v, 1, 16)) AS h FROM t ORDER BY id');
      expect(JSON.stringify(mine.map((r) => [String(r.id), String(r.l), r.h])), `${what}: replica and server`).toBe(onServer);
      expect(counts, `${what}: applied more than once`).toBe('[]');
      expect(await db.get('PRAGMA integrity_check'), what).toEqual({ integrity_check: 'ok' });
    } finally {
      await db.close().catch(() => {});
      await endpoint.close();
    }
  }
  console.log(`client disk full: ${CASES} cases, ${refusals} writes refused by the full disk, ${failedOps} operations failed`);
  expect(refusals).toBeGreaterThan(0);
}, 600_000);
