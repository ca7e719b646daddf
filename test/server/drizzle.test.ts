/**
 * `drizzle-orm/libsql` over `@libsql/client` against the Outpost server: schema, typed queries,
 * a batch, and transactions that commit and roll back.
 */
import { type Client, createClient } from '@libsql/client';
import { asc, eq, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/libsql';
import { blob, integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { OutpostServer } from '../../src/server/server.js';
import { startServer } from '../support/server.js';

const users = sqliteTable('users', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull().unique(),
  karma: integer('karma', { mode: 'number' }).notNull().default(0),
  avatar: blob('avatar', { mode: 'buffer' }),
});

let server: OutpostServer;
let client: Client;
let db: ReturnType<typeof drizzle>;

beforeAll(async () => {
  let url: string;
  ({ server, url } = await startServer({ auth: false }));
  client = createClient({ url: `${url}/db/drizzle/` });
  db = drizzle(client);
  await db.run(sql`CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, karma INTEGER NOT NULL DEFAULT 0, avatar BLOB)`);
});
afterAll(async () => {
  client.close();
  await server.close();
});

test('insert, select, update and delete with typed results', async () => {
  const [ada] = await db.insert(users).values({ name: 'ada', avatar: Buffer.from([1, 2, 3]) }).returning();
  expect(ada).toMatchObject({ name: 'ada', karma: 0 });
  await db.insert(users).values([{ name: 'bob' }, { name: 'cyd', karma: 5 }]);
  await db.update(users).set({ karma: sql`${users.karma} + 10` }).where(eq(users.name, 'bob'));
  await db.delete(users).where(eq(users.name, 'cyd'));
  const rows = await db.select().from(users).orderBy(asc(users.id));
  expect(rows.map((r) => [r.name, r.karma])).toEqual([
    ['ada', 0],
    ['bob', 10],
  ]);
  expect([...rows[0]!.avatar!]).toEqual([1, 2, 3]);
});

test('a batch applies all its statements', async () => {
  const [, , counted] = await db.batch([db.insert(users).values({ name: 'b1' }), db.insert(users).values({ name: 'b2' }), db.select({ n: sql<number>`count(*)` }).from(users).where(sql`${users.name} LIKE 'b_'`)]);
  expect(counted[0]!.n).toBe(2);
});

test('a transaction commits what it did', async () => {
  await db.transaction(async (tx) => {
    await tx.insert(users).values({ name: 'tx1' });
    const [row] = await tx.select().from(users).where(eq(users.name, 'tx1'));
    await tx.update(users).set({ karma: 7 }).where(eq(users.id, row!.id));
  });
  const [row] = await db.select().from(users).where(eq(users.name, 'tx1'));
  expect(row!.karma).toBe(7);
});

test('a transaction that throws, or rolls back, leaves nothing', async () => {
  const failed = await db
    .transaction(async (tx) => {
      await tx.insert(users).values({ name: 'gone1' });
      await tx.insert(users).values({ name: 'ada' });
    })
    .catch((e: unknown) => e);
  // Drizzle wraps the driver's error ("Failed query: ...") and keeps it as the cause.
  expect((failed as { cause?: { code?: string } }).cause?.code).toBe('SQLITE_CONSTRAINT_UNIQUE');
  await expect(
    db.transaction(async (tx) => {
      await tx.insert(users).values({ name: 'gone2' });
      tx.rollback();
    }),
  ).rejects.toThrow(/Rollback/);
  const gone = await db.select().from(users).where(sql`${users.name} LIKE 'gone%'`);
  expect(gone).toEqual([]);
});
