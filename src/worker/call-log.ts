/**
 * Applied call ids: the engine writes the id of each follower's write call into the table
 * `_outpost_calls` inside the transaction that applies it, so that after the engine dies the
 * next engine can tell the follower whether that call committed (tabs.ts asks). A record
 * commits exactly when the call's own writes do, which makes "no record" mean "not applied".
 *
 * - Outside a transaction the call runs inside `SAVEPOINT outpost_call` (which opens one): the
 *   record first, then the call, then its result, then `RELEASE`. A call that cannot run inside
 *   a transaction (VACUUM, a script with its own BEGIN) fails there; it is rolled back to the
 *   savepoint, the follower is told it is not recorded, and it runs again as it was sent.
 * - Inside the caller's transaction the record is written before the call: it commits if that
 *   transaction commits (the call being its COMMIT), else it is rolled back with it.
 * - The table is local bookkeeping: it is not captured for sync (sync/change-log.ts), its
 *   changes are not announced to watchers (engine-host.ts), and a pull that drops it (it is
 *   not on the server) is repaired by creating it again. Its size is bounded: each follower's
 *   answered calls are deleted as its calls go on, a dead follower's when it dies, and those
 *   of followers no longer alive when an engine starts.
 */
import type { Connection } from '../engine/connection.js';
import { unpackRows } from '../engine/packed-rows.js';
import { SqliteError } from '../errors.js';
import { CALLS_TABLE } from '../sync/calls-table.js';
import type { RunResult } from '../types.js';
import { RECORDED_METHODS } from './tabs-protocol.js';

export { RECORDED_METHODS };

/** How often (in calls of one follower) its answered records are deleted. */
const PRUNE_EVERY_CALLS = 32;

export interface AppliedCall {
  callId: number;
  value: unknown;
}

export class CallLog {
  /** Per follower, the call id below which its records were last deleted. */
  private readonly prunedBelow = new Map<string, number>();
  private created = false;

  constructor(private readonly conn: Connection) {}

  /**
   * Runs `call` (the follower's `method`) with its record. `unrecorded` is called before the
   * call runs without one, so the follower never takes a missing record for "not applied".
   */
  async run(client: string, callId: number, keepFrom: number, method: string, call: () => Promise<unknown>, unrecorded: () => void): Promise<unknown> {
    const conn = this.conn;
    if (conn.inTransaction) {
      this.record(client, callId, keepFrom);
      return call();
    }
    conn.exec('SAVEPOINT outpost_call');
    let value: unknown;
    try {
      this.record(client, callId, keepFrom);
      value = await call();
    } catch {
      if (conn.inTransaction) conn.rollbackQuietly('ROLLBACK TO outpost_call; RELEASE outpost_call');
      unrecorded();
      return call();
    }
    // A call that ended the transaction itself (its COMMIT) committed its record with it.
    if (!conn.inTransaction) return value;
    if (method === 'run' || method === 'batch') {
      this.withTable(() => conn.run(`UPDATE ${CALLS_TABLE} SET result = ? WHERE client = ? AND call = ?`, [encodeResult(value), client, callId]));
    }
    conn.exec('RELEASE outpost_call');
    return value;
  }

  /** The calls of `callIds` whose records committed, with their results as the follower gets them. */
  applied(client: string, callIds: readonly number[], methods: readonly string[]): AppliedCall[] {
    if (!this.exists()) return [];
    const rows = unpackRows<{ call: number; result: string | null }>(
      this.conn.query(`SELECT call, result FROM ${CALLS_TABLE} WHERE client = ?`, [client]),
    );
    const found = new Map(rows.map((r) => [Number(r.call), r.result]));
    const out: AppliedCall[] = [];
    callIds.forEach((callId, i) => {
      if (!found.has(callId)) return;
      out.push({ callId, value: decodeResult(methods[i] ?? '', found.get(callId) ?? null) });
    });
    return out;
  }

  /** Deletes the records of every follower not in `alive` (or of `gone` only). */
  forget(keep: (client: string) => boolean): void {
    if (!this.exists()) return;
    const clients = unpackRows<{ client: string }>(this.conn.query(`SELECT DISTINCT client FROM ${CALLS_TABLE}`, undefined)).map((r) => r.client);
    for (const client of clients) {
      if (keep(client)) continue;
      this.conn.run(`DELETE FROM ${CALLS_TABLE} WHERE client = ?`, [client]);
      this.prunedBelow.delete(client);
    }
  }

  private record(client: string, callId: number, keepFrom: number): void {
    this.withTable(() => {
      this.conn.run(`INSERT OR REPLACE INTO ${CALLS_TABLE}(client, call) VALUES (?, ?)`, [client, callId]);
      if (keepFrom - (this.prunedBelow.get(client) ?? 0) >= PRUNE_EVERY_CALLS) {
        this.conn.run(`DELETE FROM ${CALLS_TABLE} WHERE client = ? AND call < ?`, [client, keepFrom]);
        this.prunedBelow.set(client, keepFrom);
      }
    });
  }

  private exists(): boolean {
    return Number(this.conn.value("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?", [CALLS_TABLE])) > 0;
  }

  /** Runs `fn`, creating the table first when it is missing (never created, or dropped by a pull). */
  private withTable(fn: () => void): void {
    if (!this.created) this.create();
    try {
      fn();
    } catch (e) {
      if (!(e instanceof SqliteError) || !/no such table/.test(e.message)) throw e;
      this.create();
      fn();
    }
  }

  private create(): void {
    // WITHOUT ROWID: inserting a record leaves the caller's last_insert_rowid() alone.
    this.conn.withoutCapture(() =>
      this.conn.exec(`CREATE TABLE IF NOT EXISTS ${CALLS_TABLE}(client TEXT NOT NULL, call INTEGER NOT NULL, result TEXT, PRIMARY KEY (client, call)) WITHOUT ROWID`),
    );
    this.created = true;
  }
}

/** A run's or batch's result as text: bigints as decimal strings. */
function encodeResult(value: unknown): string {
  const one = (r: RunResult): [number, string] => [r.changes, String(r.lastInsertRowid)];
  return JSON.stringify(Array.isArray(value) ? (value as RunResult[]).map(one) : one(value as RunResult));
}

function decodeResult(method: string, text: string | null): unknown {
  const one = (t: [number, string]): RunResult => ({ changes: t[0], lastInsertRowid: BigInt(t[1]) });
  // A record without a result is a call that committed its caller's transaction (a COMMIT):
  // it changed no rows itself.
  if (text === null) return method === 'run' ? { changes: 0, lastInsertRowid: 0n } : method === 'batch' ? [] : undefined;
  // The text was written by encodeResult for this same method.
  const parsed = JSON.parse(text) as [number, string] | [number, string][];
  return method === 'batch' ? (parsed as [number, string][]).map(one) : one(parsed as [number, string]);
}
