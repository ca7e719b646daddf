/**
 * Kysely's Driver over an Outpost `Database`. Like Kysely's own SQLite driver it hands out one
 * connection at a time (a FIFO lock), so a query made through Kysely outside an open
 * transaction waits for it. A transaction is Outpost's `Database.transaction`, held open from
 * `beginTransaction` until `commitTransaction` or `rollbackTransaction`: calls made on the
 * Outpost `Database` directly wait too, and never join it. Savepoints are SQL inside it.
 */
import {
  CompiledQuery,
  DeleteQueryNode,
  InsertQueryNode,
  SelectQueryNode,
  UpdateQueryNode,
  type DatabaseConnection,
  type Driver,
  type QueryCompiler,
  type QueryResult,
} from 'kysely';
import { OutpostError } from '../errors.js';
import type { Database, Queryable, SqlParam, Transaction } from '../types.js';

export interface OutpostDialectConfig {
  /** The Outpost database, or a function that opens it (called once, by `Kysely`'s first query). */
  database: Database | (() => Promise<Database>);
  /** Called once with the connection, before the first query (to set pragmas, say). */
  onCreateConnection?: (connection: DatabaseConnection) => Promise<void>;
}

/** Thrown inside the held Outpost transaction to roll it back; never seen by callers. */
const ROLLBACK = Symbol('rollback');

/** Whether a statement is run for its effect (changes, last rowid) rather than for rows. */
function isWrite(compiled: CompiledQuery): boolean {
  const node = compiled.query;
  if (InsertQueryNode.is(node) || UpdateQueryNode.is(node) || DeleteQueryNode.is(node)) return node.returning === undefined;
  if (SelectQueryNode.is(node)) return false;
  // Raw SQL (sql`...`): a write without RETURNING is run; anything else is read, so its rows come back.
  return /^\s*(?:insert|update|delete|replace)\b/i.test(compiled.sql) && !/\breturning\b/i.test(compiled.sql);
}

/** Kysely passes parameters as `unknown[]`; Outpost's binder refuses what it cannot bind, with a clear error. */
function paramsOf(compiled: CompiledQuery): SqlParam[] {
  return compiled.parameters as SqlParam[];
}

export class OutpostConnection implements DatabaseConnection {
  private tx: Transaction | null = null;
  private finish: ((commit: boolean) => void) | null = null;
  private ended: Promise<void> | null = null;

  constructor(readonly database: Database) {}

  /** The open transaction, or the database (its queue). */
  private get scope(): Queryable {
    return this.tx ?? this.database;
  }

  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    const scope = this.scope;
    if (isWrite(compiled)) {
      const { changes, lastInsertRowid } = await scope.run(compiled.sql, paramsOf(compiled));
      return { numAffectedRows: BigInt(changes), insertId: lastInsertRowid, rows: [] };
    }
    // Rows are objects keyed by column name; R is the row type Kysely inferred for this query.
    const rows = (await scope.query(compiled.sql, paramsOf(compiled))) as R[];
    return { rows };
  }

  /**
   * Yields a SELECT's rows in chunks of `chunkSize`, read through `iterate` as they are
   * consumed: memory holds one chunk of the engine's (1000 rows) and one of these. Ending the
   * loop early ends the statement. Kysely keeps this connection for the stream, so its other
   * queries wait; calls made on the Outpost `Database` directly may run between engine chunks
   * (`Queryable.iterate`).
   */
  async *streamQuery<R>(compiled: CompiledQuery, chunkSize = 100): AsyncIterableIterator<QueryResult<R>> {
    if (!SelectQueryNode.is(compiled.query)) {
      throw new OutpostError('outpost/kysely streams only SELECT queries', 'INVALID_ARGUMENT');
    }
    if (!(Number.isInteger(chunkSize) && chunkSize > 0)) throw new OutpostError(`stream() needs a chunk size of 1 or more (got ${String(chunkSize)})`, 'INVALID_ARGUMENT');
    let rows: R[] = [];
    // Rows are objects keyed by column name; R is the row type Kysely inferred for this query.
    for await (const row of this.scope.iterate<R>(compiled.sql, paramsOf(compiled))) {
      rows.push(row);
      if (rows.length < chunkSize) continue;
      yield { rows };
      rows = [];
    }
    if (rows.length > 0) yield { rows };
  }

  /** Opens an Outpost transaction and holds it until `end`; resolves once `BEGIN` ran. */
  async begin(): Promise<void> {
    if (this.tx) throw new OutpostError('a transaction is already open on this connection', 'INVALID_ARGUMENT');
    let opened!: (tx: Transaction) => void;
    const open = new Promise<Transaction>((resolve) => {
      opened = resolve;
    });
    const decided = new Promise<boolean>((resolve) => {
      this.finish = resolve;
    });
    const ended = this.database.transaction(async (tx) => {
      opened(tx);
      if (!(await decided)) throw ROLLBACK;
    });
    this.ended = ended;
    // BEGIN can fail (a closed database): then the transaction ends without opening.
    const failed = ended.then(
      (): never => {
        throw new OutpostError('the transaction ended before it began', 'INVALID_ARGUMENT');
      },
      (e: unknown): never => {
        throw e;
      },
    );
    try {
      this.tx = await Promise.race([open, failed]);
    } catch (e) {
      this.reset();
      throw e;
    }
  }

  /** Commits or rolls back the open transaction; nothing to do when none is open. */
  async end(commit: boolean): Promise<void> {
    const { finish, ended } = this;
    this.reset();
    if (!finish || !ended) return;
    finish(commit);
    try {
      await ended;
    } catch (e) {
      if (e !== ROLLBACK) throw e;
    }
  }

  private reset(): void {
    this.tx = null;
    this.finish = null;
    this.ended = null;
  }
}

/** A FIFO lock: one holder of the connection at a time, waiters served in order. */
class ConnectionLock {
  private tail: Promise<void> = Promise.resolve();
  private release: (() => void) | null = null;

  async lock(): Promise<void> {
    const previous = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((resolve) => {
      release = resolve;
    });
    await previous;
    this.release = release;
  }

  unlock(): void {
    const release = this.release;
    this.release = null;
    release?.();
  }
}

export class OutpostDriver implements Driver {
  private readonly lock = new ConnectionLock();
  private connection: OutpostConnection | null = null;

  constructor(private readonly config: OutpostDialectConfig) {}

  async init(): Promise<void> {
    const { database, onCreateConnection } = this.config;
    const db = typeof database === 'function' ? await database() : database;
    this.connection = new OutpostConnection(db);
    await onCreateConnection?.(this.connection);
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    await this.lock.lock();
    if (!this.connection) {
      this.lock.unlock();
      throw new OutpostError('the Kysely driver was used before init() or after destroy()', 'INVALID_ARGUMENT');
    }
    return this.connection;
  }

  beginTransaction(connection: DatabaseConnection): Promise<void> {
    return outpostConnection(connection).begin();
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return outpostConnection(connection).end(true);
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return outpostConnection(connection).end(false);
  }

  async savepoint(connection: DatabaseConnection, name: string, _compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    await connection.executeQuery(savepointQuery('SAVEPOINT', name));
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string, _compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    await connection.executeQuery(savepointQuery('ROLLBACK TO', name));
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string, _compileQuery: QueryCompiler['compileQuery']): Promise<void> {
    await connection.executeQuery(savepointQuery('RELEASE', name));
  }

  async releaseConnection(): Promise<void> {
    this.lock.unlock();
  }

  /** Closes the Outpost database, as Kysely's own SQLite dialect closes its database. */
  async destroy(): Promise<void> {
    const connection = this.connection;
    this.connection = null;
    await connection?.database.close();
  }
}

/** `SAVEPOINT "name"` and the like, the name quoted as an identifier. */
function savepointQuery(command: string, name: string): CompiledQuery {
  return CompiledQuery.raw(`${command} "${name.replace(/"/g, '""')}"`);
}

function outpostConnection(connection: DatabaseConnection): OutpostConnection {
  if (!(connection instanceof OutpostConnection)) throw new OutpostError('not a connection of outpost/kysely', 'INVALID_ARGUMENT');
  return connection;
}
