/**
 * `drizzle(db, config?)`: a Drizzle database over an Outpost `Database`, browser or Node.
 */
import { entityKind } from 'drizzle-orm';
import type { BatchItem, BatchResponse } from 'drizzle-orm/batch';
import { DefaultLogger, type Logger } from 'drizzle-orm/logger';
import {
  createTableRelationsHelpers,
  extractTablesRelationalConfig,
  type ExtractTablesWithRelations,
  type RelationalSchemaConfig,
  type TablesRelationalConfig,
} from 'drizzle-orm/relations';
import { BaseSQLiteDatabase, SQLiteAsyncDialect } from 'drizzle-orm/sqlite-core';
import type { DrizzleConfig } from 'drizzle-orm/utils';
import type { Database, RunResult } from '../types.js';
import { OutpostSession } from './session.js';

export class OutpostDrizzleDatabase<TSchema extends Record<string, unknown> = Record<string, never>> extends BaseSQLiteDatabase<
  'async',
  RunResult,
  TSchema
> {
  static override readonly [entityKind]: string = 'OutpostDrizzleDatabase';
  /** The Outpost database underneath. */
  declare readonly $client: Database;

  /**
   * Runs the queries in one transaction and resolves to each one's result: all of them happen
   * or, when one fails, none. Other calls on the database wait until it ends.
   */
  async batch<U extends BatchItem<'sqlite'>, T extends Readonly<[U, ...U[]]>>(batch: T): Promise<BatchResponse<T>> {
    const { session } = internals(this);
    // session.batch returns each item's mapped result in order, which is BatchResponse<T>.
    return (await session.batch(batch)) as BatchResponse<T>;
  }
}

/** What `migrate` needs and Drizzle marks internal on its database class. */
interface Internals {
  session: OutpostSession<Record<string, unknown>, TablesRelationalConfig>;
  dialect: SQLiteAsyncDialect;
}

const internalsOf = new WeakMap<object, Internals>();

export function internals(db: OutpostDrizzleDatabase<Record<string, unknown>>): Internals {
  const found = internalsOf.get(db);
  if (!found) throw new TypeError('not a database made by drizzle() from outpost/drizzle');
  return found;
}

/**
 * A Drizzle database over `db`. `db.transaction()` runs in an Outpost transaction
 * (`BEGIN IMMEDIATE`), so a query made outside it waits until it ends instead of joining it;
 * a nested `tx.transaction()` is a savepoint; `db.batch([...])` is atomic.
 */
export function drizzle<TSchema extends Record<string, unknown> = Record<string, never>>(
  db: Database,
  config: Omit<DrizzleConfig<TSchema>, 'cache'> = {},
): OutpostDrizzleDatabase<TSchema> {
  const dialect = new SQLiteAsyncDialect({ casing: config.casing });
  let logger: Logger | undefined;
  if (config.logger === true) logger = new DefaultLogger();
  else if (config.logger !== false) logger = config.logger;

  let schema: RelationalSchemaConfig<ExtractTablesWithRelations<TSchema>> | undefined;
  if (config.schema) {
    const tables = extractTablesRelationalConfig(config.schema, createTableRelationsHelpers);
    schema = {
      fullSchema: config.schema,
      // extractTablesRelationalConfig is untyped in its schema parameter; it returns this schema's tables.
      schema: tables.tables as ExtractTablesWithRelations<TSchema>,
      tableNamesMap: tables.tableNamesMap,
    };
  }
  const session = new OutpostSession<TSchema, ExtractTablesWithRelations<TSchema>>(db, dialect, schema, { logger });
  const database = new OutpostDrizzleDatabase<TSchema>('async', dialect, session, schema);
  Object.defineProperty(database, '$client', { value: db, enumerable: false });
  // The session's schema parameter only types relational queries; migrate() runs plain SQL.
  internalsOf.set(database, { session: session as unknown as Internals['session'], dialect });
  return database;
}
