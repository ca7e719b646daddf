/**
 * Compile-time tests of the public types: `npm run typecheck` compiles this file and fails if an
 * assertion does not hold. Nothing here runs.
 */
import type { Database, Row, RunResult, SqlValue, Transaction } from 'outpost';
import { DatabaseLockedError, SqliteError, open } from 'outpost';
import { open as openNode } from 'outpost/node';

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertType<T extends true>(_: T): void {}

declare const db: Database;
interface Note {
  id: number;
  body: string;
}

export function checks(): void {
  assertType<Equal<ReturnType<typeof open>, Promise<Database>>>(true);
  assertType<Equal<ReturnType<typeof openNode>, Promise<Database>>>(true);
  assertType<Equal<ReturnType<typeof db.query<Note>>, Promise<Note[]>>>(true);
  const queryWithDefault = () => db.query('SELECT 1');
  assertType<Equal<ReturnType<typeof queryWithDefault>, Promise<Row[]>>>(true);
  assertType<Equal<ReturnType<typeof db.get<Note>>, Promise<Note | undefined>>>(true);
  assertType<Equal<ReturnType<typeof db.run>, Promise<RunResult>>>(true);
  assertType<Equal<RunResult['lastInsertRowid'], bigint>>(true);
  assertType<Equal<Row[string], SqlValue>>(true);
  assertType<Equal<ReturnType<typeof db.export>, Promise<Uint8Array>>>(true);
  assertType<Equal<Awaited<ReturnType<typeof db.transaction<number>>>, number>>(true);
  assertType<Equal<SqliteError['code'], string>>(true);
  assertType<Equal<SqliteError['resultCode'], number>>(true);
  assertType<Equal<DatabaseLockedError['database'], string>>(true);

  void db.transaction(async (tx) => {
    assertType<Equal<typeof tx, Transaction>>(true);
    return tx.run('INSERT INTO t VALUES (?)', [1]);
  });
  void db.run('SELECT :a', { a: 1n, b: true, c: new Uint8Array(1), d: null });

  // @ts-expect-error parameters are SQL values, not arbitrary objects
  void db.run('SELECT ?', [{ nested: true }]);
  // @ts-expect-error undefined is not a SQL value
  void db.run('SELECT ?', [undefined]);
  // @ts-expect-error intMode is 'number' or 'bigint'
  void open('x', { intMode: 'string' });
  // @ts-expect-error durability is 'normal' or 'full'
  void open('x', { durability: 'off' });
}
