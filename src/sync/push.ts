/**
 * One push: read this client's acknowledged change id from the server (so a push whose answer
 * was lost is not applied twice), send the records after it in batches (push-plan.ts), each
 * one server transaction (push-batch.ts), and when a batch is refused, push it again one
 * transaction at a time to isolate the change the server refuses. A refused change is recorded
 * in the sync state: kept locally, skipped by later pushes, reported until the application
 * drops it or retries it. An insert whose key another client took is an insert collision
 * (conflicts.ts): re-keyed, then the push starts over, in a table without a primary key;
 * refused and reported, with the later changes to its rows held back, in a table with one.
 */
import { SyncError } from '../errors.js';
import type { SyncTransport } from '../protocol/transport.js';
import type { SyncOptions } from '../types.js';
import type { ChangeRecord } from './change-log.js';
import { decodeSegments } from './changeset.js';
import type { LocalDatabase } from './local.js';
import { COLLISION_REASON_PREFIX, heldBehindRejected, rekeyInserts } from './conflicts.js';
import { type PushResult, ackRequest, applyTransform, buildPushBatch, pushSteps, readAck, readPushResult } from './push-batch.js';
import { recordsToPush, splitIntoBatches } from './push-plan.js';
import { tableInfoLookup } from './schema.js';

export type PushOptions = Pick<SyncOptions, 'pushBatchSize' | 'transform' | 'upsertTables'>;

/**
 * Re-keys one push may do before it gives up for now (a transient error, retried later): each
 * one moves every pending insert of a table above the server's rowids, so more than a few
 * means other clients keep taking the new rowids first.
 */
const MAX_REKEYS_PER_PUSH = 16;

export interface PushOutcome {
  /** Change records the server took. */
  pushed: number;
  /** The REJECTED error to report when the server refused any change; the state already records them. */
  refused: SyncError | null;
}

/** Pushes pending changes once (no retries); null when there was nothing to push. */
export async function pushOnce(local: LocalDatabase, transport: SyncTransport, options: PushOptions): Promise<PushOutcome | null> {
  const total: PushOutcome = { pushed: 0, refused: null };
  for (let rounds = 0, rekeys = 0; ; rounds++) {
    const round = await pushRound(local, transport, options);
    if (!round) return rounds === 0 ? null : total;
    total.pushed += round.pushed;
    total.refused = round.refused ?? total.refused;
    if (round.next === 'done') return total;
    if (round.next === 'again') continue;
    if (++rekeys > MAX_REKEYS_PER_PUSH) throw new SyncError(`pending inserts into ${round.next.table} kept colliding with other clients' rows; the push will be retried`, 'HTTP', 503);
    await rekeyInserts(local, transport, round.next.table, round.next.changeId);
  }
}

/**
 * One pass over the pending records. It ends early at an insert collision: `again` after a
 * refused one (the records held behind it are worked out anew), or the re-key to do first.
 */
async function pushRound(
  local: LocalDatabase,
  transport: SyncTransport,
  options: PushOptions,
): Promise<(PushOutcome & { next: 'done' | 'again' | { table: string; changeId: number } }) | null> {
  const records = local.changes.readAll();
  if (records.length === 0) return null;
  const clientId = local.state.value.clientId;
  let acked = readAck(await transport.pipeline(ackRequest(clientId)));
  // The server has seen ids up to `acked` from this client: never hand them out again.
  if (local.state.value.changeIdFloor < acked) local.state.update({ changeIdFloor: acked });
  const rejected = { ...local.state.value.rejected };
  const refusedTables = new Map<number, string | null>();
  const refuse = (id: number, result: Extract<PushResult, { type: 'refused' }>): void => {
    rejected[id] = result.reason;
    refusedTables.set(id, result.table);
    // Durably before the next batch: if that batch commits and its answer is lost, the
    // acknowledgement passes this record, and a pull would drop it unless it is marked refused.
    local.state.update({ rejected: { ...rejected } });
  };
  const send = async (batch: ChangeRecord[]): Promise<PushResult> => {
    // Durably first: no id this batch carries is ever given to a new change, even when a power
    // loss takes the change log's last commits (durability 'normal') after the server took
    // the batch. Without it, new writes reused acknowledged ids and the server skipped them.
    const lastId = batch[batch.length - 1]!.id;
    if (local.state.value.changeIdFloor < lastId) local.state.update({ changeIdFloor: lastId });
    const result = await sendBatch(local, transport, clientId, acked, batch, options.transform, options.upsertTables ?? []);
    if (result.type === 'ok') acked = Math.max(acked, batch[batch.length - 1]!.id);
    return result;
  };
  const held = heldBehindRejected(
    records.map((r) => ({ id: r.id, segments: decodeSegments(local.conn, r.segments) })),
    rejected,
    tableInfoLookup(local.conn),
  );
  // Refused, not only skipped: a pull keeps refused records, where it would drop a skipped one
  // once the acknowledgement passes it.
  for (const [id, blocker] of held) {
    if (rejected[id] === undefined && id > acked) refuse(id, { type: 'refused', reason: `waits for change ${blocker}, which inserted a row this change writes to and was refused`, changeId: id, table: null });
  }
  const todo = recordsToPush(records, acked, rejected);
  let pushed = 0;
  let next: 'done' | 'again' | { table: string; changeId: number } = 'done';
  // A collision ends the round: a refused insert holds later changes back, a re-key rewrites them.
  const collided = (result: PushResult): boolean => {
    if (result.type !== 'collision') return false;
    if (result.rowid !== null) next = { table: result.table, changeId: result.changeId };
    else {
      refuse(result.changeId, { type: 'refused', reason: collisionReason(result.reason), changeId: result.changeId, table: result.table });
      next = 'again';
    }
    return true;
  };
  batches: for (const batch of splitIntoBatches(todo, options.pushBatchSize ?? 1000)) {
    const result = await send(batch);
    if (collided(result)) break;
    if (result.type === 'ok') pushed += batch.length;
    else if (batch.length === 1) refuse(batch[0]!.id, result as Extract<PushResult, { type: 'refused' }>);
    else {
      // Find the change the server refuses: push the batch one transaction at a time.
      for (const r of batch) {
        const single = await send([r]);
        if (collided(single)) break batches;
        if (single.type === 'ok') pushed++;
        else refuse(r.id, single as Extract<PushResult, { type: 'refused' }>);
      }
    }
  }
  local.state.update({ rejected, lastPushAt: Date.now() });
  const refused = todo.filter((r) => rejected[r.id] !== undefined);
  return { pushed, refused: refused.length > 0 ? refusedError(refused.map((r) => r.id), rejected, refusedTables) : null, next };
}

/** The reason recorded for a refused insert collision: what happened and what the application can do. */
function collisionReason(reason: string): string {
  const what = reason.startsWith(COLLISION_REASON_PREFIX) ? reason : `${COLLISION_REASON_PREFIX} ${reason}`;
  return `${what}. The row this client inserted is kept locally with its values, and later changes to it wait with it; give it another key with sync.transform and retryRejectedChange(), or drop the change`;
}

/** Sends one batch of records as one server transaction. */
async function sendBatch(
  local: LocalDatabase,
  transport: SyncTransport,
  clientId: string,
  acked: number,
  records: ChangeRecord[],
  transform: PushOptions['transform'],
  upsertTables: readonly string[],
): Promise<PushResult> {
  const decoded = records.map((r) => ({ id: r.id, segments: decodeSegments(local.conn, r.segments) }));
  const planned = pushSteps(decoded, tableInfoLookup(local.conn), transform !== undefined, upsertTables);
  const steps = transform && planned.mutations.length > 0 ? applyTransform(planned, await transform(planned.mutations.map((m) => m.mutation))) : planned.steps;
  const batch = buildPushBatch(clientId, Math.max(acked, records[records.length - 1]!.id), steps);
  return readPushResult(batch, await transport.pipeline(batch.request));
}

function refusedError(ids: number[], reasons: Record<string, string>, tables: Map<number, string | null>): SyncError {
  const first = ids[0]!;
  const more = ids.length > 1 ? ` (and ${ids.length - 1} more)` : '';
  return new SyncError(
    `the server refused change ${first}${more}: ${reasons[first]}. It stays local; inspect it with pendingChanges(), then drop it or fix it with sync.transform and retryRejectedChange()`,
    'REJECTED',
    undefined,
    first,
    tables.get(first) ?? undefined,
  );
}
