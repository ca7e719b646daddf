/** What the shared suites (database, statement, live) need alike: how a backend opens a database, and two helpers over it. */
import type { Database, OpenOptions } from '../../src/types.js';

/** Opens a fresh database on the backend under test. */
export type Opener = (options?: OpenOptions) => Promise<Database>;

/** Runs `fn` on a fresh database and closes it afterwards, whatever `fn` did. */
export async function withDb<T>(open: Opener, fn: (db: Database) => Promise<T>, options?: OpenOptions): Promise<T> {
  const db = await open(options);
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

/** The error `p` rejects with; fails the test when it resolves. */
export async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected the promise to reject');
}
