/**
 * `outpost`: SQLite in a dedicated worker over Outpost's OPFS VFS, in WAL mode. Re-exports
 * only; Node users import `outpost/node`, the sync server is `outpost/server`.
 *
 * May import: browser/, types.ts, errors.ts.
 */
export { open, deleteDatabase, listDatabases } from './browser/open.js';
export type * from './types.js';
export { SqliteError, DatabaseLockedError, OutpostError, SyncError, AbortError, type OutpostErrorCode, type SyncErrorCode } from './errors.js';
