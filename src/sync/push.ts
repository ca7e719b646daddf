/**
 * One push: read this client's acknowledged change id from the server (so a push whose answer
 * was lost is not applied twice), send the records after it in batches (push-plan.ts), each
 * one server transaction (push-batch.ts), and when a batch is refused, push it again one
 * transaction at a time to isolate the change the server refuses. A refused change is recorded
 * in the rejection log (rejected-file.ts): kept locally, skipped by later pushes, reported until
 * the application drops it or retries it, however many there are.
 */
import { SyncError } from '../errors.js';
import type { SyncTransport } from '../protocol/transport.js';
import type { SyncOptions } from '../types.js';
import type { ChangeRecord } from './change-log.js';
import { decodeSegments } from './changeset.js';
import type { LocalDatabase } from './local.js';
import { type PushResult, ackRequest, applyTransform, buildPushBatch, pushSteps, readAck, readPushResult } from './push-batch.js';
import { recordsToPush, splitIntoBatches } from './push-plan.js';
import { tableInfoLookup } from './schema.js';

export type PushOptions = Pick<SyncOptions, 'pushBatchSize' | 'transform'>;

export interface PushOutcome {
  /** Change records the server took. */
  pushed: number;
  /** The REJECTED error to report when the server refused any change; the state already records them. */
  refused: SyncError | null;
}

/** Pushes pending changes once (no retries); null when there was nothing to push. */
export async function pushOnce(local: LocalDatabase, transport: SyncTransport, options: PushOptions): Promise<PushOutcome | null> {
  const records = local.changes.readAll();
  if (records.length === 0) return null;
  const clientId = local.state.value.clientId;
  let acked = readAck(await transport.pipeline(ackRequest(clientId)));
  // The server has seen ids up to `acked` from this client: never hand them out again.
  if (local.state.value.changeIdFloor < acked) local.state.update({ changeIdFloor: acked });
  const refusals = new Map<number, string>();
  const refusedTables = new Map<number, string | null>();
  const refuse = (id: number, result: Extract<PushResult, { type: 'refused' }>): void => {
    refusals.set(id, result.reason);
    refusedTables.set(id, result.table);
  };
  const send = async (batch: ChangeRecord[]): Promise<PushResult> => {
    // Durably first: no id this batch carries is ever given to a new change, even when a power
    // loss takes the change log's last commits (durability 'normal') after the server took
    // the batch. Without it, new writes reused acknowledged ids and the server skipped them.
    const lastId = batch[batch.length - 1]!.id;
    if (local.state.value.changeIdFloor < lastId) local.state.update({ changeIdFloor: lastId });
    const result = await sendBatch(local, transport, clientId, acked, batch, options.transform);
    if (result.type === 'ok') acked = Math.max(acked, batch[batch.length - 1]!.id);
    return result;
  };
  const todo = recordsToPush(records, acked, (id) => local.rejected.has(id));
  let pushed = 0;
  for (const batch of splitIntoBatches(todo, options.pushBatchSize ?? 1000)) {
    const result = await send(batch);
    if (result.type === 'ok') pushed += batch.length;
    else if (batch.length === 1) refuse(batch[0]!.id, result);
    else {
      // Find the change the server refuses: push the batch one transaction at a time.
      for (const r of batch) {
        const single = await send([r]);
        if (single.type === 'ok') pushed++;
        else refuse(r.id, single);
      }
    }
  }
  local.rejected.record(refusals, { lastPushAt: Date.now() });
  const refused = todo.filter((r) => refusals.has(r.id));
  return { pushed, refused: refused.length > 0 ? refusedError(refused.map((r) => r.id), refusals, refusedTables) : null };
}

/** Sends one batch of records as one server transaction. */
async function sendBatch(
  local: LocalDatabase,
  transport: SyncTransport,
  clientId: string,
  acked: number,
  records: ChangeRecord[],
  transform: PushOptions['transform'],
): Promise<PushResult> {
  const decoded = records.map((r) => ({ id: r.id, segments: decodeSegments(local.conn, r.segments) }));
  const planned = pushSteps(decoded, tableInfoLookup(local.conn), transform !== undefined);
  const steps = transform && planned.mutations.length > 0 ? applyTransform(planned, await transform(planned.mutations.map((m) => m.mutation))) : planned.steps;
  const batch = buildPushBatch(clientId, Math.max(acked, records[records.length - 1]!.id), steps);
  return readPushResult(batch, await transport.pipeline(batch.request));
}

function refusedError(ids: number[], reasons: ReadonlyMap<number, string>, tables: Map<number, string | null>): SyncError {
  const first = ids[0]!;
  const more = ids.length > 1 ? ` (and ${ids.length - 1} more)` : '';
  return new SyncError(
    `the server refused change ${first}${more}: ${reasons.get(first)}. It stays local; inspect it with pendingChanges(), then drop it or fix it with sync.transform and retryRejectedChange()`,
    'REJECTED',
    undefined,
    first,
    tables.get(first) ?? undefined,
  );
}
