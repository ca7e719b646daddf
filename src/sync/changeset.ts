/**
 * Row changes as sync sees them, and the conflict policy of replay. Decoding is plain JS
 * (engine/changeset-format.ts: no connection, so a service worker can build push batches);
 * applying happens in the engine (engine/changesets.ts), which owns the pointers; what to do
 * about a conflict is decided here.
 *
 * Replay (apply step f) puts pending local changes back on top of newly pulled data, and
 * resolves conflicts the way pushes resolve on the server: the local change wins per row and
 * changed column (REPLACE) when the row exists; an update or delete of a row that no longer
 * exists is left out (OMIT), as the server's UPDATE or DELETE would match nothing. A change
 * that breaks a constraint of the pulled data (UNIQUE, CHECK, NOT NULL), even after SQLite
 * retried it at the end of its changeset, stops the replay of its record
 * (`ConstraintBroken`): the record is refused whole and reported, never applied in part or
 * dropped in silence, as the server would refuse its push.
 */
import { type ChangesetRow, decodeChangeset as decodeChangesetBytes } from '../engine/changeset-format.js';
import type { ChangesetConflict, ConflictResolution } from '../engine/changesets.js';
import type { Connection } from '../engine/connection.js';

/**
 * One captured row change: the table, the operation, which columns form the key, and the
 * values before and after (`undefined` where the changeset carries none), each with its storage
 * class and exact bytes (`StoredValue`).
 */
export type RowChange = ChangesetRow;

/** The row changes of a changeset, in changeset order. */
export function decodeChangeset(changeset: Uint8Array): RowChange[] {
  return decodeChangesetBytes(changeset);
}

/** One part of a change record (change-log.ts), in statement order. */
export type RecordSegment =
  | { ddl: string }
  | {
      changeset: Uint8Array;
      /**
       * Each table's column names when the changes were made; null for a record of the change
       * log's first format, whose changes map through the schema as it is when they are pushed
       * or replayed.
       */
      columns: Record<string, string[]> | null;
    };

/** A change record's segment with its changeset decoded. */
export type DecodedSegment = { ddl: string } | { changes: RowChange[]; columns: Record<string, string[]> | null };

/** A record's segments, in order, with their changesets decoded. */
export function decodeSegments(segments: readonly RecordSegment[]): DecodedSegment[] {
  return segments.map((s) => ('ddl' in s ? s : { changes: decodeChangeset(s.changeset), columns: s.columns }));
}

/** The replay policy: the local change wins where its row is there, and is left out where not. */
export function localWins(conflict: ChangesetConflict): ConflictResolution {
  if (conflict === 'constraint') return 'abort';
  return conflict === 'data' || conflict === 'conflict' ? 'replace' : 'omit';
}

/** A replayed change breaks a constraint of the pulled data: its record is refused (see the header). */
export class ConstraintBroken extends Error {
  override name = 'ConstraintBroken';
}

/** Applies a pending local change on top of pulled data, with the `localWins` policy. */
export function replayChangeset(conn: Connection, changeset: Uint8Array): void {
  let broken = false;
  try {
    conn.applyChangeset(changeset, (conflict) => {
      const resolution = localWins(conflict);
      if (resolution === 'abort') broken = true;
      return resolution;
    });
  } catch (e) {
    if (broken) throw new ConstraintBroken('a change of this transaction breaks a constraint (UNIQUE, CHECK or NOT NULL) of the data pulled since; the transaction is kept, not applied');
    throw e;
  }
}
