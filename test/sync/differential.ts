/**
 * The differential sync fuzzer: several clients write random SQL (test/support/sql-fuzz.ts)
 * through offline periods, lost answers and crashes, against Outpost's server (in process or
 * over HTTP) or `turso --sync-server`, with Turso's own client (@tursodatabase/sync) taking part
 * in some seeds. The oracle is plain SQLite (better-sqlite3): the transactions the server
 * accepted, replayed as the SQL the clients ran, in the order the server accepted them. After
 * everyone syncs, every replica's user tables (rowids of rowid tables, each value's storage
 * class and bytes), FTS5 matches, `PRAGMA user_version` and schema equal the oracle's, and
 * `integrity_check` is ok everywhere. Every committed transaction was accepted by the server or
 * reported refused (`pendingChanges()` with `rejected`), never neither and never both.
 *
 * Why replaying SQL is a sound oracle here. Sync pushes each transaction's *effects* (row changes,
 * last writer wins per row and column), not its SQL; replaying SQL gives the same database only
 * when every statement has the same effect on the server's state, at acceptance, as it had on
 * the client's state when it ran. The generator keeps that true:
 * - Row transactions (any client, any time, offline too) touch only rows their client owns
 *   (keys from a per-client range, or a `'c<n>'` owner column), by explicit key, with literal
 *   values. A client's view of its own rows is exactly its own history (no one else writes
 *   them), and the server's rows are that history up to what was pushed, so each statement finds
 *   the same rows in both places and writes the same constants.
 * - Auto ids (`autoIds`): two clients may pick the same key. An insert that let SQLite pick an
 *   INTEGER PRIMARY KEY is replayed with the key its client got: the server takes it, or
 *   refuses it as an insert collision and it is left out. Keyless tables take either explicit
 *   rowids only or auto rowids only (`ta<n>`); the latter are re-keyed on a collision (README,
 *   "Conflicts"), so their rows are compared by content, as multisets: every committed row is
 *   there once, wherever its rowid went. The fuzzer never writes an auto row again.
 * - Schema steps (DDL, and the table rebuild whose INSERT ... SELECT copies whatever rows
 *   exist) run only by a client that has just synced with no pending changes, with faults off,
 *   and are pushed at once before any other client acts. The client's view is then the server's
 *   state, so the copy copies what the server holds.
 * - Every row transaction ends with an insert of its own marker row (`fz_marks`, keyed by a
 *   global transaction number). After every operation the fuzzer reads the server's markers:
 *   the new ones are the transactions accepted since, in order (only one client acted, and its
 *   transactions are pushed in commit order). Schema steps are observed through their change
 *   ids right after their push. A pending change that another client's schema step made
 *   unappliable (a dropped column) is refused on the server and fails the same way on the
 *   oracle, where it is left out.
 * - Audit triggers (`triggers`) run where the transaction ran, and their writes are pushed as
 *   row changes and applied with triggers off. So the oracle has no audit triggers: each
 *   transaction's replay ends with the audit rows its client's triggers wrote, as literal
 *   INSERT OR REPLACE statements (none when that client did not have the trigger yet). The
 *   external content FTS5 triggers do run on the oracle, as they do wherever rows are applied;
 *   with `recursive_triggers` on, so that an INSERT OR REPLACE of an existing row updates the
 *   index as the pushed update does (seeds 200165, 200186).
 *
 * What this oracle cannot see: a transaction the server refused although it was valid (say, a
 * UNIQUE swap applied in changeset order) is excluded like any refused one; only its report is
 * checked. Schema changes together with lost answers once lost a refused change (seed 708079
 * under the old rng, on a branch without main's fix that saves a refusal before the next batch
 * goes out; test/sync/refused-then-lost-answer.test.ts): shard 1 runs both, shard 2 schema
 * changes without lost answers.
 * - A statement that changed nothing where it ran (an UPDATE, or an INSERT OR REPLACE of an
 *   existing row, that left its row as it was) is not replayed: the change carries what the
 *   transaction did, and that did nothing, even where the server's row differs (the value came
 *   from a change the server refused, seed 900184).
 * - A later change that writes a row a refused change wrote waits with it (README, "A change
 *   built on a refused one"): it is refused too and left out. Before, it was pushed alone and
 *   lost the columns the refused change had already set (seed 722546, a product bug).
 *
 * On failure the seed is printed with a minimal reproduction: the recorded operations are
 * replayed with chunks and whole clients left out while the run still fails, and what remains is
 * printed as SQL, one line per operation with its client.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import BetterSqlite from 'better-sqlite3';
import { connect } from '@tursodatabase/sync';
import type { Database } from '../../src/database.js';
import { SyncError } from '../../src/errors.js';
import { SeededFaults } from '../../src/server/in-process-transport.js';
import type { OutpostServer } from '../../src/server/server.js';
import { CrashDisk } from '../support/crash-disk.js';
import { exactDouble, int, pick, rng } from '../support/generate.js';
import { type Endpoint, type Network, httpNetwork, inProcessNetwork, scratchDataDir, tursoNetwork } from '../support/networks.js';
import { startServer, startTursoServer, tempDir } from '../support/server.js';
import { type Features, MARKS_TABLE, SqlGenerator, type SchemaStep, isAutoTable, rowOf, settleUpsert, tursoCompatible } from '../support/sql-fuzz.js';
import { type SimClient, openClient, restart, serverRows } from './simulation.js';

export type ServerKind = 'in-process' | 'outpost-http' | 'turso';

export interface FuzzOptions {
  features: Features;
  server: ServerKind;
  /** Outpost clients. */
  clients: number;
  /** Turso's client takes part as one more client (HTTP servers only). */
  tursoClient: boolean;
  steps: number;
  crashes: boolean;
  lostAnswers: boolean;
}

/** One recorded operation; a run is a list of them, replayable without the generator. */
export type Op =
  | { kind: 'tx'; client: number; tx: number; sql: string[] }
  | { kind: 'schema'; client: number; statements: string[]; autocommit: boolean }
  | { kind: 'push' | 'pull' | 'sync'; client: number }
  | { kind: 'net'; client: number; offline: boolean; lossRate: number }
  | { kind: 'crash'; client: number; at: number | null; during: 'push' | 'pull' | 'sync' | null };

/** A transaction (or one autocommit statement of a schema step) as the oracle replays it. */
interface Unit {
  id: string;
  client: number;
  statements: string[];
}

type Official = Awaited<ReturnType<typeof connect>>;

/** One run's world: the server endpoint, the clients and what they committed. */
interface World {
  endpoint: Endpoint;
  options: FuzzOptions;
  clients: SimClient[];
  official: { db: Official; path: string } | null;
  officialIndex: number;
  committed: Map<string, Unit>;
  accepted: string[];
  acceptedSet: Set<string>;
  rejected: Set<string>;
  /** Change ids of schema units, by client. */
  schemaChanges: Map<string, { client: number; changeIds: number[] }>;
  fail(what: string): never;
}

export class FuzzFailure extends Error {}

/** Where the server runs for one seed, and how to take it down. */
async function startNetwork(kind: ServerKind): Promise<{ network: Network; dbUrl: (url: string) => string; stop(): Promise<void> }> {
  if (kind === 'in-process') {
    const dataDir = scratchDataDir('outpost-fuzz-server-');
    return { network: inProcessNetwork(dataDir), dbUrl: (u) => u, stop: async () => rmSync(dataDir, { recursive: true, force: true }) };
  }
  if (kind === 'outpost-http') {
    const { server, url, dataDir } = await startServer({ auth: false, maxOpenDatabases: 8 });
    return {
      network: httpNetwork(url, server as OutpostServer),
      dbUrl: (u) => u,
      stop: async () => {
        await server.close();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  }
  const t = await startTursoServer();
  return { network: tursoNetwork(t.url), dbUrl: (u) => u, stop: t.stop };
}

/**
 * Runs one seed. With `script`, replays those operations instead of generating (a shrink);
 * returns the operations run. Throws FuzzFailure on a broken invariant.
 */
export async function runFuzz(seed: number, options: FuzzOptions, script?: Op[], ops: Op[] = []): Promise<Op[]> {
  const features = options.tursoClient || options.server === 'turso' ? tursoCompatible(options.features) : options.features;
  const net = await startNetwork(options.server);
  const endpoint = await net.network.open(`fuzz-${seed}`);
  const dir = tempDir(`outpost-fuzz-${seed}-`);
  const world: World = {
    endpoint,
    options,
    clients: [],
    official: null,
    officialIndex: options.clients,
    committed: new Map(),
    accepted: [],
    acceptedSet: new Set(),
    rejected: new Set(),
    schemaChanges: new Map(),
    fail: (what) => {
      throw new FuzzFailure(what);
    },
  };
  try {
    for (let i = 0; i < options.clients; i++) {
      const c: SimClient = { name: `c${i}`, disk: new CrashDisk(), db: null as unknown as Database, faults: new SeededFaults(seed * 16 + i + 1), written: [] };
      // Assigned right away: a client exists only once its database is open.
      c.db = await openClient(endpoint, c);
      world.clients.push(c);
    }
    const random = rng(Math.imul(seed ^ (seed >>> 16), 0x9e3779b1) >>> 0 || 1);
    const gen = new SqlGenerator(random, features);
    const source = script ? [...script] : null;
    let txSerial = 0;
    const next = (step: number): { op: Op; step?: SchemaStep } | null => {
      if (source) return source.length > 0 ? { op: source.shift()! } : null;
      if (step === 0) {
        const s = gen.initialSchema();
        return { op: { kind: 'schema', client: 0, statements: s.statements, autocommit: false }, step: s };
      }
      if (step > options.steps) return null;
      return generateOp(world, gen, random, ++txSerial);
    };
    for (let step = 0; ; step++) {
      const n = next(step);
      if (!n) break;
      if (n.op.client >= options.clients + (options.tursoClient ? 1 : 0)) continue;
      ops.push(n.op);
      const committed = await runOp(world, n.op, net.dbUrl(endpoint.url), dir);
      if (committed && n.step) n.step.apply();
      await observeAccepted(world);
    }
    await heal(world);
    await check(world);
    return ops;
  } finally {
    for (const c of world.clients) await c.db.close().catch(() => {});
    await world.official?.db.close().catch(() => {});
    await endpoint.close();
    await net.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The generator's next operation. */
function generateOp(world: World, gen: SqlGenerator, random: () => number, tx: number): { op: Op; step?: SchemaStep } {
  const { options } = world;
  const everyone = options.clients + (options.tursoClient ? 1 : 0);
  const client = int(random, 0, everyone - 1);
  const isOfficial = client === world.officialIndex;
  const r = random();
  if (r < 0.4) return { op: { kind: 'tx', client, tx, sql: gen.transaction(client, tx) } };
  if (r < 0.5 && !isOfficial) {
    const step = gen.schemaStep();
    if (step) return { op: { kind: 'schema', client, statements: step.statements, autocommit: step.autocommit }, step };
  }
  if (r < 0.62) return { op: { kind: 'push', client } };
  if (r < 0.74) return { op: { kind: 'pull', client } };
  if (r < 0.82) return { op: { kind: 'sync', client } };
  if (r < 0.92 || isOfficial) {
    const offline = random() < 0.4;
    return { op: { kind: 'net', client, offline, lossRate: options.lostAnswers && random() < 0.5 ? 0.3 : 0 } };
  }
  if (!options.crashes) return { op: { kind: 'sync', client } };
  const during = random() < 0.5 ? null : pick(random, ['push', 'pull', 'sync'] as const);
  return { op: { kind: 'crash', client, at: during ? 1 + Math.floor(random() ** 2 * 40) : null, during } };
}

const isRejected = (e: unknown): boolean => e instanceof SyncError && e.code === 'REJECTED';

/** Runs one operation; returns true when a schema step committed and was pushed. */
async function runOp(world: World, op: Op, url: string, dir: string): Promise<boolean> {
  if (op.client === world.officialIndex) return runOfficial(world, op, url, dir);
  const c = world.clients[op.client]!;
  switch (op.kind) {
    case 'tx': {
      const done = await runTransaction(op.sql, {
        run: async (sql) => (await c.db.run(sql)).changes,
        rows: async (sql) => (await c.db.execMany(sql))[0]?.rows ?? [],
      });
      if (await hasMark(c.db, op.tx)) world.committed.set(`tx${op.tx}`, { id: `tx${op.tx}`, client: op.client, statements: done });
      return false;
    }
    case 'schema':
      return schemaStep(world, op);
    case 'push':
    case 'pull':
    case 'sync':
      await tolerate(c.db[op.kind]());
      return false;
    case 'net':
      c.faults.offline = op.offline;
      c.faults.lossRate = op.lossRate;
      return false;
    case 'crash':
      if (op.at !== null && op.during) {
        c.disk.crashAt(op.at);
        const before = c.disk.crashes;
        await c.db[op.during]().catch(() => {});
        if (c.disk.crashes === before) c.disk.crash();
      } else c.disk.crash();
      await restart(world.endpoint, c);
      return false;
  }
}

/** Turso's client: transactions and syncs only (it has no fault injection here). */
async function runOfficial(world: World, op: Op, url: string, dir: string): Promise<boolean> {
  if (!world.official) {
    const path = join(dir, 'official.db');
    world.official = { db: await connect({ path, url, clientName: 'official' }), path };
  }
  const o = world.official.db;
  if (op.kind === 'tx') {
    const done = await runTransaction(op.sql, {
      run: async (sql) => Number((await (await o.prepare(sql)).run()).changes ?? 0),
      rows: async (sql) => ((await (await o.prepare(sql)).all()) as Record<string, unknown>[]).map((r) => Object.values(r)),
    });
    const row = (await (await o.prepare(`SELECT count(*) AS n FROM ${MARKS_TABLE} WHERE tx = ?`)).get(op.tx).catch(() => undefined)) as { n: number } | undefined;
    if (Number(row?.n ?? 0) > 0) world.committed.set(`tx${op.tx}`, { id: `tx${op.tx}`, client: op.client, statements: done });
  } else if (op.kind === 'push' || op.kind === 'sync') await o.push().catch(() => {});
  if (op.kind === 'pull' || op.kind === 'sync') await o.pull().catch(() => {});
  return false;
}

/** How the fuzzer runs SQL on one client: a statement's changes, a query's rows. */
interface SqlRunner {
  run(sql: string): Promise<number>;
  rows(sql: string): Promise<unknown[][]>;
}

/**
 * Runs a transaction statement by statement; returns the statements the oracle replays: all but
 * the row statements that changed nothing here. Those pushed nothing (a change carries what a
 * transaction did where it ran, and an UPDATE or INSERT OR REPLACE that left its row as it was
 * did nothing), and replaying them elsewhere could do something: write a value that this client
 * held only through a change the server refused (seed 900184), or fail where this client's
 * schema was stale (a table another client had dropped).
 */
async function runTransaction(sql: string[], db: SqlRunner): Promise<string[]> {
  let done: string[] = [];
  const savepoints: number[] = [];
  try {
    await db.run('BEGIN');
    const auditBefore = await auditRows(db);
    for (const statement of sql) {
      const existsSql = rowOf(statement)?.existsSql;
      const s = existsSql ? settleUpsert(statement, Number((await db.rows(existsSql))[0]?.[0] ?? 0) > 0) : statement;
      const probe = rowOf(s)?.created === false ? await rowProbe(db, s, existsSql ?? null) : null;
      const before = probe ? await rowState(db, probe) : null;
      const changes = await db.run(statement);
      const unchanged = probe !== null && before === (await rowState(db, probe));
      // What a savepoint rolled back did nothing; replayed elsewhere it could fail (a UNIQUE
      // value another client holds) and take the whole transaction with it.
      if (/^SAVEPOINT\b/i.test(s)) savepoints.push(done.length);
      else if (/^ROLLBACK TO\b/i.test(s)) done = done.slice(0, savepoints.at(-1) ?? 0);
      else if (/^RELEASE\b/i.test(s)) savepoints.pop();
      else if ((changes > 0 && !unchanged) || !/^(INSERT|UPDATE|DELETE)\b/i.test(s)) done.push(changes > 0 && / \/\* auto id \*\/$/.test(s) ? withKey(s, String((await db.rows('SELECT last_insert_rowid()'))[0]?.[0])) : s);
    }
    // What the audit triggers wrote, as literal writes: the oracle has no audit triggers.
    const auditAfter = await auditRows(db);
    for (const [key, write] of auditAfter) if (auditBefore.get(key) !== write) done.push(write);
    await db.run('COMMIT');
  } catch {
    await db.run('ROLLBACK').catch(() => {});
  }
  return done;
}

/**
 * The rows of the audit tables (test/support/sql-fuzz.ts `createTrigger`) where `db` runs, each
 * as the INSERT OR REPLACE that writes it with literal values, by table and key. A pushed
 * transaction carries its triggers' writes as row changes, applied where it lands with triggers
 * off; so the oracle replays what this client's triggers wrote (the client may not have had a
 * trigger yet, or its audit count may differ), never runs the triggers again.
 */
async function auditRows(db: SqlRunner): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const tables = (await db.rows("SELECT name FROM sqlite_schema WHERE type = 'table' AND name GLOB '*_audit*'")).map((r) => String(r[0]));
  for (const table of tables) {
    const rows = await db.rows(`SELECT ${['k', 'v', 'n'].map((c) => `typeof(${c}), CASE typeof(${c}) WHEN 'real' THEN ${c} ELSE hex(${c}) END`).join(', ')} FROM ${table}`);
    for (const r of rows) {
      const values = [0, 2, 4].map((i) => sqlOfCell(String(r[i]), r[i + 1]));
      out.set(`${table}\u0000${values[0]}`, `INSERT OR REPLACE INTO ${table}(k, v, n) VALUES (${values.join(', ')})`);
    }
  }
  return out;
}

/** A value read as its storage class and hex (a double as itself) as a SQL expression of exactly it. */
function sqlOfCell(type: string, value: unknown): string {
  const text = (): string => Buffer.from(String(value), 'hex').toString('latin1');
  switch (type) {
    case 'null':
      return 'NULL';
    case 'integer':
      return text();
    case 'real':
      return exactDouble(Number(value));
    case 'text':
      return `CAST(X'${String(value)}' AS TEXT)`;
    default:
      return `X'${String(value)}'`;
  }
}

/**
 * An insert that let SQLite pick its INTEGER PRIMARY KEY, with the key this client got: the
 * server takes that key or refuses the insert as a collision, so the oracle inserts it too.
 */
function withKey(sql: string, id: string): string {
  const tagged = sql.replace(/ \/\* auto id \*\/$/, ` /* new ${id} */`);
  const defaults = /^INSERT INTO (\w+) DEFAULT VALUES/.exec(tagged);
  if (defaults) return tagged.replace(/^INSERT INTO (\w+) DEFAULT VALUES/, `INSERT INTO $1(id) VALUES (${id})`);
  return tagged.replace(/^INSERT INTO (\w+)\(([^)]*)\) VALUES \(/, `INSERT INTO $1(id, $2) VALUES (${id}, `);
}

/**
 * The query that reads the row an UPDATE or a settled INSERT OR REPLACE of an existing row writes,
 * every column with its storage class (a REAL and an INTEGER of one value differ), or null.
 */
async function rowProbe(db: SqlRunner, sql: string, existsSql: string | null): Promise<string | null> {
  const m = /^\s*(?:UPDATE|INSERT\s+OR\s+REPLACE\s+INTO)\s+(\w+)/i.exec(sql);
  const whereAt = sql.lastIndexOf(' WHERE ');
  const where = /^UPDATE\b/i.test(sql) && whereAt > 0 ? sql.slice(whereAt + 7).replace(/\/\*.*\*\/$/, '') : /^SELECT count\(\*\) FROM \w+ WHERE (.*)$/.exec(existsSql ?? '')?.[1];
  if (!m || !where) return null;
  const names = (await db.rows(`SELECT name FROM pragma_table_xinfo('${m[1]}') WHERE hidden != 1`)).map((r) => String(r[0]));
  if (names.length === 0) return null;
  return `SELECT ${names.map((n) => `typeof("${n}"), CASE typeof("${n}") WHEN 'real' THEN "${n}" ELSE hex("${n}") END`).join(', ')} FROM ${m[1]} WHERE ${where}`;
}

/** The row `probe` reads, as a string: equal strings, equal rows (doubles by their bits). */
async function rowState(db: SqlRunner, probe: string): Promise<string> {
  const rows = await db.rows(probe).catch(() => null);
  return JSON.stringify(rows?.map((r) => r.map((v) => (typeof v === 'number' ? (Object.is(v, -0) ? '-0' : String(v)) : String(v)))) ?? null);
}

async function hasMark(db: Database, tx: number): Promise<boolean> {
  const rows = await db.query<{ n: number }>(`SELECT count(*) AS n FROM ${MARKS_TABLE} WHERE tx = ?`, [tx]).catch(() => [{ n: 0 }]);
  return (rows[0]?.n ?? 0) > 0;
}

/** A sync call that may fail on the network or be refused; anything but a SyncError is a finding. */
async function tolerate(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (!(e instanceof SyncError)) throw e;
  }
}

/**
 * Syncs client `c` until it has nothing pending: refused changes are recorded as reported and
 * dropped. False when it cannot get there (the step is then skipped).
 */
async function settle(world: World, client: number): Promise<boolean> {
  const c = world.clients[client]!;
  for (let attempt = 0; attempt < 4; attempt++) {
    try {
      await c.db.sync();
    } catch (e) {
      if (!isRejected(e)) return false;
    }
    await observeAccepted(world);
    const pending = await c.db.pendingChanges();
    if (pending.length === 0) return true;
    for (const p of pending.filter((x) => x.rejected !== null)) {
      for (const id of unitsOf(world, client, p)) world.rejected.add(id);
      await c.db.dropPendingChange(p.changeId);
    }
  }
  return false;
}

/** The units a pending change belongs to: its marker's transaction, or a schema unit by change id. */
function unitsOf(world: World, client: number, p: { changeId: number; mutations: { table: string; op: string; after: Record<string, unknown> }[] }): string[] {
  const marks = p.mutations.filter((m) => m.table === MARKS_TABLE && m.op === 'insert').map((m) => `tx${String(m.after.tx)}`);
  const schema = [...world.schemaChanges].filter(([, s]) => s.client === client && s.changeIds.includes(p.changeId)).map(([id]) => id);
  return [...marks, ...schema];
}

/** A schema step: settle, run the statements, push at once. True when it committed and was accepted. */
async function schemaStep(world: World, op: Extract<Op, { kind: 'schema' }>): Promise<boolean> {
  const c = world.clients[op.client]!;
  const saved = { offline: c.faults.offline, lossRate: c.faults.lossRate };
  c.faults.offline = false;
  c.faults.lossRate = 0;
  try {
    if (!(await settle(world, op.client))) return false;
    const groups = op.autocommit ? op.statements.map((s) => [s]) : [op.statements];
    const units: string[] = [];
    for (const [i, group] of groups.entries()) {
      const before = new Set((await c.db.pendingChanges()).map((p) => p.changeId));
      try {
        await c.db.exec(op.autocommit ? group[0]! : `BEGIN; ${group.join('; ')}; COMMIT`);
      } catch {
        await c.db.exec('ROLLBACK').catch(() => {});
        break;
      }
      const id = `schema${world.committed.size}-${i}`;
      world.committed.set(id, { id, client: op.client, statements: group });
      world.schemaChanges.set(id, { client: op.client, changeIds: (await c.db.pendingChanges()).map((p) => p.changeId).filter((x) => !before.has(x)) });
      units.push(id);
    }
    // Push, and pull so that the acknowledged records are dropped (they stay pending until then).
    try {
      await c.db.sync();
    } catch (e) {
      if (!isRejected(e)) world.fail(`${c.name}'s sync of a schema step failed with the network healthy: ${String(e)}`);
    }
    const pending = await c.db.pendingChanges();
    for (const id of units) {
      const ids = world.schemaChanges.get(id)!.changeIds;
      const left = pending.filter((p) => ids.includes(p.changeId));
      if (left.some((p) => p.rejected === null)) world.fail(`${c.name}'s schema step ${id} is still pending after a push with the network healthy`);
      if (left.length > 0) world.rejected.add(id);
      else accept(world, id);
    }
    return units.length === groups.length && units.every((id) => world.acceptedSet.has(id));
  } finally {
    c.faults.offline = saved.offline;
    c.faults.lossRate = saved.lossRate;
  }
}

function accept(world: World, id: string): void {
  if (world.acceptedSet.has(id)) world.fail(`${id} was accepted twice`);
  world.acceptedSet.add(id);
  world.accepted.push(id);
}

/** Reads the server's markers: those new since the last look were accepted now, in transaction order. */
async function observeAccepted(world: World): Promise<void> {
  let marks: [string][];
  try {
    const [json] = await serverRows(world.endpoint, `SELECT tx FROM ${MARKS_TABLE} ORDER BY tx`);
    marks = JSON.parse(json!) as [string][];
  } catch {
    return; // no marker table yet
  }
  for (const [tx] of marks) if (!world.acceptedSet.has(`tx${tx}`)) accept(world, `tx${tx}`);
}

/** Everyone online without faults; sync until quiet; refused changes recorded and dropped. */
async function heal(world: World): Promise<void> {
  for (const c of world.clients) {
    c.faults.offline = false;
    c.faults.lossRate = 0;
  }
  for (let round = 0; round < 3; round++) {
    for (const [i] of world.clients.entries()) await settle(world, i);
    if (world.official) {
      await world.official.db.push();
      await world.official.db.pull();
      await observeAccepted(world);
    }
  }
  for (const [i, c] of world.clients.entries()) {
    if (!(await settle(world, i))) world.fail(`${c.name} cannot sync with nothing pending after healing: ${JSON.stringify((await c.db.syncStatus())?.lastError)}`);
    await c.db.pull();
  }
}

/**
 * Replays the accepted units on plain SQLite, in order. Writes to a row whose creating insert
 * was refused are left out: the client's later change to it was made to a row the server never
 * had (an update of a missing row, which the server skips), and dropping the refused change takes
 * the row back out of the client's replica too.
 */
function buildOracle(world: World): BetterSqlite.Database {
  const oracle = new BetterSqlite(':memory:');
  // An INSERT OR REPLACE of an existing row is pushed as what it did, an update, and applied with
  // an external content FTS5 table's update trigger; replayed as SQL it deletes the old row
  // without its delete trigger (off by default for REPLACE) and leaves the index stale.
  oracle.pragma('recursive_triggers = ON');
  // Per client and row: the transactions (by number, which is commit order) that created it, and whether the server took them.
  const creations = new Map<string, { tx: number; refused: boolean }[]>();
  for (const unit of world.committed.values()) {
    if (!unit.id.startsWith('tx')) continue;
    for (const s of unit.statements) {
      const row = rowOf(s);
      if (row?.created !== true) continue;
      const list = creations.get(`${unit.client}/${row.key}`) ?? [];
      list.push({ tx: Number(unit.id.slice(2)), refused: world.rejected.has(unit.id) });
      creations.set(`${unit.client}/${row.key}`, list);
    }
  }
  /** True when the row's latest creation up to transaction `tx` was refused. */
  const refusedRow = (client: number, key: string, tx: number): boolean => {
    const before = (creations.get(`${client}/${key}`) ?? []).filter((c) => c.tx <= tx).sort((a, b) => a.tx - b.tx);
    return before.at(-1)?.refused ?? false;
  };
  for (const id of world.accepted) {
    const unit = world.committed.get(id);
    if (!unit) world.fail(`the server holds ${id}, which no client committed`);
    const statements = unit.statements.filter((s) => {
      // Audit triggers run where a transaction ran; their writes come as literal statements.
      if (/^CREATE TRIGGER tr\d+ /.test(s)) return false;
      const row = rowOf(s);
      return !row || row.created === true || !id.startsWith('tx') || !refusedRow(unit.client, row.key, Number(id.slice(2)));
    });
    try {
      replayOnOracle(oracle, id, statements);
    } catch (e) {
      if (oracle.inTransaction) oracle.exec('ROLLBACK');
      world.fail(`the server accepted ${id} of c${unit.client}, which plain SQLite refuses at that point: ${(e as Error).message}\n  ${unit.statements.join(';\n  ')}`);
    }
  }
  return oracle;
}

async function check(world: World): Promise<void> {
  for (const unit of world.committed.values()) {
    const accepted = world.acceptedSet.has(unit.id);
    const rejected = world.rejected.has(unit.id);
    if (accepted && rejected) world.fail(`${unit.id} of c${unit.client} was both accepted by the server and reported refused`);
    if (!accepted && !rejected) world.fail(`${unit.id} of c${unit.client} committed but the server never accepted it and no refusal was reported:\n  ${unit.statements.join(';\n  ')}`);
  }
  const oracle = buildOracle(world);
  try {
    const expected = await snapshot(async (sql) => oracle.prepare(sql).raw().all() as unknown[][]);
    for (const c of world.clients) {
      const got = await snapshot(async (sql) => (await c.db.execMany(sql))[0]?.rows ?? []);
      compare(world, c.name, expected, got);
    }
    if (world.official) {
      await world.official.db.close();
      const copy = new BetterSqlite(world.official.path, { readonly: true });
      try {
        compare(world, 'official', expected, await snapshot(async (sql) => copy.prepare(sql).raw().all() as unknown[][]));
      } finally {
        copy.close();
      }
    }
  } finally {
    oracle.close();
  }
}

type Query = (sql: string) => Promise<unknown[][]>;

interface Snapshot {
  integrity: string;
  userVersion: string;
  tables: Record<string, { columns: string[]; rows: string[] }>;
}

const quoteIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`;
/**
 * A value's storage class and bytes, engine-independent: text and blobs as hex, integers as
 * decimals, REALs read as doubles and shown by their IEEE bits in JavaScript (SQLite's own
 * rendering of doubles changed between the oracle's and the clients' versions).
 */
const cellColumns = (c: string): string => `typeof(${c}), CASE typeof(${c}) WHEN 'real' THEN ${c} WHEN 'null' THEN '' ELSE hex(${c}) END`;

function renderRow(row: unknown[]): string {
  const parts: string[] = [];
  for (let i = 0; i + 1 < row.length; i += 2) {
    const [type, value] = [String(row[i]), row[i + 1]];
    if (type === 'real') {
      const bits = new DataView(new ArrayBuffer(8));
      bits.setFloat64(0, Number(value));
      parts.push(`real:${Number(value)}/${bits.getBigUint64(0).toString(16)}`);
    } else parts.push(`${type}:${String(value)}`);
  }
  return parts.join(' | ');
}

/** What is compared of a database: its user tables, typed values as bytes, FTS5 matches. */
async function snapshot(query: Query): Promise<Snapshot> {
  const integrity = (await query('PRAGMA integrity_check')).map((r) => String(r[0])).join('; ');
  const userVersion = String((await query('PRAGMA user_version'))[0]?.[0]);
  const names = await query(
    "SELECT name, type FROM pragma_table_list WHERE schema = 'main' AND type IN ('table', 'virtual') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_outpost\\_%' ESCAPE '\\' AND name NOT LIKE 'turso\\_sync\\_%' ESCAPE '\\' AND name NOT LIKE '\\_\\_turso\\_internal\\_%' ESCAPE '\\' AND name NOT LIKE 'turso\\_cdc%' ESCAPE '\\' ORDER BY name",
  );
  const tables: Snapshot['tables'] = {};
  for (const [nameValue, type] of names) {
    const name = String(nameValue);
    const info = (await query(`SELECT name, type, "notnull", dflt_value, pk, hidden FROM pragma_table_xinfo(${sqlString(name)}) WHERE hidden != 1 ORDER BY cid`)).map((r) => r.map((v) => (v === null ? null : String(v))));
    const sql = String((await query(`SELECT sql FROM sqlite_schema WHERE name = ${sqlString(name)}`))[0]?.[0] ?? '');
    const key = info.filter((c) => c[4] !== '0');
    // Auto keyless tables (`ta<n>`) hold SQLite's rowids, re-keyed on a collision: their rows
    // are compared by content, each committed row once.
    const byRowid = type === 'virtual' || (!/WITHOUT\s+ROWID/i.test(sql) && !isAutoTable(name) && (key.length === 0 || (key.length === 1 && String(key[0]![1]).toUpperCase() === 'INTEGER')));
    const columns = [...(byRowid ? ['rowid'] : []), ...info.map((c) => quoteIdent(String(c[0])))];
    const rows = (await query(`SELECT ${columns.map(cellColumns).join(', ')} FROM ${quoteIdent(name)}`)).map(renderRow).sort();
    if (type === 'virtual') {
      for (const term of ['apple', 'pear', 'fig', 'über']) {
        const hits = (await query(`SELECT rowid FROM ${quoteIdent(name)} WHERE ${quoteIdent(name)} MATCH ${sqlString(term)} ORDER BY rowid`)).map((r) => String(r[0]));
        rows.push(`match ${term}: ${hits.join(',')}`);
      }
    }
    tables[name] = { columns: info.map((c) => c.join(' ')), rows };
  }
  return { integrity, userVersion, tables };
}

const sqlString = (s: string): string => `'${s.replace(/'/g, "''")}'`;

function compare(world: World, who: string, expected: Snapshot, got: Snapshot): void {
  if (got.integrity !== 'ok') world.fail(`${who} fails integrity_check: ${got.integrity}`);
  if (expected.integrity !== 'ok') world.fail(`the oracle fails integrity_check: ${expected.integrity}`);
  if (got.userVersion !== expected.userVersion) world.fail(`${who} has user_version ${got.userVersion}, the oracle ${expected.userVersion}`);
  const names = [...new Set([...Object.keys(expected.tables), ...Object.keys(got.tables)])].sort();
  for (const name of names) {
    const e = expected.tables[name];
    const g = got.tables[name];
    if (!e || !g) world.fail(`${who} ${g ? 'has' : 'lacks'} table ${name}, the oracle ${e ? 'has' : 'lacks'} it`);
    if (JSON.stringify(e.columns) !== JSON.stringify(g.columns)) world.fail(`${who} table ${name} has columns ${JSON.stringify(g.columns)}, the oracle ${JSON.stringify(e.columns)}`);
    // As multisets: rows compared without a key (auto keyless tables) may repeat.
    const missing = multisetMinus(e.rows, g.rows);
    const extra = multisetMinus(g.rows, e.rows);
    if (missing.length + extra.length > 0) world.fail(`${who} table ${name} differs from the oracle: ${missing.length} rows missing, ${extra.length} extra\n${describeDiff(missing, extra)}`);
  }
}

/** `a` without one copy of each row of `b`. */
function multisetMinus(a: readonly string[], b: readonly string[]): string[] {
  const left = new Map<string, number>();
  for (const r of b) left.set(r, (left.get(r) ?? 0) + 1);
  return a.filter((r) => {
    const n = left.get(r) ?? 0;
    if (n > 0) left.set(r, n - 1);
    return n === 0;
  });
}

/** The differing rows, cells that differ in rows with the same first cell (the key) side by side. */
function describeDiff(missing: string[], extra: string[]): string {
  const short = (v: string): string => (v.length > 120 ? `${v.slice(0, 120)}...(${v.length} chars)` : v);
  const lines: string[] = [];
  for (const m of missing.slice(0, 5)) {
    const mc = m.split(' | ');
    const e = extra.find((x) => x.split(' | ')[0] === mc[0]);
    if (!e) {
      lines.push(`    only in the oracle: ${mc.map(short).join(' | ')}`);
      continue;
    }
    const ec = e.split(' | ');
    const cells = mc.flatMap((v, i) => (v === ec[i] ? [] : [`column ${i}: oracle ${short(v)}, replica ${short(ec[i] ?? '(none)')}`]));
    lines.push(`    row ${short(mc[0]!)}: ${cells.join('; ')}`);
  }
  for (const e of extra.filter((x) => !missing.some((m) => m.split(' | ')[0] === x.split(' | ')[0])).slice(0, 5)) lines.push(`    only in the replica: ${e.split(' | ').map(short).join(' | ')}`);
  return lines.join('\n');
}

// ---- seeds, shrinking, reports ----

/** The first line of a failure, without the values that change when the script shrinks. */
function failureKind(message: string): string {
  return message.split('\n')[0]!.replace(/\d+/g, 'N');
}

/**
 * Replays `ops` with parts left out while the run still fails the same way: whole clients
 * first, then chunks of operations, halving the chunk size (delta debugging), within `budgetMs`.
 */
export async function shrink(seed: number, options: FuzzOptions, ops: Op[], failure: string, budgetMs = 60_000): Promise<{ ops: Op[]; failure: string }> {
  const deadline = performance.now() + budgetMs;
  const kind = failureKind(failure);
  let message = failure;
  const fails = async (candidate: Op[]): Promise<boolean> => {
    try {
      await runFuzz(seed, options, candidate);
      return false;
    } catch (e) {
      if (!(e instanceof FuzzFailure) || failureKind(e.message) !== kind) return false;
      message = e.message;
      return true;
    }
  };
  let current = ops;
  for (let client = options.clients + (options.tursoClient ? 1 : 0) - 1; client >= 1 && performance.now() < deadline; client--) {
    const without = current.filter((op) => op.client !== client);
    if (without.length < current.length && (await fails(without))) current = without;
  }
  for (let chunk = Math.max(1, Math.floor(current.length / 2)); chunk >= 1 && performance.now() < deadline; chunk = Math.floor(chunk / 2)) {
    // The first operation creates the schema: it stays.
    for (let start = 1; start < current.length && performance.now() < deadline; ) {
      const candidate = [...current.slice(0, start), ...current.slice(start + chunk)];
      if (await fails(candidate)) current = candidate;
      else start += chunk;
    }
  }
  return { ops: current, failure: message };
}

/** A script as SQL, one line per operation, each with its client. */
export function formatScript(ops: Op[]): string {
  return ops
    .map((op) => {
      const who = `-- c${op.client}`;
      switch (op.kind) {
        case 'tx':
          return `${who}\nBEGIN; ${op.sql.map((s) => (s.length > 200 ? `${s.slice(0, 200)}...` : s)).join('; ')}; COMMIT;`;
        case 'schema':
          return `${who} (synced, pushed at once${op.autocommit ? ', autocommit' : ''})\n${op.autocommit ? op.statements.join(';\n') : `BEGIN; ${op.statements.join('; ')}; COMMIT`};`;
        case 'net':
          return `${who} network: ${op.offline ? 'offline' : 'online'}${op.lossRate ? `, loses ${op.lossRate * 100}% of answers` : ''}`;
        case 'crash':
          return `${who} crash${op.during ? ` at change ${op.at} of a ${op.during}` : ''}`;
        default:
          return `${who} ${op.kind}()`;
      }
    })
    .join('\n');
}

/**
 * Runs `count` seeds from `first`; each failure is shrunk (unless `shrinkBudgetMs` is 0) and
 * printed with its seed and reproduction; all are thrown together at the end. Logs seeds/s.
 */
export async function runFuzzSeeds(
  first: number,
  count: number,
  options: FuzzOptions,
  label: string,
  shrinkBudgetMs = Number(process.env.OUTPOST_FUZZ_SHRINK_MS ?? 60_000),
  /** Stop after this many failures (OUTPOST_FUZZ_MAX_FAILURES; a long run that found enough). */
  maxFailures = Number(process.env.OUTPOST_FUZZ_MAX_FAILURES ?? Infinity),
): Promise<void> {
  console.log(`${label}: seeds ${first}..${first + count - 1} (replay one with OUTPOST_SEED=<seed>)`);
  const failures: string[] = [];
  const started = performance.now();
  let ran = 0;
  for (let seed = first; seed < first + count && failures.length < maxFailures; seed++, ran++) {
    const recorded: Op[] = [];
    try {
      await runFuzz(seed, options, undefined, recorded);
    } catch (e) {
      if (!(e instanceof FuzzFailure)) {
        failures.push(`${label} seed ${seed} (replay: OUTPOST_SEED=${seed}): ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n  operations:\n${formatScript(recorded)}`);
        console.error(failures.at(-1));
        continue;
      }
      const small = shrinkBudgetMs > 0 ? await shrink(seed, options, recorded, e.message, shrinkBudgetMs) : { ops: recorded, failure: e.message };
      const message = `${label} seed ${seed} (replay: OUTPOST_SEED=${seed}): ${e.message}\n  reproduction (${small.ops.length} of ${recorded.length} operations), which fails with: ${small.failure}\n${formatScript(small.ops)}`;
      console.error(message);
      failures.push(message);
      // The whole reproduction, replayable with runFuzz(seed, options, script).
      if (process.env.OUTPOST_FUZZ_DUMP) writeFileSync(join(process.env.OUTPOST_FUZZ_DUMP, `${label.replace(/\W+/g, '-')}-${seed}.json`), JSON.stringify({ seed, options, failure: small.failure, script: small.ops }, null, 1));
    }
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(`${label}: ${ran} seeds in ${seconds.toFixed(1)} s (${(ran / seconds).toFixed(2)} seeds/s), ${failures.length} failed`);
  if (failures.length > 0) throw new Error(`${failures.length} of ${ran} seeds failed:\n${failures.slice(0, 10).join('\n\n')}`);
}

/**
 * Runs an accepted unit on the oracle. An UPDATE (or an INSERT OR REPLACE of a row that was
 * there) that names a column another client dropped in the meantime was still accepted when it
 * did not change that column (a change carries only the columns it changed; one that changed a
 * dropped column is refused), so when SQLite says the column is not there, the unit runs again
 * with that column left out of those statements.
 */
function replayOnOracle(oracle: { exec(sql: string): unknown; inTransaction: boolean }, id: string, statements: readonly string[]): void {
  let current = [...statements];
  for (let attempt = 0; ; attempt++) {
    try {
      oracle.exec(current.length === 1 && id.startsWith('schema') ? current[0]! : `BEGIN; ${current.join('; ')}; COMMIT`);
      return;
    } catch (e) {
      const column = /(?:no such column: |has no column named )(\w+)/.exec((e as Error).message)?.[1];
      const without = column && attempt < 8 ? current.map((sql) => withoutAssignment(sql, column)) : null;
      if (!without || without.every((sql, i) => sql === current[i])) throw e;
      if (oracle.inTransaction) oracle.exec('ROLLBACK');
      current = without;
    }
  }
}

/**
 * `UPDATE t SET a = 1, b = f(2, 3) WHERE ...` without the assignment to `column`, or
 * `INSERT OR REPLACE INTO t(a, b) VALUES (1, f(2, 3)) ...` without `column` and its value.
 */
function withoutAssignment(sql: string, column: string): string {
  const named = (p: string): boolean => new RegExp(`^\\s*"?${column}"?\\s*(=|$)`).test(p);
  const update = /^(\s*UPDATE\s+\S+\s+SET\s+)([\s\S]*?)(\s+WHERE\s[\s\S]*)$/i.exec(sql);
  if (update) {
    const parts = splitTopLevel(update[2]!);
    const kept = parts.filter((p) => !named(p));
    if (kept.length === parts.length || kept.length === 0) return sql;
    return `${update[1]}${kept.join(',')}${update[3]}`;
  }
  const insert = /^(\s*INSERT\s+OR\s+REPLACE\s+INTO\s+\S+\s*\()([^)]*)(\)\s*VALUES\s*\()([\s\S]*)(\)[^)]*)$/i.exec(sql);
  if (!insert) return sql;
  const columns = splitTopLevel(insert[2]!);
  const values = splitTopLevel(insert[4]!);
  const at = columns.findIndex(named);
  if (at < 0 || columns.length !== values.length || columns.length === 1) return sql;
  columns.splice(at, 1);
  values.splice(at, 1);
  return `${insert[1]}${columns.join(',')}${insert[3]}${values.join(',')}${insert[5]}`;
}

/** A list split at its top-level commas (outside quotes and parentheses). */
function splitTopLevel(list: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote: string | null = null;
  let start = 0;
  for (let i = 0; i < list.length; i++) {
    const ch = list[i]!;
    if (quote) {
      if (ch === quote) quote = null;
    } else if (ch === "'" || ch === '"') quote = ch;
    else if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (ch === ',' && depth === 0) {
      parts.push(list.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(list.slice(start));
  return parts;
}
