/**
 * A change built on a refused one waits with it: a later pending change that writes a row a
 * refused change wrote is refused too (`waits for change N`), reported, and never pushed alone.
 * A change carries only the columns it changed where it was made, so pushed alone it would not
 * carry a value the refused change had already set (an UPDATE that sets a column to the value it
 * already had changes nothing there): that part of a committed write would be lost in silence.
 * Found by the differential fuzzer (seeds 900184, a UNIQUE refusal, and 722546, a dropped table).
 */
import { expect, test } from 'vitest';
import { SyncError } from '../../src/errors.js';
import type { Database } from '../../src/types.js';
import { rawPipeline, batch } from '../support/server.js';
import { syncClientsOfOneServer } from '../support/sync-clients.js';

const clients = syncClientsOfOneServer('outpost-built-on-refused-');
const client = (db: string): Promise<Database> => clients.client(db);

async function serverRows(db: string, sql: string): Promise<unknown[]> {
  const r = await rawPipeline(`${clients.base}/db/${db}`, batch(sql));
  return r.json.results[0].response.result.step_results[0].rows.map((row: { value: unknown }[]) => row.map((v) => v.value));
}

async function rejection(p: Promise<unknown>): Promise<SyncError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(SyncError);
  expect((e as SyncError).code).toBe('REJECTED');
  return e as SyncError;
}

test('a change that sets again a value a change refused by the server had set waits for it, and is not pushed without it', async () => {
  const a = await client('unique-again');
  await a.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, email TEXT UNIQUE, note TEXT); INSERT INTO t VALUES (1, 'one', 'n0')");
  await a.sync();
  const b = await client('unique-again');
  await b.pull();
  await b.run("INSERT INTO t VALUES (2, 'taken', 'b')");
  await b.push();
  // A, not yet aware of B's row: the first change will be refused (UNIQUE), the second sets the
  // same email again (nothing changes there locally) and a note.
  await a.run("UPDATE t SET email = 'taken' WHERE id = 1");
  await a.run("UPDATE t SET email = 'taken', note = 'n1' WHERE id = 1");
  await a.run("INSERT INTO t VALUES (3, 'other', 'unrelated')");
  await rejection(a.push());
  const pending = await a.pendingChanges();
  expect(pending.map((p) => p.rejected)).toEqual([expect.stringMatching(/UNIQUE/), expect.stringMatching(`^waits for change ${pending[0]!.changeId},`), null]);
  // Neither reached the server; the unrelated insert after them did.
  expect(await serverRows('unique-again', 'SELECT id, email, note FROM t ORDER BY id')).toEqual([
    ['1', 'one', 'n0'],
    ['2', 'taken', 'b'],
    ['3', 'other', 'unrelated'],
  ]);
});

test('a change built on one that a pull refuses (its other table was dropped) waits for it', async () => {
  const a = await client('dropped-table');
  await a.exec("CREATE TABLE p(id INTEGER PRIMARY KEY, v); CREATE TABLE q(id INTEGER PRIMARY KEY, c, d); INSERT INTO q VALUES (1, 'c0', 'd0')");
  await a.sync();
  const b = await client('dropped-table');
  await b.pull();
  await b.exec('DROP TABLE p');
  await b.push();
  await a.exec("BEGIN; INSERT INTO p VALUES (1, 'v'); UPDATE q SET c = 'c1' WHERE id = 1; COMMIT");
  await a.run("UPDATE q SET c = 'c1', d = 'd1' WHERE id = 1");
  await rejection(a.pull());
  await rejection(a.push());
  const pending = await a.pendingChanges();
  expect(pending.map((p) => p.rejected)).toEqual([expect.stringMatching(/table p/), expect.stringMatching(`^waits for change ${pending[0]!.changeId},`)]);
  expect(await serverRows('dropped-table', 'SELECT id, c, d FROM q')).toEqual([['1', 'c0', 'd0']]);
  // Dropping both gives the server's row back.
  for (const p of pending) await a.dropPendingChange(p.changeId);
  await a.sync();
  expect(await a.query('SELECT id, c, d FROM q')).toEqual([{ id: 1, c: 'c0', d: 'd0' }]);
});
