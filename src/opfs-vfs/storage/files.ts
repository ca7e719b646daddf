/**
 * The files of one database, by the names a `StorageDirectory` opens them under. OPFS keeps
 * them under these names in the database's directory; Node keeps a database at `path` as
 * `path` plus the name's suffix (`db-wal` is `path-wal`, SQLite's own WAL name).
 *
 * Contract / may import: nothing.
 */

/** The main database file. */
export const DB_FILE = 'db';
/** SQLite's write-ahead log; SQLite derives its name from the main file's. */
export const WAL_FILE = 'db-wal';
/** The sync layer's state (two-slot record): only synced databases have it. */
export const SYNC_STATE_FILE = 'db-sync';
/** The sync layer's pre-images of pages, for reverting local changes before a pull. */
export const REVERT_FILE = 'db-revert';
/** The sync layer's local change records kept across a pull, replayed after it. */
export const REPLAY_FILE = 'db-replay';

/** The sync layer's marks of refused change records, with why. */
export const REJECTED_FILE = 'db-rejected';

/** The sync layer's staging files: pages of a pull waiting to be applied (`db-pull-0`, ...; sync/staging.ts). */
export const PULL_FILES: readonly string[] = ['db-pull-0', 'db-pull-1', 'db-pull-2', 'db-pull-3'];

/** Every file a database may have, main file first. */
export const DATABASE_FILES: readonly string[] = [DB_FILE, WAL_FILE, SYNC_STATE_FILE, REVERT_FILE, REPLAY_FILE, REJECTED_FILE, ...PULL_FILES];

/** What Node appends to a database's path for file `name`: '' for `db`, '-wal' for `db-wal`. */
export function nodeSuffix(name: string): string {
  if (name === DB_FILE) return '';
  if (!name.startsWith(`${DB_FILE}-`)) throw new Error(`unexpected database file name ${name}`);
  return name.slice(DB_FILE.length);
}

/** The suffixes of every file a database at a Node path may have ('' is the path itself). */
export const NODE_SUFFIXES: readonly string[] = DATABASE_FILES.map(nodeSuffix);
