/**
 * The seeded sync simulation: several Outpost clients and one Outpost server, random writes and
 * transactions, offline periods, lost answers (the server ran the request, the client got a
 * network error), and crashes (a client's process dies without closing; a new one opens the
 * same files), between operations and, with `midOperationCrashes`, at a random write inside
 * one (a commit, a push, an apply, a recovery). After the faults heal and everyone syncs, it checks the design note's invariants:
 * - every client's rows equal the server's, and its file is the server's image page for page;
 * - every change a client committed reached the server exactly once (a TEMP trigger on the
 *   server counts each application), and nothing committed was lost;
 * - every database passes integrity_check, and no client has pending changes left.
 * `runSimulation(network, seed)` throws with the seed in its message on the first violation;
 * `runSeeds` runs many and reports seeds/s. The test files pick the seeds (`seedRange`).
 *
 * Where the server runs is the `Network` (test/support/networks.ts): `inProcessNetwork` calls a
 * `HostedDatabase` through the in-process transport (no sockets: thousands of seeds a minute),
 * `httpNetwork` goes through a real server and the HTTP transport. Clients keep their files on a
 * `CrashDisk` (memory by default, Node files with `storage: 'node'`), which lets a crashed
 * process's connection be closed without anything reaching its files.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Database } from '../../src/database.js';
import { SyncError } from '../../src/errors.js';
import { connectionDriver } from '../../src/driver.js';
import type { StorageDirectory } from '../../src/opfs-vfs/storage/backend.js';
import { NodeDirectory } from '../../src/opfs-vfs/storage/node.js';
import type { HranaValue, PipelineRequest } from '../../src/protocol/hrana.js';
import { SeededFaults } from '../../src/server/in-process-transport.js';
import { openSynced } from '../../src/sync/open.js';
import { CrashDisk } from '../support/crash-disk.js';
import { rng } from '../support/generate.js';
import type { Endpoint, Network } from '../support/networks.js';
import { tempDir } from '../support/server.js';


export interface SimClient {
  name: string;
  disk: CrashDisk;
  db: Database;
  faults: SeededFaults;
  /** Ids of the log rows this client committed. */
  written: number[];
}

export interface SimulationOptions {
  clients?: number;
  steps?: number;
  /** Where clients keep their files: memory (default) or Node files in a temporary folder. */
  storage?: 'memory' | 'node';
  /**
   * Half the crashes strike in the middle of an operation, at a random change to the files
   * (false: all strike between operations).
   */
  midOperationCrashes?: boolean;
}

export interface SimulationResult {
  crashes: number;
  /** Answers lost after the server ran the request. */
  lost: number;
}

const SCHEMA = [
  'CREATE TABLE IF NOT EXISTS kv(k TEXT PRIMARY KEY, v TEXT, writer TEXT)',
  'CREATE TABLE IF NOT EXISTS log(id INTEGER PRIMARY KEY, writer TEXT)',
  'CREATE TABLE IF NOT EXISTS applied(n INTEGER PRIMARY KEY, id INTEGER)',
];
/**
 * Counts every application of a log insert on the server; TEMP, so it never syncs. Tenants may
 * not create TEMP objects (the server's sandbox), so the simulation installs it as the server.
 */
const COUNT_APPLIED = 'CREATE TEMP TRIGGER IF NOT EXISTS count_applied AFTER INSERT ON main.log BEGIN INSERT INTO applied(id) VALUES (new.id); END';

export async function runSimulation(network: Network, seed: number, options: SimulationOptions = {}): Promise<SimulationResult> {
  const server = await network.open(`sim-${seed}`);
  const clientDir = options.storage === 'node' ? tempDir(`outpost-sim-${seed}-`) : null;
  const clients: SimClient[] = [];
  try {
    await serverRows(server, ...SCHEMA);
    await server.execTrusted(COUNT_APPLIED);
    for (let i = 0; i < (options.clients ?? 3); i++) {
      const disk = new CrashDisk(clientDir ? new NodeDirectory(join(clientDir, `c${i}.db`)) : undefined);
      const client: SimClient = { name: `c${i}`, disk, db: null as unknown as Database, faults: new SeededFaults(seed * 16 + i + 1), written: [] };
      // Assigned right away: a client exists only once its database is open.
      client.db = await openClient(server, client);
      clients.push(client);
    }
    const crashes = await runSteps(server, clients, seed, options.steps ?? 20, options.midOperationCrashes ?? false);
    await heal(clients);
    await check(server, clients, `${options.midOperationCrashes ? '' : 'OUTPOST_SIM_CRASH_POINTS=0 '}OUTPOST_SEED=${seed}`, seed);
    return { crashes, lost: clients.reduce((n, c) => n + c.faults.lost, 0) };
  } finally {
    for (const c of clients) await c.db.close().catch(() => {});
    await server.close();
    if (clientDir) rmSync(clientDir, { recursive: true, force: true });
  }
}

/** Opens a client's database in a new process over its disk. */
export async function openClient(server: Endpoint, c: SimClient): Promise<Database> {
  const directory: StorageDirectory & { readonly dead: boolean } = c.disk.process();
  // A dead process reaches no server either.
  const transport = server.client((route) => (directory.dead ? 'offline' : c.faults.decide(route)));
  const { conn, engine } = await openSynced(
    directory,
    { durability: 'normal', intMode: 'number' },
    // kv is written with INSERT OR REPLACE: a key names a setting, last push wins. Without
    // upsertTables, a key two clients insert offline would be an insert collision, reported.
    { url: server.url, clientName: c.name, maxLocalWalBytes: 64 * 1024, retries: 0, upsertTables: ['kv'] },
    transport,
  );
  return new Database(c.name, connectionDriver(conn, engine));
}

/** The random part: writes, syncs, network faults and crashes. Returns the number of crashes. */
async function runSteps(server: Endpoint, clients: SimClient[], seed: number, steps: number, midOperation: boolean): Promise<number> {
  const random = rng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]!;
  let crashes = 0;
  let nextLog = 1;
  for (let step = 0; step < steps; step++) {
    const c = pick(clients);
    const r = random();
    if (r < 0.35) {
      const id = c.written.length === 0 || random() < 0.7 ? nextLog++ : -1;
      await c.db.transaction(async (tx) => {
        if (id > 0) {
          await tx.run('INSERT INTO log(id, writer) VALUES (?, ?)', [id, c.name]);
          c.written.push(id);
        }
        const key = `k${Math.floor(random() * 6)}`;
        if (random() < 0.2) await tx.run('DELETE FROM kv WHERE k = ?', [key]);
        else await tx.run('INSERT OR REPLACE INTO kv(k, v, writer) VALUES (?, ?, ?)', [key, `v${step}`, c.name]);
      });
    } else if (r < 0.5) {
      // Many statements in one exec, with a savepoint rolled back in the middle.
      const id = nextLog++;
      await c.db.exec(`BEGIN; INSERT INTO log(id, writer) VALUES (${id}, '${c.name}'); SAVEPOINT s; INSERT INTO kv VALUES ('gone${step}', 'x', 'x'); ROLLBACK TO s; RELEASE s; COMMIT;`);
      c.written.push(id);
    } else if (r < 0.65) await tolerate(c.db.push());
    else if (r < 0.8) await tolerate(c.db.pull());
    else if (r < 0.9) {
      // Network faults: an online client goes offline or starts losing answers; an offline one
      // comes back, losing answers or not. (Toggling offline alone lost an answer in about one
      // seed of 150, too few for the check in simulation.test.ts to hold on every run.)
      const lossy = random() < 0.5;
      c.faults.offline = c.faults.offline ? false : !lossy;
      c.faults.lossRate = lossy ? 0.3 : 0;
    } else if (r < 0.95 || !midOperation) {
      // A crash between operations: the process dies without closing, and a new one opens the
      // same files. The dead process's connection is closed only to free it: its handles no
      // longer write.
      crashes++;
      c.disk.crash();
      await restart(server, c);
    } else {
      crashes++;
      const id = nextLog++;
      if (await crashDuring(c, random, id)) c.written.push(id);
      await restart(server, c);
      if (!c.written.includes(id) && (await c.db.query('SELECT 1 FROM log WHERE id = ?', [id])).length > 0) c.written.push(id);
    }
  }
  return crashes;
}

/**
 * A crash in the middle of an operation: the process dies at a random change to its files (in
 * a commit, a push's bookkeeping, an apply, a checkpoint) while it writes log row `id` or
 * syncs. Returns true when the write committed before the crash (it must survive); a write
 * the crash interrupted may or may not have committed, which the caller reads after restart.
 */
async function crashDuring(c: SimClient, random: () => number, id: number): Promise<boolean> {
  const crashesBefore = c.disk.crashes;
  // Most operations write a few times; pulls write many pages: favour early crash points.
  c.disk.crashAt(1 + Math.floor(random() ** 2 * 40));
  const op = Math.floor(random() * 4);
  let committed = false;
  try {
    if (op === 0) {
      await c.db.run('INSERT INTO log(id, writer) VALUES (?, ?)', [id, c.name]);
      committed = true;
    } else if (op === 1) await c.db.push();
    else if (op === 2) await c.db.pull();
    else await c.db.sync();
  } catch {
    // Whatever a dying process reports means nothing; what reached its files is checked later.
  }
  const diedMidway = c.disk.crashes !== crashesBefore;
  if (!diedMidway) c.disk.crash();
  return committed && !diedMidway;
}

/** Frees a crashed client's dead process and opens its files in a new one. */
export async function restart(server: Endpoint, c: SimClient): Promise<void> {
  await c.db.close().catch(() => {});
  c.db = await openClient(server, c);
}

/** A sync call that may fail on the network; anything but a SyncError is a finding. */
async function tolerate(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof SyncError)) throw e;
  }
}

/** Everyone online, no lost answers, then sync until nothing moves. */
async function heal(clients: SimClient[]): Promise<void> {
  for (const c of clients) {
    c.faults.offline = false;
    c.faults.lossRate = 0;
  }
  for (let round = 0; round < 3; round++) for (const c of clients) await c.db.sync();
}

/** The invariants of the header; throws naming the seed and what broke. */
async function check(server: Endpoint, clients: SimClient[], replay: string, seed: number): Promise<void> {
  const fail = (what: string): never => {
    throw new Error(`simulation seed ${seed}: ${what} (replay: ${replay})`);
  };
  const [kv, log, appliedJson] = await serverRows(server, 'SELECT k, v, writer FROM kv ORDER BY k', 'SELECT id, writer FROM log ORDER BY id', 'SELECT id, count(*) FROM applied GROUP BY id ORDER BY id');
  const applied = JSON.parse(appliedJson!) as [string, string][];
  for (const [id, count] of applied) if (count !== '1') fail(`log row ${id} was applied ${count} times`);
  const written = clients.flatMap((c) => c.written).sort((a, b) => a - b);
  const appliedIds = applied.map(([id]) => Number(id));
  if (JSON.stringify(appliedIds) !== JSON.stringify(written)) fail(`the server applied ${JSON.stringify(appliedIds)}, clients wrote ${JSON.stringify(written)}`);
  const serverPages = (await server.admin.pull({})).pages;

  for (const c of clients) {
    const rows = (sql: string): Promise<string> => c.db.execMany(sql).then((r) => JSON.stringify(r[0]!.rows.map((row) => row.map((v) => (typeof v === 'number' ? String(v) : v)))));
    if ((await rows('PRAGMA integrity_check')) !== '[["ok"]]') fail(`${c.name} fails integrity_check`);
    if ((await rows('SELECT k, v, writer FROM kv ORDER BY k')) !== kv) fail(`${c.name} kv differs from the server`);
    if ((await rows('SELECT id, writer FROM log ORDER BY id')) !== log) fail(`${c.name} log differs from the server`);
    const status = await c.db.syncStatus();
    if (status?.pendingChanges !== 0) fail(`${c.name} still has ${status?.pendingChanges} pending changes`);
    await c.db.close();
    const file = await c.disk.read('db');
    if (file.length !== serverPages.length * 4096) fail(`${c.name} file has ${file.length / 4096} pages, the server ${serverPages.length}`);
    for (const p of serverPages) {
      const local = file.subarray(p.pageId * 4096, (p.pageId + 1) * 4096);
      if (Buffer.compare(local, p.page) !== 0) fail(`${c.name} page ${p.pageId} differs from the server's at bytes ${differingBytes(local, p.page)}`);
    }
  }
}

/** Runs `sql` as one batch on the server; returns each statement's rows as JSON (values as text). */
export async function serverRows(server: Endpoint, ...sql: string[]): Promise<string[]> {
  const request: PipelineRequest = {
    baton: null,
    requests: [{ type: 'batch', batch: { steps: sql.map((s) => ({ stmt: { sql: s, args: [], want_rows: true } })) } }],
  };
  const [result] = (await server.admin.pipeline(request)).results;
  if (result?.type !== 'ok' || result.response.type !== 'batch') throw new Error(`the server refused the batch: ${JSON.stringify(result)}`);
  const { step_results: steps, step_errors: errors } = result.response.result;
  const failed = errors.find((e) => e !== null);
  if (failed) throw new Error(`the server failed a statement: ${failed.message}`);
  return steps.map((s) => JSON.stringify((s?.rows ?? []).map((row) => row.map((v: HranaValue) => ('value' in v ? v.value : 'base64' in v ? v.base64 : null)))));
}

/**
 * The seeds of this run: `OUTPOST_SEED` alone (a replay), else `OUTPOST_SEEDS` of them
 * (default `defaultCount`) from `OUTPOST_SEED_FROM` (default: from the clock, so each run tries
 * new seeds; the range is printed). Shard `index` of `shards` is a contiguous part of it.
 */
export function seedRange(defaultCount: number, index = 0, shards = 1): { first: number; count: number } {
  const single = process.env.OUTPOST_SEED;
  if (single) return index === 0 ? { first: Number(single), count: 1 } : { first: Number(single), count: 0 };
  const first = Number(process.env.OUTPOST_SEED_FROM ?? Math.floor(Date.now() / 1000) % 1_000_000);
  const total = Number(process.env.OUTPOST_SEEDS ?? defaultCount);
  const start = Math.floor((total * index) / shards);
  return { first: first + start, count: Math.floor((total * (index + 1)) / shards) - start };
}

/** What the environment asks for: crashes in the middle of operations unless OUTPOST_SIM_CRASH_POINTS=0. */
export function optionsFromEnv(): SimulationOptions {
  return { midOperationCrashes: process.env.OUTPOST_SIM_CRASH_POINTS !== '0' };
}

/** A long run logs its progress every this many seeds. */
const PROGRESS_SEEDS = 500;

/**
 * Runs `count` seeds from `first` and sums what they did; logs the range first, a long run's
 * progress every PROGRESS_SEEDS seeds, and seeds/s and CPU time per seed after. A failing seed does not stop the run: every failure is collected, printed as it
 * happens, and thrown together at the end (each names its seed).
 */
export async function runSeeds(network: Network, first: number, count: number, options: SimulationOptions = {}, label = 'simulation'): Promise<SimulationResult> {
  const crashPoints = options.midOperationCrashes ?? false;
  console.log(`${label}: seeds ${first}..${first + count - 1}${crashPoints ? ', crashes mid-operation too' : ''} (replay one with OUTPOST_SEED=<seed>)`);
  const total: SimulationResult = { crashes: 0, lost: 0 };
  const failures: string[] = [];
  const started = performance.now();
  // CPU time says what a seed costs when other processes share the cores (wall time does not).
  const cpuAtStart = process.cpuUsage();
  for (let seed = first; seed < first + count; seed++) {
    try {
      const r = await runSimulation(network, seed, options);
      total.crashes += r.crashes;
      total.lost += r.lost;
    } catch (e) {
      const replay = `${crashPoints ? '' : 'OUTPOST_SIM_CRASH_POINTS=0 '}OUTPOST_SEED=${seed}`;
      const message = e instanceof Error && e.message.includes(`seed ${seed}`) ? e.message : `simulation seed ${seed} (replay: ${replay}): ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
      console.error(message);
      failures.push(message);
    }
    const done = seed - first + 1;
    // A long run (npm run simulate) says how far it got, so one stopped early still reports.
    if (count >= 2 * PROGRESS_SEEDS && done % PROGRESS_SEEDS === 0 && done < count) {
      const seconds = (performance.now() - started) / 1000;
      console.log(`${label}: ${done} of ${count} seeds in ${seconds.toFixed(1)} s (${(done / seconds).toFixed(1)} seeds/s), ${failures.length} failed so far`);
    }
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuAtStart);
  const cpuMsPerSeed = (cpu.user + cpu.system) / 1000 / Math.max(1, count);
  console.log(`${label}: ${count} seeds in ${seconds.toFixed(1)} s (${(count / seconds).toFixed(1)} seeds/s, ${cpuMsPerSeed.toFixed(0)} ms CPU per seed), ${total.crashes} crashes, ${total.lost} lost answers, ${failures.length} failed`);
  if (failures.length > 0) {
    const shown = failures.slice(0, 20).join('\n');
    throw new Error(`${failures.length} of ${count} seeds failed:\n${shown}${failures.length > 20 ? `\n... and ${failures.length - 20} more` : ''}`);
  }
  return total;
}

/** The offsets where two pages differ, as ranges ("24-27, 92-99"), for failure messages. */
function differingBytes(a: Uint8Array, b: Uint8Array): string {
  const ranges: string[] = [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] === b[i]) continue;
    let j = i;
    while (j + 1 < Math.max(a.length, b.length) && a[j + 1] !== b[j + 1]) j++;
    ranges.push(i === j ? `${i}` : `${i}-${j}`);
    i = j;
  }
  return ranges.length > 8 ? `${ranges.slice(0, 8).join(', ')}, ... (${ranges.length} ranges)` : ranges.join(', ');
}
