/**
 * One push: read this client's acknowledged change id from the server (so a push whose answer
 * was lost is not applied twice), send the records after it in batches (push-plan.ts), each
 * one server transaction (push-batch.ts), and when a batch is refused, push it again one
 * transaction at a time to isolate the change the server refuses. A refused change is recorded
 * in the rejection log (rejected-file.ts): kept locally, skipped by later pushes, reported until
 * the application drops it or retries it, however many there are. An insert whose key another
 * client took is an insert collision (conflicts.ts): re-keyed, then the push starts over, in a
 * table without a primary key; refused and reported, with the later changes to its rows held
 * back, in a table with one. Any refused change holds back the later changes that write its
 * rows the same way (conflicts.ts `heldBehindRejected`), worked out again after each refusal
 * before the later records are sent. Every batch also gates itself on the acknowledgement (push-batch.ts):
 * one that finds its changes already there is `stale`, and the round starts over from a fresh
 * read. With `backgroundPush`, a push that cannot reach the server still sends all its batches,
 * each gated on the one before, for a service worker to queue (`offerForBackgroundPush`).
 */
import { SyncError } from '../errors.js';
import type { SyncTransport } from '../protocol/transport.js';
import type { SyncOptions } from '../types.js';
import type { ChangeRecord } from './change-log.js';
import { decodeSegments } from './changeset.js';
import type { LocalDatabase } from './local.js';
import { COLLISION_REASON_PREFIX, heldBehindRejected, rekeyInserts, rowsOfRecords } from './conflicts.js';
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

export type PushOptions = Pick<SyncOptions, 'pushBatchSize' | 'transform' | 'upsertTables' | 'backgroundPush'>;

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
    // The first round's refusal is the cause; later rounds' are the changes held behind it.
    total.refused ??= round.refused;
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
  let clientId = local.state.value.clientId;
  let acked: number;
  try {
    acked = readAck(await transport.pipeline(ackRequest(clientId)));
  } catch (e) {
    if (options.backgroundPush && e instanceof SyncError && e.code === 'NETWORK') await offerForBackgroundPush(local, transport, clientId, records, options);
    throw e;
  }
  // The server is reachable: a later offer starts again from what it has.
  offered.delete(local);
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
  const unsaved = new Map<number, string>();
  const refusedTables = new Map<number, string | null>();
  const refuse = (id: number, result: Extract<PushResult, { type: 'refused' }>): void => {
    refusals.set(id, result.reason);
    unsaved.set(id, result.reason);
    refusedTables.set(id, result.table);
  };
  const reasonOf = (id: number): string | undefined => refusals.get(id) ?? local.rejected.reason(id);
  const send = async (batch: ChangeRecord[]): Promise<PushResult> => {
    // Durably first: no id this batch carries is ever given to a new change, even when a power
    // loss takes the change log's last commits (durability 'normal') after the server took
    // the batch. Without it, new writes reused acknowledged ids and the server skipped them.
    const lastId = batch[batch.length - 1]!.id;
    if (local.state.value.changeIdFloor < lastId || pushedUpTo(local.state.value) < lastId) {
      local.state.update({ changeIdFloor: Math.max(local.state.value.changeIdFloor, lastId), pushedUpTo: Math.max(pushedUpTo(local.state.value), lastId) });
    }
    // Refusals durably before the next batch: if that batch commits and its answer is lost, the
    // acknowledgement passes the refused records, and a pull would drop them unless marked.
    if (unsaved.size > 0) {
      local.rejected.record(unsaved);
      unsaved.clear();
    }
    const result = await sendBatch(local, transport, clientId, acked, batch, options.transform, options.upsertTables ?? []);
    if (result.type === 'ok') acked = Math.max(acked, batch[batch.length - 1]!.id);
    return result;
  };
  const decoded = records.map((r) => ({ id: r.id, segments: decodeSegments(r.segments) }));
  const lookup = tableInfoLookup(local.conn);
  const rows = rowsOfRecords(decoded, lookup);
  // Refused, not only skipped: a pull keeps refused records, where it would drop a skipped one
  // once the acknowledgement passes it.
  const holdBehindRefused = (): void => {
    for (const [id, blocker] of heldBehindRejected(decoded, reasonOf, lookup)) {
      // Named by a table it writes (a row identity starts with its table), as every refusal is.
      const table = [...(rows.get(id) ?? [])][0]?.split('\u0000')[0] ?? null;
      if (reasonOf(id) === undefined && id > acked) refuse(id, { type: 'refused', reason: `waits for change ${blocker}, which wrote a row this change writes to and was refused`, changeId: id, table });
    }
  };
  holdBehindRefused();
  const todo = recordsToPush(records, acked, (id) => reasonOf(id) !== undefined).filter((r) => r.id > covered);
  // A refusal during the round holds back the later records that write its rows (worked out
  // again only when one of them does), before they are sent.
  const refuseAndHold = (id: number, result: Extract<PushResult, { type: 'refused' }>): void => {
    refuse(id, result);
    const written = rows.get(id);
    if (written && todo.some((r) => r.id > id && [...(rows.get(r.id) ?? [])].some((row) => written.has(row)))) holdBehindRefused();
  };
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
  // A stale batch (another push of it went through) ends the round: the next one reads the acknowledgement again.
  const stale = (result: PushResult): boolean => {
    if (result.type === 'stale') next = 'again';
    return result.type === 'stale';
  };
  batches: for (const planned of splitIntoBatches(todo, options.pushBatchSize ?? 1000)) {
    const batch = planned.filter((r) => reasonOf(r.id) === undefined);
    if (batch.length === 0) continue;
    const result = await send(batch);
    if (collided(result) || stale(result)) break;
    if (result.type === 'ok') pushed += batch.length;
    else if (batch.length === 1) refuseAndHold(batch[0]!.id, result as Extract<PushResult, { type: 'refused' }>);
    else {
      // Find the change the server refuses: push the batch one transaction at a time.
      for (const r of batch) {
        if (reasonOf(r.id) !== undefined) continue;
        const single = await send([r]);
        if (collided(single) || stale(single)) break batches;
        if (single.type === 'ok') pushed++;
        else refuseAndHold(r.id, single as Extract<PushResult, { type: 'refused' }>);
      }
    }
  }
  local.rejected.record(unsaved, { lastPushAt: Date.now() });
  // Every change refused in this round is reported, those held back before any was sent too.
  const refused = [...refusals.keys()].sort((x, y) => x - y);
  return { pushed, refused: refused.length > 0 ? refusedError(refused, refusals, refusedTables) : null, next };
}

/**
 * What this session offered a service worker for a database (`offerForBackgroundPush`): the
 * records, in order, and how many the last full offer had. Forgotten when a push reaches the
 * server, since the next offer then starts from what the server has.
 */
interface Offered {
  clientId: string;
  ids: number[];
  fullCount: number;
}
const offered = new WeakMap<LocalDatabase, Offered>();

/**
 * With `backgroundPush`, when the server cannot be reached: sends every batch of pending changes
 * all the same, in order, built without the server's acknowledgement, so that a service worker
 * intercepting the failed requests can queue them and replay them when the network returns
 * (README, "Background push"; `outpost/sw`). Each batch gates itself twice: the server skips it
 * when it already has its first change, and, from the second batch on, until it has the last
 * change of the batch before. So however the replays go, each change applies once, in order,
 * and never over a gap. What happens to them is the service worker's business: the push fails
 * here as it would have.
 *
 * One batch per transaction (record), whatever `pushBatchSize` says: the gate skips a whole batch
 * once the server has its first change, so a batch that straddled the change the server
 * acknowledges (reached by an earlier replay of differently cut batches) would be skipped with
 * changes the server lacks, and every later batch would wait for them. With a batch per
 * transaction every offer, old or new, full or incremental, cuts at the same places.
 *
 * Incremental: when the records offered before in this session are still the first ones to
 * push, only the records after them are offered, the first gated on the last one offered; so
 * each offline commit sends (and the service worker stores) only its own batch. Everything is
 * offered again, from the first pending change, once the pending records have doubled since
 * the last full offer (amortized linear, and it mends a batch the service worker missed), or
 * when they changed in another way (a refusal dropped or a held change freed).
 *
 * A transaction larger than one request cannot be replayed by a service worker (it needs a
 * Hrana stream across requests), so the offer stops before it; the tab pushes it and the rest.
 */
async function offerForBackgroundPush(local: LocalDatabase, transport: SyncTransport, clientId: string, records: ChangeRecord[], options: PushOptions): Promise<void> {
  // Records sent under a previous client id wait for the server's answer about that id.
  if (local.state.value.inherited) return;
  const reasonOf = (id: number): string | undefined => local.rejected.reason(id);
  const held = heldBehindRejected(
    records.map((r) => ({ id: r.id, segments: decodeSegments(r.segments) })),
    reasonOf,
    tableInfoLookup(local.conn),
  );
  const eligible = recordsToPush(records, 0, (id) => reasonOf(id) !== undefined || held.has(id));
  const before = offered.get(local);
  const incremental =
    before !== undefined && before.clientId === clientId && eligible.length < 2 * before.fullCount && before.ids.every((id, i) => eligible[i]?.id === id);
  const fresh = incremental ? eligible.slice(before.ids.length) : eligible;
  const lastId = fresh.at(-1)?.id;
  if (lastId === undefined) return;
  // Durably first, as every push does: the ids these batches carry are never handed out again.
  if (local.state.value.changeIdFloor < lastId || pushedUpTo(local.state.value) < lastId) {
    local.state.update({ changeIdFloor: Math.max(local.state.value.changeIdFloor, lastId), pushedUpTo: Math.max(pushedUpTo(local.state.value), lastId) });
  }
  const now: Offered = incremental ? before : { clientId, ids: [], fullCount: eligible.length };
  offered.set(local, now);
  for (const record of fresh) {
    const steps = await batchSteps(local, [record], options.transform, options.upsertTables ?? []);
    const split = splitSteps(steps);
    if ('oversized' in split || split.parts.length > 1) return;
    const batch = buildPushBatch(clientId, record.id, record.id, steps, now.ids.at(-1) ?? 0);
    await transport.pipeline(batch.request).catch(() => undefined);
    now.ids.push(record.id);
  }
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
  const steps = await batchSteps(local, records, transform, upsertTables);
  const ackedAfter = Math.max(acked, records[records.length - 1]!.id);
  const split = splitSteps(steps);
  if ('oversized' in split) {
    const s = split.oversized;
    const reason = `a statement of ${mib(split.bytes)} MiB${s.table ? ` (table ${s.table})` : ''} is larger than one push request may carry (${mib(REQUEST_BYTES_MAX)} MiB): no server can take it; drop the change or store the value in smaller rows`;
    return { type: 'refused', reason, changeId: s.changeId, table: s.table };
  }
  if (split.parts.length === 1) {
    const batch = buildPushBatch(clientId, records[0]!.id, ackedAfter, steps);
    return readPushResult(batch, await transport.pipeline(batch.request));
  }
  return sendStream(transport, clientId, ackedAfter, split.parts, split.bytes, records);
}

/** The statements that apply `records` on the server, after the application's transform. */
async function batchSteps(local: LocalDatabase, records: ChangeRecord[], transform: PushOptions['transform'], upsertTables: readonly string[]): Promise<PushStep[]> {
  const decoded = records.map((r) => ({ id: r.id, segments: decodeSegments(r.segments) }));
  const planned = pushSteps(decoded, tableInfoLookup(local.conn), transform !== undefined, upsertTables);
  return transform && planned.mutations.length > 0 ? applyTransform(planned, await transform(planned.mutations.map((m) => m.mutation))) : planned.steps;
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
  const batches = buildStreamBatches(clientId, records[0]!.id, ackedAfter, parts);
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
    if (result.type === 'refused' || result.type === 'stale') return result;
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
