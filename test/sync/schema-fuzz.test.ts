/**
 * Generated schema changes: random DDL (add, drop and rename columns, rename tables, drop and
 * create, SQLite's table rebuild, new tables) interleaved with random DML on client A, in
 * autocommit and in transactions (some with a savepoint rolled back), with A pushing and pulling
 * at random points. B pulls. Checked: whenever A has nothing pending, B has A's schema and
 * contents exactly; a pull by A with changes pending leaves A's own tables as they were (replay
 * reproduces them); nothing is refused (A is the only writer). Against the Outpost server.
 *
 * Each run prints its seeds; OUTPOST_SEED=<seed> replays one case, OUTPOST_SCHEMA_CASES sets
 * how many cases run (default 40; half as many concurrent ones), OUTPOST_FIRST_SEED where the
 * run starts.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { SyncError } from '../../src/errors.js';
import { open } from '../../src/node/index.js';
import type { OutpostServer } from '../../src/server/server.js';
import type { Database } from '../../src/types.js';
import { type Random, int, pick, rng } from '../support/generate.js';
import { startServer, tempDir } from '../support/server.js';
import { contents, schemaOf } from './schema-compare.js';

const single = process.env.OUTPOST_SEED;
const first = single ? Number(single) : Number(process.env.OUTPOST_FIRST_SEED ?? Math.floor(Math.random() * 1_000_000));
const cases = single ? 1 : Number(process.env.OUTPOST_SCHEMA_CASES ?? 40);

let server: OutpostServer;
let base: string;
const dir = tempDir('outpost-schema-fuzz-');
beforeAll(async () => {
  ({ server, url: base } = await startServer({ auth: false, maxOpenDatabases: 16 }));
});
afterAll(() => server.close());

/** Spreads a small seed over 32 bits: xorshift's first outputs from a small state are small too. */
const mixSeed = (seed: number): number => Math.imul(seed ^ (seed >>> 16), 0x9e3779b1) >>> 0 || 1;

interface Table {
  /** `id INTEGER PRIMARY KEY`, a TEXT key `k`, or no key (a rowid table). */
  key: 'id' | 'k' | 'none';
  columns: string[];
}
type Model = Map<string, Table>;

const clone = (m: Model): Model => new Map([...m].map(([name, t]) => [name, { key: t.key, columns: [...t.columns] }]));

const VALUES = ['NULL', '1', '-7', "'text'", "x''", "x'00ff'", 'CAST(2 AS REAL)', '0.5', "'ünï'", '9223372036854775807', "''"];

/** The generator of one case: a model of A's schema, and statements that keep it valid. */
class Generator {
  model: Model = new Map();
  private names = 0;
  constructor(
    private readonly random: Random,
    /** The keys new tables may have. */
    private readonly keys: readonly Table['key'][] = ['id', 'id', 'k', 'none'],
  ) {}

  private fresh(prefix: string): string {
    return `${prefix}${++this.names}`;
  }

  private keyColumns(t: Table): string[] {
    return t.key === 'id' ? ['id'] : t.key === 'k' ? ['k'] : [];
  }

  private columnDefs(t: Table): string {
    const key = t.key === 'id' ? ['id INTEGER PRIMARY KEY'] : t.key === 'k' ? ['k TEXT PRIMARY KEY'] : [];
    return [...key, ...t.columns].join(', ');
  }

  createTable(): string[] {
    const name = this.fresh('t');
    const t: Table = { key: pick(this.random, this.keys), columns: Array.from({ length: int(this.random, 1, 3) }, () => this.fresh('c')) };
    this.model.set(name, t);
    return [`CREATE TABLE ${name}(${this.columnDefs(t)})`];
  }

  private table(): [string, Table] | null {
    const tables = [...this.model];
    return tables.length === 0 ? null : pick(this.random, tables);
  }

  private value(): string {
    return pick(this.random, VALUES);
  }

  /** A random DML statement on a random table. */
  dml(): string[] {
    const entry = this.table();
    if (!entry) return this.createTable();
    const [name, t] = entry;
    switch (int(this.random, 0, 5)) {
      case 0:
      case 1:
      case 2: {
        const keys = t.key === 'id' ? [String(int(this.random, 1, 30))] : t.key === 'k' ? [`'k${int(this.random, 1, 30)}'`] : [];
        const columns = [...this.keyColumns(t), ...t.columns];
        return [`INSERT OR REPLACE INTO ${name}(${columns.join(', ')}) VALUES (${[...keys, ...t.columns.map(() => this.value())].join(', ')})`];
      }
      case 3:
      case 4: {
        const column = pick(this.random, t.columns);
        return [`UPDATE ${name} SET ${column} = ${this.value()} WHERE rowid % ${int(this.random, 1, 4)} = 0`];
      }
      default:
        return [`DELETE FROM ${name} WHERE rowid % ${int(this.random, 2, 6)} = 1`];
    }
  }

  /** A random DDL step (one statement, or the several of a rebuild or a drop and create). */
  ddl(): string[] {
    const entry = this.table();
    if (!entry || this.model.size < 2 && this.random() < 0.3) return this.createTable();
    const [name, t] = entry;
    switch (int(this.random, 0, 7)) {
      case 0:
        return this.addColumn(name, t);
      case 1: {
        if (t.columns.length < 2) return this.addColumn(name, t);
        const column = pick(this.random, t.columns);
        t.columns = t.columns.filter((c) => c !== column);
        return [`ALTER TABLE ${name} DROP COLUMN ${column}`];
      }
      case 2: {
        const column = pick(this.random, t.columns);
        const renamed = this.fresh('c');
        t.columns = t.columns.map((c) => (c === column ? renamed : c));
        return [`ALTER TABLE ${name} RENAME COLUMN ${column} TO ${renamed}`];
      }
      case 3: {
        const renamed = this.fresh('t');
        this.model.delete(name);
        this.model.set(renamed, t);
        return [`ALTER TABLE ${name} RENAME TO ${renamed}`];
      }
      case 4: {
        // Drop and create under the same name, with other columns (and maybe another key).
        const created: Table = { key: pick(this.random, this.keys), columns: Array.from({ length: int(this.random, 1, 3) }, () => this.fresh('c')) };
        this.model.set(name, created);
        return [`DROP TABLE ${name}`, `CREATE TABLE ${name}(${this.columnDefs(created)})`];
      }
      case 5:
      case 6:
        return this.rebuild(name, t);
      default:
        this.model.delete(name);
        return [`DROP TABLE ${name}`];
    }
  }

  private addColumn(name: string, t: Table): string[] {
    const column = this.fresh('c');
    t.columns.push(column);
    return [`ALTER TABLE ${name} ADD COLUMN ${column}${this.random() < 0.5 ? ` DEFAULT ${pick(this.random, ["'d'", '0', 'NULL', "x'01'"])}` : ''}`];
  }

  /** SQLite's table rebuild: new table, copy, drop the old, rename the new to the old name. */
  private rebuild(name: string, t: Table): string[] {
    const kept = t.columns.filter(() => this.random() < 0.8);
    const columns = [...(kept.length > 0 ? kept : t.columns.slice(0, 1))];
    // Reordered, and sometimes one more column.
    for (let i = columns.length - 1; i > 0; i--) {
      const j = int(this.random, 0, i);
      [columns[i], columns[j]] = [columns[j]!, columns[i]!];
    }
    const added = this.random() < 0.4 ? this.fresh('c') : null;
    const rebuilt: Table = { key: t.key, columns: added ? [...columns, added] : columns };
    const temp = this.fresh('tmp');
    const copied = [...this.keyColumns(t), ...columns].join(', ');
    const copiedRowid = t.key === 'none' ? `rowid, ${copied}` : copied;
    this.model.set(name, rebuilt);
    return [
      `CREATE TABLE ${temp}(${this.columnDefs(rebuilt)})`,
      `INSERT INTO ${temp}(${copiedRowid}) SELECT ${copiedRowid} FROM ${name}`,
      `DROP TABLE ${name}`,
      `ALTER TABLE ${temp} RENAME TO ${name}`,
    ];
  }
}

/** One case: random steps on A with pushes and pulls, B pulling, compared; returns the steps run. */
async function runCase(seed: number): Promise<{ statements: number; ddl: number; syncs: number }> {
  const random = rng(mixSeed(seed));
  const gen = new Generator(random);
  const url = `${base}/db/schema-${seed}`;
  const a = await open(join(dir, `a-${seed}.db`), { sync: { url } });
  const b = await open(join(dir, `b-${seed}.db`), { sync: { url } });
  const log: string[] = [];
  const where = (): string => `seed ${seed} (OUTPOST_SEED=${seed}), after:\n${log.join('\n')}`;
  let statements = 0;
  let ddl = 0;
  let syncs = 0;
  try {
    const snapshot = async (db: Database) => ({ schema: await schemaOf(db), rows: await contents(db) });
    const steps = int(random, 8, 24);
    for (let step = 0; step < steps; step++) {
      const roll = random();
      if (roll < 0.12) {
        // A pulls with its changes pending: replay must give back exactly what A had.
        const before = await snapshot(a);
        await a.pull();
        log.push('-- A pulls');
        expect(await snapshot(a), where()).toEqual(before);
        syncs++;
        continue;
      }
      if (roll < 0.3) {
        await a.push();
        log.push('-- A pushes');
        await b.pull();
        log.push('-- B pulls');
        syncs++;
        expect(await snapshot(b), where()).toEqual(await snapshot(a));
        continue;
      }
      // A group of statements: autocommit, a transaction, or a transaction with a savepoint
      // that is rolled back.
      const mode = pick(random, ['autocommit', 'autocommit', 'transaction', 'savepoint'] as const);
      const group: string[] = [];
      for (let i = int(random, 1, 4); i > 0; i--) {
        const isDdl = random() < 0.45;
        const sql = isDdl ? gen.ddl() : gen.dml();
        if (isDdl) ddl++;
        group.push(...sql);
      }
      statements += group.length;
      if (mode === 'autocommit') {
        for (const sql of group) {
          log.push(`${sql};`);
          await a.exec(sql);
        }
      } else if (mode === 'transaction') {
        log.push('BEGIN;', ...group.map((s) => `  ${s};`), 'COMMIT;');
        await a.transaction(async (tx) => {
          for (const sql of group) await tx.exec(sql);
        });
      } else {
        // Some statements kept, then a savepoint whose work (DDL included) is rolled back.
        const kept = clone(gen.model);
        const undone = gen.dml().concat(gen.ddl());
        gen.model = kept;
        log.push('BEGIN;', ...group.map((s) => `  ${s};`), '  SAVEPOINT sp;', ...undone.map((s) => `  ${s};`), '  ROLLBACK TO sp;', 'COMMIT;');
        await a.transaction(async (tx) => {
          for (const sql of group) await tx.exec(sql);
          await tx.exec('SAVEPOINT sp');
          for (const sql of undone) await tx.exec(sql);
          await tx.exec('ROLLBACK TO sp');
          await tx.exec('RELEASE sp');
        });
      }
    }
    await a.push();
    await b.pull();
    log.push('-- A pushes, B pulls');
    syncs++;
    expect(await snapshot(b), where()).toEqual(await snapshot(a));
    expect((await a.pendingChanges()).filter((c) => c.rejected !== null), where()).toEqual([]);
    // And A, after a pull of its own with nothing pending, still has what it had.
    const before = await snapshot(a);
    await a.pull();
    expect(await snapshot(a), where()).toEqual(before);
  } catch (e) {
    throw withLog(e, where);
  } finally {
    await a.close();
    await b.close();
  }
  return { statements, ddl, syncs };
}

/** An error of a case with the statements that led to it (assertions carry them already). */
function withLog(e: unknown, where: () => string): unknown {
  if (e instanceof Error && !e.message.includes('after:\n')) e.message = `${e.message}\n${where()}`;
  return e;
}

/** Runs one case; an error that is not an assertion (which names its seed) is given the seed. */
async function withSeed<T>(seed: number, run: (seed: number) => Promise<T>): Promise<T> {
  try {
    return await run(seed);
  } catch (e) {
    if (e instanceof Error && !e.message.includes(`seed ${seed}`)) e.message = `seed ${seed} (OUTPOST_SEED=${seed}): ${e.message}`;
    throw e;
  }
}

test(`generated schema changes: ${cases} cases from seed ${first}`, async () => {
  console.log(`schema changes: ${cases} cases, seeds ${first}..${first + cases - 1} (replay one with OUTPOST_SEED=<seed>)`);
  const total = { statements: 0, ddl: 0, syncs: 0 };
  for (let seed = first; seed < first + cases; seed++) {
    const r = await withSeed(seed, runCase);
    total.statements += r.statements;
    total.ddl += r.ddl;
    total.syncs += r.syncs;
  }
  console.log(`schema changes: ${total.statements} statements (${total.ddl} DDL steps) in ${cases} cases, ${total.syncs} push/pull comparisons`);
}, 600_000);

/**
 * Concurrent schema changes: while A has row changes pending (inserts with fresh ids, updates),
 * B changes the schema of the same tables (add, drop, rename columns and tables, drop and
 * create, rebuild with columns reordered) and pushes first. A pulls (replaying its changes) and
 * pushes. Every value A writes is tagged with its round, table and column. Checked: a tagged
 * value is only ever found in the table and column it was written to (never moved); an insert
 * of A that was not refused is on B (never lost); a refusal names its table; once A drops its
 * refused changes and pulls, A and B are the same.
 */
async function runConcurrentCase(seed: number): Promise<{ writes: number; refused: number; rounds: number }> {
  const random = rng(mixSeed(seed));
  const url = `${base}/db/concurrent-${seed}`;
  const a = await open(join(dir, `ca-${seed}.db`), { sync: { url } });
  const b = await open(join(dir, `cb-${seed}.db`), { sync: { url } });
  const gen = new Generator(random, ['id']);
  const log: string[] = [];
  const where = (): string => `seed ${seed} (OUTPOST_SEED=${seed}), after:\n${log.join('\n')}`;
  let nextId = 1;
  let writes = 0;
  let refusedTotal = 0;
  const rounds = int(random, 2, 5);
  try {
    for (let i = 0; i < 3; i++) for (const sql of gen.createTable()) await a.exec(sql);
    await a.push();
    await b.pull();
    for (let round = 0; round < rounds; round++) {
      if (gen.model.size === 0) {
        // B dropped every table: A makes a new one, which both have before the round starts.
        for (const sql of gen.createTable()) await a.exec(sql);
        await a.push();
        await b.pull();
      }
      // A writes against the schema it has.
      const inserts: { table: string; id: number }[] = [];
      for (let i = int(random, 2, 8); i > 0; i--) {
        const [table, t] = pick(random, [...gen.model]);
        const tag = (column: string): string => `'A${round}:${table}.${column}:${++writes}'`;
        if (random() < 0.6) {
          const id = nextId++;
          inserts.push({ table, id });
          const sql = `INSERT INTO ${table}(id, ${t.columns.join(', ')}) VALUES (${id}, ${t.columns.map(tag).join(', ')})`;
          log.push(`A: ${sql}`);
          await a.exec(sql);
        } else {
          const column = pick(random, t.columns);
          const sql = `UPDATE ${table} SET ${column} = ${tag(column)} WHERE id % ${int(random, 1, 3)} = 0`;
          log.push(`A: ${sql}`);
          await a.exec(sql);
        }
      }
      // B changes the schema, and pushes first.
      for (let i = int(random, 1, 3); i > 0; i--) {
        for (const sql of gen.ddl()) {
          log.push(`B: ${sql}`);
          await b.exec(sql);
        }
      }
      await b.push();
      const refusals: SyncError[] = [];
      const collect = (e: unknown): void => {
        if (!(e instanceof SyncError) || e.code !== 'REJECTED') throw e;
        refusals.push(e);
      };
      await a.pull().catch(collect);
      await a.push().catch(collect);
      await b.pull();
      log.push(`-- round ${round}: B pushed, A pulled and pushed, B pulled; refusals: ${refusals.map((e) => e.message).join(' / ')}`);
      for (const e of refusals) expect(e.table, where()).toBeTruthy();
      // Never moved: each tagged value of this round is in the table and column it names.
      for (const [table] of gen.model) {
        const columns = (await b.query<{ name: string }>('SELECT name FROM pragma_table_info(?)', [table])).map((c) => c.name);
        for (const column of columns) {
          const tags = await b.query<{ v: string }>(`SELECT ${column} AS v FROM ${table} WHERE typeof(${column}) = 'text' AND ${column} LIKE 'A${round}:%'`);
          for (const { v } of tags) expect(v.split(':')[1], `${where()}\nvalue ${v} found in ${table}.${column}`).toBe(`${table}.${column}`);
        }
      }
      // Never lost: an insert that was not refused is on B.
      const pending = await a.pendingChanges();
      const refusedChanges = pending.filter((c) => c.rejected !== null);
      refusedTotal += refusedChanges.length;
      const refusedInserts = new Set(refusedChanges.flatMap((c) => c.mutations.filter((m) => m.op === 'insert').map((m) => `${m.table}:${String(m.after.id)}`)));
      for (const { table, id } of inserts) {
        if (refusedInserts.has(`${table}:${id}`)) continue;
        const exists = gen.model.has(table) && (await b.query(`SELECT 1 FROM ${table} WHERE id = ?`, [id])).length === 1;
        expect(exists, `${where()}\ninsert of ${table} id ${id} is neither on B nor refused`).toBe(true);
      }
      // Once A drops what was refused, A and B converge.
      for (const c of refusedChanges) await a.dropPendingChange(c.changeId);
      await a.pull();
      expect({ schema: await schemaOf(a), rows: await contents(a) }, where()).toEqual({ schema: await schemaOf(b), rows: await contents(b) });
    }
  } catch (e) {
    throw withLog(e, where);
  } finally {
    await a.close();
    await b.close();
  }
  return { writes, refused: refusedTotal, rounds };
}

test(`generated concurrent schema changes: ${Math.ceil(cases / 2)} cases from seed ${first}`, async () => {
  const count = Math.ceil(cases / 2);
  console.log(`concurrent schema changes: ${count} cases, seeds ${first}..${first + count - 1} (replay one with OUTPOST_SEED=<seed>)`);
  const total = { writes: 0, refused: 0, rounds: 0 };
  for (let seed = first; seed < first + count; seed++) {
    const r = await withSeed(seed, runConcurrentCase);
    total.writes += r.writes;
    total.refused += r.refused;
    total.rounds += r.rounds;
  }
  console.log(`concurrent schema changes: ${total.writes} tagged writes in ${total.rounds} rounds of ${count} cases, ${total.refused} changes refused and reported`);
}, 600_000);
