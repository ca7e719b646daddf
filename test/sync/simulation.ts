/**
 * The seeded sync simulation: several Outpost clients and one Outpost server (in-process, on
 * 127.0.0.1), random writes and transactions, offline periods, lost answers, and crashes
 * (a client abandoned without closing, then reopened from its files). After the faults heal
 * and everyone syncs, it checks the design note's invariants:
 * - every client's rows equal the server's, and its file is the server's image page for page;
 * - every change a client committed reached the server exactly once (a TEMP trigger on the
 *   server counts each application);
 * - every database passes integrity_check.
 * `runSimulation(seed)` throws with the seed in its message on the first violation.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Database } from '../../src/database.js';
import { SyncError } from '../../src/errors.js';
import { connectionDriver } from '../../src/driver.js';
import { NodeDirectory } from '../../src/opfs-vfs/storage/node.js';
import { PullStreamReader } from '../../src/protocol/pull-updates.js';
import { openSynced } from '../../src/sync/open.js';
import { batch, rawPipeline, rawPull, tempDir } from '../support/server.js';

export function rng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

interface SimClient {
  name: string;
  path: string;
  db: Database;
  net: { offline: boolean; loseAnswers: number };
  written: number[];
}

export interface SimulationOptions {
  clients?: number;
  steps?: number;
  /** Runs SQL on the server's database as the server (OutpostServer.execTrusted). */
  execTrusted?: (database: string, sql: string) => Promise<void>;
}

export async function runSimulation(base: string, seed: number, options: SimulationOptions = {}): Promise<{ crashes: number; lost: number }> {
  const random = rng(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]!;
  const fail = (what: string): never => {
    throw new Error(`simulation seed ${seed}: ${what}`);
  };
  const url = `${base}/db/sim-${seed}`;
  const dir = tempDir(`outpost-sim-${seed}-`);
  await rawPipeline(
    url,
    batch(
      'CREATE TABLE IF NOT EXISTS kv(k TEXT PRIMARY KEY, v TEXT, writer TEXT)',
      'CREATE TABLE IF NOT EXISTS log(id INTEGER PRIMARY KEY, writer TEXT)',
      'CREATE TABLE IF NOT EXISTS applied(n INTEGER PRIMARY KEY, id INTEGER)',
    ),
  );
  // Counts the server's own applications of each log row; tenants may not create TEMP objects,
  // so the simulation installs it as the server.
  await options.execTrusted?.(`sim-${seed}`, 'CREATE TEMP TRIGGER IF NOT EXISTS count_applied AFTER INSERT ON main.log BEGIN INSERT INTO applied(id) VALUES (new.id); END');
  let lost = 0;
  const makeFetch = (net: SimClient['net']): typeof fetch =>
    (async (input: RequestInfo | URL, init?: RequestInit) => {
      if (net.offline) throw new TypeError('fetch failed: offline');
      const res = await fetch(input, init);
      const body = await res.arrayBuffer();
      if (random() < net.loseAnswers) {
        lost++;
        throw new TypeError('fetch failed: the answer was lost');
      }
      return new Response(body, { status: res.status, headers: res.headers });
    }) as typeof fetch;

  const openClient = async (name: string, path: string, net: SimClient['net']): Promise<Database> => {
    const { conn, engine } = await openSynced(new NodeDirectory(path), { durability: 'normal', intMode: 'number' }, { url, fetch: makeFetch(net), clientName: name, maxLocalWalBytes: 64 * 1024, retries: 0 });
    return new Database(path, connectionDriver(conn, engine));
  };

  const clients: SimClient[] = [];
  for (let i = 0; i < (options.clients ?? 3); i++) {
    const net = { offline: false, loseAnswers: 0 };
    const path = join(dir, `c${i}.db`);
    clients.push({ name: `c${i}`, path, db: await openClient(`c${i}`, path, net), net, written: [] });
  }
  let crashes = 0;
  let nextLog = 1;
  const tolerate = async (p: Promise<unknown>): Promise<void> => {
    try {
      await p;
    } catch (e) {
      if (!(e instanceof SyncError)) throw e;
    }
  };

  for (let step = 0; step < (options.steps ?? 20); step++) {
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
      c.net.offline = !c.net.offline;
      c.net.loseAnswers = random() < 0.5 ? 0.3 : 0;
    } else {
      // A crash: the process is gone without closing; a new one opens the same files.
      crashes++;
      c.db = await openClient(c.name, c.path, c.net);
    }
  }

  // Heal: everyone online, no lost answers, then sync until nothing moves.
  for (const c of clients) {
    c.net.offline = false;
    c.net.loseAnswers = 0;
  }
  for (let round = 0; round < 3; round++) for (const c of clients) await c.db.sync();

  const serverRows = async (sql: string): Promise<string> => {
    const res = await rawPipeline(url, batch(sql));
    return JSON.stringify(res.json.results[0].response.result.step_results[0].rows.map((row: { value?: unknown }[]) => row.map((v) => v.value ?? null)));
  };
  const kv = await serverRows('SELECT k, v, writer FROM kv ORDER BY k');
  const log = await serverRows('SELECT id, writer FROM log ORDER BY id');
  const reader = new PullStreamReader();
  const serverPages = reader.push((await rawPull(url, {})).body);
  reader.finish();
  const applied = JSON.parse(await serverRows('SELECT id, count(*) FROM applied GROUP BY id ORDER BY id')) as [string, string][];
  for (const [id, count] of applied) if (count !== '1') fail(`log row ${id} was applied ${count} times`);
  const written = clients.flatMap((c) => c.written).sort((a, b) => a - b);
  const appliedIds = applied.map(([id]) => Number(id));
  if (JSON.stringify(appliedIds) !== JSON.stringify(written)) fail(`the server applied ${JSON.stringify(appliedIds)}, clients wrote ${JSON.stringify(written)}`);

  for (const c of clients) {
    const rows = (sql: string): Promise<string> => c.db.execMany(sql).then((r) => JSON.stringify(r[0]!.rows.map((row) => row.map((v) => (typeof v === 'number' ? String(v) : v)))));
    if ((await rows('PRAGMA integrity_check')) !== '[["ok"]]') fail(`${c.name} fails integrity_check`);
    if ((await rows('SELECT k, v, writer FROM kv ORDER BY k')) !== kv) fail(`${c.name} kv differs from the server`);
    if ((await rows('SELECT id, writer FROM log ORDER BY id')) !== log) fail(`${c.name} log differs from the server`);
    const status = await c.db.syncStatus();
    if (status?.pendingChanges !== 0) fail(`${c.name} still has ${status?.pendingChanges} pending changes`);
    await c.db.close();
    const file = readFileSync(c.path);
    if (file.length !== serverPages.length * 4096) fail(`${c.name} file has ${file.length / 4096} pages, the server ${serverPages.length}`);
    for (const p of serverPages) {
      if (Buffer.compare(file.subarray(p.pageId * 4096, (p.pageId + 1) * 4096), Buffer.from(p.page)) !== 0) fail(`${c.name} page ${p.pageId} differs from the server's`);
    }
  }
  return { crashes, lost };
}
