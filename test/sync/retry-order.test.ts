/**
 * Retrying refused changes in any order never lets an older value win. Generated cases: one
 * client commits updates to a few rows; the server refuses some of them (a TEMP trigger on the
 * server refuses chosen values), which holds back the later changes to the same rows
 * (`waits for change N`); in between, pushes, retries (some after the refusal's cause is gone)
 * and drops of refused changes happen in random order. At the end every cause is removed and
 * every refused change retried, in random order, until nothing is pending. The server's rows
 * must then equal the commits that were not dropped, replayed in their commit order.
 * `OUTPOST_RETRY_CASES` sets how many cases run (default 40).
 */
import { expect, test } from 'vitest';
import { Database } from '../../src/database.js';
import { connectionDriver } from '../../src/driver.js';
import { SyncError } from '../../src/errors.js';
import { MemoryDirectory } from '../../src/opfs-vfs/storage/memory.js';
import { openSynced } from '../../src/sync/open.js';
import { type Random, int, pick, rng, testSeed } from '../support/generate.js';
import { type Endpoint, inProcessNetwork, scratchDataDir } from '../support/networks.js';
import { serverRows } from './simulation.js';

const CASES = Number(process.env.OUTPOST_RETRY_CASES ?? 40);
const KEYS = [1, 2, 3];

/** Swallows the push's REJECTED: refusals are part of every case. */
async function pushAllowingRefusals(db: Database): Promise<void> {
  await db.push().catch((e: unknown) => {
    if (!(e instanceof SyncError) || e.code !== 'REJECTED') throw e;
  });
}

/** The value of `t.v` a pending change sets: the number of the commit that made it. */
async function refusedCommits(db: Database): Promise<{ changeId: number; commit: number }[]> {
  return (await db.pendingChanges())
    .filter((p) => p.rejected !== null)
    .map((p) => ({ changeId: p.changeId, commit: Number(p.mutations[0]!.after.v) }));
}

function shuffle<T>(random: Random, items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = int(random, 0, i);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

async function runCase(server: Endpoint, random: Random, log: string[]): Promise<void> {
  await server.execTrusted(`CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER NOT NULL); INSERT INTO t VALUES ${KEYS.map((k) => `(${k}, 0)`).join(', ')}`);
  await server.execTrusted(
    'CREATE TEMP TABLE refuse(v INTEGER PRIMARY KEY); CREATE TEMP TRIGGER refuse_v BEFORE UPDATE ON main.t WHEN NEW.v IN (SELECT v FROM temp.refuse) BEGIN SELECT RAISE(ABORT, \'refused by the test\'); END',
  );
  const { conn, engine } = await openSynced(new MemoryDirectory('retry-order'), { durability: 'normal', intMode: 'number' }, { url: server.url, clientName: 'retry-order', retries: 0 }, server.client());
  const db = new Database('retry-order', connectionDriver(conn, engine));
  try {
    await db.pull();
    const commits: { commit: number; keys: number[] }[] = [];
    const dropped = new Set<number>();
    const steps = int(random, 6, 16);
    for (let s = 0; s < steps; s++) {
      const action = pick(random, ['commit', 'commit', 'commit', 'push', 'push', 'retry', 'retry', 'drop'] as const);
      if (action === 'commit') {
        const commit = commits.length + 1;
        const keys = shuffle(random, [...KEYS]).slice(0, int(random, 1, 2));
        if (random() < 0.4) {
          await server.execTrusted(`INSERT INTO temp.refuse VALUES (${commit})`);
          log.push(`commit ${commit} on ${keys} (refused)`);
        } else log.push(`commit ${commit} on ${keys}`);
        await db.run(`UPDATE t SET v = ${commit} WHERE id IN (${keys.join(', ')})`);
        commits.push({ commit, keys });
      } else if (action === 'push') {
        log.push('push');
        await pushAllowingRefusals(db);
      } else {
        const refused = await refusedCommits(db);
        if (refused.length === 0) continue;
        const { changeId, commit } = pick(random, refused);
        if (action === 'drop') {
          log.push(`drop ${commit}`);
          dropped.add(commit);
          await db.dropPendingChange(changeId);
        } else {
          const freed = random() < 0.6;
          if (freed) await server.execTrusted(`DELETE FROM temp.refuse WHERE v = ${commit}`);
          log.push(`retry ${commit}${freed ? ' (cause removed)' : ''}`);
          await db.retryRejectedChange(changeId);
        }
      }
    }
    await server.execTrusted('DELETE FROM temp.refuse');
    log.push('every cause removed');
    for (let round = 0; round === 0 || (round < 10 && (await refusedCommits(db)).length > 0); round++) {
      for (const { changeId, commit } of shuffle(random, await refusedCommits(db))) {
        log.push(`retry ${commit}`);
        await db.retryRejectedChange(changeId);
      }
      log.push('push');
      await pushAllowingRefusals(db);
    }
    // The pull drops what the server acknowledged; nothing may be left.
    await db.pull();
    expect(await db.pendingChanges()).toEqual([]);
    const expected = new Map(KEYS.map((k) => [k, 0]));
    for (const { commit, keys } of commits) if (!dropped.has(commit)) for (const k of keys) expected.set(k, commit);
    const [rows] = await serverRows(server, 'SELECT id, v FROM t ORDER BY id');
    expect(rows).toBe(JSON.stringify(KEYS.map((k) => [String(k), String(expected.get(k))])));
  } finally {
    await db.close();
  }
}

test('refused and held changes retried and dropped in any order land as their commits did, in commit order (seeded)', async () => {
  const seed = testSeed();
  console.log(`retry-order seed ${seed}, ${CASES} cases`);
  const random = rng(seed);
  const network = inProcessNetwork(scratchDataDir('outpost-retry-order-'));
  for (let c = 0; c < CASES; c++) {
    const server = await network.open(`retry-order-${c}`);
    const log: string[] = [];
    try {
      await runCase(server, random, log);
    } catch (e) {
      throw new Error(`seed ${seed}, case ${c}: ${(e as Error).message}\n  ${log.join('\n  ')}`, { cause: e });
    } finally {
      await server.close();
    }
  }
}, 300_000);
