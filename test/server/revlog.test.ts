/**
 * The revision log across clean closes (revlog.ts): a database the server evicts and opens
 * again keeps its generation, so its clients keep pulling incrementally.
 */
import * as fs from 'node:fs';
import { describe, expect, test } from 'vitest';
import { APPLY_INCREMENTAL, PullStreamReader } from '../../src/protocol/pull-updates.js';
import { RevisionLog } from '../../src/server/revlog.js';
import { int, rng, testSeed } from '../support/generate.js';
import { PowerLossDisk } from '../support/power-loss-disk.js';
import { batch, rawPipeline, rawPull, startServer, tempDir } from '../support/server.js';

describe('revision log', () => {
  test('commits after a clean reopen keep the generation through the next reopen', () => {
    const file = `${tempDir('outpost-revlog-')}/db-revlog`;
    const first = new RevisionLog(file);
    first.onWalFrame(2, 3);
    first.close();
    const second = new RevisionLog(file);
    expect(second.generation).toBe(first.generation);
    const held = second.revision;
    second.onWalFrame(3, 0);
    second.onWalFrame(1, 3);
    second.close();
    const third = new RevisionLog(file);
    expect(third.generation).toBe(first.generation);
    expect(third.seq).toBe(2);
    expect([...(third.pagesSince(held) ?? [])].sort()).toEqual([1, 3]);
    third.close();
  });

  for (const durable of [false, true]) {
    test(`under durability '${durable ? 'full' : 'normal'}', a power loss after a clean reopen and a commit never lets a new commit reuse a revision a client holds`, async () => {
      // The device keeps what was flushed and none of the rest (every unflushed change is dropped).
      const disk = new PowerLossDisk(() => 0);
      const file = '/server/db-revlog';
      const files = disk.logFiles(disk.process());
      const first = new RevisionLog(file, durable, files);
      first.onWalFrame(2, 3);
      // Closed clean: under 'full' by its close, under 'normal' by a seal.
      first.close();
      await RevisionLog.seal(file, files);
      // Time passes: the clean-close marker reaches the device whatever the durability.
      disk.settle();
      const second = new RevisionLog(file, durable, disk.logFiles(disk.process()));
      second.onWalFrame(1, 3);
      // A client pulls this revision (page 1 changed); then the power goes, the log still open.
      const held = second.revision;
      disk.loseNow();
      const third = new RevisionLog(file, durable, disk.logFiles(disk.process()));
      third.onWalFrame(5, 3);
      // Served from `held`, the client must get page 5, or be sent the whole database.
      const since = third.pagesSince(held);
      expect(since === null || since.has(5), `revision ${held} now means another commit`).toBe(true);
      third.close();
    });
  }

  test('generated: a log the process died with (no clean close) keeps its generation on the same boot, and every revision a client held gets the pages since; after a new boot it starts a new generation', () => {
    const seed = testSeed();
    const random = rng(seed);
    for (let c = 0; c < 50; c++) {
      const what = `seed ${seed} case ${c}`;
      // Every write reaches the device when the power goes (the case is the new boot alone).
      const disk = new PowerLossDisk(() => 0.9);
      const file = '/server/db-revlog';
      let log = new RevisionLog(file, random() < 0.5, disk.logFiles(disk.process()));
      const written: Set<number>[] = [new Set()];
      const held: string[] = [log.revision];
      for (let step = int(random, 1, 12); step > 0; step--) {
        const r = random();
        if (r < 0.6) {
          const pages = Array.from({ length: int(random, 1, 3) }, () => int(random, 1, 20));
          for (const p of pages) log.onWalFrame(p, 0);
          log.onWalFrame(int(random, 1, 20), 21);
          written.push(new Set(log.pagesSince(held[held.length - 1]!) ?? []));
          held.push(log.revision);
        } else if (r < 0.8) {
          log.close();
          log = new RevisionLog(file, random() < 0.5, disk.logFiles(disk.process()));
          expect(log.revision, `${what}: a clean reopen`).toBe(held[held.length - 1]);
        } else {
          // The process dies with the log open, on the same boot: nothing it wrote is lost.
          const generation = log.generation;
          log = new RevisionLog(file, random() < 0.5, disk.logFiles(disk.process()));
          expect(log.generation, `${what}: a process crash`).toBe(generation);
          expect(log.revision, `${what}: a process crash`).toBe(held[held.length - 1]);
        }
      }
      // Every revision held is served the pages of every commit after it.
      for (let i = 0; i < held.length; i++) {
        const expected = new Set(written.slice(i + 1).flatMap((s) => [...s]));
        expect(log.pagesSince(held[i]!), `${what}: from ${held[i]}`).toEqual(expected);
      }
      // A new boot: the power went with the log open.
      disk.loseNow();
      const after = new RevisionLog(file, false, disk.logFiles(disk.process()));
      expect(after.generation, `${what}: after a new boot`).not.toBe(log.generation);
      after.close();
    }
  });

  test('a client of a database evicted twice, with writes between, still pulls incrementally', async () => {
    const { server, url } = await startServer({ auth: false, maxOpenDatabases: 1 });
    try {
      const write = (db: string, sql: string): Promise<unknown> => rawPipeline(`${url}/db/${db}`, batch(sql));
      const pull = async (clientRevision: string): Promise<{ revision: string; applyMode: number }> => {
        const reader = new PullStreamReader();
        reader.push((await rawPull(`${url}/db/a`, { clientRevision })).body);
        const header = reader.finish();
        return { revision: header.serverRevision, applyMode: header.applyMode };
      };
      await write('a', 'CREATE TABLE t(v)');
      const { revision } = await pull('');
      for (const v of ['one', 'two']) {
        await write('other', 'SELECT 1'); // evicts a
        await write('a', `INSERT INTO t VALUES ('${v}')`);
      }
      await write('other', 'SELECT 1');
      expect((await pull(revision)).applyMode).toBe(APPLY_INCREMENTAL);
    } finally {
      await server.close();
    }
  });
});
