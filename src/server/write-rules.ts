/**
 * The authorizer behind `--write-rules` (`ServerOptions.writeRules`): in a database with rules,
 * pushed statements may write only the listed tables. SQLite asks the authorizer once per
 * action while it prepares a statement, so a refused write fails at prepare time with
 * `SQLITE_AUTH` and nothing of it runs.
 */

import {
  SQLITE_ALTER_TABLE,
  SQLITE_ATTACH,
  SQLITE_CREATE_INDEX,
  SQLITE_CREATE_TABLE,
  SQLITE_CREATE_TEMP_INDEX,
  SQLITE_CREATE_TEMP_TABLE,
  SQLITE_CREATE_TEMP_TRIGGER,
  SQLITE_CREATE_TEMP_VIEW,
  SQLITE_CREATE_TRIGGER,
  SQLITE_CREATE_VIEW,
  SQLITE_CREATE_VTABLE,
  SQLITE_DELETE,
  SQLITE_DETACH,
  SQLITE_DROP_INDEX,
  SQLITE_DROP_TABLE,
  SQLITE_DROP_TEMP_INDEX,
  SQLITE_DROP_TEMP_TABLE,
  SQLITE_DROP_TEMP_TRIGGER,
  SQLITE_DROP_TEMP_VIEW,
  SQLITE_DROP_TRIGGER,
  SQLITE_DROP_VIEW,
  SQLITE_DROP_VTABLE,
  SQLITE_INSERT,
  SQLITE_UPDATE,
} from '../sqlite/constants.js';

const CREATE_ACTIONS = new Set([
  SQLITE_CREATE_INDEX,
  SQLITE_CREATE_TABLE,
  SQLITE_CREATE_TEMP_INDEX,
  SQLITE_CREATE_TEMP_TABLE,
  SQLITE_CREATE_TEMP_TRIGGER,
  SQLITE_CREATE_TEMP_VIEW,
  SQLITE_CREATE_TRIGGER,
  SQLITE_CREATE_VIEW,
  SQLITE_CREATE_VTABLE,
]);
const DROP_ACTIONS = new Set([
  SQLITE_DROP_INDEX,
  SQLITE_DROP_TABLE,
  SQLITE_DROP_TEMP_INDEX,
  SQLITE_DROP_TEMP_TABLE,
  SQLITE_DROP_TEMP_TRIGGER,
  SQLITE_DROP_TEMP_VIEW,
  SQLITE_DROP_TRIGGER,
  SQLITE_DROP_VIEW,
  SQLITE_DROP_VTABLE,
]);

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
