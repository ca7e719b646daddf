/**
 * A server (or a proxy before it) that answers a pull with an update no SQLite can open: a first
 * page that is not a SQLite header, one whose page count is not the update's, or a change of the
 * database's size without the first page. Such an update is refused before anything changes
 * (apply.ts `checkUpdate`): the replica stays readable, its pending write is still pushed, and the
 * next good pull works. Before, it was applied: every later call failed with SQLITE_CORRUPT or
 * NOTADB for good, and the pending write never left the client.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { SyncError } from '../../src/errors.js';
import { open } from '../../src/node/index.js';
import type { OutpostServer } from '../../src/server/server.js';
import { APPLY_INCREMENTAL, encodePage, encodePullHeader } from '../../src/protocol/pull-updates.js';
import { type Random, int, pick, rng, testSeed } from '../support/generate.js';
import { startServer, tempDir } from '../support/server.js';

let server: OutpostServer;
let real = '';
let proxy: http.Server;
let base = '';
/** The body the proxy answers the next pull with instead of the server's; null: pass it through. */
let garbage: Uint8Array | null = null;
const dir = tempDir('outpost-garbage-pull-');

beforeAll(async () => {
  ({ server, url: real } = await startServer({ auth: false }));
  proxy = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      if (garbage !== null && req.url!.endsWith('/pull-updates')) {
        res.writeHead(200, { 'content-type': 'application/protobuf' });
        res.end(garbage);
        garbage = null;
        return;
      }
      void fetch(`${real}${req.url}`, { method: req.method, headers: { 'content-type': String(req.headers['content-type'] ?? '') }, body: Buffer.concat(parts) }).then(async (f) => {
        res.writeHead(f.status, { 'content-type': f.headers.get('content-type') ?? '' });
        res.end(Buffer.from(await f.arrayBuffer()));
      });
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
});
afterAll(async () => {
  proxy.closeAllConnections();
  await new Promise((resolve) => proxy.close(resolve));
  await server.close();
});

/** A page 1 of a SQLite database of 4 KiB pages that says `pages` pages (and that SQLite trusts it). */
function headerPage(pages: number): Uint8Array {
  const page = new Uint8Array(4096);
  page.set(new TextEncoder().encode('SQLite format 3\0'));
  const view = new DataView(page.buffer);
  view.setUint16(16, 4096);
  view.setUint32(24, 7);
  view.setUint32(28, pages);
  view.setUint32(92, 7);
  return page;
}

/** One garbage answer of a generated kind, for a replica of `synced` pages. */
function garbageAnswer(random: Random, synced: number): { kind: string; body: Uint8Array } {
  const kind = pick(random, ['size without page 1', 'page 1 not a header', 'page 1 of another size', 'page 1 of another page size']);
  const dbSize = kind === 'size without page 1' ? pick(random, [1, synced - 1, synced + int(random, 1, 5000)]) : synced + int(random, 0, 3);
  const pages: Uint8Array[] = [];
  if (kind === 'page 1 not a header') pages.push(new Uint8Array(4096).fill(int(random, 0, 255)));
  if (kind === 'page 1 of another size') pages.push(headerPage(dbSize + int(random, 1, 100)));
  if (kind === 'page 1 of another page size') {
    const page = headerPage(dbSize);
    new DataView(page.buffer).setUint16(16, pick(random, [1024, 8192, 512]));
    pages.push(page);
  }
  const parts = [encodePullHeader({ serverRevision: `garbage.${int(random, 1, 1e6)}`, dbSize, applyMode: APPLY_INCREMENTAL }), ...pages.map((p) => encodePage(0, p))];
  return { kind: `${kind} (${dbSize} pages)`, body: Buffer.concat(parts) };
}

test('generated: a pull answered with an update no SQLite could open is refused with PROTOCOL; the replica, its pending write and later syncs are unharmed', async () => {
  const seed = testSeed();
  console.log(`garbage pull seed=${seed}`);
  const random = rng(seed);
  for (let round = 0; round < 6; round++) {
    const url = `${base}/db/g${seed}-${round}`;
    const writer = await open(join(dir, `w${seed}-${round}.db`), { sync: { url } });
    const reader = await open(join(dir, `r${seed}-${round}.db`), { sync: { url } });
    try {
      await writer.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
      for (let i = 0; i < int(random, 1, 30); i++) await writer.run('INSERT INTO t(v) VALUES (?)', [`w${i}`.repeat(int(random, 1, 200))]);
      await writer.push();
      await reader.pull();
      const before = await reader.query('SELECT * FROM t ORDER BY id');
      // The replica's size as pulled (at least 2 pages: the schema and the table).
      const synced = (await reader.get<{ n: number }>('SELECT page_count AS n FROM pragma_page_count()'))!.n;
      await reader.run('INSERT INTO t(v) VALUES (?)', [`pending ${round}`]);
      const { kind, body } = garbageAnswer(random, synced);
      garbage = body;
      const context = JSON.stringify({ seed, round, kind, synced });
      const error = await reader.pull().then(
        () => null,
        (e: unknown) => e,
      );
      expect(error, context).toBeInstanceOf(SyncError);
      expect((error as SyncError).code, context).toBe('PROTOCOL');
      expect(await reader.query('SELECT * FROM t ORDER BY id'), context).toEqual([...before, { id: before.length + 1, v: `pending ${round}` }]);
      expect(await reader.query('PRAGMA integrity_check'), context).toEqual([{ integrity_check: 'ok' }]);
      // The server behaves again: the pending write goes out and comes to the writer.
      await reader.sync();
      await writer.pull();
      expect(await writer.query('SELECT v FROM t WHERE v = ?', [`pending ${round}`]), context).toHaveLength(1);
    } finally {
      garbage = null;
      await writer.close();
      await reader.close();
    }
  }
});
