/** Waiting on live queries, for node and browser tests alike. */
import type { Database } from '../../src/types.js';

/** Resolves with the rows of `sql` once `done(rows)` holds, as `watch` reports them. */
export function watchUntil<T>(db: Database, sql: string, done: (rows: T[]) => boolean): Promise<T[]> {
  return new Promise((resolve) => {
    const stop = db.watch<T>(sql, undefined, (rows) => {
      if (!done(rows)) return;
      stop();
      resolve(rows);
    }, { throttleMs: 0, onError: () => {} });
  });
}
