/**
 * A large pull streams (issue 15): its answer goes to the staging file as it arrives and is
 * never held whole, neither by the transport nor by the download. A generated answer (seeded:
 * its page count, page bytes and the sizes of the pieces it arrives in) is served by a fetch
 * whose body makes each piece only when the reader asks for the next one. Whenever it is asked,
 * the bytes it has made minus the bytes of the messages already staged must be less than one
 * message: a transport or download that held the answer (or a queue of pieces) ran past that.
 * No clock is involved: the bound is on bytes, checked at each piece.
 *
 * And the apply reads staged pages into one scratch page, not a new buffer per page, and runs
 * with a bounded page cache (apply.ts APPLY_CACHE_KIB), giving the connection's setting back.
 */
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { open } from '../../src/node/index.js';
import { MemoryDirectory } from '../../src/opfs-vfs/storage/memory.js';
import { PAGE_BYTES, encodePage, encodePullHeader } from '../../src/protocol/pull-updates.js';
import { fetchPull } from '../../src/sync/pull.js';
import { PullStaging, staged } from '../../src/sync/staging.js';
import { HttpTransport } from '../../src/sync/transport.js';
import { type Random, int, rng, testSeed } from '../support/generate.js';
import { batch, rawPipeline, startServer, tempDir } from '../support/server.js';

const CASES = 8;

/** A generated page: random bytes every 61st byte, its number in the first four. */
function pageImage(random: Random, pageNumber: number): Uint8Array {
  const page = new Uint8Array(PAGE_BYTES);
  for (let i = 4; i < PAGE_BYTES; i += 61) page[i] = int(random, 0, 255);
  new DataView(page.buffer).setUint32(0, pageNumber);
  return page;
}

/** The messages of an answer of `pages` pages (header first), made one at a time. */
function* answerMessages(random: Random, pages: number): Generator<Uint8Array> {
  yield encodePullHeader({ serverRevision: 'gen.2', dbSize: pages, applyMode: 0 });
  for (let n = 0; n < pages; n++) yield encodePage(n, pageImage(random, n + 1));
}

test('a pull holds less than one message of its answer outside the staging file at any piece', async () => {
  const seed = testSeed();
  for (let c = 0; c < CASES; c++) {
    const random = rng(seed + c);
    const pages = int(random, 300, 1200);
    const maxPiece = int(random, 100, 200_000);
    // The sizes of the messages made, in order (the header first), and the bytes of those staged.
    const made: number[] = [];
    let madeBytes = 0;
    let stagedBytes = 0;
    let worstHeld = 0;
    const messages = answerMessages(random, pages);
    let carry = new Uint8Array(0);
    const body = new ReadableStream<Uint8Array>(
      {
        // Called only when the reader waits for a piece (high water mark 0): nothing is queued.
        pull(controller) {
          worstHeld = Math.max(worstHeld, madeBytes - carry.length - stagedBytes);
          const size = int(random, 1, maxPiece);
          while (carry.length < size) {
            const next = messages.next();
            if (next.done) break;
            made.push(next.value.length);
            madeBytes += next.value.length;
            const joined = new Uint8Array(carry.length + next.value.length);
            joined.set(carry);
            joined.set(next.value, carry.length);
            carry = joined;
          }
          if (carry.length === 0) {
            controller.close();
            return;
          }
          controller.enqueue(carry.slice(0, size));
          carry = carry.slice(Math.min(size, carry.length));
        },
      },
      { highWaterMark: 0 },
    );
    const fetchAnswer = (async () => new Response(body, { status: 200 })) as unknown as typeof fetch;
    const transport = new HttpTransport({ url: 'http://pull.invalid/db/x', fetch: fetchAnswer });
    const staging = new PullStaging(new MemoryDirectory(`held-${seed}-${c}`));
    const collect = async () => {
      const collector = await staged(staging)();
      const add = collector.add.bind(collector);
      collector.add = (pageNumber, page) => {
        add(pageNumber, page);
        // Pages arrive in order: page n is message n (the header is message 0).
        stagedBytes += (pageNumber === 1 ? made[0]! : 0) + made[pageNumber]!;
      };
      return collector;
    };
    const update = await fetchPull(transport, 'gen.1', 0, undefined, collect);
    expect(update?.pages.size, `seed ${seed + c}`).toBe(pages);
    // One message cut by a piece, and the header until the first page is staged.
    expect(worstHeld, `seed ${seed + c}: ${pages} pages in pieces of up to ${maxPiece} bytes`).toBeLessThan(Math.max(...made) + made[0]!);
    update?.pages.release?.();
    staging.close();
  }
});

test('the apply reads staged pages into its scratch page, each as it was staged', async () => {
  const seed = testSeed();
  const random = rng(seed);
  const staging = new PullStaging(new MemoryDirectory(`scratch-${seed}`));
  const pages = await staged(staging)();
  // More pages than one staging write gathers (page-run.ts RUN_PAGES).
  const count = int(random, 300, 700);
  const images = Array.from({ length: count }, (_, i) => pageImage(random, i + 1));
  images.forEach((image, i) => pages.add(i + 1, image));
  pages.finish();
  const scratch = new Uint8Array(PAGE_BYTES);
  for (let n = 1; n <= count; n++) {
    const page = pages.get(n, scratch);
    // After `finish` every page is in the file: none comes back in a buffer of its own.
    expect(page === scratch, `seed ${seed}: page ${n} read into the scratch page`).toBe(true);
    expect(page, `seed ${seed}: page ${n}`).toEqual(images[n - 1]);
  }
  pages.release();
  staging.close();
});

test('a pull gives back the page cache size the connection had', async () => {
  const seed = testSeed();
  const random = rng(seed);
  const { server, url: base } = await startServer({ auth: false });
  try {
    const url = `${base}/db/cache-${seed}`;
    await rawPipeline(url, batch('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)'));
    const db = await open(join(tempDir('outpost-pull-cache-'), 'db'), { engine: 'inline', sync: { url } });
    try {
      // Above and below the apply's own bound, in pages or in KiB.
      const size = int(random, 0, 1) === 0 ? -int(random, 64, 65_536) : int(random, 16, 16_000);
      await db.run(`PRAGMA cache_size=${size}`);
      const rows = int(random, 50, 1500);
      const filled = await rawPipeline(url, batch(`WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ${rows}) INSERT INTO t SELECT i, randomblob(3000) FROM s`));
      expect(filled.status).toBe(200);
      expect(await db.pull(), `seed ${seed}`).toBe(true);
      expect(await db.get('PRAGMA cache_size'), `seed ${seed}: cache_size ${size}`).toEqual({ cache_size: size });
    } finally {
      await db.close();
    }
  } finally {
    await server.close();
  }
});
