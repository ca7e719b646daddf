/**
 * The authorizer behind `--write-rules` (`ServerOptions.writeRules`): in a database with rules,
 * pushed statements may write only the listed tables. SQLite asks the authorizer once per
 * action while it prepares a statement, so a refused write fails at prepare time with
 * `SQLITE_AUTH` and nothing of it runs.
 */

// Authorizer action codes (sqlite3.h).
const CREATE_ACTIONS = new Set([1, 2, 3, 4, 5, 6, 7, 8, 29]);
const DROP_ACTIONS = new Set([10, 11, 12, 13, 14, 15, 16, 17, 30]);
const SQLITE_DELETE = 9;
const SQLITE_INSERT = 18;
const SQLITE_UPDATE = 23;
const SQLITE_ALTER_TABLE = 26;
const SQLITE_ATTACH = 24;
const SQLITE_DETACH = 25;

/**
 * Write rules: statements may insert, update and delete only in the listed tables (and the
 * sync protocol's `turso_sync_last_change_id`); writes made by triggers follow the trigger's
 * table; no DDL other than creating the protocol's table; no ATTACH.
 */
export function writeRulesAuthorizer(tables: string[]): (action: number, a: string | null, b: string | null, trigger: string | null) => boolean {
  const allowed = new Set([...tables.map((t) => t.toLowerCase()), 'turso_sync_last_change_id']);
  return (action, a, b, trigger) => {
    if (action === SQLITE_INSERT || action === SQLITE_UPDATE || action === SQLITE_DELETE) {
      return trigger !== null || (a !== null && allowed.has(a.toLowerCase())) || (a !== null && a.toLowerCase().startsWith('sqlite_'));
    }
    // Creating the protocol's table also creates its primary-key index (on that table).
    if (CREATE_ACTIONS.has(action)) return [a, b].some((name) => name?.toLowerCase() === 'turso_sync_last_change_id');
    if (DROP_ACTIONS.has(action) || action === SQLITE_ALTER_TABLE || action === SQLITE_ATTACH || action === SQLITE_DETACH) return false;
    return true;
  };
}
