/**
 * PageWrites (src/server/page-writes.ts) against a plain list of every commit's pages, and the
 * revision log over long histories: through its rewrites and reopens, every revision a client
 * held is served exactly the pages written after it, and the file stays within a bound that
 * follows the database's pages, not its commits.
 */
import * as fs from 'node:fs';
import { expect, test } from 'vitest';
import { PageWrites } from '../../src/server/page-writes.js';
import { RevisionLog } from '../../src/server/revlog.js';
import { int, rng, testSeed } from '../support/generate.js';
import { tempDir } from '../support/server.js';

const sorted = (s: Iterable<number>): number[] => [...s].sort((a, b) => a - b);

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
  const seed = testSeed();
  const random = rng(seed);
  const at = `seed ${seed} (OUTPOST_SEED=${seed} replays it)`;
  const file = `${tempDir('outpost-page-writes-')}/db-revlog`;
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
  // At most 2,048 commit records (here more than two per page), what a rewrite wrote (one per
  // page at most) and a boot record per reopen, each at most 37 bytes here.
  expect(largest, at).toBeLessThan(40 + (2048 + 60 + 60) * 37);
  log.close();
});
