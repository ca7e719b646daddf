/**
 * Drizzle migrations as data, for the browser, where no folder can be read: drizzle-kit's
 * `meta/_journal.json` and the text of each `NNNN_name.sql` (with a bundler, `import journal
 * from './drizzle/meta/_journal.json'` and `import.meta.glob('./drizzle/*.sql', { query: '?raw',
 * import: 'default', eager: true })`). Applied with Drizzle's own migrator, so the
 * `__drizzle_migrations` table is the one drizzle-kit and every other driver read and write.
 */
import type { MigrationMeta } from 'drizzle-orm/migrator';
import { OutpostError } from '../errors.js';
import { internals, type OutpostDrizzleDatabase } from './driver.js';

/** drizzle-kit's `meta/_journal.json` (the fields the migrator reads). */
export interface MigrationJournal {
  entries: readonly { idx: number; when: number; tag: string; breakpoints: boolean }[];
}

/**
 * A migration folder as data: the journal, and each migration's SQL keyed by its tag
 * (`0000_init`), by `m0000` (drizzle-kit's expo bundle), or by a path ending in `/<tag>.sql`.
 */
export interface MigrationFiles {
  journal: MigrationJournal;
  migrations: Readonly<Record<string, string>>;
}

export interface MigrateOptions {
  /** The table that records applied migrations (default `__drizzle_migrations`). */
  migrationsTable?: string;
}

const BREAKPOINT = '--> statement-breakpoint';

function sqlOf(files: MigrationFiles, entry: MigrationJournal['entries'][number]): string {
  const { migrations } = files;
  const byIndex = `m${String(entry.idx).padStart(4, '0')}`;
  const direct = migrations[entry.tag] ?? migrations[byIndex];
  if (direct !== undefined) return direct;
  const suffix = `/${entry.tag}.sql`;
  const key = Object.keys(migrations).find((k) => k.endsWith(suffix) || k === `${entry.tag}.sql`);
  if (key === undefined) {
    throw new OutpostError(`migration ${entry.tag} is in the journal but its SQL is missing (give it under "${entry.tag}")`, 'INVALID_ARGUMENT');
  }
  return migrations[key]!;
}

/** The SHA-256 of a migration's text, in hex, as drizzle-kit's folder reader records it. */
async function sha256Hex(text: string): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  // crypto.subtle exists only in secure contexts (https, localhost); the hash is a record, not a check.
  if (!subtle) return '';
  const digest = await subtle.digest('SHA-256', new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The migrations of a journal and its SQL texts, in journal order. */
export async function readMigrations(files: MigrationFiles): Promise<MigrationMeta[]> {
  const out: MigrationMeta[] = [];
  for (const entry of files.journal.entries) {
    const text = sqlOf(files, entry);
    out.push({ sql: text.split(BREAKPOINT), bps: entry.breakpoints, folderMillis: entry.when, hash: await sha256Hex(text) });
  }
  return out;
}

/**
 * Applies the migrations not yet recorded, in one transaction: a migration whose `when` is
 * later than the last recorded one runs, and is recorded in `__drizzle_migrations`; running it
 * again applies nothing. Takes a folder's data (`MigrationFiles`) or Drizzle's
 * `readMigrationFiles()` result.
 */
export async function migrate(
  db: OutpostDrizzleDatabase<Record<string, unknown>>,
  migrations: MigrationFiles | readonly MigrationMeta[],
  options: MigrateOptions = {},
): Promise<void> {
  const metas = Array.isArray(migrations) ? [...migrations] : await readMigrations(migrations as MigrationFiles);
  const { dialect, session } = internals(db);
  await dialect.migrate(metas, session, { migrationsFolder: '', ...options });
}
