/**
 * The messages between the workers of several tabs (or workers) that share one database: the
 * elected engine (engine-host.ts) and its followers (tabs.ts).
 *
 * Channels, all named after the database:
 * - `outpost-tabs:<name>` (BroadcastChannel, everyone): announcements, heartbeats, the
 *   tables-changed and sync-progress events the engine fans out, and the calls of followers
 *   without a broker port.
 * - `outpost-tabs:<name>:<clientId>` (BroadcastChannel, one follower): the engine's answers to
 *   calls that came over the broadcast.
 * - A MessagePort per follower and engine, handed out by the broker (`BrokerRequest`): that
 *   follower's calls and their answers, in order, where a broker exists.
 * Locks: `outpost:<name>` is held by the engine (the same lock that guards the OPFS files);
 * `outpost-tab:<name>:<clientId>` is held by each follower for its whole life, so the engine
 * learns of its death (and rolls back its transaction) by being granted that lock;
 * `outpost-engine:<name>:<engineId>` is held by each engine until it has said its last word
 * (`engineLockName`), so a follower learns when it has finished.
 *
 * A call names the engine it is meant for (`engineId`); an engine ignores calls for another,
 * so a call sent to an engine that died is never run by its successor behind its sender's back.
 */
import type { PackedRows } from '../engine/packed-rows.js';
import { OutpostError } from '../errors.js';
import type { SyncProgress } from '../types.js';
import type { SerializedError } from './protocol.js';

export type TabMessage =
  /** A new follower asks who runs the engine; the engine answers with `engine`. */
  | { type: 'hello' }
  /** A context took the database lock and is opening the engine: the previous one is gone. */
  | { type: 'electing'; engineId: string }
  /**
   * The engine is ready for calls. `brokerId`: the broker (broker.ts) it registered with, whose
   * followers wait for the port it hands out instead of calling over this channel; null: none.
   * `ownerId`: the client whose worker runs it; that client calls it over its own port (seat.ts).
   */
  | { type: 'engine'; engineId: string; brokerId: string | null; ownerId?: string | undefined }
  /** The engine's heartbeat, every `HEARTBEAT_MS`: a frozen (or busy) engine falls silent. */
  | { type: 'alive'; engineId: string }
  /** `keepFrom`: the sender's oldest unanswered call; its applied-call records below it may go. */
  /** `timeoutMs`: the sender gives up after the engine is silent this long (see `expired`). */
  | { type: 'call'; engineId: string; clientId: string; callId: number; keepFrom: number; sentAt: number; timeoutMs: number; method: string; args: unknown[] }
  /**
   * After a crash, which of these calls (accepted and recorded by the engine that died) did
   * commit? Answered `outcomes` from the applied-call records (call-log.ts).
   */
  | { type: 'outcomes'; engineId: string; clientId: string; calls: { callId: number; method: string }[] }
  /** A commit, pull or import changed these tables. */
  | { type: 'tables'; engineId: string; tables: string[] }
  /** Sync progress of the engine's sync (live sync runs there). */
  | { type: 'progress'; engineId: string; progress: SyncProgress };

/**
 * Answers on a follower's own channel. They are ordered (one sender, one channel), so once a
 * follower reads `closed`, every call that engine took has been answered: the rest never
 * reached it and go to the next engine.
 */
export type TabReply =
  /**
   * `inTransaction`: the caller's transaction is open on the engine after this call. `tables`:
   * from the context's own worker only (seat.ts), the tables changed since its last event, in
   * place of a `tables` event just before this answer.
   */
  | { type: 'result'; engineId: string; callId: number; ok: true; value: unknown; inTransaction: boolean; tables?: string[] | undefined }
  | { type: 'result'; engineId: string; callId: number; ok: false; error: SerializedError; inTransaction: boolean; tables?: string[] | undefined }
  /** A part of a query's rows, before its `result` (packed-rows.ts, "Parts"). */
  | { type: 'part'; engineId: string; callId: number; rows: PackedRows }
  /**
   * The engine received the call, posted before it starts it: a call never `accepted` by an
   * engine that died never ran there and goes to the next one. Not posted for a call that
   * `isRetriable`: such a call goes to the next engine either way.
   */
  | { type: 'accepted'; engineId: string; callId: number }
  /**
   * Posted before a call of a recorded method starts without its applied-call record (it could
   * not run inside the engine's savepoint): after a crash its outcome cannot be known.
   */
  | { type: 'unrecorded'; engineId: string; callId: number }
  /** Of the calls asked about, those that committed (with their results); the others did not. */
  | { type: 'outcomes'; engineId: string; applied: { callId: number; value: unknown }[]; asked: number[] }
  /**
   * The engine was silent longer than the call's `timeoutMs` before it could start it (frozen,
   * or busy): the follower has given up on it or is about to, so it did not run it.
   */
  | { type: 'expired'; engineId: string; callId: number }
  /** The engine is closing and did not run the call: send it to the next engine. */
  | { type: 'not-run'; engineId: string; callId: number }
  /** The engine closed in order; it answers nothing more. */
  | { type: 'closed'; engineId: string };

/**
 * Between a context's database worker and the broker, a SharedWorker per database (broker.ts)
 * that the page starts where `SharedWorker` exists. The broker hands each follower a
 * `MessageChannel` port to the current engine, so calls and answers go from worker to worker
 * without the broadcast (announcements, heartbeats and events stay on the channel).
 */
export type BrokerRequest =
  /** The page's first message: the broker answers `broker` once it holds its lock for `name`. */
  | { type: 'hello'; name: string }
  /** A context joins, holding its lifetime lock already (the broker learns of its death by it). */
  | { type: 'join'; name: string; clientId: string }
  /** This context now runs engine `engineId`: link it to every other context. */
  | { type: 'engine'; name: string; clientId: string; engineId: string }
  /** Engine `engineId` closed in order: link nobody else to it. */
  | { type: 'retired'; name: string; engineId: string };

export type BrokerMessage =
  /** The broker's first message: its id, and that it holds its lifetime lock (`brokerLockName`). */
  | { type: 'broker'; brokerId: string }
  /** The broker's first message where it cannot serve (no Web Locks in it): use the channel. */
  | { type: 'unavailable' }
  /** To a follower: its port to engine `engineId`. */
  | { type: 'link'; engineId: string; port: MessagePort }
  /** To the engine: the port of follower `clientId`. */
  | { type: 'client'; clientId: string; port: MessagePort };

/**
 * Between a context's page side (tabs.ts, where `open()` was called) and its own database
 * worker (seat.ts), on a private MessageChannel: the page's calls to the engine when its worker
 * runs it, and what the worker tells the page about its seat.
 */
export type SeatRequest =
  | LocalCall
  | Extract<TabMessage, { type: 'call' | 'outcomes' }>
  /** A follower's port to this worker's engine, from the broker (which only the page talks to). */
  | { type: 'client'; clientId: string; port: MessagePort }
  /** The broker died: the engine announces itself without one. */
  | { type: 'broker-gone' };

export type SeatEvent =
  | LocalResult
  | TabReply
  /** The worker holds the database lock and is opening engine `engineId`. */
  | { type: 'electing'; engineId: string }
  /** The worker's engine `engineId` takes calls on this port now. */
  | { type: 'local'; engineId: string }
  /** The worker could not open the engine. */
  | { type: 'failed'; error: SerializedError }
  /** For the page to send to the broker. */
  | { type: 'broker'; request: BrokerRequest }
  | { type: 'tables'; engineId: string; tables: string[] }
  | { type: 'progress'; engineId: string; progress: SyncProgress };

/**
 * A context's call to its own worker's engine, and its answer, as arrays: a call is the
 * hottest message there is, and the structured clone of an object writes every key's name
 * each time (measured: a few microseconds a message, of a `SELECT 1` round trip of about 50).
 * The engine needs no more of a call than this (engine-host.ts `callLocal`); `tables` is what
 * a `result` carries from the seat (`TabReply`).
 */
export type LocalCall = [engineId: string, callId: number, method: string, args: unknown[]];
export type LocalResult = [engineId: string, callId: number, ok: boolean, value: unknown, inTransaction: boolean, tables: string[] | undefined];

type Result = Extract<TabReply, { type: 'result' }>;

export function toLocalResult(r: Result): LocalResult {
  return [r.engineId, r.callId, r.ok, r.ok ? r.value : r.error, r.inTransaction, r.tables];
}

export function fromLocalResult([engineId, callId, ok, value, inTransaction, tables]: LocalResult): Result {
  // An error crossed as the SerializedError `toLocalResult` took from the reply.
  return ok ? { type: 'result', engineId, callId, ok, value, inTransaction, tables } : { type: 'result', engineId, callId, ok, error: value as SerializedError, inTransaction, tables };
}

/** Methods whose calls are recorded (call-log.ts); others that change data reject OUTCOME_UNKNOWN after a crash. */
export const RECORDED_METHODS: ReadonlySet<string> = new Set(['exec', 'run', 'batch']);

/**
 * Held by an engine from before it announces itself until it has sent its last message (after
 * `closed`), or until its worker dies: a context granted it knows that engine has finished, and
 * that a message naming it is stale.
 */
export const engineLockName = (name: string, engineId: string): string => `outpost-engine:${name}:${engineId}`;
/** Held by a broker for its whole life: a context learns of its death by being granted it. */
export const brokerLockName = (name: string, brokerId: string): string => `outpost-broker:${name}:${brokerId}`;
/** The SharedWorker's name: one broker per database and origin. */
export const brokerWorkerName = (name: string): string => `outpost-broker:${name}`;

/** How often the engine says it is alive. */
export const HEARTBEAT_MS = 250;
/** The shortest `tabTimeoutMs`: a few heartbeats, so that a live engine is never taken for a silent one. */
export const MIN_TAB_TIMEOUT_MS = 4 * HEARTBEAT_MS;

export const channelName = (name: string): string => `outpost-tabs:${name}`;
export const replyChannelName = (name: string, clientId: string): string => `outpost-tabs:${name}:${clientId}`;
export const clientLockName = (name: string, clientId: string): string => `outpost-tab:${name}:${clientId}`;

/**
 * Methods that go straight to the engine instead of through its queue, as `Database` calls
 * them outside its own queue too (network waits must not block the database).
 */
export const UNQUEUED_METHODS: ReadonlySet<string> = new Set(['fetchPull', 'push', 'syncStatus']);

/**
 * A call that may be sent again to the next engine when the one that took it died before
 * answering: it cannot have changed anything. `query` counts only for a plain SELECT
 * (`INSERT ... RETURNING` is a query too).
 */
export function isRetriable(method: string, args: readonly unknown[]): boolean {
  if (method === 'syncStatus' || method === 'pendingChanges' || method === 'export') return true;
  // A statement handle is prepared again by any engine that does not know it.
  if (method === 'prepare' || method === 'closeCursor' || method === 'finalize') return true;
  // A transaction's BEGIN changes nothing durable: the transaction died with its engine.
  if (method === 'exec') return typeof args[0] === 'string' && /^\s*BEGIN(\s+(DEFERRED|IMMEDIATE|EXCLUSIVE))?(\s+TRANSACTION)?\s*;?\s*$/i.test(args[0]);
  if (method === 'query' || method === 'watchQuery') return typeof args[0] === 'string' && /^\s*select\b/i.test(args[0]);
  return false;
}

/** The errors a follower's calls reject with when their engine dies or falls silent (tabs.ts). */
export function unresponsive(name: string, timeoutMs: number): OutpostError {
  return new OutpostError(
    `the tab running database "${name}" showed no sign of life for ${timeoutMs} ms (frozen in the background, or busy in one long statement): this call did not run. Try again later, or bring that tab back`,
    'ENGINE_UNRESPONSIVE',
  );
}

export function silentOutcomeUnknown(name: string, method: string, timeoutMs: number): OutpostError {
  return new OutpostError(
    `the tab running database "${name}" showed no sign of life for ${timeoutMs} ms (frozen in the background, or busy in one long statement) after taking this ${method}(): it may or may not be applied when that tab resumes. Check before trying again`,
    'OUTCOME_UNKNOWN',
  );
}

export function outcomeUnknown(name: string, method: string): OutpostError {
  return new OutpostError(
    `the tab running database "${name}" closed or crashed before answering this ${method}(): it may or may not have been applied. Check before trying again`,
    'OUTCOME_UNKNOWN',
  );
}

export function transactionLost(name: string): OutpostError {
  return new OutpostError(
    `the tab running database "${name}" closed or crashed inside this transaction: it was rolled back. Run the transaction again`,
    'TRANSACTION_LOST',
  );
}
