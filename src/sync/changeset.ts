/**
 * Row changes as sync sees them, and the conflict policy of replay. Decoding is plain JS
 * (engine/changeset-format.ts: no connection, so a service worker can build push batches);
 * applying happens in the engine (engine/changesets.ts), which owns the pointers; what to do
 * about a conflict is decided here.
 *
 * Replay (apply step f) puts pending local changes back on top of newly pulled data, and
 * resolves conflicts the way pushes resolve on the server: the local change wins per row and
 * changed column (REPLACE) when the row exists; a change to a row that no longer exists, or
 * one that breaks a constraint, is left out (OMIT), as the server would leave it out too.
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
  return conflict === 'data' || conflict === 'conflict' ? 'replace' : 'omit';
}

/** Applies a pending local change on top of pulled data, with the `localWins` policy. */
export function replayChangeset(conn: Connection, changeset: Uint8Array): void {
  conn.applyChangeset(changeset, localWins);
}
