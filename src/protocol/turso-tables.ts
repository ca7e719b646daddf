/**
 * The table Turso's sync protocol keeps in every synced database:
 * `turso_sync_last_change_id(client_id TEXT PRIMARY KEY, pull_gen INTEGER, change_id INTEGER)`,
 * one row per client, holding the last change id of that client the database has applied.
 * A push upserts its row in the same transaction as its changes (so an acknowledgement and
 * the changes it covers commit together); a client reads its row before pushing (to skip what
 * the server already has) and from a pulled image (to drop the changes it covers).
 */

export const TURSO_SYNC_TABLE = 'turso_sync_last_change_id';
export const CREATE_TURSO_SYNC_TABLE = `CREATE TABLE IF NOT EXISTS ${TURSO_SYNC_TABLE} (client_id TEXT PRIMARY KEY, pull_gen INTEGER, change_id INTEGER)`;
/** Arguments: client id, pull generation, change id. */
export const UPSERT_TURSO_SYNC = `INSERT INTO ${TURSO_SYNC_TABLE}(client_id, pull_gen, change_id) VALUES (?, ?, ?) ON CONFLICT(client_id) DO UPDATE SET pull_gen=excluded.pull_gen, change_id=excluded.change_id`;
/** Argument: client id. Rows: `pull_gen, change_id`. */
export const SELECT_TURSO_SYNC = `SELECT pull_gen, change_id FROM ${TURSO_SYNC_TABLE} WHERE client_id = ?`;
/**
 * The generation of a client's change ids. Turso's client starts a new generation when it
 * restarts its ids; Outpost never restarts them (the floor in its sync state), so its
 * generation never moves.
 */
export const PULL_GEN = 1;
