/**
 * The streamed bootstrap (sync/bootstrap.ts): a fresh database takes the server's image
 * straight into its main file, larger than every buffer on the way (more than the in-memory
 * bootstrap's chunk of `BOOTSTRAP_CHUNK_PAGES`, many runs of pages, many network pieces). A crash at a seeded choice of cut points (the k-th write or truncation) leaves a
 * database that the next open never takes for a synced one: it starts the bootstrap over and
 * ends byte for byte on the server's image. On the memory and Node backends.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Database } from '../../src/database.js';
import { connectionDriver } from '../../src/driver.js';
import type { StorageDirectory } from '../../src/opfs-vfs/storage/backend.js';
import { DB_FILE, SYNC_STATE_FILE } from '../../src/opfs-vfs/storage/files.js';
import { MemoryDirectory } from '../../src/opfs-vfs/storage/memory.js';
import { NodeDirectory } from '../../src/opfs-vfs/storage/node.js';
import { PAGE_BYTES, PullStreamReader, encodePage, encodePullHeader } from '../../src/protocol/pull-updates.js';
import type { OutpostServer } from '../../src/server/server.js';
import { openSynced } from '../../src/sync/open.js';
import { BOOTSTRAP_CHUNK_PAGES } from '../../src/sync/pull.js';
import { SyncStateFile } from '../../src/sync/state-file.js';
import { CrashDisk } from '../support/crash-disk.js';
import { int, rng, testSeed } from '../support/generate.js';
import { batch, rawPipeline, rawPull, startServer, tempDir } from '../support/server.js';

const ENGINE = { durability: 'normal', intMode: 'number' } as const;
/** Cut points tried per backend. */
const CUTS = 3;
let server: OutpostServer;
let url: string;
let rowsNow = 0;

beforeAll(async () => {
  let base: string;
  // No fair-share limit: these tests bootstrap the same database again and again, and pull
  // builds are charged to its share (429 when used up), which this file does not test.
  ({ server, url: base } = await startServer({ auth: false, shareOfServer: 1 }));
  url = `${base}/db/stream`;
  await rawPipeline(url, batch('CREATE TABLE big(id INTEGER PRIMARY KEY, payload BLOB)'));
  // About 1.5 bootstrap chunks of pages.
  const rows = Math.ceil((BOOTSTRAP_CHUNK_PAGES * 1.5 * PAGE_BYTES) / 1000 / 1000);
  for (let i = 0; i < rows; i++) {
    await filled(batch('WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) INSERT INTO big(payload) SELECT randomblob(1000) FROM c'));
  }
  rowsNow = rows * 1000;
}, 120_000);
afterAll(() => server.close());

/** Runs a pipeline, waiting as the server's time share says (a bulk fill runs into it). */
async function filled(body: unknown): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    // A kept-alive connection the server closed meanwhile fails once with ECONNRESET (undici).
    const res = await rawPipeline(url, body).catch((e: unknown) => {
      if (attempt > 0) throw e;
      return null;
    });
    if (!res) continue;
    if (res.status !== 429) {
      expect(res.status).toBe(200);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000 * Number(res.headers.get('retry-after') ?? 1)));
  }
}

/** The server's image, page by page, from one whole pull. */
async function serverImage(): Promise<Uint8Array> {
  const { status, body } = await rawPull(url, { clientRevision: '' });
  expect(status).toBe(200);
  const reader = new PullStreamReader();
  const pages = reader.push(body);
  const header = reader.finish();
  const image = new Uint8Array(header.dbSize * PAGE_BYTES);
  for (const p of pages) image.set(p.page, p.pageId * PAGE_BYTES);
  return image;
}

/** Byte equality of two images (toEqual's element-wise diff of megabytes is slow). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

async function readFile(directory: StorageDirectory, name: string): Promise<Uint8Array> {
  const file = await directory.open(name);
  try {
    const bytes = new Uint8Array(file.size());
    file.read(bytes, 0);
    return bytes;
  } finally {
    file.close();
  }
}

async function phaseOf(directory: StorageDirectory): Promise<{ phase: string; revision: string | null }> {
  const state = SyncStateFile.load(await directory.open(SYNC_STATE_FILE), url);
  try {
    return { phase: state.value.phase, revision: state.value.revision };
  } finally {
    state.close();
  }
}

/** Opens a synced database on `directory` (bootstrapping it when fresh); the caller closes it. */
async function openDb(directory: StorageDirectory): Promise<Database> {
  const { conn, engine } = await openSynced(directory, ENGINE, { url, retries: 0 });
  return new Database(directory.label, connectionDriver(conn, engine));
}

const backends: { name: string; base: () => StorageDirectory }[] = [
  { name: 'memory', base: () => new MemoryDirectory('bootstrap-stream') },
  { name: 'node', base: () => new NodeDirectory(join(tempDir('outpost-bootstrap-stream-'), 'db')) },
];

describe.each(backends)('streamed bootstrap, $name backend', ({ base }) => {
  test('a bootstrap larger than every buffer lands byte for byte as the server image', async () => {
    const directory = base();
    const db = await openDb(directory);
    try {
      expect((await db.syncStatus())?.lastError).toBeNull();
      expect((await db.syncStatus())?.revision).not.toBeNull();
      expect(await db.get('SELECT count(*) AS n FROM big')).toEqual({ n: rowsNow });
      expect(await db.get('PRAGMA integrity_check')).toEqual({ integrity_check: 'ok' });
    } finally {
      await db.close();
    }
    expect(sameBytes(await readFile(directory, DB_FILE), await serverImage())).toBe(true);
  }, 120_000);

  test('the main file takes its whole size before the first page is written, so no page write extends it', async () => {
    const watching = new CountingDisk(base());
    const db = await openDb(watching.process());
    await db.close();
    const writes = watching.mainFile.filter((op) => op.kind === 'write');
    expect(writes.length).toBeGreaterThan(BOOTSTRAP_CHUNK_PAGES / 256);
    const image = await serverImage();
    // The first change to the main file is the truncation to the image's size.
    expect(watching.mainFile[0]).toEqual({ kind: 'truncate', end: image.length, sizeBefore: 0 });
    expect(writes.filter((w) => w.end > w.sizeBefore)).toEqual([]);
  }, 120_000);

  test('an answer that breaks off mid-page fails the bootstrap cleanly; the next pull bootstraps whole', async () => {
    const directory = base();
    let pulls = 0;
    // The first pull-updates answer arrives cut in the middle of a page.
    const cutting = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const res = await fetch(input, init);
      if (!String(input).endsWith('/pull-updates') || ++pulls > 1) return res;
      const body = new Uint8Array(await res.arrayBuffer());
      return new Response(body.subarray(0, Math.floor(body.length / 2) + 7), { status: 200 });
    }) as typeof fetch;
    const { conn, engine } = await openSynced(directory, ENGINE, { url, retries: 0, fetch: cutting });
    const db = new Database(directory.label, connectionDriver(conn, engine));
    try {
      const status = await db.syncStatus();
      expect(status?.revision).toBeNull();
      expect(status?.lastError?.code).toBe('PROTOCOL');
      expect(await db.get("SELECT count(*) AS n FROM sqlite_schema WHERE name = 'big'")).toEqual({ n: 0 });
      expect(await db.pull()).toBe(true);
      expect(await db.get('SELECT count(*) AS n FROM big')).toEqual({ n: rowsNow });
    } finally {
      await db.close();
    }
    expect(await phaseOf(directory)).toMatchObject({ phase: 'idle' });
  }, 120_000);

  test('a page numbered past the announced size fails the bootstrap with PROTOCOL and writes nothing past the file', async () => {
    const directory = base();
    // A header announcing 2 pages, then a page whose id lies about 4 PB into the file.
    const lying = (async (input: RequestInfo | URL, init?: RequestInit) => {
      if (!String(input).endsWith('/pull-updates')) return fetch(input, init);
      const page = new Uint8Array(4096);
      return new Response(Buffer.concat([encodePullHeader({ serverRevision: 'liar.1', dbSize: 2, applyMode: 0 }), encodePage(2 ** 40, page)]), { status: 200 });
    }) as typeof fetch;
    const { conn, engine } = await openSynced(directory, ENGINE, { url, retries: 0, fetch: lying });
    const db = new Database(directory.label, connectionDriver(conn, engine));
    try {
      const status = await db.syncStatus();
      expect(status?.revision).toBeNull();
      expect(status?.lastError?.code).toBe('PROTOCOL');
      expect(status?.lastError?.message).toContain('2-page database');
    } finally {
      await db.close();
    }
    expect((await readFile(directory, DB_FILE)).length).toBeLessThanOrEqual(2 * 4096);
  }, 120_000);

  test('a crash mid-bootstrap starts it over at the next open, never opening a half file', async () => {
    const seed = testSeed();
    console.log(`streamed bootstrap crash cuts: OUTPOST_SEED=${seed}`);
    const random = rng(seed);
    // How many changes (writes and truncations) a whole bootstrap makes, to pick cuts among them.
    const counting = new CountingDisk(base());
    await (await openDb(counting.process())).close();
    const total = counting.changes;
    expect(total).toBeGreaterThan(BOOTSTRAP_CHUNK_PAGES / 256);
    const cuts = Array.from({ length: CUTS }, () => int(random, 1, total));
    for (const cut of cuts) {
      const disk = new CrashDisk(base());
      disk.crashAt(cut);
      try {
        await (await openDb(disk.process())).close();
      } catch {
        // The process died at the cut: what it did afterwards means nothing.
      }
      disk.crash();
      const left = await phaseOf(disk.base);
      // A partial image is marked: either still bootstrapping, or not begun, or complete.
      expect(['bootstrapping', 'idle'], `cut ${cut} of ${total}, seed ${seed}`).toContain(left.phase);
      const db = await openDb(disk.process());
      try {
        expect((await db.syncStatus())?.revision, `cut ${cut}, seed ${seed}`).not.toBeNull();
        expect(await db.get('PRAGMA integrity_check'), `cut ${cut}, seed ${seed}`).toEqual({ integrity_check: 'ok' });
        expect(await db.get('SELECT count(*) AS n FROM big'), `cut ${cut}, seed ${seed}`).toEqual({ n: rowsNow });
      } finally {
        await db.close();
      }
      expect(sameBytes(await readFile(disk.base, DB_FILE), await serverImage()), `cut ${cut}, seed ${seed}`).toBe(true);
    }
  }, 300_000);
});

/** A CrashDisk that never crashes, counting the changes its processes make (and listing the main file's). */
class CountingDisk {
  changes = 0;
  /** Each write and truncation of the main file: where it ends, and the file's size before it. */
  readonly mainFile: { kind: 'write' | 'truncate'; end: number; sizeBefore: number }[] = [];
  constructor(private readonly base: StorageDirectory) {}
  process(): StorageDirectory {
    const base = this.base;
    return {
      label: base.label,
      open: async (name) => {
        const file = await base.open(name);
        return {
          read: (dst, offset) => file.read(dst, offset),
          size: () => file.size(),
          write: (src, offset) => {
            this.changes++;
            if (name === DB_FILE) this.mainFile.push({ kind: 'write', end: offset + src.length, sizeBefore: file.size() });
            file.write(src, offset);
          },
          truncate: (n) => {
            this.changes++;
            if (name === DB_FILE) this.mainFile.push({ kind: 'truncate', end: n, sizeBefore: file.size() });
            file.truncate(n);
          },
          flush: () => file.flush(),
          close: () => file.close(),
        };
      },
      fileSize: (name) => base.fileSize(name),
      release: () => base.release(),
    };
  }
}
