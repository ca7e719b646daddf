/**
 * A server (or a proxy) whose bootstrap chunks leave out pages it announced: the client stops at
 * the first such chunk with a PROTOCOL error (pull.ts `fetchBootstrap`). It used to ask for every
 * chunk the header's page count implies before it counted what came: a garbage header of 2^29
 * pages with one page in each answer made the client send 174,275 requests and never settle.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { SyncError } from '../../src/errors.js';
import { open } from '../../src/node/index.js';
import { APPLY_INCREMENTAL, decodePullRequest, encodePage, encodePullHeader } from '../../src/protocol/pull-updates.js';
import { decodeRoaring } from '../../src/protocol/roaring.js';
import { BOOTSTRAP_CHUNK_PAGES } from '../../src/sync/pull.js';
import { int, rng, testSeed } from '../support/generate.js';
import { tempDir } from '../support/server.js';

/** What the fake server answers: a database of `dbPages` pages whose chunk number `shortChunk` (and only it) leaves pages out. */
interface Case {
  dbPages: number;
  shortChunk: number;
  /** How many of that chunk's pages it sends (fewer than it should). */
  sent: number;
}

let current: Case = { dbPages: 1, shortChunk: 0, sent: 0 };
let chunkRequests = 0;
let server: http.Server;
let base = '';
const dir = tempDir('outpost-bootstrap-chunks-');

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      if (!req.url!.endsWith('/pull-updates')) {
        res.writeHead(404, { 'content-type': 'application/json' });
        return void res.end('{"error":"no"}');
      }
      const request = decodePullRequest(new Uint8Array(Buffer.concat(parts)));
      const asked = request.serverPagesSelector.length > 0 ? decodeRoaring(request.serverPagesSelector) : null;
      const answer: Uint8Array[] = [encodePullHeader({ serverRevision: 'r1', dbSize: current.dbPages, applyMode: APPLY_INCREMENTAL })];
      if (asked !== null) {
        const chunk = chunkRequests++;
        const wanted = asked.filter((p) => p < current.dbPages);
        const pages = chunk === current.shortChunk ? wanted.slice(0, current.sent) : wanted;
        for (const p of pages) answer.push(encodePage(p, new Uint8Array(4096)));
      }
      // A whole-image request (the open's bootstrap in place) gets the header alone.
      res.writeHead(200, { 'content-type': 'application/protobuf' });
      res.end(Buffer.concat(answer));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

test('generated: a bootstrap chunk that leaves out announced pages fails the pull with PROTOCOL at that chunk, asking for no more', async () => {
  const seed = testSeed();
  console.log(`bootstrap chunks seed=${seed}`);
  const random = rng(seed);
  for (let round = 0; round < 8; round++) {
    const chunks = int(random, 2, 40);
    const dbPages = (chunks - 1) * BOOTSTRAP_CHUNK_PAGES + int(random, 1, BOOTSTRAP_CHUNK_PAGES);
    const shortChunk = int(random, 0, Math.min(chunks - 1, 4));
    const inChunk = Math.min(BOOTSTRAP_CHUNK_PAGES, dbPages - shortChunk * BOOTSTRAP_CHUNK_PAGES);
    current = { dbPages, shortChunk, sent: int(random, 0, inChunk - 1) };
    const db = await open(join(dir, `c${seed}-${round}.db`), { sync: { url: `${base}/db/x`, retries: 0 } });
    try {
      chunkRequests = 0;
      const error = await db.pull().then(
        () => null,
        (e: unknown) => e,
      );
      const context = JSON.stringify({ seed, round, ...current, chunkRequests });
      expect(error, context).toBeInstanceOf(SyncError);
      expect((error as SyncError).code, context).toBe('PROTOCOL');
      expect(chunkRequests, context).toBe(shortChunk + 1);
      // Nothing of the partial image was applied: the replica is still empty.
      expect(await db.query('SELECT name FROM sqlite_schema'), context).toEqual([]);
    } finally {
      await db.close();
    }
  }
});
