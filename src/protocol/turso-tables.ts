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
 * The text a push batch's gate fails with (sync/push-batch.ts). Like the insert guard it is a
 * JSON path that is not one; the acknowledged id is part of it, so json_extract runs once per
 * matching row (never factored out as a constant) and the message says how far the server is.
 */
export const BATCH_ALREADY_APPLIED = 'outpost: batch already applied up to change';
/**
 * A push batch's gate. Arguments: client id, the batch's first change id. It fails, and with it
 * the batch, when the server already acknowledges that change for this client.
 */
export const PUSH_GATE = `SELECT json_extract('{}', '${BATCH_ALREADY_APPLIED} ' || change_id) FROM ${TURSO_SYNC_TABLE} WHERE client_id = ? AND change_id >= ?`;

/** The text a later batch of a background push fails with when the batch before it is not on the server. */
export const BATCH_WAITS_FOR = 'outpost: batch waits for the batch before it; the server acknowledges up to change';
/**
 * The second gate of a background push's later batches (push.ts `offerForBackgroundPush`).
 * Arguments: client id, the last change id of the batch before. It fails when the server does
 * not yet acknowledge that change for this client, so the batches of one offer apply only in
 * order: a later one never lands over a gap (its acknowledgement would then skip the missing
 * changes). The aggregate gives one row even when the client has none, and keeps json_extract
 * from being evaluated once as a constant, as PUSH_GATE's column does.
 */
export const PUSH_AFTER_GATE = `SELECT json_extract('{}', '${BATCH_WAITS_FOR} ' || coalesce(max(change_id), 0)) FROM ${TURSO_SYNC_TABLE} WHERE client_id = ? HAVING coalesce(max(change_id), 0) < ?`;

/**
 * The generation of a client's change ids. Turso's client starts a new generation when it
 * restarts its ids; Outpost never restarts them (the floor in its sync state), so its
 * generation never moves.
 */
export const PULL_GEN = 1;

/** A statement that writes (or creates) the protocol's table; compiled once, not per request. */
const SYNC_TABLE_WRITE = new RegExp(String.raw`^\s*(?:INSERT|UPDATE|REPLACE|CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS)\b[\s\S]*\b${TURSO_SYNC_TABLE}\b`, 'i');

/**
 * Whether a Hrana pipeline body is a sync client's push: it writes `turso_sync_last_change_id`
 * (Outpost's and Turso's clients both upsert or update their row in the push's transaction) or
 * creates it (the first request of Outpost's streamed push, whose acknowledgement comes in its
 * last). Its row changes are effects, applied with triggers off (engine/effects.ts).
 */
export function isSyncPush(body: unknown): boolean {
  const requests = (body as { requests?: unknown } | null)?.requests;
  if (!Array.isArray(requests)) return false;
  const isWrite = (stmt: unknown): boolean => typeof (stmt as { sql?: unknown } | null)?.sql === 'string' && SYNC_TABLE_WRITE.test((stmt as { sql: string }).sql);
  return requests.some((r: unknown) => {
    const req = r as { stmt?: unknown; batch?: { steps?: unknown } } | null;
    const steps = req?.batch?.steps;
    return isWrite(req?.stmt) || (Array.isArray(steps) && steps.some((s: unknown) => isWrite((s as { stmt?: unknown } | null)?.stmt)));
  });
}

/** What a service worker needs to know of a replayable push batch (`replayablePush`). */
export interface ReplayablePush {
  clientId: string;
  /** The first change id the batch carries. */
  firstId: number;
  /** The change id the batch acknowledges: its last change. */
  lastId: number;
  /** The last change id of the batch that must be on the server first; 0 for the first batch of an offer. */
  afterId: number;
}

/**
 * The client and change ids of a replayable push batch (`isReplayablePush`), read from its gate
 * steps; null for any other body.
 */
export function replayablePush(body: unknown): ReplayablePush | null {
  if (!isReplayablePush(body)) return null;
  // isReplayablePush checked the shape: one batch request whose steps are statements.
  const steps = (body as { requests: [{ batch: { steps: { stmt: { sql: string; args?: { value?: unknown }[] } }[] } }] }).requests[0].batch.steps;
  const argsOf = (sql: string): unknown[] => steps.find((s) => s.stmt.sql === sql)?.stmt.args?.map((a) => a.value) ?? [];
  const [clientId, firstId] = argsOf(PUSH_GATE);
  const [, afterId] = argsOf(PUSH_AFTER_GATE);
  const [, , lastId] = argsOf(UPSERT_TURSO_SYNC);
  const id = (v: unknown): number => (typeof v === 'string' || typeof v === 'number' ? Number(v) : NaN);
  if (typeof clientId !== 'string' || !Number.isSafeInteger(id(firstId)) || !Number.isSafeInteger(id(lastId))) return null;
  return { clientId, firstId: id(firstId), lastId: id(lastId), afterId: afterId === undefined ? 0 : id(afterId) };
}

/**
 * Whether a Hrana pipeline body is a whole, self-gated push batch that may be stored and sent
 * again later, by a service worker with no SQLite: one request with no baton (not a part of a
 * stream), whose batch has the gate (`PUSH_GATE`) and this client's acknowledgement. Sending it
 * twice applies it once.
 */
export function isReplayablePush(body: unknown): boolean {
  const b = body as { baton?: unknown; requests?: unknown } | null;
  if (b?.baton !== null || !Array.isArray(b.requests) || b.requests.length !== 1) return false;
  const steps = (b.requests[0] as { type?: unknown; batch?: { steps?: unknown } } | null)?.batch?.steps;
  if (!Array.isArray(steps)) return false;
  const sqls = steps.map((s: unknown) => (s as { stmt?: { sql?: unknown } } | null)?.stmt?.sql);
  return sqls.includes(PUSH_GATE) && sqls.includes(UPSERT_TURSO_SYNC);
}
