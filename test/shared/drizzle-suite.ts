/**
 * `outpost/drizzle` against the real drizzle-orm: queries, isolated transactions, savepoints,
 * batch and migrations. Run in Node (test/drizzle.test.ts) and in Chromium's worker
 * (test-browser/orm.browser.test.ts).
 */
import { eq, relations, sql, TransactionRollbackError } from 'drizzle-orm';
import { integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';
import { describe, expect, test } from 'vitest';
import { drizzle, migrate, type MigrationFiles } from '../../src/drizzle/index.js';
import type { Database } from '../../src/types.js';

export const users = sqliteTable('users', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull(),
  email: text('email').unique(),
});

export const posts = sqliteTable('posts', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  userId: integer('user_id')
    .notNull()
    .references(() => users.id, { onDelete: 'cascade' }),
  title: text('title').notNull(),
});

export const usersRelations = relations(users, ({ many }) => ({ posts: many(posts) }));
export const postsRelations = relations(posts, ({ one }) => ({ author: one(users, { fields: [posts.userId], references: [users.id] }) }));
export const schema = { users, posts, usersRelations, postsRelations };

/** A promise and the function that settles it, to hold a transaction open until the test says. */
export function gate(): { opened: Promise<void>; open: () => void } {
  let open = (): void => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

/** A promise's state, read without waiting for it. */
export function track<T>(p: Promise<T>): { settled: () => boolean; promise: Promise<T> } {
  let done = false;
  const promise = p.finally(() => {
    done = true;
  });
  return { settled: () => done, promise };
}

export function drizzleSuite(label: string, open: () => Promise<Database>, migrations: MigrationFiles): void {
  async function withOrm<T>(fn: (orm: ReturnType<typeof drizzle<typeof schema>>, db: Database) => Promise<T>): Promise<T> {
    const db = await open();
    try {
      const orm = drizzle(db, { schema });
      await migrate(orm, migrations);
      return await fn(orm, db);
    } finally {
      await db.close();
    }
  }

  describe(`drizzle (${label})`, () => {
    test('migrations are applied once and recorded in __drizzle_migrations', async () => {
      await withOrm(async (orm, db) => {
        await migrate(orm, migrations);
        const applied = await db.query<{ hash: string; created_at: number }>('SELECT hash, created_at FROM __drizzle_migrations ORDER BY id');
        expect(applied.map((m) => Number(m.created_at))).toEqual(migrations.journal.entries.map((e) => e.when));
        expect(applied.every((m) => /^[0-9a-f]{64}$/.test(m.hash))).toBe(true);
        const tables = await db.query<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('users', 'posts') ORDER BY name");
        expect(tables.map((t) => t.name)).toEqual(['posts', 'users']);
      });
    });

    test('a migration whose SQL is missing is refused and nothing is applied', async () => {
      const db = await open();
      try {
        const orm = drizzle(db);
        const broken: MigrationFiles = { journal: migrations.journal, migrations: {} };
        await expect(migrate(orm, broken)).rejects.toThrow(/0000_init_users/);
        expect(await db.query("SELECT name FROM sqlite_master WHERE name = 'users'")).toEqual([]);
      } finally {
        await db.close();
      }
    });

    test('insert, select, update and delete through the query builder', async () => {
      await withOrm(async (orm) => {
        const inserted = await orm.insert(users).values({ name: 'ada', email: 'ada@example.com' }).returning();
        expect(inserted).toEqual([{ id: 1, name: 'ada', email: 'ada@example.com' }]);
        await orm.insert(users).values([{ name: 'bob' }, { name: 'cy' }]);
        await orm.update(users).set({ email: 'bob@example.com' }).where(eq(users.name, 'bob'));
        const result = await orm.delete(users).where(eq(users.name, 'cy'));
        expect(result.changes).toBe(1);
        expect(await orm.select({ name: users.name, email: users.email }).from(users).orderBy(users.id)).toEqual([
          { name: 'ada', email: 'ada@example.com' },
          { name: 'bob', email: 'bob@example.com' },
        ]);
        expect(await orm.select().from(users).where(eq(users.id, 2)).get()).toEqual({ id: 2, name: 'bob', email: 'bob@example.com' });
      });
    });

    test('a join of two tables with an id column keeps both ids', async () => {
      await withOrm(async (orm) => {
        await orm.insert(users).values([{ name: 'ada' }, { name: 'bob' }]);
        await orm.insert(posts).values([
          { userId: 2, title: 'first' },
          { userId: 1, title: 'second' },
        ]);
        const rows = await orm.select().from(posts).innerJoin(users, eq(posts.userId, users.id)).orderBy(posts.id);
        expect(rows).toEqual([
          { posts: { id: 1, userId: 2, title: 'first' }, users: { id: 2, name: 'bob', email: null } },
          { posts: { id: 2, userId: 1, title: 'second' }, users: { id: 1, name: 'ada', email: null } },
        ]);
      });
    });

    test('a selected expression named like a number stays in its place', async () => {
      await withOrm(async (orm) => {
        await orm.insert(users).values({ name: 'ada' });
        const rows = await orm.select({ name: users.name, one: sql<number>`1`, count: sql<number>`count(*)` }).from(users);
        expect(rows).toEqual([{ name: 'ada', one: 1, count: 1 }]);
      });
    });

    test('relational queries load nested rows', async () => {
      await withOrm(async (orm) => {
        await orm.insert(users).values({ name: 'ada' });
        await orm.insert(posts).values([
          { userId: 1, title: 'a' },
          { userId: 1, title: 'b' },
        ]);
        const found = await orm.query.users.findMany({ with: { posts: { columns: { title: true } } } });
        expect(found).toEqual([{ id: 1, name: 'ada', email: null, posts: [{ title: 'a' }, { title: 'b' }] }]);
      });
    });

    test('a query made outside a transaction waits for it and does not join it', async () => {
      await withOrm(async (orm, db) => {
        const release = gate();
        const inside = gate();
        const outside: { settled: () => boolean }[] = [];
        let settledWhileOpen: boolean | null = null;
        const transaction = orm.transaction(async (tx) => {
          await tx.insert(users).values({ name: 'inside' });
          inside.open();
          await release.opened;
          // A round trip to the engine inside the transaction, after the outside calls were made.
          expect(await tx.select().from(users)).toHaveLength(1);
          settledWhileOpen = outside.some((call) => call.settled());
          throw new Error('roll it back');
        });
        await inside.opened;
        const ormRead = track(orm.select().from(users));
        const ormWrite = track(orm.insert(users).values({ name: 'outside' }));
        const rawRead = track(db.query('SELECT name FROM users'));
        outside.push(ormRead, ormWrite, rawRead);
        release.open();
        await expect(transaction).rejects.toThrow('roll it back');
        expect(settledWhileOpen).toBe(false);
        // They ran after the rollback: none saw the transaction's row, and the write is its own.
        expect(await ormRead.promise).toEqual([]);
        await ormWrite.promise;
        expect(await rawRead.promise).toEqual([{ name: 'outside' }]);
      });
    });

    test('a transaction commits when its function resolves', async () => {
      await withOrm(async (orm) => {
        const id = await orm.transaction(async (tx) => {
          const [row] = await tx.insert(users).values({ name: 'ada' }).returning({ id: users.id });
          await tx.insert(posts).values({ userId: row!.id, title: 't' });
          return row!.id;
        });
        expect(await orm.select({ title: posts.title }).from(posts).where(eq(posts.userId, id))).toEqual([{ title: 't' }]);
      });
    });

    test('a throw rolls the transaction back and rejects with the error', async () => {
      await withOrm(async (orm) => {
        await expect(
          orm.transaction(async (tx) => {
            await tx.insert(users).values({ name: 'gone' });
            tx.rollback();
          }),
        ).rejects.toBeInstanceOf(TransactionRollbackError);
        expect(await orm.select().from(users)).toEqual([]);
      });
    });

    test('a nested transaction is a savepoint: its throw undoes only its own writes', async () => {
      await withOrm(async (orm) => {
        await orm.transaction(async (tx) => {
          await tx.insert(users).values({ name: 'outer' });
          await expect(
            tx.transaction(async (inner) => {
              await inner.insert(users).values({ name: 'inner' });
              await inner.transaction(async (deepest) => {
                await deepest.insert(users).values({ name: 'deepest' });
              });
              throw new Error('undo inner');
            }),
          ).rejects.toThrow('undo inner');
          await tx.transaction(async (inner) => {
            await inner.insert(users).values({ name: 'kept' });
          });
        });
        expect((await orm.select({ name: users.name }).from(users).orderBy(users.id)).map((u) => u.name)).toEqual(['outer', 'kept']);
      });
    });

    test('batch returns each query result and is atomic', async () => {
      await withOrm(async (orm) => {
        const [inserted, , all] = await orm.batch([
          orm.insert(users).values({ name: 'ada' }).returning({ id: users.id }),
          orm.run(sql`INSERT INTO users (name) VALUES ('bob')`),
          orm.select({ name: users.name }).from(users).orderBy(users.id),
        ]);
        expect(inserted).toEqual([{ id: 1 }]);
        expect(all).toEqual([{ name: 'ada' }, { name: 'bob' }]);
        await expect(
          orm.batch([orm.insert(users).values({ name: 'cy' }), orm.insert(users).values({ id: 1, name: 'duplicate id' })]),
        ).rejects.toThrow();
        expect((await orm.select({ name: users.name }).from(users)).map((u) => u.name)).toEqual(['ada', 'bob']);
      });
    });

    test('a failing statement rejects with its SqliteError as the cause', async () => {
      await withOrm(async (orm) => {
        await orm.insert(users).values({ name: 'ada', email: 'same@example.com' });
        const error = await orm
          .insert(users)
          .values({ name: 'bob', email: 'same@example.com' })
          .then(
            () => 'no error',
            (e: unknown) => e,
          );
        expect(error).toMatchObject({ cause: { code: 'SQLITE_CONSTRAINT_UNIQUE' } });
      });
    });
  });
}
