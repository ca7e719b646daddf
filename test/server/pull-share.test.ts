/**
 * Identical whole pulls share one answer (src/server/pull-share.ts): every client still gets
 * exactly its own revision's bytes, kept answers are bounded and dropped, a restarted server
 * serves none of the last process's, and `/metrics` exports SQLite's heap and the shared answers.
 *
 * The reference for "exactly its revision's bytes" is a pull that is never shared: the same
 * request with a page selector naming every page, which the server builds page by page and
 * answers with the same header, so the two must be equal byte for byte.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { PullStreamReader } from '../../src/protocol/pull-updates.js';
import { encodeRoaring } from '../../src/protocol/roaring.js';
import type { OutpostServer } from '../../src/server/server.js';
import { int, pick, rng, testSeed } from '../support/generate.js';
import { spawnGroup, stopGroup } from '../support/processes.js';
import { rawPull, runBatch, startServer, tempDir } from '../support/server.js';

/** An answer's header. */
function headerOf(body: Uint8Array): { revision: string; dbSize: number; applyMode: number } {
  const reader = new PullStreamReader();
  reader.push(body);
  const header = reader.finish();
  return { revision: header.serverRevision, dbSize: header.dbSize, applyMode: header.applyMode };
}

/** A pull that is never shared: every page named by the selector. */
async function referencePull(db: string, clientRevision: string, dbSize: number): Promise<Uint8Array> {
  const res = await retried(() => rawPull(db, { clientRevision, serverPagesSelector: encodeRoaring(Array.from({ length: dbSize }, (_, i) => i)) }));
  return res.body;
}

/** A whole pull (a first one, or from a revision the server does not know: ReplaceBase). */
function wholePull(db: string, clientRevision = ''): Promise<{ status: number; body: Uint8Array }> {
  return retried(() => rawPull(db, { clientRevision }));
}

/** Waits out 429s as the sync client does (the builds are charged to the database's share). */
async function retried<T extends { status: number; headers: Headers }>(call: () => Promise<T>): Promise<T> {
  for (;;) {
    const res = await call();
    if (res.status !== 429) {
      expect(res.status).toBe(200);
      return res;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000 * Number(res.headers.get('retry-after') ?? 1)));
  }
}

/** A metric's value (summed over its labels) from a scrape of `/metrics`. */
async function metric(base: string, name: string): Promise<number> {
  // A connection of its own: a kept-alive one may be closing by now on a loaded machine.
  const text = await new Promise<string>((resolve, reject) => {
    http
      .get(`${base}/metrics`, { agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`).exec(line);
    if (m) {
      sum += Number(m[1]);
      found = true;
    }
  }
  if (!found) throw new Error(`${name} is not in /metrics`);
  return sum;
}

const bulk = (table: string, rows: number, bytes: number): string =>
  `INSERT INTO ${table}(v) SELECT randomblob(${bytes}) FROM (WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ${rows}) SELECT i FROM s)`;

async function write(db: string, ...sql: string[]): Promise<void> {
  for (;;) {
    const r = await runBatch(db, '', ...sql);
    if (r.status === 429) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      continue;
    }
    expect(r.status).toBe(200);
    expect(r.errors.every((e) => e === null), JSON.stringify(r.errors)).toBe(true);
    return;
  }
}

describe('identical whole pulls share one answer', () => {
  let server: OutpostServer;
  let url = '';

  beforeAll(async () => {
    // A long body time: kept answers are dropped only when the databases move on.
    ({ server, url } = await startServer({ auth: false, bodyTimeoutMs: 120_000, shareOfServer: 1 }));
  });
  afterAll(async () => {
    await server.close();
  });

  test('generated: concurrent identical and different-revision pulls with writes in between each get exactly their revision\'s bytes, and each answer is built once', async () => {
    const seed = testSeed();
    console.log(`pull-share seed=${seed}`);
    const random = rng(seed);
    const names = ['alpha', 'beta'];
    for (const name of names) await write(`${url}/db/${name}`, 'CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)', bulk('t', 400, 3000));
    /** Reference answers by database, client revision and revision. */
    const references = new Map<string, Uint8Array>();
    /** The newest revision of each database known to the test: an answer to a later pull is never older. */
    const latest = new Map<string, string>();
    const seqOf = (revision: string): number => Number(revision.slice(revision.lastIndexOf('.') + 1));
    const takeReferences = async (name: string): Promise<void> => {
      const db = `${url}/db/${name}`;
      for (const clientRevision of ['', 'gone.7']) {
        // The header of a small selector pull names the revision and size; nothing writes meanwhile.
        const probe = await retried(() => rawPull(db, { clientRevision, serverPagesSelector: encodeRoaring([0]) }));
        const { revision, dbSize } = headerOf(probe.body);
        latest.set(name, revision);
        references.set(`${name} ${clientRevision} ${revision}`, await referencePull(db, clientRevision, dbSize));
      }
    };
    for (const name of names) await takeReferences(name);
    let pulls = 0;
    const keys = new Set<string>();
    const rounds = 4;
    for (let round = 0; round < rounds; round++) {
      const answers: Promise<void>[] = [];
      const count = int(random, 6, 12);
      for (let i = 0; i < count; i++) {
        const name = pick(random, names);
        const clientRevision = pick(random, ['', '', 'gone.7']);
        const known = latest.get(name)!;
        answers.push(
          wholePull(`${url}/db/${name}`, clientRevision).then(({ body }) => {
            const { revision } = headerOf(body);
            expect(seqOf(revision), `seed ${seed}: a pull issued at ${known} got ${revision}`).toBeGreaterThanOrEqual(seqOf(known));
            keys.add(`${name} ${clientRevision} ${revision}`);
            pulls++;
            // Checked once the round's references are all taken.
            checks.push([`${name} ${clientRevision} ${revision}`, body]);
          }),
        );
      }
      const checks: [string, Uint8Array][] = [];
      // Writes while the pulls are under way; after each, that revision's references are taken
      // before the next write, so every revision an answer can carry has its reference.
      const writes = (async () => {
        for (let w = int(random, 0, 2); w > 0; w--) {
          const name = pick(random, names);
          await write(`${url}/db/${name}`, bulk('t', int(random, 1, 60), int(random, 100, 4000)), `UPDATE t SET v = zeroblob(${int(random, 1, 500)}) WHERE id = ${int(random, 1, 400)}`);
          await takeReferences(name);
        }
      })();
      await Promise.all([...answers, writes]);
      for (const [key, body] of checks) {
        const reference = references.get(key);
        expect(reference, `seed ${seed}: no reference for ${key}`).toBeDefined();
        expect(Buffer.compare(body, reference!), `seed ${seed}: round ${round}, ${key}`).toBe(0);
      }
      // A commit drops its database's kept answers at once (no pull needed to notice): after a
      // write to some databases, only the others' answers are kept.
      const moved = names.filter(() => random() < 0.5);
      const keptBefore = await metric(url, 'outpost_pull_spool_answers');
      const keptOfUnmoved = [...keys].filter((key) => {
        const name = key.split(' ')[0]!;
        return !moved.includes(name) && key.endsWith(` ${latest.get(name)!}`);
      }).length;
      for (const name of moved) {
        await write(`${url}/db/${name}`, `UPDATE t SET v = zeroblob(${int(random, 1, 500)}) WHERE id = ${int(random, 1, 400)}`);
        await takeReferences(name);
      }
      expect(await metric(url, 'outpost_pull_spool_answers'), `seed ${seed}: round ${round}, kept answers after writes to ${moved.join(', ') || 'none'} (${keptBefore} before)`).toBe(keptOfUnmoved);
    }
    // Each distinct answer was built once and kept; every other pull was answered from it.
    const kept = await metric(url, 'outpost_pull_spool_kept_total');
    const hits = await metric(url, 'outpost_pull_spool_hits_total');
    console.log(`pull-share seed=${seed}: ${pulls} whole pulls, ${keys.size} distinct answers, ${hits} shared`);
    expect(kept, `seed ${seed}`).toBe(keys.size);
    expect(hits, `seed ${seed}`).toBe(pulls - keys.size);
  });
});

describe('kept answers are bounded', () => {
  /** Makes databases of about 2 MiB each, and returns one whole answer's size. */
  async function fillDatabases(base: string, names: string[]): Promise<number> {
    for (const name of names) await write(`${base}/db/${name}`, 'CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)', bulk('t', 500, 3500));
    return (await wholePull(`${base}/db/${names[0]}`)).body.length;
  }

  test('past the disk budget the least recently used answer is dropped, and an answer is dropped at the commit that moves its database on', async () => {
    // Room for one answer of about 2 MiB, not two.
    const { server, url } = await startServer({ auth: false, maxPullSpoolBytes: 3 * 1024 * 1024, shareOfServer: 1 });
    try {
      const size = await fillDatabases(url, ['a', 'b']);
      expect(size).toBeGreaterThan(1024 * 1024);
      expect(await metric(url, 'outpost_pull_spool_answers')).toBe(1);
      expect(await metric(url, 'outpost_pull_spool_bytes')).toBe(size);
      await wholePull(`${url}/db/a`);
      expect(await metric(url, 'outpost_pull_spool_hits_total')).toBe(1);
      // b's answer takes the budget: a's is dropped, and a is built again.
      await wholePull(`${url}/db/b`);
      const rebuilt = await wholePull(`${url}/db/a`);
      expect(await metric(url, 'outpost_pull_spool_hits_total')).toBe(1);
      expect(await metric(url, 'outpost_pull_spool_kept_total')).toBe(3);
      expect(await metric(url, 'outpost_pull_spool_answers')).toBe(1);
      // A write moves a on: its kept answer is dropped at the commit, and never served.
      await write(`${url}/db/a`, 'UPDATE t SET v = zeroblob(10) WHERE id = 1');
      expect(await metric(url, 'outpost_pull_spool_answers')).toBe(0);
      expect(await metric(url, 'outpost_pull_spool_bytes')).toBe(0);
      const after = await wholePull(`${url}/db/a`);
      expect(headerOf(after.body).revision).not.toBe(headerOf(rebuilt.body).revision);
      expect(Buffer.compare(after.body, await referencePull(`${url}/db/a`, '', headerOf(after.body).dbSize))).toBe(0);
      expect(await metric(url, 'outpost_pull_spool_hits_total')).toBe(1);
      expect(await metric(url, 'outpost_pull_spool_kept_total')).toBe(4);
      expect(await metric(url, 'outpost_pull_spool_answers')).toBe(1);
    } finally {
      await server.close();
    }
  });

  test('an answer nobody reads is dropped after the body time limit', async () => {
    const { server, url } = await startServer({ auth: false, bodyTimeoutMs: 3000, shareOfServer: 1 });
    try {
      await fillDatabases(url, ['idle']);
      await vi.waitFor(async () => expect(await metric(url, 'outpost_pull_spool_answers')).toBe(0), { timeout: 30_000, interval: 50 });
      expect(await metric(url, 'outpost_pull_spool_bytes')).toBe(0);
    } finally {
      await server.close();
    }
  });

  test('with maxPullSpoolBytes 0 nothing is kept', async () => {
    const { server, url } = await startServer({ auth: false, maxPullSpoolBytes: 0, shareOfServer: 1 });
    try {
      await fillDatabases(url, ['off']);
      const again = await wholePull(`${url}/db/off`);
      expect(again.body.length).toBeGreaterThan(1024 * 1024);
      expect(await metric(url, 'outpost_pull_spool_kept_total')).toBe(0);
      expect(await metric(url, 'outpost_pull_spool_hits_total')).toBe(0);
    } finally {
      await server.close();
    }
  });
});

describe('a restarted server serves no answer of the last process', () => {
  test('killed while answers are kept, a restarted server builds its answer anew, and no spool file is left', async () => {
    const dataDir = tempDir('outpost-pull-share-crash-');
    const start = async (): Promise<{ stop: () => Promise<void>; base: string }> => {
      const child = spawnGroup(process.execPath, ['--import', 'tsx', 'src/server/cli.ts', 'serve', '--data', dataDir, '--port', '0', '--no-auth', '--share-of-server', '1'], { stdio: ['ignore', 'pipe', 'inherit'] });
      const base = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout!.on('data', (c: Buffer) => {
          out += c.toString();
          const m = /listening on (http:\/\/\S+)/.exec(out);
          if (m) resolve(m[1]!.replace(/\/$/, ''));
        });
        child.once('exit', (code) => reject(new Error(`server exited early (${code}): ${out}`)));
      });
      return { stop: () => stopGroup(child, 'SIGKILL'), base };
    };
    let server = await start();
    try {
      const db = `${server.base}/db/crashy`;
      await write(db, 'CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)', bulk('t', 500, 3500));
      const first = await wholePull(db);
      expect(Buffer.compare((await wholePull(db)).body, first.body)).toBe(0);
      expect(await metric(server.base, 'outpost_pull_spool_hits_total')).toBe(1);
      // Killed with an answer kept and its file open.
      await server.stop();
      server = await start();
      const again = await wholePull(`${server.base}/db/crashy`);
      const { revision, dbSize } = headerOf(again.body);
      // A killed process's revision log is trusted on the same boot: the revision is the same,
      // and its answer is built anew (the index of kept answers died with the process).
      expect(revision).toBe(headerOf(first.body).revision);
      expect(Buffer.compare(again.body, await referencePull(`${server.base}/db/crashy`, '', dbSize))).toBe(0);
      expect(await metric(server.base, 'outpost_pull_spool_hits_total')).toBe(0);
      expect(await metric(server.base, 'outpost_pull_spool_kept_total')).toBe(1);
      // Spool files are unlinked as soon as they are made: the killed process left none.
      expect(readdirSync(join(dataDir, '.pulls'))).toEqual([]);
    } finally {
      await server.stop();
    }
  });

  test('a spool file a dead process left behind is removed when a server starts; a live process\'s is not', async () => {
    const dataDir = tempDir('outpost-pull-share-stale-');
    const pulls = join(dataDir, '.pulls');
    mkdirSync(pulls, { recursive: true });
    // A process that has exited: its pid names no process now.
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    writeFileSync(join(pulls, `pull-${dead}-abc`), 'stale');
    writeFileSync(join(pulls, `pull-${process.ppid}-def`), 'in use');
    const { server } = await startServer({ auth: false, dataDir });
    try {
      expect(existsSync(join(pulls, `pull-${dead}-abc`))).toBe(false);
      expect(existsSync(join(pulls, `pull-${process.ppid}-def`))).toBe(true);
    } finally {
      await server.close();
    }
  });
});

describe('/metrics', () => {
  test("exports SQLite's heap, its bound, and the shared pull answers", async () => {
    const maxHeapBytes = 300 * 1024 * 1024;
    const { server, url } = await startServer({ auth: false, maxHeapBytes });
    try {
      await write(`${url}/db/m`, 'CREATE TABLE t(v)', "INSERT INTO t VALUES ('x')");
      const used = await metric(url, 'outpost_sqlite_heap_bytes');
      expect(used).toBeGreaterThan(0);
      expect(used).toBeLessThanOrEqual(maxHeapBytes);
      expect(await metric(url, 'outpost_sqlite_heap_peak_bytes')).toBeGreaterThanOrEqual(used);
      expect(await metric(url, 'outpost_sqlite_heap_limit_bytes')).toBe(maxHeapBytes);
      expect(await metric(url, 'outpost_sqlite_wasm_memory_bytes')).toBeGreaterThan(used);
      for (const name of ['outpost_pull_spool_answers', 'outpost_pull_spool_bytes', 'outpost_pull_spool_hits_total', 'outpost_pull_spool_kept_total']) {
        expect(await metric(url, name), name).toBe(0);
      }
    } finally {
      await server.close();
    }
  });
});
