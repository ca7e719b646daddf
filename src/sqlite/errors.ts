/**
 * The one place a `SqliteError` is built from a SQLite result code.
 *
 * Contract / may import: `../errors.ts` only, for the `SqliteError` class. That is the one
 * exception to "sqlite/ imports nothing internal": the class is public API, exported by every
 * entry point and rebuilt across the worker boundary, so it stays with the other error classes.
 */
import { SqliteError } from '../errors.js';
import type { Sqlite3Runtime } from './wasm-api.js';

export interface SqliteErrorContext {
  /**
   * The connection SQLite reported the error on (0 or absent when there is none): its extended
   * code replaces `rc` when both name the same primary code, and its message is used.
   */
  db?: number;
  /** The statement that failed. */
  sql?: string | undefined;
  /** A lower layer's reason (the VFS's recorded error), appended unless SQLite's message has it. */
  reason?: string | null | undefined;
  /** Replaces SQLite's message (for failures SQLite has no message for). */
  message?: string;
}

/** Builds the SqliteError for result code `rc`: the extended code's name, the message, the SQL. */
export function sqliteError(sqlite3: Sqlite3Runtime, rc: number, context: SqliteErrorContext = {}): SqliteError {
  const { capi } = sqlite3;
  const db = context.db ?? 0;
  const extended = db ? capi.sqlite3_extended_errcode(db) : rc;
  const code = (rc & 0xff) === (extended & 0xff) ? extended : rc;
  let message = context.message ?? (db ? capi.sqlite3_errmsg(db) : capi.sqlite3_errstr(code));
  const reason = context.reason;
  if (reason && !message.includes(reason)) message = `${message}: ${reason}`;
  return new SqliteError(message, capi.sqlite3_js_rc_str(code) ?? `SQLITE_${code}`, code, context.sql);
}
