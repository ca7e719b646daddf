/**
 * The fsync of a clean reopen's cut runs off the event loop (revlog.ts `commitsReady`): a
 * power loss before it is done, with commits that waited for it or did not, never lets a
 * revision a client held name other pages; and a writer that waits makes no fsync on the
 * event loop.
 */
import { describe, expect, test } from 'vitest';
import { type LogFiles, RevisionLog } from '../../src/server/revlog.js';
import { int, rng, testSeed } from '../support/generate.js';
import { PowerLossDisk } from '../support/power-loss-disk.js';

const FILE = '/server/db-revlog';

/** A commit writing `pages` (the last one in the commit frame). */
function commit(log: RevisionLog, pages: number[]): void {
  for (const p of pages.slice(0, -1)) log.onWalFrame(p, 0);
  log.onWalFrame(pages[pages.length - 1]!, 50);
}

/** `files`, counting the fsyncs made on the event loop, and failing a close of an fd an fsync is still using. */
function watched(files: LogFiles): LogFiles & { syncFsyncs: number } {
  const inFlight = new Set<number>();
  const watch = {
    ...files,
    syncFsyncs: 0,
    fsyncSync: (fd: number) => {
      watch.syncFsyncs++;
      files.fsyncSync(fd);
    },
    fsync: async (fd: number) => {
      inFlight.add(fd);
      try {
        await files.fsync(fd);
      } finally {
        inFlight.delete(fd);
      }
    },
    closeSync: (fd: number) => {
      if (inFlight.has(fd)) throw new Error(`fd ${fd} closed under its fsync`);
      files.closeSync(fd);
    },
  };
  return watch;
}

describe('revision log: the cut of a clean reopen', () => {
  test('generated: a power loss after a clean reopen, before or after the cut reached the device, with commits that waited for it or not, never serves a held revision without the pages written since', async () => {
    const seed = testSeed();
    const random = rng(seed);
    for (let c = 0; c < 200; c++) {
      const what = `seed ${seed} case ${c}`;
      const disk = new PowerLossDisk(rng(seed + c));
      const durable = random() < 0.5;
      let log = new RevisionLog(FILE, durable, disk.logFiles(disk.process()));
      const held: string[] = [];
      for (let n = int(random, 0, 3); n > 0; n--) {
        commit(log, [int(random, 1, 20), int(random, 1, 20)]);
        held.push(log.revision);
      }
      log.close();
      if (random() < 0.7) disk.settle();
      // The phase the power goes in: at a seeded change from the reopen on, or at a seeded step.
      if (random() < 0.5) disk.lossAt(int(random, 1, 6));
      const process = disk.process();
      log = new RevisionLog(FILE, durable, disk.logFiles(process));
      for (let step = int(random, 1, 5); step > 0 && !process.dead; step--) {
        const r = random();
        if (r < 0.3) await log.commitsReady();
        else if (r < 0.4) await new Promise((resolve) => setImmediate(resolve));
        else if (r < 0.9) {
          commit(log, [int(random, 1, 20), int(random, 1, 20)]);
          held.push(log.revision);
        } else disk.loseNow();
      }
      if (!process.dead) disk.loseNow();
      const after = new RevisionLog(FILE, durable, disk.logFiles(disk.process()));
      commit(after, [40]);
      for (const revision of held) {
        const since = after.pagesSince(revision);
        expect(since === null || since.has(40), `${what}: ${revision} is served without the page written after the loss`).toBe(true);
      }
      after.close();
    }
  });

  test('generated: a writer that awaits commitsReady makes no fsync on the event loop, a log reopened unclean on the same boot waits for nothing, and no fd is closed under its fsync', async () => {
    const seed = testSeed();
    const random = rng(seed);
    for (let c = 0; c < 100; c++) {
      const what = `seed ${seed} case ${c}`;
      const disk = new PowerLossDisk(rng(seed + c));
      const open = (): { log: RevisionLog; files: ReturnType<typeof watched> } => {
        const files = watched(disk.logFiles(disk.process()));
        return { log: new RevisionLog(FILE, false, files), files };
      };
      let { log, files } = open();
      for (let step = int(random, 2, 12); step > 0; step--) {
        const r = random();
        if (r < 0.5) {
          await log.commitsReady();
          const before = files.syncFsyncs;
          commit(log, [int(random, 1, 20)]);
          expect(files.syncFsyncs, `${what}: fsyncs on the event loop in a commit that waited`).toBe(before);
        } else if (r < 0.8) {
          log.close();
          ({ log, files } = open());
        } else {
          // The process dies with the log open, on the same boot.
          disk.killProcesses();
          ({ log, files } = open());
          expect(log.commitsReady(), `${what}: a same-boot reopen of an unclean log`).toBeNull();
        }
      }
      log.close();
      // The fsyncs still under way settle (their closes came through `watched`).
      for (let i = 0; i < 4; i++) await new Promise((resolve) => setImmediate(resolve));
    }
  });
});
