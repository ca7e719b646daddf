/**
 * UNIQUE constraints and sync: a transaction that is valid where it was made is valid on the
 * server (its row changes are applied deletes, updates, inserts, so a value freed and given to a
 * new row in one transaction arrives), and a pending change that a pull makes break a UNIQUE
 * constraint is refused and reported whole, never applied in part or dropped in silence. The
 * generated cases are the differential fuzzer's `unique` feature.
 */
import { expect, test } from 'vitest';
import { SyncError } from '../../src/errors.js';
import type { Database } from '../../src/types.js';
import { rawPipeline, batch } from '../support/server.js';
import { syncClientsOfOneServer } from '../support/sync-clients.js';

const clients = syncClientsOfOneServer('outpost-unique-');
const client = (db: string): Promise<Database> => clients.client(db);

async function serverRows(db: string, sql: string): Promise<unknown[]> {
  const r = await rawPipeline(`${clients.base}/db/${db}`, batch(sql));
  return r.json.results[0].response.result.step_results[0].rows.map((row: { value: unknown }[]) => row.map((v) => v.value));
}

test('a transaction that moves a UNIQUE value to a new row pushes (keyed and keyless tables)', async () => {
  const a = await client('move');
  await a.exec('CREATE TABLE k(id INTEGER PRIMARY KEY, u TEXT UNIQUE); CREATE TABLE r(u TEXT UNIQUE, v)');
  await a.exec("INSERT INTO k VALUES (1, 'u1'); INSERT INTO r(rowid, u, v) VALUES (1, 'u1', 'old')");
  await a.push();
  // Many rows, so that the changeset's hash order puts inserts before the updates they need.
  await a.transaction(async (tx) => {
    for (let i = 2; i <= 40; i++) await tx.run('INSERT INTO k VALUES (?, ?)', [i, `x${i}`]);
    await tx.exec("UPDATE k SET u = 'u3' WHERE id = 1; INSERT INTO k VALUES (100, 'u1')");
    await tx.exec("DELETE FROM r WHERE rowid = 1; INSERT INTO r(rowid, u, v) VALUES (7, 'u1', 'new')");
  });
  expect(await a.push()).toBe(1);
  expect(await serverRows('move', "SELECT id FROM k WHERE u IN ('u1', 'u3') ORDER BY u")).toEqual([['100'], ['1']]);
  expect(await serverRows('move', 'SELECT rowid, u, v FROM r')).toEqual([['7', 'u1', 'new']]);
});

test('a pending insert that a pull makes break a UNIQUE constraint is refused and reported, not dropped', async () => {
  const a = await client('clash');
  await a.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, email TEXT UNIQUE)');
  await a.push();
  const b = await client('clash');
  await b.pull();
  await a.exec("INSERT INTO t VALUES (1, 'same@example.com')");
  await b.exec("INSERT INTO t VALUES (2, 'same@example.com')");
  await b.push();
  const error = await a.pull().then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SyncError);
  expect((error as SyncError).code).toBe('REJECTED');
  const pending = await a.pendingChanges();
  expect(pending).toHaveLength(1);
  expect(pending[0]!.rejected).toMatch(/constraint/i);
  expect(pending[0]!.mutations.map((m) => m.after)).toEqual([{ id: 1, email: 'same@example.com' }]);
  // The other client's row is there; this one's is kept in the change log, not applied.
  expect(await a.query('SELECT id FROM t')).toEqual([{ id: 2 }]);
  // Pushing skips it and says so; dropping it ends the report.
  await a.push().catch(() => undefined);
  await a.dropPendingChange(pending[0]!.changeId);
  expect(await a.pendingChanges()).toEqual([]);
});
