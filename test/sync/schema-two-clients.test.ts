/**
 * Schema changes by two clients, interleaved with writes each makes offline. schema-fuzz.test.ts
 * has one client change the schema while another only pulls; schema-changes.test.ts names one
 * case of each kind. Here both clients add, drop and rename columns and rebuild tables (SQLite's
 * create-copy-drop-rename, with the columns shuffled) while the other has inserts, updates and
 * deletes pending on the schema it last saw, and they push, pull and sync in a seeded order.
 *
 * Every value written is a tag naming the table and column it was written to. It must hold:
 * - never moved: wherever a tag is found, in either replica or on the server, it sits in its own
 *   column, or in one that column was renamed to (column names are never reused);
 * - refused, not lost: a sync fails only with SyncError REJECTED, and a refused change stays in
 *   pendingChanges() marked rejected;
 * - once each client drops what was refused and both sync, the two replicas hold the same
 *   schema and rows, and integrity_check is ok.
 * Each run prints its seed; OUTPOST_SEED=<seed> replays it, OUTPOST_SCHEMA2_CASES sets how many
 * cases run (default 12).
 */
import { expect, test } from 'vitest';
import { SyncError } from '../../src/errors.js';
import type { Database } from '../../src/types.js';
import { type Random, int, pick, rng, testSeed } from '../support/generate.js';
import { syncClientsOfOneServer } from '../support/sync-clients.js';
import { contents, schemaOf } from './schema-compare.js';

const CASES = Number(process.env.OUTPOST_SCHEMA2_CASES ?? 12);
const clients = syncClientsOfOneServer('outpost-schema2-');
const TABLES = ['t0', 't1'];

async function columnsOf(db: Database, table: string): Promise<string[]> {
  return (await db.query<{ name: string }>('SELECT name FROM pragma_table_info(?) ORDER BY cid', [table])).map((r) => r.name).filter((n) => n !== 'id');
}

test('two clients change the schema while the other writes offline: nothing moves, refusals are reported, replicas converge', async () => {
  const seed = testSeed();
  console.log(`schema two clients: seed ${seed}, ${CASES} cases (OUTPOST_SEED=${seed} replays it)`);
  let refusals = 0;
  let steps = 0;
  for (let c = 0; c < CASES; c++) {
    const random: Random = rng(seed + c * 104_729);
    const db = `s2-${seed}-${c}`;
    const what = `seed ${seed} case ${c}`;
    const log: string[] = [];
    /** Renames anyone made, `table.old` -> new names (both clients may rename one column; names are never reused). */
    const renamed = new Map<string, string[]>();
    let nextColumn = 3;
    let nextTag = 0;
    let nextId = 1;
    const a = await clients.client(db);
    for (const t of TABLES) await a.exec(`CREATE TABLE ${t}(id INTEGER PRIMARY KEY, c0, c1, c2)`);
    await a.push();
    const b = await clients.client(db);
    await b.pull();
    const peers = [a, b];

    async function step(who: number): Promise<void> {
      const me = peers[who]!;
      const t = pick(random, TABLES);
      const columns = await columnsOf(me, t);
      const tag = (column: string): string => `'tag:${t}:${column}:${nextTag++}'`;
      const drawn = pick(random, ['insert', 'insert', 'update', 'update', 'delete', 'add', 'drop', 'rename', 'rebuild', 'push', 'pull', 'sync', 'sync']);
      // Both clients may have dropped columns until only the key is left: add one first.
      const kind = columns.length === 0 && ['insert', 'update', 'drop', 'rename'].includes(drawn) ? 'add' : drawn;
      let sql: string[] = [];
      if (kind === 'insert') sql = [`INSERT INTO ${t}(id, ${columns.join(', ')}) VALUES (${nextId++}, ${columns.map(tag).join(', ')})`];
      else if (kind === 'update') {
        const column = pick(random, columns);
        sql = [`UPDATE ${t} SET ${column} = ${tag(column)} WHERE id = ${int(random, 1, Math.max(1, nextId - 1))}`];
      } else if (kind === 'delete') sql = [`DELETE FROM ${t} WHERE id = ${int(random, 1, Math.max(1, nextId - 1))}`];
      else if (kind === 'add') sql = [`ALTER TABLE ${t} ADD COLUMN c${nextColumn++}`];
      else if (kind === 'drop' && columns.length > 1) sql = [`ALTER TABLE ${t} DROP COLUMN ${pick(random, columns)}`];
      else if (kind === 'rename') {
        const from = pick(random, columns);
        const to = `c${nextColumn++}`;
        renamed.set(`${t}.${from}`, [...(renamed.get(`${t}.${from}`) ?? []), to]);
        sql = [`ALTER TABLE ${t} RENAME COLUMN ${from} TO ${to}`];
      } else if (kind === 'rebuild') {
        const shuffled = [...columns, 'id'].sort(() => random() - 0.5);
        const defs = shuffled.map((n) => (n === 'id' ? 'id INTEGER PRIMARY KEY' : n));
        sql = [`CREATE TABLE ${t}_new(${defs.join(', ')})`, `INSERT INTO ${t}_new(${shuffled.join(', ')}) SELECT ${shuffled.join(', ')} FROM ${t}`, `DROP TABLE ${t}`, `ALTER TABLE ${t}_new RENAME TO ${t}`];
      }
      if (sql.length > 0) {
        const inTransaction = sql.length > 1 || random() < 0.3;
        log.push(`${who ? 'B' : 'A'}: ${sql.join('; ')}${inTransaction ? ' (one transaction)' : ''}`);
        if (inTransaction) await me.transaction(async (tx) => {
          for (const s of sql) await tx.exec(s);
        });
        else await me.exec(sql[0]!);
        return;
      }
      if (kind !== 'push' && kind !== 'pull' && kind !== 'sync') return;
      log.push(`${who ? 'B' : 'A'}: ${kind}`);
      try {
        await me[kind]();
      } catch (e) {
        const context = `${what}: ${kind} failed\n  ${log.join('\n  ')}`;
        expect(e, context).toBeInstanceOf(SyncError);
        expect((e as SyncError).code, `${context}\n${(e as Error).message}`).toBe('REJECTED');
        refusals++;
        const pending = await me.pendingChanges();
        expect(pending.some((p) => p.rejected !== null && p.changeId === (e as SyncError).changeId), `${context}: the refused change stays pending, marked`).toBe(true);
        log.push(`  refused: ${(e as Error).message.slice(0, 160)}`);
      }
    }

    /** Every tag in `replica` sits in its own column or one it was renamed to. */
    async function nothingMoved(replica: Database, name: string): Promise<void> {
      const rows = await contents(replica);
      const schema = await schemaOf(replica);
      for (const [t, lines] of Object.entries(rows)) {
        const names = ['rowid', ...(schema[t] ?? []).map((d) => d.split(' ')[0]!)];
        for (const line of lines) {
          line.split(' | ').forEach((cell, i) => {
            const m = /tag:(\w+):(\w+):\d+/.exec(cell);
            if (!m) return;
            const allowed = new Set([m[2]!]);
            for (const n of allowed) for (const to of renamed.get(`${t}.${n}`) ?? []) allowed.add(to);
            expect(m[1] === t && allowed.has(names[i]!), `${what}: ${name} holds ${m[0]} in ${t}.${names[i]}\n  ${log.join('\n  ')}`).toBe(true);
          });
        }
      }
    }

    for (let i = int(random, 10, 30); i > 0; i--) {
      await step(random() < 0.5 ? 0 : 1);
      steps++;
    }
    await nothingMoved(a, 'A');
    await nothingMoved(b, 'B');
    // Settle: what was refused is dropped by its client; then both sync until nothing is pending.
    for (let round = 0; round < 4; round++) {
      for (const me of peers) {
        await me.sync().catch((e: unknown) => {
          if (!(e instanceof SyncError) || e.code !== 'REJECTED') throw e;
        });
        for (const p of await me.pendingChanges()) if (p.rejected !== null) await me.dropPendingChange(p.changeId);
      }
    }
    for (const me of peers) {
      await me.sync();
      expect((await me.syncStatus())?.pendingChanges, `${what}: pending after settling\n  ${log.join('\n  ')}`).toBe(0);
    }
    await a.pull();
    await nothingMoved(a, 'A settled');
    await nothingMoved(b, 'B settled');
    expect(await schemaOf(b), `${what}: schemas\n  ${log.join('\n  ')}`).toEqual(await schemaOf(a));
    expect(await contents(b), `${what}: rows\n  ${log.join('\n  ')}`).toEqual(await contents(a));
    for (const me of peers) expect(await me.get('PRAGMA integrity_check'), what).toEqual({ integrity_check: 'ok' });
    for (const me of peers) await me.close();
  }
  console.log(`schema two clients: ${CASES} cases, ${steps} steps, ${refusals} refusals`);
}, 600_000);
