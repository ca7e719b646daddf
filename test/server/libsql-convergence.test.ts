/**
 * Three kinds of client on one Outpost database at once: `@libsql/client` (remote SQL over
 * Hrana, interactive transactions included), Outpost's sync client and Turso's sync client
 * (@tursodatabase/sync). Each writes, and all of them end with the same rows.
 */
import { type Client, createClient } from '@libsql/client';
import { connect } from '@tursodatabase/sync';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { open } from '../../src/node/index.js';
import type { OutpostServer } from '../../src/server/server.js';
import type { Database } from '../../src/types.js';
import { startServer, tempDir } from '../support/server.js';

let server: OutpostServer;
let base: string;
let libsql: Client;
let outpost: Database;
let turso: Awaited<ReturnType<typeof connect>>;
const dir = tempDir('outpost-three-clients-');

beforeAll(async () => {
  ({ server, url: base } = await startServer({ auth: false }));
  libsql = createClient({ url: `${base}/db/shared/` });
});
afterAll(async () => {
  libsql.close();
  if (outpost && !outpost.closed) await outpost.close();
  await turso?.close();
  await server.close();
});

type Note = [string, string, string, number];

function notes(rows: readonly Record<string, unknown>[]): Note[] {
  return rows.map((r) => [String(r.id), String(r.author), String(r.body), Number(r.n)]);
}

const SELECT = 'SELECT id, author, body, n FROM notes ORDER BY id';

test('@libsql/client, the Outpost sync client and the Turso sync client write one database and converge', async () => {
  await libsql.execute('CREATE TABLE notes(id TEXT PRIMARY KEY, author TEXT NOT NULL, body TEXT NOT NULL, n INTEGER NOT NULL)');
  await libsql.execute({ sql: 'INSERT INTO notes VALUES (?, ?, ?, ?)', args: ['l1', 'libsql', 'first', 1] });

  outpost = await open(join(dir, 'outpost.db'), { sync: { url: `${base}/db/shared` } });
  await outpost.pull();
  await outpost.batch(["INSERT INTO notes VALUES ('o1', 'outpost', 'hello', 1)", "UPDATE notes SET body = 'first, edited by outpost' WHERE id = 'l1'"]);
  expect(await outpost.push()).toBeGreaterThan(0);

  turso = await connect({ path: join(dir, 'turso.db'), url: `${base}/db/shared`, clientName: 'turso-client' });
  await turso.exec("INSERT INTO notes VALUES ('t1', 'turso', 'hi', 1)");
  await turso.exec("UPDATE notes SET n = n + 10 WHERE id = 'o1'");
  await turso.push();

  const tx = await libsql.transaction('write');
  await tx.execute({ sql: 'INSERT INTO notes VALUES (?, ?, ?, ?)', args: ['l2', 'libsql', 'in a transaction', 2] });
  await tx.execute("UPDATE notes SET n = n + 100 WHERE id = 't1'");
  await tx.commit();
  await libsql.batch([{ sql: 'INSERT INTO notes VALUES (?, ?, ?, ?)', args: ['l3', 'libsql', 'in a batch', 3] }, "DELETE FROM notes WHERE id = 'l2'"], 'write');

  await outpost.sync();
  await turso.pull();
  const expected: Note[] = [
    ['l1', 'libsql', 'first, edited by outpost', 1],
    ['l3', 'libsql', 'in a batch', 3],
    ['o1', 'outpost', 'hello', 11],
    ['t1', 'turso', 'hi', 101],
  ];
  expect(notes((await libsql.execute(SELECT)).rows)).toEqual(expected);
  expect(notes(await outpost.query(SELECT))).toEqual(expected);
  expect(notes((await (await turso.prepare(SELECT)).all()) as Record<string, unknown>[])).toEqual(expected);
});
