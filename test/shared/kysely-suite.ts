/**
 * `outpost/kysely` against the real kysely 0.28: queries, isolated transactions, savepoints and
 * the Migrator. Run in Node (test/kysely.test.ts) and in Chromium's worker
 * (test-browser/orm.browser.test.ts).
 */
import { Kysely, Migrator, sql, type Generated, type Migration, type MigrationProvider } from 'kysely';
import { describe, expect, test } from 'vitest';
import { OutpostDialect } from '../../src/kysely/index.js';
import type { Database } from '../../src/types.js';
import { rejection } from './suite-support.js';
import { gate, track } from './drizzle-suite.js';

interface Schema {
  person: { id: Generated<number>; name: string; age: number | null };
  pet: { id: Generated<number>; owner_id: number; name: string };
}

/** Two migrations, as an application would write them. */
const migrations: Record<string, Migration> = {
  '0001_person': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('person')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('age', 'integer')
        .execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('person').execute();
    },
  },
  '0002_pet': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('pet')
        .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
        .addColumn('owner_id', 'integer', (c) => c.notNull().references('person.id'))
        .addColumn('name', 'text', (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('pet').execute();
    },
  },
};

const provider: MigrationProvider = { getMigrations: async () => migrations };

export function kyselySuite(label: string, open: () => Promise<Database>): void {
  async function withKysely<T>(fn: (k: Kysely<Schema>, db: Database) => Promise<T>): Promise<T> {
    const db = await open();
    const k = new Kysely<Schema>({ dialect: new OutpostDialect({ database: db }) });
    try {
      const { error } = await new Migrator({ db: k, provider }).migrateToLatest();
      if (error) throw error;
      return await fn(k, db);
    } finally {
      await k.destroy();
    }
  }

  describe(`kysely (${label})`, () => {
    test('the Migrator applies each migration once', async () => {
      await withKysely(async (k, db) => {
        const again = await new Migrator({ db: k, provider }).migrateToLatest();
        expect(again.error).toBeUndefined();
        expect(again.results).toEqual([]);
        const applied = await db.query<{ name: string }>('SELECT name FROM kysely_migration ORDER BY name');
        expect(applied.map((m) => m.name)).toEqual(['0001_person', '0002_pet']);
        const tables = await k.introspection.getTables();
        expect(tables.map((t) => t.name).sort()).toEqual(['person', 'pet']);
      });
    });

    test('insert, select with a join, update and delete', async () => {
      await withKysely(async (k) => {
        const inserted = await k.insertInto('person').values({ name: 'ada', age: 36 }).executeTakeFirstOrThrow();
        expect(inserted.insertId).toBe(1n);
        expect(inserted.numInsertedOrUpdatedRows).toBe(1n);
        await k.insertInto('person').values([{ name: 'bob', age: null }, { name: 'cy', age: 5 }]).execute();
        await k.insertInto('pet').values({ owner_id: 1, name: 'rex' }).execute();
        const updated = await k.updateTable('person').set({ age: 40 }).where('name', '=', 'bob').executeTakeFirst();
        expect(updated.numUpdatedRows).toBe(1n);
        const deleted = await k.deleteFrom('person').where('name', '=', 'cy').returning('id').execute();
        expect(deleted).toEqual([{ id: 3 }]);
        const rows = await k
          .selectFrom('person')
          .leftJoin('pet', 'pet.owner_id', 'person.id')
          .select(['person.name', 'person.age', 'pet.name as pet'])
          .orderBy('person.id')
          .execute();
        expect(rows).toEqual([
          { name: 'ada', age: 36, pet: 'rex' },
          { name: 'bob', age: 40, pet: null },
        ]);
        const { count } = await k.selectFrom('person').select((eb) => eb.fn.countAll<number>().as('count')).executeTakeFirstOrThrow();
        expect(count).toBe(2);
        const raw = await sql<{ n: number }>`SELECT ${7} AS n`.execute(k);
        expect(raw.rows).toEqual([{ n: 7 }]);
      });
    });

    test('stream yields a SELECT in chunks', async () => {
      await withKysely(async (k) => {
        await k.insertInto('person').values(Array.from({ length: 25 }, (_, i) => ({ name: `p${i}`, age: i }))).execute();
        const names: string[] = [];
        for await (const row of k.selectFrom('person').select('name').orderBy('id').stream(10)) names.push(row.name);
        expect(names).toHaveLength(25);
        expect(names[24]).toBe('p24');
      });
    });

    test('stream reads as it goes: the first chunks arrive before a row that fails later', async () => {
      await withKysely(async (k) => {
        await k.insertInto('person').values(Array.from({ length: 3000 }, (_, i) => ({ name: `p${i}`, age: i }))).execute();
        // Row 2500 overflows an integer: reading the whole result first would fail before any chunk.
        const failing = sql<number>`CASE WHEN id = 2500 THEN abs(-9223372036854775807 - 1) ELSE id END`.as('id');
        const seen: number[] = [];
        const e = await rejection(
          (async () => {
            for await (const row of k.selectFrom('person').select(failing).orderBy('person.id').stream(100)) seen.push(row.id);
          })(),
        );
        expect(e.message).toMatch(/overflow/);
        expect(seen.length).toBeGreaterThanOrEqual(1000);
        expect(seen.length).toBeLessThan(2500);
        expect(await k.selectFrom('person').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).toEqual({ n: 3000 });
      });
    });

    test('a query made outside a transaction waits for it and does not join it', async () => {
      await withKysely(async (k, db) => {
        const release = gate();
        const inside = gate();
        const outside: { settled: () => boolean }[] = [];
        let settledWhileOpen: boolean | null = null;
        const transaction = k.transaction().execute(async (trx) => {
          await trx.insertInto('person').values({ name: 'inside', age: 1 }).execute();
          inside.open();
          await release.opened;
          expect(await trx.selectFrom('person').selectAll().execute()).toHaveLength(1);
          settledWhileOpen = outside.some((call) => call.settled());
          throw new Error('roll it back');
        });
        await inside.opened;
        const kyselyRead = track(k.selectFrom('person').select('name').execute());
        const rawWrite = track(db.run("INSERT INTO person (name) VALUES ('outside')"));
        outside.push(kyselyRead, rawWrite);
        release.open();
        await expect(transaction).rejects.toThrow('roll it back');
        expect(settledWhileOpen).toBe(false);
        await rawWrite.promise;
        expect(await kyselyRead.promise).toEqual([{ name: 'outside' }]);
      });
    });

    test('a transaction commits when its function resolves and rolls back when it throws', async () => {
      await withKysely(async (k) => {
        await k.transaction().execute(async (trx) => {
          await trx.insertInto('person').values({ name: 'kept', age: 1 }).execute();
        });
        const error = await k
          .transaction()
          .execute(async (trx) => {
            await trx.insertInto('person').values({ name: 'gone', age: 2 }).execute();
            await trx.insertInto('person').values({ name: 'kept', age: 3 }).execute();
          })
          .then(
            () => 'no error',
            (e: unknown) => e,
          );
        expect(error).toMatchObject({ code: 'SQLITE_CONSTRAINT_UNIQUE' });
        expect(await k.selectFrom('person').select('name').execute()).toEqual([{ name: 'kept' }]);
      });
    });

    test('a savepoint rolled back undoes only its own writes', async () => {
      await withKysely(async (k) => {
        const trx = await k.startTransaction().execute();
        await trx.insertInto('person').values({ name: 'outer', age: 1 }).execute();
        const sp = await trx.savepoint('inner').execute();
        await sp.insertInto('person').values({ name: 'inner', age: 2 }).execute();
        const back = await sp.rollbackToSavepoint('inner').execute();
        await back.insertInto('person').values({ name: 'after', age: 3 }).execute();
        await back.commit().execute();
        expect((await k.selectFrom('person').select('name').orderBy('id').execute()).map((r) => r.name)).toEqual(['outer', 'after']);
      });
    });

    test('a released savepoint keeps its writes when the transaction commits', async () => {
      await withKysely(async (k) => {
        const trx = await k.startTransaction().execute();
        const sp = await trx.savepoint('a').execute();
        await sp.insertInto('person').values({ name: 'in savepoint', age: 1 }).execute();
        const released = await sp.releaseSavepoint('a').execute();
        await released.commit().execute();
        expect(await k.selectFrom('person').select('name').execute()).toEqual([{ name: 'in savepoint' }]);
      });
    });
  });
}
