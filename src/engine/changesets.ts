/**
 * Applying a session changeset with a conflict policy the caller chooses. The WASM pointer
 * work stays in this file, so raw pointers never leave engine/; `Connection.applyChangeset` is
 * the only way in. Which policy replay uses is the sync layer's decision (sync/changeset.ts).
 * Reading and writing changesets needs no SQLite: `changeset-format.ts`.
 */
import {
  SQLITE_CHANGESET_ABORT,
  SQLITE_CHANGESET_CONFLICT,
  SQLITE_CHANGESET_CONSTRAINT,
  SQLITE_CHANGESET_DATA,
  SQLITE_CHANGESET_FOREIGN_KEY,
  SQLITE_CHANGESET_NOTFOUND,
  SQLITE_CHANGESET_OMIT,
  SQLITE_CHANGESET_REPLACE,
  SQLITE_OK,
} from '../sqlite/constants.js';
import type { Sqlite3Runtime } from '../sqlite/wasm-api.js';

/** The conflict kinds `sqlite3changeset_apply` reports, by their code. */
const CONFLICT_KINDS: Record<number, ChangesetConflict> = {
  [SQLITE_CHANGESET_DATA]: 'data',
  [SQLITE_CHANGESET_NOTFOUND]: 'notfound',
  [SQLITE_CHANGESET_CONFLICT]: 'conflict',
  [SQLITE_CHANGESET_CONSTRAINT]: 'constraint',
  [SQLITE_CHANGESET_FOREIGN_KEY]: 'foreign_key',
};
/** The answers a conflict handler returns, by name. */
const RESOLUTION_CODES: Record<ConflictResolution, number> = { omit: SQLITE_CHANGESET_OMIT, replace: SQLITE_CHANGESET_REPLACE, abort: SQLITE_CHANGESET_ABORT };

/**
 * Why a change did not apply cleanly (SQLITE_CHANGESET_*): `data` the row exists with other
 * values than the change expected, `notfound` the row is gone, `conflict` an insert found its
 * key taken, `constraint` and `foreign_key` the change breaks one.
 */
export type ChangesetConflict = 'data' | 'notfound' | 'conflict' | 'constraint' | 'foreign_key';

/** What to do about a conflict: leave the change out, apply it over what is there, or stop. */
export type ConflictResolution = 'omit' | 'replace' | 'abort';

/** Applies a changeset to the database `db`, asking `onConflict` about every conflict. */
export function applyChangeset(
  sqlite3: Sqlite3Runtime,
  db: number,
  changeset: Uint8Array,
  onConflict: (conflict: ChangesetConflict) => ConflictResolution,
): void {
  if (changeset.length === 0) return;
  const { capi, wasm } = sqlite3;
  const p = wasm.allocFromTypedArray(changeset);
  try {
    const rc = capi.sqlite3changeset_apply(db, changeset.length, p, 0, (_ctx: number, code: number) => {
      const kind = CONFLICT_KINDS[code];
      // A code this build does not list: stop rather than guess.
      return kind ? RESOLUTION_CODES[onConflict(kind)] : RESOLUTION_CODES.abort;
    }, 0);
    if (rc !== SQLITE_OK) throw new Error(`applying a changeset failed (${capi.sqlite3_js_rc_str(rc) ?? rc}): ${capi.sqlite3_errmsg(db)}`);
  } finally {
    wasm.dealloc(p);
  }
}
