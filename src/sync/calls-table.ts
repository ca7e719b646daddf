/**
 * Multi-tab bookkeeping (worker/call-log.ts): which follower calls committed. Local only: the
 * change log (change-log.ts) never tracks it, and `export()` leaves it out. Its own file so
 * that the Driver and the worker name it without loading the change log, which a database
 * opened without sync does not need (sync/open.ts).
 */
export const CALLS_TABLE = '_outpost_calls';
