/**
 * Commit points: when a transaction's changes become final, so that change capture can record
 * them inside that same transaction (see capture.ts).
 *
 * A statement is classified once, when it is prepared, by its leading keywords (comments
 * already stripped) and SQLite's readonly flag. `CommitTracker` then says what must happen
 * around each statement, given whether a transaction is open before it runs:
 * - `wrap`: a write or DDL statement outside a transaction. It runs inside BEGIN ... COMMIT, so
 *   that its change record commits with it.
 * - `record-first`: a commit point. COMMIT (or END) of an open transaction, or the RELEASE of
 *   the savepoint that opened the transaction: the transaction's record is written first.
 * - `note-ddl`: DDL inside a transaction: the record is cut before it and its text joins the
 *   record in statement order. A PRAGMA that sets a value of the database header that
 *   applications own (`user_version`, `application_id`: kind `header`) is recorded the same
 *   way, so that it syncs like the schema it usually describes.
 * - `rollback`: a ROLLBACK; if no transaction is open afterwards, what was recorded is dropped.
 * - `run`: nothing to do around it. (A SAVEPOINT, ROLLBACK TO or RELEASE inside a transaction
 *   runs like this; after it succeeds the connection tells capture, which keeps its marks.)
 *
 * Only `CommitRunner.run` (commit-runner.ts) acts on the answer; this module decides and keeps the one
 * piece of state the decision needs (the savepoint that opened the current transaction).
 */

/** What a statement does, as far as transactions and capture care. */
export type StatementKind = 'read' | 'write' | 'ddl' | 'header' | 'begin' | 'commit' | 'rollback' | 'rollback-to' | 'savepoint' | 'release' | 'other';

export interface Classified {
  kind: StatementKind;
  /** The savepoint a SAVEPOINT, RELEASE or ROLLBACK TO statement names (unquoted, lower case); else null. */
  savepoint: string | null;
}

export type CommitPlan = 'run' | 'wrap' | 'record-first' | 'note-ddl' | 'rollback';

/** Up to three leading words; a word may be a quoted name without spaces. */
const LEADING_WORDS = /^([A-Za-z]+)(?:\s+([A-Za-z_"`\[\]0-9]+))?(?:\s+([A-Za-z_"`\[\]0-9]+))?/;

/** Classifies a statement by its leading keywords (comments already stripped) and readonly flag. */
export function classify(sql: string, readonly: boolean): Classified {
  const m = LEADING_WORDS.exec(sql);
  const first = (m?.[1] ?? '').toUpperCase();
  const second = (m?.[2] ?? '').toUpperCase();
  const third = (m?.[3] ?? '').toUpperCase();
  switch (first) {
    case 'BEGIN':
      return { kind: 'begin', savepoint: null };
    case 'COMMIT':
    case 'END':
      return { kind: 'commit', savepoint: null };
    case 'ROLLBACK':
      // ROLLBACK TO (a savepoint) keeps the transaction open: not a rollback of it, but capture
      // must forget what was recorded since that savepoint.
      return rollbackTo(sql, second, third) ?? { kind: 'rollback', savepoint: null };
    case 'SAVEPOINT':
      return { kind: 'savepoint', savepoint: unquote(m?.[2]) };
    case 'RELEASE':
      return { kind: 'release', savepoint: unquote(second === 'SAVEPOINT' ? m?.[3] : m?.[2]) };
    case 'CREATE':
      // Temporary objects live in the temp schema, which is neither captured nor synced.
      return { kind: second === 'TEMP' || second === 'TEMPORARY' ? 'other' : 'ddl', savepoint: null };
    case 'DROP':
    case 'ALTER':
      return { kind: 'ddl', savepoint: null };
    case 'PRAGMA':
      return { kind: headerPragma(sql) ? 'header' : 'other', savepoint: null };
    case 'VACUUM':
    case 'ATTACH':
    case 'DETACH':
    case 'REINDEX':
    case 'ANALYZE':
      return { kind: 'other', savepoint: null };
    default:
      return { kind: readonly ? 'read' : 'write', savepoint: null };
  }
}

/** A PRAGMA that sets a header value of the main database that applications own. */
const HEADER_PRAGMA = /^PRAGMA\s+(?:(?:main|"main"|`main`|\[main\])\s*\.\s*)?["`[]?(user_version|application_id)["`\]]?\s*(?:=|\()/i;

/**
 * The header value a PRAGMA sets (`user_version` or `application_id`, of the main database),
 * or null when it sets neither (reads, other pragmas, another schema's header).
 */
export function headerPragma(sql: string): 'user_version' | 'application_id' | null {
  const m = HEADER_PRAGMA.exec(sql);
  return m ? (m[1]!.toLowerCase() as 'user_version' | 'application_id') : null;
}

/** `ROLLBACK [TRANSACTION] TO [SAVEPOINT] name`, classified; null for a plain ROLLBACK. */
function rollbackTo(sql: string, second: string, third: string): Classified | null {
  if (second !== 'TO' && !(second === 'TRANSACTION' && third === 'TO')) return null;
  const m = /^ROLLBACK\s+(?:TRANSACTION\s+)?TO\s+(?:SAVEPOINT\s+)?([A-Za-z_"`\[\]0-9]+)/i.exec(sql);
  return { kind: 'rollback-to', savepoint: unquote(m?.[1]) };
}

function unquote(name: string | undefined): string | null {
  return name ? name.replace(/^["`[]|["`\]]$/g, '').toLowerCase() : null;
}

/** Tracks the savepoint that opened the current transaction, and plans each statement. */
export class CommitTracker {
  /** The savepoint that opened the current transaction, if a SAVEPOINT did. */
  private outerSavepoint: string | null = null;

  /**
   * What must happen around `statement`, run while a transaction is (or is not) open. A
   * SAVEPOINT outside a transaction is remembered here as the one that opens it.
   */
  plan(statement: Classified, inTransaction: boolean): CommitPlan {
    switch (statement.kind) {
      case 'write':
        return inTransaction ? 'run' : 'wrap';
      case 'ddl':
      case 'header':
        return inTransaction ? 'note-ddl' : 'wrap';
      case 'commit':
        return inTransaction ? 'record-first' : 'run';
      case 'rollback':
        return 'rollback';
      case 'savepoint':
        if (!inTransaction) this.outerSavepoint = statement.savepoint;
        return 'run';
      case 'release':
        return inTransaction && this.outerSavepoint !== null && statement.savepoint === this.outerSavepoint ? 'record-first' : 'run';
      default:
        return 'run';
    }
  }

  /**
   * After a statement ran or failed: once no transaction is open, no savepoint opened it. (This
   * also covers a transaction a SAVEPOINT opened and COMMIT ended, which the engine once left
   * remembered, so that a later RELEASE of the same name inside BEGIN counted as a commit point.)
   */
  settle(inTransaction: boolean): void {
    if (!inTransaction) this.outerSavepoint = null;
  }
}
