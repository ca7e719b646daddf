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
import {
  type PushResult,
  REQUEST_BYTES_MAX,
  REQUEST_STEPS_MAX,
  ackRequest,
  applyTransform,
  buildPushBatch,
  buildStreamBatches,
  pushSteps,
  readAck,
  readPushResult,
  splitSteps,
} from './push-batch.js';
import type { PushStep } from './push-sql.js';
import { recordsToPush, splitIntoBatches } from './push-plan.js';
import { tableInfoLookup } from './schema.js';
import { pushedUpTo, rotateClientId } from './state-file.js';

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
  let clientId = local.state.value.clientId;
  let acked = readAck(await transport.pipeline(ackRequest(clientId)));
  if (acked > pushedUpTo(local.state.value)) {
    // The server acknowledged an id this replica never sent under its client id: a copy of it
    // pushes under the same id. Continue under a new one, or those changes would be skipped.
    rotateClientId(local.state, local.state.value.home ?? '');
    clientId = local.state.value.clientId;
    acked = 0;
  }
  const inherited = local.state.value.inherited;
  // Records sent under the previous client id and acknowledged for it are done.
  const covered = inherited ? Math.min(inherited.upTo, readAck(await transport.pipeline(ackRequest(inherited.clientId)))) : 0;
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
    if (local.state.value.changeIdFloor < lastId || pushedUpTo(local.state.value) < lastId) {
      local.state.update({ changeIdFloor: Math.max(local.state.value.changeIdFloor, lastId), pushedUpTo: Math.max(pushedUpTo(local.state.value), lastId) });
    }
    const result = await sendBatch(local, transport, clientId, acked, batch, options.transform);
    if (result.type === 'ok') acked = Math.max(acked, batch[batch.length - 1]!.id);
    return result;
  };
  const todo = recordsToPush(records, acked, (id) => local.rejected.has(id)).filter((r) => r.id > covered);
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
  const decoded = records.map((r) => ({ id: r.id, segments: decodeSegments(r.segments) }));
  const planned = pushSteps(decoded, tableInfoLookup(local.conn), transform !== undefined);
  const steps = transform && planned.mutations.length > 0 ? applyTransform(planned, await transform(planned.mutations.map((m) => m.mutation))) : planned.steps;
  const ackedAfter = Math.max(acked, records[records.length - 1]!.id);
  const split = splitSteps(steps);
  if ('oversized' in split) {
    const s = split.oversized;
    const reason = `a statement of ${mib(split.bytes)} MiB${s.table ? ` (table ${s.table})` : ''} is larger than one push request may carry (${mib(REQUEST_BYTES_MAX)} MiB): no server can take it; drop the change or store the value in smaller rows`;
    return { type: 'refused', reason, changeId: s.changeId, table: s.table };
  }
  if (split.parts.length === 1) {
    const batch = buildPushBatch(clientId, ackedAfter, steps);
    return readPushResult(batch, await transport.pipeline(batch.request));
  }
  return sendStream(transport, clientId, ackedAfter, split.parts, split.bytes, records);
}

/**
 * Sends one transaction too large for one request over several requests of one Hrana stream
 * (push-batch.ts `buildStreamBatches`). A server that does not keep streams (it answers the
 * first part without a baton) cannot take it: the transaction is rolled back there and the
 * records come back refused, with their size and the reason, so they are kept, reported and
 * skipped rather than failing every later push. An answer lost mid-stream throws (the push is
 * retried from the acknowledgement; the server rolls back the abandoned stream when it idles).
 */
async function sendStream(transport: SyncTransport, clientId: string, ackedAfter: number, parts: PushStep[][], bytes: number, records: ChangeRecord[]): Promise<PushResult> {
  const batches = buildStreamBatches(clientId, ackedAfter, parts);
  let baton: string | null = null;
  for (const [i, batch] of batches.entries()) {
    const request = { ...batch.request, baton };
    let response;
    try {
      response = await transport.pipeline(request);
    } catch (e) {
      if (i > 0 && e instanceof SyncError && e.status === 400 && /stream has ended/.test(e.message)) {
        throw new SyncError(`the server ended a push stream before it finished (${e.message}); the push starts over`, 'HTTP', 503);
      }
      throw e;
    }
    const result = readPushResult(batch, response);
    if (result.type === 'refused') return result;
    if (i < batches.length - 1 && response.baton === null) {
      // Turso's server, for one, answers without a baton and keeps the transaction open on its
      // shared connection: end it before anything else runs there.
      await transport.pipeline({ baton: null, requests: [{ type: 'execute', stmt: { sql: 'ROLLBACK', args: [], want_rows: false } }] }).catch(() => undefined);
      const statements = parts.reduce((n, p) => n + p.length, 0);
      const first = records[0]!.id;
      const reason = `change ${first}${records.length > 1 ? ` (with ${records.length - 1} more in its batch)` : ''} is ${statements} statements and ${mib(bytes)} MiB, more than one push request may carry (${REQUEST_STEPS_MAX} statements, ${mib(REQUEST_BYTES_MAX)} MiB), and this server does not keep a transaction open across requests (Hrana batons), so it cannot take it; split the work into smaller transactions, or sync with an Outpost server`;
      return { type: 'refused', reason, changeId: records.length === 1 ? first : null, table: null };
    }
    baton = response.baton;
  }
  return { type: 'ok' };
}

function mib(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1);
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
