/**
 * `outpost/drizzle`: Drizzle ORM over an Outpost `Database` (browser or Node); drizzle-orm is
 * an optional peer dependency.
 *
 * Contract: imports only Outpost's public surface (types, errors), so it works over any
 * `Database`. Transactions are Outpost's: `db.transaction()` holds the database's queue from
 * `BEGIN IMMEDIATE` to its end, so a query made outside it waits and never joins it; a nested
 * transaction is a savepoint; `batch` is one transaction. Migrations use Drizzle's own
 * migrator and `__drizzle_migrations` table: from a folder with `outpost/drizzle/migrator`
 * (Node), or as data with `migrate` here (the browser).
 */
export { drizzle, OutpostDrizzleDatabase } from './driver.js';
export { migrate, readMigrations, type MigrationFiles, type MigrationJournal, type MigrateOptions } from './migrate.js';
export { OutpostSession, OutpostTransaction, OutpostPreparedQuery, type Scope } from './session.js';
