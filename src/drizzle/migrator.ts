/**
 * `outpost/drizzle/migrator` (Node): applies a drizzle-kit output folder, as
 * `drizzle-orm/<driver>/migrator` does. It reads files with `node:fs`, so it is a subpath of its
 * own; in the browser, pass the folder as data to `migrate` from `outpost/drizzle`.
 */
import { readMigrationFiles, type MigrationConfig } from 'drizzle-orm/migrator';
import type { OutpostDrizzleDatabase } from './driver.js';
import { migrate as migrateData } from './migrate.js';

/** Applies the migrations of `config.migrationsFolder` not yet recorded in `__drizzle_migrations`, in one transaction. */
export async function migrate(db: OutpostDrizzleDatabase<Record<string, unknown>>, config: MigrationConfig): Promise<void> {
  const options = config.migrationsTable === undefined ? {} : { migrationsTable: config.migrationsTable };
  await migrateData(db, readMigrationFiles(config), options);
}
