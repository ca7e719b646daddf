/**
 * `outpost/kysely`: a Kysely dialect over an Outpost `Database` (browser or Node); kysely is an
 * optional peer dependency.
 *
 * Contract: imports only Outpost's public surface (types, errors). Kysely's SQLite adapter,
 * introspector and query compiler; a driver whose transactions are Outpost's (see
 * `src/kysely/driver.ts`): while one is open, other Kysely queries and calls on the `Database`
 * wait. Kysely's `Migrator` works as with its own SQLite dialect.
 */
import { SqliteAdapter, SqliteIntrospector, SqliteQueryCompiler, type DatabaseIntrospector, type Dialect, type DialectAdapter, type Driver, type Kysely, type QueryCompiler } from 'kysely';
import { OutpostDriver, type OutpostDialectConfig } from './driver.js';

export { OutpostConnection, OutpostDriver, type OutpostDialectConfig } from './driver.js';

export class OutpostDialect implements Dialect {
  constructor(private readonly config: OutpostDialectConfig) {}

  createDriver(): Driver {
    return new OutpostDriver(this.config);
  }

  createQueryCompiler(): QueryCompiler {
    return new SqliteQueryCompiler();
  }

  createAdapter(): DialectAdapter {
    return new SqliteAdapter();
  }

  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new SqliteIntrospector(db);
  }
}
