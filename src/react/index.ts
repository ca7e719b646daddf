/**
 * `outpost/react`: live queries and sync status as React hooks, built on `db.watch` and
 * `db.onSyncStatus`. React is an optional peer dependency: only apps that import this subpath
 * need it. Written without JSX so that the package needs no JSX build step.
 *
 * - `useQuery(db, sql, params, options?)`: `{ rows, error, loading }`. It re-runs when a table
 *   the query reads changes (in this tab, another tab, or by a pull), and restarts when `db`,
 *   `sql` or the values of `params` change (params are compared by value, so an array literal
 *   written in the render is fine). `loading` is true until the first result of the current
 *   query; `rows` keeps the previous query's rows meanwhile, so a UI does not flash empty.
 * - `useSyncStatus(db)`: the latest `SyncStatus`, or null (no sync, or not yet known).
 * - `OutpostProvider` / `useDatabase()`: pass the database down the tree instead of by props.
 *
 * May import: types.ts, errors.ts (and `react`).
 */
import { type ReactNode, createContext, createElement, useContext, useEffect, useState } from 'react';
import type { Database, Row, SqlParams, SyncStatus, WatchOptions } from '../types.js';

export interface QueryState<T> {
  /** The latest result; undefined before the first one. */
  rows: T[] | undefined;
  /** The error of the latest run, cleared by the next result. */
  error: Error | undefined;
  /** No result yet for the current query (first render, or `sql`/`params` just changed). */
  loading: boolean;
}

export type UseQueryOptions<T> = Pick<WatchOptions<T>, 'throttleMs' | 'key'>;

/** A stable text for params, so that equal values written anew each render do not restart the watch. */
function paramsKey(params: SqlParams | undefined): string {
  return JSON.stringify(params ?? null, (_k, v: unknown) =>
    typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? { bytes: Array.from(v) } : v,
  );
}

/** A live query: see the header. `db` may be null or undefined while it opens. */
export function useQuery<T = Row>(db: Database | null | undefined, sql: string, params?: SqlParams, options: UseQueryOptions<T> = {}): QueryState<T> {
  const [state, setState] = useState<QueryState<T>>({ rows: undefined, error: undefined, loading: true });
  const key = paramsKey(params);
  const { throttleMs, key: rowKey } = options;
  useEffect(() => {
    if (!db) return;
    setState((s) => (s.loading ? s : { ...s, loading: true }));
    return db.watch<T>(sql, params, (rows) => setState({ rows, error: undefined, loading: false }), {
      ...(throttleMs === undefined ? {} : { throttleMs }),
      ...(rowKey === undefined ? {} : { key: rowKey }),
      onError: (error) => setState((s) => ({ rows: s.rows, error, loading: false })),
    });
    // `params` is represented by `key`: its values, not its identity, restart the watch.
  }, [db, sql, key, throttleMs, rowKey]);
  return state;
}

/** The database's latest sync status (null without sync or until known). */
export function useSyncStatus(db: Database | null | undefined): SyncStatus | null {
  // Kept with the database it belongs to: after a switch to another database (or none), the
  // last one's status is not shown as this one's.
  const [seen, setSeen] = useState<{ db: Database; status: SyncStatus | null } | null>(null);
  useEffect(() => {
    if (!db) return;
    let live = true;
    const off = db.onSyncStatus((status) => setSeen({ db, status }));
    db.syncStatus().then(
      (status) => {
        if (live) setSeen({ db, status });
      },
      () => {},
    );
    return () => {
      live = false;
      off();
    };
  }, [db]);
  return seen && seen.db === db ? seen.status : null;
}

const DatabaseContext = createContext<Database | null>(null);

/** Makes `db` the database of `useDatabase()` below it. */
export function OutpostProvider(props: { db: Database | null; children?: ReactNode }): ReactNode {
  return createElement(DatabaseContext.Provider, { value: props.db }, props.children);
}

/** The database of the nearest `OutpostProvider` (null while none, or while it opens). */
export function useDatabase(): Database | null {
  return useContext(DatabaseContext);
}
