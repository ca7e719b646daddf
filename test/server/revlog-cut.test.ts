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
  test('generated: a power loss after a clean reopen, before or after the cut reached the device, with commits that waited for it or not, and perhaps a process killed and a new one of the same boot, never serves a held revision without the pages written since', async () => {
    const seed = testSeed();
    const random = rng(seed);
    for (let c = 0; c < 200; c++) {
      const what = `seed ${seed} case ${c}`;
      const disk = new PowerLossDisk(rng(seed + c));
      const durable = random() < 0.5;
      const first = disk.logFiles(disk.process());
      let log = new RevisionLog(FILE, durable, first);
      const held: string[] = [];
      for (let n = int(random, 0, 3); n > 0; n--) {
        commit(log, [int(random, 1, 20), int(random, 1, 20)]);
        held.push(log.revision);
      }
      // Closed clean: under 'full' by the close, under 'normal' by a seal.
      log.close();
      await RevisionLog.seal(FILE, first);
      if (random() < 0.7) disk.settle();
      // The phase the power goes in: at a seeded change from the reopen on, or at a seeded step.
      if (random() < 0.5) disk.lossAt(int(random, 1, 6));
      let process = disk.process();
      log = new RevisionLog(FILE, durable, disk.logFiles(process));
      for (let step = int(random, 1, 5); step > 0 && !process.dead; step--) {
        const r = random();
        if (r < 0.3) await log.commitsReady();
        else if (r < 0.4) await new Promise((resolve) => setImmediate(resolve));
        else if (r < 0.8) {
          commit(log, [int(random, 1, 20), int(random, 1, 20)]);
          held.push(log.revision);
        } else if (r < 0.9) {
          // The process dies (its cut's fsync perhaps not done) and another of the same boot opens the log.
          disk.killProcesses();
          process = disk.process();
          log = new RevisionLog(FILE, durable, disk.logFiles(process));
        } else disk.loseNow();
      }
      // The device keeps a seeded subset of what was not flushed, or none of it.
      if (!process.dead) disk.loseNow(random() < 0.3 ? () => false : undefined);
      const after = new RevisionLog(FILE, durable, disk.logFiles(disk.process()));
      commit(after, [40]);
      for (const revision of held) {
        const since = after.pagesSince(revision);
        expect(since === null || since.has(40), `${what}: ${revision} is served without the page written after the loss`).toBe(true);
      }
      after.close();
    }
  });

  test('generated: a writer that awaits commitsReady makes no fsync on the event loop, a log reopened by the process that closed it unclean waits for nothing, and no fd is closed under its fsync', async () => {
    const seed = testSeed();
    const random = rng(seed);
    for (let c = 0; c < 100; c++) {
      const what = `seed ${seed} case ${c}`;
      const disk = new PowerLossDisk(rng(seed + c));
      /** A new process opens the log, or (`files` given) the process that closed it opens it again. */
      const open = (same?: ReturnType<typeof watched>): { log: RevisionLog; files: ReturnType<typeof watched> } => {
        const files = same ?? watched(disk.logFiles(disk.process()));
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
        } else if (r < 0.65) {
          // Evicted and opened again by the same process: a log it closed with no cut in doubt waits for nothing.
          const inDoubt = log.commitsReady() !== null;
          log.close();
          ({ log, files } = open(files));
          expect(log.commitsReady() !== null, `${what}: a reopen by the process that closed the log waits only for a cut in doubt`).toBe(inDoubt);
        } else if (r < 0.8) {
          // Sealed, then opened by a new process: the marker's cut is flushed before a commit.
          log.close();
          await RevisionLog.seal(FILE, files);
          ({ log, files } = open());
          expect(log.commitsReady(), `${what}: a reopen of a sealed log`).not.toBeNull();
        } else {
          // The process dies with the log open, on the same boot: the new one cannot know whether
          // a cut of the dead one reached the device, and flushes the log before a commit.
          disk.killProcesses();
          ({ log, files } = open());
          expect(log.commitsReady(), `${what}: a same-boot reopen of an unclean log by a new process`).not.toBeNull();
        }
      }
      log.close();
      // The fsyncs still under way settle (their closes came through `watched`).
      for (let i = 0; i < 4; i++) await new Promise((resolve) => setImmediate(resolve));
    }
  });
});
