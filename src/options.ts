/**
 * What every entry point (browser, Node, the playground) decides the same way: option
 * defaults, the database-name rule, and how storage errors become public errors.
 *
 * May import: types.ts, errors.ts.
 */
import { DatabaseLockedError, OutpostError } from './errors.js';
import type { OpenOptions } from './types.js';

/** How long `open` waits for a database another tab or caller holds (milliseconds). */
export const DEFAULT_LOCK_TIMEOUT_MS = 5000;

/** How long a tab's calls wait on a silent engine tab (milliseconds). */
export const DEFAULT_TAB_TIMEOUT_MS = 10_000;

/**
 * A database name: 1 to 128 letters, digits, `_`, `-` or `.`, not starting with `.` or `-`.
 * It becomes an OPFS directory name (browser) and a file name (server), so no separators.
 */
export const DATABASE_NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** Throws `OutpostError('INVALID_ARGUMENT')` unless `name` follows `DATABASE_NAME_PATTERN`. */
export function checkDatabaseName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !DATABASE_NAME_PATTERN.test(name)) {
    throw new OutpostError(
      `invalid database name ${JSON.stringify(name)}: use 1 to 128 letters, digits, '_', '-' or '.', not starting with '.' or '-'`,
      'INVALID_ARGUMENT',
    );
  }
}

/** The engine settings every entry point fills in the same way. */
export interface EngineSettings {
  durability: 'normal' | 'full';
  intMode: 'number' | 'bigint';
  lockTimeoutMs: number;
}

export function engineSettings(options: OpenOptions): EngineSettings {
  return {
    durability: options.durability ?? 'normal',
    intMode: options.intMode ?? 'number',
    lockTimeoutMs: options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS,
  };
}

/**
 * The public error for a storage failure: a lock held past its timeout becomes
 * `DatabaseLockedError`, missing OPFS becomes `OutpostError('OPFS_UNAVAILABLE')`; anything
 * else passes through. Errors are matched by name, not class, because they may have crossed
 * the worker boundary (where only the name survives).
 */
export function publicStorageError(e: unknown, database: string): unknown {
  const name = (e as { name?: unknown } | null)?.name;
  if (name === 'LockTimeoutError') return new DatabaseLockedError(database);
  if (name === 'OpfsUnavailableError') return new OutpostError((e as Error).message, 'OPFS_UNAVAILABLE');
  return e;
}
