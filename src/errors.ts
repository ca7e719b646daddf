/**
 * Outpost's error classes. They are plain data plus a name, so that the worker protocol
 * (`src/worker/protocol.ts`) can carry them across the worker boundary and rebuild the same
 * class on the other side, with `code`, `resultCode` and the SQL intact.
 *
 * May import: nothing internal, so that every layer may use it without a cycle.
 */

/**
 * An error SQLite reported. `code` is the extended code's name, e.g. `SQLITE_CONSTRAINT_UNIQUE`;
 * `rawCode` is the same number as `resultCode` (the name @libsql/client and Turso use).
 */
export class SqliteError extends Error {
  override name = 'SqliteError';
  /** The extended result code, e.g. 2067 (the same as `resultCode`). */
  readonly rawCode: number;
  /** In a failed `batch`: the index of the statement that failed. */
  statementIndex?: number;
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
    this.rawCode = resultCode;
  }
}

/**
 * A call stopped by its `signal` or its `timeoutMs` (named `AbortError`, as `fetch` names it).
 * A call aborted before it started never ran; one stopped while running had its statement
 * interrupted by SQLite, which undoes that statement.
 */
export class AbortError extends Error {
  override name = 'AbortError';
  readonly code = 'ABORTED';
  constructor(message = 'the call was aborted', cause?: unknown) {
    super(message);
    if (cause !== undefined) withCause(this, cause);
  }
}

/** Sets `error.cause` (ES2022's field, not enumerable, as `new Error(m, { cause })` sets it) and returns the error. */
export function withCause<E extends Error>(error: E, cause: unknown): E {
  Object.defineProperty(error, 'cause', { value: cause, writable: true, configurable: true, enumerable: false });
  return error;
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
  | 'WORKER_FAILED'
  /** The tab running the engine died after taking this write and before answering: it may or may not have committed. */
  | 'OUTCOME_UNKNOWN'
  /** The tab running the engine died inside this tab's transaction: SQLite rolled it back. */
  | 'TRANSACTION_LOST'
  /** A prepared statement used after `finalize()`. */
  | 'STATEMENT_FINALIZED'
  /**
   * The tab running the engine showed no sign of life for `tabTimeoutMs` (frozen in the
   * background, or busy in one long statement): this call did not run and never will.
   */
  | 'ENGINE_UNRESPONSIVE';

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

/** Codes of `SyncError`. */
export type SyncErrorCode =
  /** The server could not be reached (offline, DNS, connection refused). */
  | 'NETWORK'
  /** The server took longer than the request timeout. */
  | 'TIMEOUT'
  /** 401/403: the token is missing, wrong, expired, or lacks the role. */
  | 'AUTH'
  /** Any other non-2xx answer (5xx, 404, an HTML error page). */
  | 'HTTP'
  /** The answer was not the protocol: truncated or malformed protobuf, bad JSON, wrong page size. */
  | 'PROTOCOL'
  /** The server refused a pushed change (constraint violation, schema mismatch). */
  | 'REJECTED'
  /** The database has no sync configuration. */
  | 'NOT_CONFIGURED';

/** A sync operation failed. The local database is untouched by a failed operation. */
export class SyncError extends Error {
  override name = 'SyncError';
  /** When the server said how long to wait before trying again (a 429's or 503's Retry-After). */
  retryAfterMs?: number;
  constructor(
    message: string,
    readonly code: SyncErrorCode,
    /** HTTP status, when the server answered. */
    readonly status?: number,
    /** For REJECTED: the change that was refused and its table. */
    readonly changeId?: number,
    readonly table?: string,
  ) {
    super(message);
  }
}

/**
 * A message on the wire was not the protocol (truncated, malformed, out of range). Internal:
 * the sync client reports it as `SyncError` `PROTOCOL`, the server answers it with HTTP 400.
 */
export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

/** Whether an error may pass if the same operation is tried again later (the sync retry policy). */
export function isTransient(e: unknown): boolean {
  if (!(e instanceof SyncError)) return false;
  if (e.code === 'NETWORK' || e.code === 'TIMEOUT') return true;
  return e.code === 'HTTP' && e.status !== undefined && (e.status >= 500 || e.status === 429);
}
