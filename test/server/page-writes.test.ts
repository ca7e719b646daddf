/**
 * PageWrites (src/server/page-writes.ts) against a plain list of every commit's pages, and the
 * revision log over long histories: through its rewrites and reopens, every revision a client
 * held is served exactly the pages written after it, and the file stays within a bound that
 * follows the database's pages, not its commits.
 */
import * as fs from 'node:fs';
import { expect, test } from 'vitest';
import { PageWrites } from '../../src/server/page-writes.js';
import { NODE_FILES, type LogFiles, RevisionLog, rewriteBytesAt } from '../../src/server/revlog.js';
import { int, rng, testSeed } from '../support/generate.js';
import { tempDir } from '../support/server.js';

const sorted = (s: Iterable<number>): number[] => [...s].sort((a, b) => a - b);

/** A seeded generator, the label that names its seed, and a fresh log file's path. */
function generatedLog(): { random: () => number; at: string; file: string } {
  const seed = testSeed();
  return { random: rng(seed), at: `seed ${seed} (OUTPOST_SEED=${seed} replays it)`, file: `${tempDir('outpost-page-writes-')}/db-revlog` };
}

test('generated: answers since and wroteSince as the list of every commit does, and its groups replay to the same map', () => {
  const seed = testSeed();
  const random = rng(seed);
  for (let round = 0; round < 30; round++) {
    const at = `seed ${seed} (OUTPOST_SEED=${seed} replays it) round ${round}`;
    const subject = new PageWrites();
    const commits: { seq: number; pages: number[] }[] = [];
    const pagesMax = int(random, 1, 300);
    for (let seq = 1; seq <= int(random, 1, 400); seq++) {
      const pages = Array.from({ length: int(random, 1, 6) }, () => (random() < 0.7 ? int(random, 1, 4) : int(random, 1, pagesMax)));
      subject.record(seq, pages);
      commits.push({ seq, pages });
    }
    const replayed = new PageWrites();
    for (const g of subject.groups()) replayed.record(g.seq, g.pages);
    for (let q = 0; q < 40; q++) {
      const seq = int(random, 0, commits.length + 1);
      const want = new Set(commits.filter((c) => c.seq > seq).flatMap((c) => c.pages));
      expect({ at, seq, since: sorted(subject.since(seq)) }).toEqual({ at, seq, since: sorted(want) });
      expect({ at, seq, replayed: sorted(replayed.since(seq)) }).toEqual({ at, seq, replayed: sorted(want) });
      const page = int(random, 0, pagesMax + 2);
      expect({ at, seq, page, wrote: subject.wroteSince(seq, page) }).toEqual({ at, seq, page, wrote: want.has(page) });
    }
  }
  expect(() => new PageWrites().record(1, [0])).toThrow(RangeError);
});

test('generated: a log through thousands of commits, rewrites and reopens serves every held revision the pages since, in a file bounded by its pages', () => {
  const { random, at, file } = generatedLog();
  let log = new RevisionLog(file);
  const generation = log.generation;
  const commits: number[][] = [];
  const held: { revision: string; commits: number }[] = [];
  let largest = 0;
  for (let step = 0; step < 9_000; step++) {
    const pages = Array.from({ length: int(random, 1, 4) }, () => (random() < 0.8 ? int(random, 1, 5) : int(random, 1, 60)));
    for (const p of pages.slice(0, -1)) log.onWalFrame(p, 0);
    log.onWalFrame(pages[pages.length - 1]!, 60);
    commits.push(pages);
    if (random() < 0.01) held.push({ revision: log.revision, commits: commits.length });
    // A reopen by this process (evicted, or killed on the same boot) keeps the generation.
    if (random() < 0.002) {
      if (random() < 0.5) log.close();
      log = new RevisionLog(file);
      expect(log.generation, at).toBe(generation);
    }
    largest = Math.max(largest, fs.statSync(file).size);
  }
  for (const h of held) {
    const want = new Set(commits.slice(h.commits).flat());
    expect({ at, held: h.revision, pages: sorted(log.pagesSince(h.revision) ?? [-1]) }).toEqual({ at, held: h.revision, pages: sorted(want) });
  }
  // The first revision of the generation is still served incrementally.
  expect(log.pagesSince(`${generation}.0`), at).not.toBeNull();
  // The rewrite's threshold, the commit that crossed it and a boot record per reopen (37 bytes each at most here).
  expect(largest, at).toBeLessThan(rewriteBytesAt(60) + 40 * 37);
  log.close();
});

test('generated: commits that each write many pages of a large database keep the file within a bound of its pages', () => {
  const { random, at, file } = generatedLog();
  const log = new RevisionLog(file);
  const pagesMax = 5_000;
  let largest = 0;
  for (let step = 0; step < 3_000; step++) {
    const pages = new Set(Array.from({ length: 50 }, () => int(random, 1, pagesMax)));
    for (const p of pages) log.onWalFrame(p, 0);
    log.onWalFrame(1, pagesMax);
    largest = Math.max(largest, fs.statSync(file).size);
  }
  // A list of records bounded by count alone grew with pages times commits here.
  expect(largest, at).toBeLessThan(rewriteBytesAt(pagesMax) + 21 + 4 * 51);
  log.close();
});

test('a rewrite that cannot open its new file leaves the log writing to its own file, and the next commit rewrites it', () => {
  const file = `${tempDir('outpost-page-writes-')}/db-revlog`;
  const open = new Set<number>();
  let failNextTmp = false;
  const files: LogFiles = {
    ...NODE_FILES,
    openExisting: (path) => {
      const got = NODE_FILES.openExisting(path);
      if (got) open.add(got.fd);
      return got;
    },
    openSync: (path, flags) => {
      if (failNextTmp && path.endsWith('.tmp')) {
        failNextTmp = false;
        throw Object.assign(new Error('EMFILE: too many open files'), { code: 'EMFILE' });
      }
      const fd = NODE_FILES.openSync(path, flags);
      open.add(fd);
      return fd;
    },
    writeSync: (fd, bytes) => {
      // A write to a descriptor the log closed would land in whatever file took its number.
      if (!open.has(fd)) throw new Error(`write to closed descriptor ${fd}`);
      return NODE_FILES.writeSync(fd, bytes);
    },
    closeSync: (fd) => {
      open.delete(fd);
      NODE_FILES.closeSync(fd);
    },
  };
  const log = new RevisionLog(file, false, files);
  const start = log.revision;
  let commits = 0;
  let failed = 0;
  // Commits of one page each until well past the first rewrite, whose open fails once.
  for (let page = 1; commits < 6_000; page = (page % 40) + 1) {
    if (commits === 3_000) failNextTmp = true;
    try {
      log.onWalFrame(page, 40);
    } catch (e) {
      expect((e as Error).message).toMatch(/EMFILE/);
      failed++;
    }
    commits++;
  }
  expect(failed).toBe(1);
  expect(log.seq).toBe(6_000);
  expect([...(log.pagesSince(start) ?? [])].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
  log.close();
  // Reopened (this process closed it), it answers the same.
  const again = new RevisionLog(file, false, files);
  expect(again.seq).toBe(6_000);
  expect(again.pagesSince(`${again.generation}.5990`)?.size).toBe(10);
  again.close();
});
