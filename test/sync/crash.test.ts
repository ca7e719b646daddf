/**
 * Crash injection: the storage backend "dies" at the k-th write, truncate or flush (every
 * later operation fails too, as after a killed process), for every k through a whole sync
 * (push, then a pull that rebases pending local changes). After each crash the database is
 * reopened from its files: it passes integrity_check, still holds every committed local
 * change, and syncing afterwards applies each change on the server exactly once. Each run
 * starts from a copy of one template replica, and the server's rows are put back after it.
 */
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { connectionDriver } from '../../src/driver.js';
import { open } from '../../src/node/index.js';
import { Database } from '../../src/database.js';
import { NodeDirectory } from '../../src/opfs-vfs/storage/node.js';
import type { OutpostServer } from '../../src/server/server.js';
import { openSynced } from '../../src/sync/open.js';
import { CrashingDirectory } from '../support/crashing-directory.js';
import { batch, rawPipeline, startServer, tempDir } from '../support/server.js';

const SUFFIXES = ['', '-wal', '-sync', '-revert', '-replay'];
let server: OutpostServer;
let url: string;
const dir = tempDir('outpost-crash-');
const template = join(dir, 'template.db');

beforeAll(async () => {
  let base: string;
  ({ server, url: base } = await startServer({ auth: false }));
  url = `${base}/db/crash`;
  await rawPipeline(url, batch('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)', 'CREATE TABLE audit(n INTEGER PRIMARY KEY, id INTEGER, v TEXT)'));
  // A TEMP trigger lives in the server's connection only: clients never pull it, so only the
  // server's own applications of a change are counted. Tenants may not create TEMP objects,
  // so the test installs it as the server.
  await server.execTrusted('crash', 'CREATE TEMP TRIGGER t_audit AFTER INSERT ON main.t BEGIN INSERT INTO audit(id, v) VALUES (new.id, new.v); END');
  await rawPipeline(url, batch("INSERT INTO t VALUES (1, 'server seed')"));
  // The template client: synced, then three committed local transactions the server lacks,
  // while the server moved on with a change of its own.
  const db = await open(template, { sync: { url } });
  await db.run("INSERT INTO t VALUES (100, 'local a')");
  await db.transaction(async (tx) => {
    await tx.run("INSERT INTO t VALUES (101, 'local b')");
    await tx.run("UPDATE t SET v = 'local edit' WHERE id = 1");
  });
  await db.exec("INSERT INTO t VALUES (102, 'local c'); CREATE INDEX t_v ON t(v);");
  await db.close();
  await rawPipeline(url, batch("INSERT INTO t VALUES (200, 'server later')"));
});
afterAll(() => server.close());

function cloneTemplate(to: string): void {
  for (const s of SUFFIXES) if (existsSync(template + s)) copyFileSync(template + s, to + s);
}

test('a crash at any write or flush during sync loses nothing and applies nothing twice', async () => {
  const engineOptions = { durability: 'normal', intMode: 'number' } as const;
  let crashes = 0;
  for (let k = 1; k < 2000; k++) {
    const path = join(dir, `run${k}.db`);
    cloneTemplate(path);
    const crashing = new CrashingDirectory(new NodeDirectory(path), k);
    let finished = false;
    try {
      const { conn, engine } = await openSynced(crashing, engineOptions, { url });
      const db = new Database(path, connectionDriver(conn, engine));
      await db.sync();
      finished = true;
    } catch (e) {
      if (!crashing.crashed) throw e;
    }
    if (finished) break;
    crashes++;
    // The process is gone; a new one opens the same files.
    const { conn, engine } = await openSynced(new NodeDirectory(path), engineOptions, { url });
    const db = new Database(path, connectionDriver(conn, engine));
    expect(await db.get('PRAGMA integrity_check'), `crash at ${k}`).toEqual({ integrity_check: 'ok' });
    const local = await db.query<{ id: number; v: string }>('SELECT id, v FROM t WHERE id BETWEEN 100 AND 199 ORDER BY id');
    expect(local.map((r) => r.v), `crash at ${k}`).toEqual(['local a', 'local b', 'local c']);
    expect(await db.get('SELECT v FROM t WHERE id = 1'), `crash at ${k}`).toEqual({ v: 'local edit' });
    await db.sync();
    expect(await db.get("SELECT v FROM t WHERE id = 200"), `crash at ${k}`).toEqual({ v: 'server later' });
    expect((await db.syncStatus())?.pendingChanges, `crash at ${k}`).toBe(0);
    await db.close();
    // The server took this run's three changes once, though a crash may have come after it did.
    expect(await auditCounts(), `crash at ${k}`).toEqual([[100, 1], [101, 1], [102, 1]]);
    await resetServer();
  }
  expect(crashes).toBeGreaterThan(10);
}, 300_000);

/** How many times the server applied each local insert (the TEMP trigger's audit rows). */
async function auditCounts(): Promise<number[][]> {
  const audit = await rawPipeline(url, batch('SELECT id, count(*) FROM audit WHERE id BETWEEN 100 AND 199 GROUP BY id ORDER BY id'));
  return audit.json.results[0].response.result.step_results[0].rows.map((r: { value: string }[]) => [Number(r[0]!.value), Number(r[1]!.value)]);
}

/**
 * Puts the server's rows back as the template knew them. Each run is a copy of the template at
 * another path, so it syncs as a replica of its own (a new client id): its inserts would
 * otherwise find the previous run's rows and be refused as insert collisions.
 */
async function resetServer(): Promise<void> {
  await server.execTrusted('crash', "DELETE FROM t WHERE id BETWEEN 100 AND 199; UPDATE t SET v = 'server seed' WHERE id = 1; DELETE FROM audit WHERE id BETWEEN 100 AND 199; DROP INDEX IF EXISTS t_v");
}
