/**
 * The header values applications own, `PRAGMA user_version` and `application_id`, sync like
 * the schema they describe: a local commit that sets one is a change (pushed as the PRAGMA,
 * replayed after a pull while pending, last push wins), so a pull never resets it and an app's
 * migrations run once on every replica. Generated: several clients run the usual migration
 * pattern (read user_version, run the DDL, set it, one transaction) offline, with reopens,
 * crashes between and in the middle of syncs; every migration must run exactly once per replica
 * (they are written without IF NOT EXISTS, so a second run fails) and user_version converge.
 */
import { afterAll, describe, expect, test } from 'vitest';
import { connectionDriver } from '../../src/driver.js';
import { Database } from '../../src/database.js';
import { SyncError } from '../../src/errors.js';
import type { PipelineRequest, HranaValue } from '../../src/protocol/hrana.js';
import { openSynced } from '../../src/sync/open.js';
import { CrashDisk } from '../support/crash-disk.js';
import { int, rng, testSeed } from '../support/generate.js';
import { type Endpoint, inProcessNetwork, scratchDataDir } from '../support/networks.js';

const network = inProcessNetwork(scratchDataDir('outpost-header-'));
const endpoints: Endpoint[] = [];
afterAll(async () => {
  for (const e of endpoints) await e.close();
});

/** An app's migrations, in order; none may run twice on a replica (each fails the second time). */
const MIGRATIONS = [
  'CREATE TABLE notes(id TEXT PRIMARY KEY NOT NULL, body TEXT)',
  'ALTER TABLE notes ADD COLUMN tag TEXT',
  'CREATE INDEX notes_by_tag ON notes(tag)',
  'CREATE TABLE tags(name TEXT PRIMARY KEY NOT NULL, uses INTEGER NOT NULL DEFAULT 0)',
];

interface Client {
  name: string;
  disk: CrashDisk;
  db: Database;
  offline: boolean;
  /** How many times each migration committed on this replica. */
  runs: number[];
}

async function openClient(server: Endpoint, c: Pick<Client, 'name' | 'disk' | 'offline'>): Promise<Database> {
  const directory = c.disk.process();
  const transport = server.client(() => (directory.dead || c.offline ? 'offline' : 'deliver'));
  const { conn, engine } = await openSynced(directory, { durability: 'normal', intMode: 'number' }, { url: server.url, clientName: c.name, retries: 0 }, transport);
  return new Database(c.name, connectionDriver(conn, engine));
}

/** The app's migration step: what it runs at every start (and here after every sync too). */
async function migrate(c: Client): Promise<void> {
  let ran: number[] = [];
  await c.db.transaction(async (tx) => {
    ran = [];
    const version = Number((await tx.get<{ user_version: number }>('PRAGMA user_version'))!.user_version);
    for (let i = version; i < MIGRATIONS.length; i++) {
      await tx.exec(MIGRATIONS[i]!);
      ran.push(i);
    }
    if (ran.length > 0) await tx.exec(`PRAGMA user_version = ${MIGRATIONS.length}`);
  });
  for (const i of ran) c.runs[i]!++;
}

async function tolerate(p: Promise<unknown>): Promise<void> {
  await p.catch((e: unknown) => {
    if (!(e instanceof SyncError)) throw e;
  });
}

async function serverValue(server: Endpoint, sql: string): Promise<string | null> {
  const request: PipelineRequest = { baton: null, requests: [{ type: 'batch', batch: { steps: [{ stmt: { sql, args: [], want_rows: true } }] } }] };
  const [result] = (await server.admin.pipeline(request)).results;
  if (result?.type !== 'ok' || result.response.type !== 'batch') throw new Error(`the server refused: ${JSON.stringify(result)}`);
  const v = result.response.result.step_results[0]?.rows[0]?.[0] as HranaValue | undefined;
  return v && 'value' in v ? String(v.value) : null;
}

async function run(seed: number): Promise<void> {
  const server = await network.open(`header-${seed}`);
  endpoints.push(server);
  const random = rng(seed);
  const clients: Client[] = [];
  const fail = (what: string): never => {
    throw new Error(`header values seed ${seed}: ${what} (replay: OUTPOST_SEED=${seed})`);
  };
  const restart = async (c: Client): Promise<void> => {
    await c.db.close().catch(() => {});
    c.db = await openClient(server, c);
    await migrate(c);
  };
  for (let i = 0; i < 3; i++) {
    const c = { name: `c${i}`, disk: new CrashDisk(), offline: random() < 0.7, runs: MIGRATIONS.map(() => 0) } as Client;
    c.db = await openClient(server, c);
    clients.push(c);
    await migrate(c);
  }
  for (let step = 0; step < 25; step++) {
    const c = clients[int(random, 0, clients.length - 1)]!;
    const r = random();
    if (r < 0.35) {
      await c.db.run('INSERT OR REPLACE INTO notes(id, body, tag) VALUES (?, ?, ?)', [`${c.name}-${step}`, `note ${step}`, `t${step % 3}`]);
    } else if (r < 0.6) {
      await tolerate(random() < 0.5 ? c.db.sync() : c.db.pull());
      await migrate(c);
    } else if (r < 0.7) c.offline = !c.offline;
    else if (r < 0.8) {
      await c.db.close();
      c.db = await openClient(server, c);
      await migrate(c);
    } else if (r < 0.9) {
      c.disk.crash();
      await restart(c);
    } else {
      // A crash at a random write of a sync: in a push's bookkeeping, an apply, a replay.
      const crashesBefore = c.disk.crashes;
      c.disk.crashAt(1 + Math.floor(random() ** 2 * 30));
      await c.db.sync().catch(() => {});
      if (c.disk.crashes === crashesBefore) c.disk.crash();
      await restart(c);
    }
  }
  for (const c of clients) c.offline = false;
  for (let round = 0; round < 2; round++) {
    for (const c of clients) {
      await c.db.sync();
      await migrate(c);
    }
  }
  const serverVersion = await serverValue(server, 'PRAGMA user_version');
  if (serverVersion !== String(MIGRATIONS.length)) fail(`the server's user_version is ${serverVersion}`);
  const notes = await serverValue(server, "SELECT group_concat(id || ':' || ifnull(tag, ''), ',') FROM (SELECT * FROM notes ORDER BY id)");
  for (const c of clients) {
    if (c.runs.some((n) => n !== 1)) fail(`${c.name} ran the migrations ${JSON.stringify(c.runs)} times`);
    const version = (await c.db.get<{ user_version: number }>('PRAGMA user_version'))!.user_version;
    if (version !== MIGRATIONS.length) fail(`${c.name} has user_version ${version}`);
    if ((await c.db.get<{ integrity_check: string }>('PRAGMA integrity_check'))!.integrity_check !== 'ok') fail(`${c.name} fails integrity_check`);
    const mine = (await c.db.get<{ v: string | null }>("SELECT group_concat(id || ':' || ifnull(tag, ''), ',') AS v FROM (SELECT * FROM notes ORDER BY id)"))!.v;
    if (mine !== notes) fail(`${c.name}'s notes differ from the server's`);
    await c.db.close();
  }
}

describe('user_version and application_id sync', () => {
  test('each migration runs once on every replica and user_version converges (generated)', async () => {
    const first = testSeed();
    const seeds = process.env.OUTPOST_SEED ? [first] : Array.from({ length: 12 }, (_, i) => first + i);
    console.log(`header values: seeds ${seeds[0]}..${seeds[seeds.length - 1]}`);
    for (const seed of seeds) await run(seed);
  }, 240_000);

  test('a pull keeps a pending user_version and application_id, and a push carries them', async () => {
    const server = await network.open('header-pending');
    endpoints.push(server);
    const a = { name: 'a', disk: new CrashDisk(), offline: false };
    const b = { name: 'b', disk: new CrashDisk(), offline: false };
    const dbA = await openClient(server, a);
    const dbB = await openClient(server, b);
    await dbA.exec('CREATE TABLE t(id INTEGER PRIMARY KEY)');
    await dbA.sync();
    await dbB.exec('PRAGMA user_version = 7; PRAGMA main.application_id = 1234');
    await dbA.exec('INSERT INTO t VALUES (1)');
    await dbA.sync();
    // b pulls a's change (the server's page 1 says 0) while its own values are pending.
    b.offline = false;
    await dbB.pull();
    expect(await dbB.get('PRAGMA user_version')).toEqual({ user_version: 7 });
    expect(await dbB.get('PRAGMA application_id')).toEqual({ application_id: 1234 });
    expect((await dbB.pendingChanges()).flatMap((c) => c.ddl)).toEqual(['PRAGMA user_version = 7', 'PRAGMA application_id = 1234']);
    await dbB.sync();
    expect(await serverValue(server, 'PRAGMA user_version')).toBe('7');
    expect(await serverValue(server, 'PRAGMA application_id')).toBe('1234');
    await dbA.pull();
    expect(await dbA.get('PRAGMA user_version')).toEqual({ user_version: 7 });
    // Last push wins: a sets it later, so a's value is the one everywhere.
    await dbA.exec('PRAGMA user_version = 3');
    await dbA.sync();
    await dbB.sync();
    expect(await dbB.get('PRAGMA user_version')).toEqual({ user_version: 3 });
    await dbA.close();
    await dbB.close();
  });

  test('a user_version set and rolled back is not a change', async () => {
    const server = await network.open('header-rollback');
    endpoints.push(server);
    const db = await openClient(server, { name: 'r', disk: new CrashDisk(), offline: false });
    await db.exec('BEGIN; PRAGMA user_version = 5; ROLLBACK');
    await db.exec('BEGIN; SAVEPOINT s; PRAGMA user_version = 6; ROLLBACK TO s; RELEASE s; COMMIT');
    expect(await db.pendingChanges()).toEqual([]);
    await db.exec('PRAGMA temp.user_version = 9');
    expect(await db.pendingChanges()).toEqual([]);
    expect(await db.get('PRAGMA user_version')).toEqual({ user_version: 0 });
    await db.close();
  });
});
