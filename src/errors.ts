/**
 * Outpost's error classes. They are plain data plus a name, so that the worker protocol
 * (`worker/errors-transfer.ts`) can carry them across the worker boundary and rebuild the same
 * class on the other side, with `code`, `resultCode` and the SQL intact.
 */

/** An error SQLite reported. `code` is the extended code's name, e.g. `SQLITE_CONSTRAINT_UNIQUE`. */
export class SqliteError extends Error {
  override name = 'SqliteError';
  constructor(
    message: string,
    /** The extended result code's name, e.g. `'SQLITE_CONSTRAINT_UNIQUE'`. */
    readonly code: string,
    /** The extended result code, e.g. 2067. */
    readonly resultCode: number,
    /** The statement that failed, when there was one. */
    readonly sql?: string,
  ) {
    super(message);
  }
}

/** Another tab or worker holds the database longer than the open's lock timeout. */
export class DatabaseLockedError extends Error {
  override name = 'DatabaseLockedError';
  readonly code = 'DATABASE_LOCKED';
  constructor(
    /** The name (or path) of the database that is held. */
    readonly database: string,
    message = `database "${database}" is open in another tab or worker; close it there, or wait and retry`,
  ) {
    super(message);
  }
}

/** Codes of Outpost's own (non-SQLite) errors. */
export type OutpostErrorCode =
  | 'INVALID_ARGUMENT'
  | 'DATABASE_CLOSED'
  | 'NOT_A_DATABASE'
  | 'OPFS_UNAVAILABLE'
  | 'WORKER_FAILED';

/** A misuse or an environment problem that is not SQLite's: the message says what to do. */
export class OutpostError extends Error {
  override name = 'OutpostError';
  constructor(
    message: string,
    readonly code: OutpostErrorCode,
  ) {
    super(message);
  }
}
