/**
 * The server loses power in the middle of a sync (power-loss.test.ts does it to the client).
 * The hosted database's files and its revision log live on a `PowerLossDisk`: after a loss the
 * server keeps what it flushed plus a seeded subset of its later writes. Each case: one or two
 * Outpost clients push and pull; sometimes the server's writes all reach the device (time
 * passed) and sometimes the database is closed and reopened (evicted from the server's cache,
 * then perhaps sealed: seal.ts; or the server stopped gracefully); then the power goes either
 * at a seeded change to the server's files (before a push's commit, in it, in its revision log
 * record, in a checkpoint, in a seal's marker), after a request ran and before its answer left
 * (after the commit, before the answer), or a few event-loop turns into a seal; the same
 * evictions, seals and stops happen in that phase too, between pushes and pulls (an eviction
 * right after a pull, then the loss: the device may keep the log and not the WAL); the server
 * process alone may also be killed on the way (nothing lost, the same boot). The server restarts on
 * what the device kept, under its durability ('normal' or 'full'), and the clients retry until
 * they sync. It must hold:
 * - the server's database passes integrity_check, and so does every replica;
 * - no change is applied twice (a TEMP trigger counts each application), and the server's rows
 *   are exactly the ones it applied;
 * - under 'full', every change of a push the server acknowledged is there, and in the end every
 *   change any client committed; under 'normal', a change may be lost only if its client
 *   already dropped it (it pulled the acknowledgement), and is then gone from the replica too;
 * - each client's acknowledgement row, on the server and in its replica, is its last change id
 *   (a write after the losses reaches the server: no change id is reused);
 * - every replica's file is the server's image page for page (a revision a client holds never
 *   names other pages after the restart);
 * - a follower that pulls after every step of the phase and once the server is back, before
 *   anything commits (test/support/page-replica.ts), then holds the server's image: a later
 *   commit could hide a revision that came back with other pages by rewriting them.
 * A third of the losses keep each file's unflushed writes all or none (a log kept, its WAL
 *   lost: a revision log that read clean past its database was caught that way).
 */
import { beforeAll, expect, test } from 'vitest';
import { Database } from '../../src/database.js';
import { connectionDriver } from '../../src/driver.js';
import { SyncError } from '../../src/errors.js';
import type { PipelineRequest, PipelineResponse } from '../../src/protocol/hrana.js';
import type { PullRequest } from '../../src/protocol/pull-updates.js';
import type { PullResponse, SyncTransport } from '../../src/protocol/transport.js';
import { HostedDatabase, type HostedDatabaseOptions } from '../../src/server/hosted-database.js';
import { InProcessTransport } from '../../src/server/in-process-transport.js';
import { RevisionLog } from '../../src/server/revlog.js';
import { sealClosed } from '../../src/server/seal.js';
import { openSynced } from '../../src/sync/open.js';
import { CrashDisk } from '../support/crash-disk.js';
import { type Random, int, pick, rng, testSeed } from '../support/generate.js';
import { type Endpoint, scratchDataDir } from '../support/networks.js';
import { PageReplica, wholeImage } from '../support/page-replica.js';
import { PowerLossDisk } from '../support/power-loss-disk.js';
import { serverRows } from './simulation.js';

const seed = testSeed();
const CASES = Number(process.env.OUTPOST_CASES ?? 30);
type Durability = 'normal' | 'full';

beforeAll(() => {
  console.log(`server power loss seed ${seed} (OUTPOST_SEED=${seed} replays it)`);
});

const AUDIT = 'CREATE TEMP TRIGGER IF NOT EXISTS t_audit AFTER INSERT ON main.t BEGIN INSERT INTO audit(id) VALUES (new.id); END';

/** One hosted database whose server process loses power; it restarts on what its disk kept. */
class PoweredServer {
  private db: HostedDatabase | null = null;
  private life: { readonly dead: boolean } = { dead: true };
  private logFiles: ReturnType<PowerLossDisk['logFiles']> | null = null;
  /** Counts the database's opens: a seal writes its marker only while no open followed its start (database-cache.ts does the same). */
  private opens = 0;
  private incarnation: InProcessTransport | null = null;
  /** Requests the clients sent so far; the power goes after request `loseAfterRequest` ran, before its answer. */
  requests = 0;
  loseAfterRequest = 0;
  restarts = 0;
  /** The table and the trigger that counts its inserts exist (made long before any loss). */
  schemaMade = false;
  readonly disk: PowerLossDisk;
  private readonly dataDir = scratchDataDir('outpost-server-power-');

  constructor(
    private readonly durability: Durability,
    random: Random,
  ) {
    this.disk = new PowerLossDisk(random);
  }

  get dead(): boolean {
    return this.life.dead;
  }

  /** A new server process opens the database; with `sameProcess`, the one running opens it again (after an eviction). */
  async start(sameProcess = false): Promise<void> {
    if (!sameProcess) {
      this.life = this.disk.process();
      this.logFiles = this.disk.logFiles(this.life);
    }
    this.opens++;
    this.db = await HostedDatabase.open(this.dataDir, 'power', this.options());
    this.incarnation = new InProcessTransport(this.db);
    if (this.schemaMade) this.db.execTrusted(AUDIT);
  }

  private options(): HostedDatabaseOptions {
    const limits = { statementTimeoutMs: 60_000, valueBytesMax: 1 << 24, shareOfServer: 1 };
    const process = this.life as ReturnType<PowerLossDisk['process']>;
    return { durability: this.durability, cacheKiB: 256, limits, directory: () => process, revlogFiles: this.logFiles! };
  }

  /**
   * The server's cache evicts the database and opens it again (the same process): in between,
   * `seal` runs its seal to the end, or until the power goes `lossTurns` event-loop turns into
   * it, or not at all; 'stop' is a graceful stop (every log sealed, markers flushed) and a new
   * process.
   */
  async evict(seal: 'none' | 'seal' | 'loss in the seal' | 'stop', lossTurns = 0): Promise<void> {
    this.incarnation?.close();
    await this.db!.close();
    this.db = null;
    const opens = this.opens;
    const sealed = sealClosed(this.dataDir, 'power', this.options(), performance.now(), () => this.opens === opens);
    if (seal === 'none') {
      // Its seal starts, and the reopen below stops it before its marker.
    } else if (seal === 'loss in the seal') {
      for (let turns = lossTurns; turns > 0; turns--) await new Promise((resolve) => setImmediate(resolve));
      if (!this.dead) this.disk.loseNow();
      await sealed;
      return;
    } else await sealed;
    if (seal === 'stop') await RevisionLog.markersFlushed();
    if (this.dead) return;
    await this.start(seal !== 'stop');
  }

  /** After a loss: the dead process is freed (its handles change nothing) and a new one opens the files. */
  async restart(): Promise<void> {
    this.incarnation?.close();
    await this.db?.close().catch(() => {});
    this.restarts++;
    await this.start();
  }

  execTrusted(sql: string): void {
    this.db!.execTrusted(sql);
  }

  /** The database open now, if the server is up. */
  get hosted(): HostedDatabase | null {
    return this.dead ? null : this.db;
  }

  /** What clients reach: requests fail with NETWORK while the server is down, and the answer of one that was running when the power went never arrives. */
  readonly transport: SyncTransport = {
    pull: (req: Partial<PullRequest>): Promise<PullResponse> => this.exchange((t) => t.pull(req)),
    pipeline: (req: PipelineRequest): Promise<PipelineResponse> => this.exchange((t) => t.pipeline(req)),
    traffic: { sentBytes: 0, receivedBytes: 0 },
  };

  /** The same, for the test's own checks: never loses power. */
  readonly endpoint: Endpoint = {
    url: 'http://in-process/db/power',
    admin: { pull: (req) => this.incarnation!.pull(req), pipeline: (req) => this.incarnation!.pipeline(req), traffic: { sentBytes: 0, receivedBytes: 0 } },
    client: () => this.transport,
    execTrusted: async (sql) => this.execTrusted(sql),
    close: async () => {
      this.incarnation?.close();
      await this.db?.close();
    },
  };

  private async exchange<T>(send: (t: InProcessTransport) => Promise<T>): Promise<T> {
    if (this.dead) {
      await this.restart();
      throw new SyncError('cannot reach the server (it is restarting after a power loss)', 'NETWORK');
    }
    const request = ++this.requests;
    let answer: { ok: T } | { error: unknown };
    try {
      answer = { ok: await send(this.incarnation!) };
    } catch (error) {
      answer = { error };
    }
    if (request === this.loseAfterRequest) this.disk.loseNow();
    if (this.dead) throw new SyncError('the server lost power before its answer arrived', 'NETWORK');
    if ('error' in answer) throw answer.error;
    return answer.ok;
  }
}

interface Client {
  db: Database;
  disk: CrashDisk;
  /** Ids of the rows it committed, and of those a push or sync it made returned after. */
  committed: number[];
  acknowledged: Set<number>;
  /** Ids it committed before a pull returned that came after their push returned: the client may have dropped them. */
  pulledAck: Set<number>;
  lastChangeId: number;
}

async function openClient(server: PoweredServer, name: string): Promise<Client> {
  const disk = new CrashDisk();
  const { conn, engine } = await openSynced(disk.process(), { durability: 'full', intMode: 'number' }, { url: server.endpoint.url, clientName: name, retries: 0 }, server.transport);
  return { db: new Database(name, connectionDriver(conn, engine)), disk, committed: [], acknowledged: new Set(), pulledAck: new Set(), lastChangeId: 0 };
}

/** A sync call that may fail while the server is down; anything but NETWORK is a finding. */
async function tolerate(p: Promise<unknown>): Promise<boolean> {
  try {
    await p;
    return true;
  } catch (e) {
    if (e instanceof SyncError && e.code === 'NETWORK') return false;
    throw e;
  }
}

/** Syncs until it succeeds: the server is back after one refused request. */
async function syncUntilDone(c: Client, what: string): Promise<void> {
  for (let attempt = 0; attempt < 6; attempt++) if (await tolerate(syncAll(c))) return;
  throw new Error(`${what}: the client never synced again`);
}

async function commit(c: Client, ids: number[]): Promise<void> {
  await c.db.transaction(async (tx) => {
    for (const id of ids) await tx.run('INSERT INTO t VALUES (?, ?)', [id, `client ${'x'.repeat(1500)}`]);
  });
  c.committed.push(...ids);
  const row = await c.db.get<{ id: number }>('SELECT max(id) AS id FROM _outpost_changes');
  c.lastChangeId = row?.id ?? c.lastChangeId;
}

/** A push; what was committed before it is acknowledged once it returns. */
async function push(c: Client): Promise<void> {
  const before = [...c.committed];
  await c.db.push();
  for (const id of before) c.acknowledged.add(id);
}

/** A pull; what was acknowledged before it may be dropped from the client once it returns. */
async function pull(c: Client): Promise<void> {
  const acked = [...c.acknowledged];
  await c.db.pull();
  for (const id of acked) c.pulledAck.add(id);
}

async function syncAll(c: Client): Promise<void> {
  await push(c);
  await pull(c);
}

async function runCase(durability: Durability, c: number, phaseChanges: number): Promise<{ changes: number; lostAcknowledged: number }> {
  const random = rng(seed + c * 7919 + (durability === 'full' ? 1 : 0));
  const what = `seed ${seed} case ${c} (${durability})`;
  const server = new PoweredServer(durability, rng((seed ^ 0x5eed) + c));
  await server.start();
  server.execTrusted(`CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE audit(n INTEGER PRIMARY KEY, id INTEGER); INSERT INTO t VALUES (1, 'server'); ${AUDIT}`);
  server.schemaMade = true;
  server.disk.settle();
  const clients: Client[] = [];
  let id = 100;
  const nextIds = (): number[] => Array.from({ length: int(random, 1, 3) }, () => id++);
  try {
    for (let i = int(random, 1, 2); i > 0; i--) clients.push(await openClient(server, `c${i}`));
    // Before: pushed and pulled changes, some the device holds for sure.
    for (const client of clients) {
      await pull(client);
      await commit(client, nextIds());
      await syncAll(client);
      if (random() < 0.5) await commit(client, nextIds());
    }
    if (random() < 0.5) server.disk.settle();
    if (random() < 0.6) await server.evict(pick(random, ['none', 'seal', 'stop'] as const));
    if (random() < 0.2) server.disk.settle();
    // Someone pulls the revision the phase starts from.
    for (const client of clients) if (random() < 0.7) await pull(client);

    // The phase in which the power goes: at a change to the server's files, or after a request.
    const byRequest = c > 0 && random() < 0.4;
    if (byRequest) server.loseAfterRequest = server.requests + int(random, 1, 8);
    else if (c > 0) server.disk.lossAt(int(random, 1, Math.max(1, phaseChanges)));
    const startChanges = server.disk.changes;
    const follower = new PageReplica();
    for (let step = int(random, 3, 8); step > 0; step--) {
      const client = clients[int(random, 0, clients.length - 1)]!;
      const r = random();
      if (r < 0.4) await commit(client, nextIds());
      else if (r < 0.6) await tolerate(push(client));
      else if (r < 0.75) await tolerate(pull(client));
      else if (r < 0.8) await tolerate(syncAll(client));
      else if (r < 0.85 && !server.dead) {
        // Evicted (perhaps right after a pull) and perhaps sealed, or a graceful stop; the power may go in it.
        await server.evict(pick(random, ['none', 'none', 'seal', 'loss in the seal', 'stop'] as const), int(random, 0, 5));
      } else if (r < 0.9 && !server.dead) {
        // The server process alone is killed (the machine runs on): its revision log is trusted.
        server.disk.killProcesses();
        await server.restart();
      } else if (!server.dead) {
        // The server's idle checkpoint; the power may go in it.
        try {
          server.execTrusted('PRAGMA wal_checkpoint(TRUNCATE)');
        } catch (e) {
          if (!server.dead) throw e;
        }
      }
      if (server.dead && random() < 0.5) await server.restart();
      if (server.hosted) await follow(follower, server.hosted, what);
    }
    const changes = server.disk.changes - startChanges;
    // No loss yet (its point lay past the phase): the power goes now.
    const wholeFiles = new Map<string, boolean>();
    if (!server.dead) server.disk.loseNow(random() < 0.33 ? (name) => wholeFiles.get(name) ?? (wholeFiles.set(name, random() < 0.5), wholeFiles.get(name)!) : undefined);
    await server.restart();
    await follow(follower, server.hosted!, what);

    // A loss after a request may still strike while they catch up; none after.
    for (const client of clients) await syncUntilDone(client, what);
    server.loseAfterRequest = 0;
    for (const client of clients) await syncUntilDone(client, what);
    for (const client of clients) await commit(client, [id++]);
    for (const client of clients) await syncUntilDone(client, what);
    for (const client of clients) await syncUntilDone(client, what);
    return { changes, lostAcknowledged: await check(server, clients, durability, what) };
  } finally {
    for (const client of clients) await client.db.close().catch(() => {});
    await server.endpoint.close().catch(() => {});
  }
}

/** The follower pulls; it must then hold the server's image. */
async function follow(follower: PageReplica, db: HostedDatabase, what: string): Promise<void> {
  await follower.pull(db);
  expect(follower.differences(await wholeImage(db)), `${what}: pages a follower holds that differ from the server's (-1: its size)`).toEqual([]);
}

/** The header's invariants; returns how many acknowledged changes 'normal' lost. */
async function check(server: PoweredServer, clients: Client[], durability: Durability, what: string): Promise<number> {
  const [integrity, rows, audit] = await serverRows(server.endpoint, 'PRAGMA integrity_check', 'SELECT id, v FROM t ORDER BY id', 'SELECT id, count(*) FROM audit GROUP BY id ORDER BY id');
  expect(integrity, `${what}: the server's integrity_check`).toBe('[["ok"]]');
  const applied = JSON.parse(audit!) as [string, string][];
  expect(applied.filter(([, n]) => n !== '1'), `${what}: applied more than once`).toEqual([]);
  const onServer = (JSON.parse(rows!) as [string, string][]).map(([k]) => Number(k)).filter((k) => k >= 100);
  expect(applied.map(([k]) => Number(k)), `${what}: the server's rows are the ones it applied`).toEqual(onServer);
  const committed = clients.flatMap((c) => c.committed).sort((a, b) => a - b);
  const lost = committed.filter((k) => !onServer.includes(k));
  if (durability === 'full') expect(lost, `${what}: committed rows missing on the server`).toEqual([]);
  const droppable = new Set(clients.flatMap((c) => [...c.pulledAck]));
  expect(lost.filter((k) => !droppable.has(k)), `${what}: rows lost that their client still held`).toEqual([]);
  expect(onServer.filter((k) => !committed.includes(k)), `${what}: rows no client committed`).toEqual([]);
  const serverPages = (await server.endpoint.admin.pull({})).pages;
  for (const [i, c] of clients.entries()) {
    const who = `${what} client ${i}`;
    expect(await c.db.get('PRAGMA integrity_check'), who).toEqual({ integrity_check: 'ok' });
    expect((await c.db.syncStatus())?.pendingChanges, `${who}: pending`).toBe(0);
    const local = (await c.db.query<{ id: number }>('SELECT id FROM t ORDER BY id')).map((r) => r.id);
    expect(local.filter((k) => k >= 100), `${who}: rows`).toEqual(onServer);
    const clientId = (await c.db.syncStatus())!.clientId;
    const ackSql = `SELECT change_id FROM turso_sync_last_change_id WHERE client_id = '${clientId}'`;
    const [serverAck] = await serverRows(server.endpoint, ackSql);
    expect(serverAck, `${who}: the server's acknowledgement row`).toBe(JSON.stringify([[String(c.lastChangeId)]]));
    expect((await c.db.get<{ change_id: number }>(ackSql))?.change_id, `${who}: the replica's acknowledgement row`).toBe(c.lastChangeId);
    await c.db.close();
    const file = await c.disk.read('db');
    expect(file.length, `${who}: pages in the file`).toBe(serverPages.length * 4096);
    for (const p of serverPages) {
      const page = file.subarray(p.pageId * 4096, (p.pageId + 1) * 4096);
      expect(Buffer.compare(page, p.page), `${who}: page ${p.pageId} differs from the server's`).toBe(0);
    }
  }
  return lost.length;
}

for (const durability of ['normal', 'full'] as const) {
  test(`the server loses power at any step of a push or pull, durability '${durability}': nothing acknowledged lost (under 'full'), nothing applied twice, replicas equal the server`, async () => {
    let phaseChanges = 0;
    let lostAcknowledged = 0;
    for (let c = 0; c < CASES; c++) {
      const r = await runCase(durability, c, phaseChanges);
      // Phases differ: the loss point is drawn up to the longest seen so far.
      phaseChanges = Math.max(phaseChanges, r.changes + 2);
      lostAcknowledged += r.lostAcknowledged;
    }
    console.log(`server power loss (${durability}): ${CASES} cases, ${phaseChanges} server changes in a whole phase, ${lostAcknowledged} acknowledged changes lost`);
  }, 600_000);
}
