/**
 * sync/: the sync engine of one database: bootstrap, pull (revert, apply pages, replay), push
 * (exactly once), and the local checkpoint that keeps a long offline session's WAL bounded.
 * It runs where the engine runs (the worker, or Node) and drives a `Connection`.
 * May import: engine/, protocol/, sqlite/ (constants, formats), opfs-vfs/storage/, types.ts,
 * errors.ts; never the server, the API or the worker above it.
 *
 * ```
 *            pull-updates (pages)                          v2/pipeline (row SQL)
 *   server ──────────────────────▶ pull.ts ──▶ apply.ts           push.ts ──▶ server
 *                                                 │                  ▲
 *   local files:  db (+ db-revert pre-images) ◀───┘ revert           │
 *                 db-wal: [synced frames | local frames]   _outpost_changes (change-log.ts)
 *                 db-sync: the sync state (state-file.ts)   db-replay: records during an apply
 *                 db-rejected: refused changes and why (rejected-file.ts)
 * ```
 *
 *   engine.ts            this facade: status, retries, the error last seen, progress
 *   live.ts              live sync: the long-poll loop, pushes after commits, backoff, offline
 *   pull.ts              download a pull or a bootstrap, its pages to a staging file as they arrive
 *   staging.ts           staging files (db-pull-N): a pull's pages until the apply reads them
 *   bootstrap.ts         a fresh database's first image, streamed into its main file before SQLite opens it
 *   apply.ts             apply steps a–f, revert, replay, crash recovery
 *   recovery.ts          pure: what a revert keeps and what to finish after a crash
 *   push.ts              one push: acknowledgement, batches, isolating a refused change
 *   push-plan.ts         pure: which records to push, split into batches
 *   push-batch.ts        pure: records → gated Hrana batch; answer → ok / refused
 *   push-sql.ts          pure: row changes → Turso-shaped SQL, values exact
 *   conflicts.ts         insert collisions: re-key (no primary key) or hold behind the refusal
 *   replay.ts            one pending record onto pulled data, by column name when it must
 *   local-checkpoint.ts  bounded WAL while offline: pre-images, then checkpoint
 *   change-log.ts        _outpost_changes, the capture hooks, which tables are tracked
 *   changeset.ts         row changes and the replay conflict policy (local wins)
 *   state-file.ts, revert-file.ts, replay-file.ts, rejected-file.ts   the four sync files, one format each
 *   transport.ts         the HTTP SyncTransport (protocol/transport.ts states the contract)
 *   open.ts, driver.ts   opening a synced database; the sync calls behind the Driver
 *   local.ts             one database's connection, change log, sync and staging files, together
 *   null-keys.ts         refuses a commit that leaves a NULL primary key (the session skips such rows)
 *   schema.ts            whether a table exists; its columns and primary key
 *   invariant.ts         `invariant()`, the assertions below
 *
 * Invariants (asserted with `invariant()` where the code can check them):
 * 1. The main file with the revert file's pre-images written back, truncated to
 *    `syncedDbPages`, plus the WAL up to `walWatermarkBytes`, is byte for byte the server's
 *    image at `revision`. Everything after the watermark is local.
 * 2. Every committed local write transaction leaves exactly one change record, in the same
 *    transaction (engine/capture.ts calls change-log.ts inside it). Change ids strictly
 *    increase and are never reused.
 * 3. A change record is dropped only when the server's `turso_sync_last_change_id` row for this
 *    client, as pulled, shows it applied (or the application drops it).
 * 4. After a crash at any instant the database opens, passes integrity_check, and holds every
 *    committed transaction and pending change: `phase` in the sync state says what to finish.
 *
 * Apply, step by step (each state update is flushed before the next step):
 *   a. save every pending change record to the replay file; phase = applying
 *   b. revert (close SQLite, write pre-images back, truncate main and WAL, reopen)
 *   c. one transaction writes the pulled pages through `sqlite_dbpage` (atomic via the WAL)
 *   d. state: revision, size, watermark = WAL size, phase = replaying
 *   e. checkpoint (TRUNCATE); watermark = 0; reopen so the connection sees the new schema
 *   f. read this client's acknowledged change id from the pulled image; drop the changes it
 *      covers; replay the rest, with their ids, in one transaction (a record that cannot
 *      apply, its table or column gone or a constraint broken, is left out whole and kept,
 *      rejected); phase = idle
 *
 * Phases, and what recovery on open finishes (recovery.ts):
 *   idle       nothing.
 *   bootstrapping  a fresh database's streamed bootstrap (bootstrap.ts) was cut: open.ts empties
 *              the main file and the WAL before SQLite opens them, and it starts over.
 *   applying   a crash in a, b or c: revert and replay the saved changes, at the old revision
 *              (step c's pages are past the old watermark, so the revert drops them).
 *   replaying  a crash after d: revert to the new image and replay. A WAL shorter than the
 *              recorded watermark means step e's checkpoint ran: the main file is the image.
 * An apply that fails with the process alive (a full disk) is recovered the same way at once,
 * or, when that fails too, before the next pull or push (`undoFailedApply`). Step b grows the
 * main file to the new image's size, so step e's checkpoint never needs room (apply.ts).
 */
import { SqliteError, SyncError, isTransient, withCause } from '../errors.js';
import { StorageFullError } from '../opfs-vfs/storage/backend.js';
import { SQLITE_FULL } from '../sqlite/constants.js';
import type { SyncTransport } from '../protocol/transport.js';
import type { PendingChange, SyncOptions, SyncProgress, SyncStatus } from '../types.js';
import { applyPull, recover } from './apply.js';
import { recordDdl } from './change-log.js';
import { decodeSegments } from './changeset.js';
import { retryGroup, rowsOfRecords } from './conflicts.js';
import type { LocalDatabase } from './local.js';
import { maybeCheckpointLocal } from './local-checkpoint.js';
import { sleep } from './sleep.js';
import { pushedUpTo } from './state-file.js';
import { type PulledUpdate, fetchPull } from './pull.js';
import { pushOnce } from './push.js';
import { staged } from './staging.js';
import { changeTableInfo, toMutation } from './push-sql.js';
import { tableInfoLookup } from './schema.js';

/** The WAL's local part may grow to this before a local checkpoint (`maxLocalWalBytes`). */
const DEFAULT_MAX_LOCAL_WAL_BYTES = 8 * 1024 * 1024;
/** The first retry's delay; each further retry waits four times longer, with ±25% jitter. */
const RETRY_BASE_DELAY_MS = 250;
/** The longest a retry waits for a server's Retry-After; a longer wait is the next sync's business. */
const RETRY_AFTER_MAX_MS = 30_000;

/**
 * Runs `op`, again up to `retries` times after a backoff when it fails for a transient reason;
 * one of `signals` aborting ends the wait with the last error.
 */
export async function retrying<T>(op: () => Promise<T>, retries: number, ...signals: AbortSignal[]): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await op();
    } catch (e) {
      if (attempt >= Math.max(0, retries) || !isTransient(e)) throw e;
      // A server that says how long to wait (429 BUSY) is waited for, up to a bound.
      const askedMs = e instanceof SyncError ? Math.min(e.retryAfterMs ?? 0, RETRY_AFTER_MAX_MS) : 0;
      const delayMs = Math.max(askedMs, RETRY_BASE_DELAY_MS * 4 ** attempt * (0.75 + Math.random() / 2));
      if (!(await sleep(delayMs, ...signals))) throw e;
    }
  }
}

/**
 * A sync file (state, staging, replay, rejection log) that met a full disk reports it as SQLite
 * reports a full disk in the database's own files: `SqliteError` `SQLITE_FULL`, so that one
 * check tells the application to free room, whichever file was written.
 */
function asSqliteFull(e: Error): Error {
  if (!(e instanceof StorageFullError)) return e;
  return withCause(new SqliteError(`database or disk is full: ${e.message}`, 'SQLITE_FULL', SQLITE_FULL), e);
}

export class SyncEngine {
  private lastError: { code: string; message: string } | null = null;
  private pushing: Promise<number> | null = null;
  /** `rowsOfRecord`'s entries. */
  private readonly retryRows = new Map<number, ReadonlySet<string>>();
  /**
   * A change was dropped since the last apply: its effects are still in the local database
   * until a rebase (revert to the synced image, replay what is pending), which the next pull
   * does even when the server has nothing new. In memory only: after a restart the rebase waits
   * for the next new revision.
   */
  private rebaseOwed = false;
  /** An apply failed part-way and its recovery failed too: the files hold a half-applied pull (`undoFailedApply`). */
  private recoveryOwed = false;
  /** The persisted traffic counters when this engine started; the transport counts on from there. */
  private readonly bytesBefore: { sent: number; received: number };
  /** Aborted by `close()`: ends a retry's wait at once. */
  private readonly closing = new AbortController();
  /** Aborted (and replaced) by `abortRequests()`: ends the retries of what was in flight. */
  private interrupt = new AbortController();
  private progressListener: ((progress: SyncProgress) => void) | null = null;
  /** Told after each local commit (live sync schedules a push). */
  private commitListener: (() => void) | null = null;

  constructor(
    private readonly local: LocalDatabase,
    readonly options: SyncOptions,
    private readonly transport: SyncTransport,
  ) {
    this.bytesBefore = { sent: local.state.value.bytesSent, received: local.state.value.bytesReceived };
  }

  /** The id this client pushes under. */
  get clientId(): string {
    return this.local.state.value.clientId;
  }

  /** Finishes an apply a crash interrupted (see the header). Call once after opening. */
  recover(): void {
    recover(this.local);
  }

  /** Downloads what changed since the synced revision. Null when nothing did. Touches nothing local but the counters. */
  fetchPull(longPollTimeoutMs = this.options.longPollTimeoutMs ?? 0): Promise<PulledUpdate | null> {
    return this.withRetries(async () => {
      try {
        const update = await fetchPull(
          this.transport,
          this.local.state.value.revision,
          this.rebaseOwed ? 0 : longPollTimeoutMs,
          (p) => this.progress(p),
          staged(this.local.staging),
        );
        this.saveCounters();
        const { revision, syncedDbPages } = this.local.state.value;
        // Nothing new, but a dropped change must leave: the same image, applied again, rebases.
        if (update === null && this.rebaseOwed && revision !== null) return { revision, dbPages: syncedDbPages, pages: new Map(), baseRevision: revision };
        return update;
      } catch (e) {
        throw this.recordError(e);
      }
    });
  }

  /**
   * Applies a downloaded update (see the header). Must run outside any transaction. When a
   * pending change cannot be replayed on the new data (its table or column is gone), the pull
   * still applies, the change stays pending and rejected, and this throws `SyncError`
   * `REJECTED` naming the first such change.
   */
  applyPull(update: PulledUpdate): void {
    this.retryRows.clear();
    let refused: ReturnType<typeof applyPull>;
    try {
      // Downloaded for a revision another pull has moved past: its pages would mix two images.
      if (update.baseRevision !== undefined && update.baseRevision !== this.local.state.value.revision) return;
      this.progress({ phase: 'apply', pagesDone: update.pages.size, pagesTotal: update.pages.size, bytes: 0 });
      try {
        this.finishInterruptedApply();
        refused = applyPull(this.local, update);
      } catch (e) {
        this.undoFailedApply(update);
        throw this.recordError(e);
      } finally {
        this.progress({ phase: 'idle', pagesDone: 0, pagesTotal: 0, bytes: 0 });
      }
    } finally {
      // Applied, failed or stale: the staged pages are not read again (a failed apply was
      // undone, and the next pull downloads afresh).
      update.pages.release?.();
    }
    this.rebaseOwed = false;
    this.lastError = null;
    const first = refused[0];
    if (!first) return;
    const more = refused.length > 1 ? ` (and ${refused.length - 1} more)` : '';
    const error = new SyncError(
      `pending change ${first.id}${more} cannot be applied to the pulled data: ${first.reason}. It stays local and is not pushed; inspect it with pendingChanges(), then drop it or fix it with sync.transform and retryRejectedChange()`,
      'REJECTED',
      undefined,
      first.id,
      first.table ?? undefined,
    );
    throw this.recordError(error);
  }

  /** Pushes pending changes; resolves to how many change records the server took. */
  push(): Promise<number> {
    // A retry starts over, reading the server's acknowledgement first: never a blind resend.
    this.pushing ??= this.withRetries(() => this.pushOnce()).finally(() => {
      this.pushing = null;
      this.progress({ phase: 'idle', pagesDone: 0, pagesTotal: 0, bytes: 0 });
    });
    return this.pushing;
  }

  private async pushOnce(): Promise<number> {
    // A push may re-key pending inserts (conflicts.ts `rekeyInserts`): the rows cached for retries change.
    this.retryRows.clear();
    if (this.local.changes.count() > 0) this.progress({ phase: 'push', pagesDone: 0, pagesTotal: 0, bytes: 0 });
    try {
      this.finishInterruptedApply();
      const outcome = await pushOnce(this.local, this.transport, this.options);
      if (!outcome) return 0;
      this.saveCounters();
      if (outcome.refused) throw outcome.refused;
      this.lastError = null;
      return outcome.pushed;
    } catch (e) {
      throw this.recordError(e);
    }
  }

  /** Runs `op`, again after a backoff when it fails for a transient reason. */
  private withRetries<T>(op: () => Promise<T>): Promise<T> {
    return retrying(op, this.options.retries ?? 2, this.closing.signal, this.interrupt.signal);
  }

  /**
   * After a write outside a transaction: checkpoints the local WAL once it is past
   * `maxLocalWalBytes` (local-checkpoint.ts), and tells live sync.
   */
  afterWrite(): void {
    try {
      maybeCheckpointLocal(this.local, this.options.maxLocalWalBytes ?? DEFAULT_MAX_LOCAL_WAL_BYTES);
    } catch (e) {
      // The write committed; its call must not report a failure (the application would take
      // a durable commit for a lost one). The checkpoint runs again after the next write, and
      // the status shows why it did not run (a full disk, say).
      this.recordError(e);
    }
    this.commitListener?.();
  }

  /** Live sync's hook: called after each write (a local commit, or an apply's). */
  onCommit(listener: (() => void) | null): void {
    this.commitListener = listener;
  }

  /** One listener for download, apply and push progress (the Driver forwards it). */
  onProgress(listener: ((progress: SyncProgress) => void) | null): void {
    this.progressListener = listener;
    if (!listener) return;
    // The first listener hears what nobody heard (a small live bootstrap can end before the app
    // listens); a later one that arrives during a download hears where it is.
    const unheard = this.unheardProgress;
    this.unheardProgress = null;
    if (unheard && unheard.length > 0) for (const p of unheard) this.progress(p);
    else if (this.lastProgress && this.lastProgress.phase !== 'idle') this.progress(this.lastProgress);
  }

  private lastProgress: SyncProgress | null = null;
  /** Progress before the first listener, the newest 1,000; null once one listened. */
  private unheardProgress: SyncProgress[] | null = [];

  private progress(progress: SyncProgress): void {
    this.lastProgress = progress;
    if (!this.progressListener && this.unheardProgress && this.unheardProgress.push(progress) > 1000) this.unheardProgress.shift();
    try {
      this.progressListener?.(progress);
    } catch {
      // A listener's failure is the listener's business, never the sync's.
    }
  }

  /** Ends every request in flight and their retries (offline); they fail with `SyncError('NETWORK')`. */
  abortRequests(): void {
    this.interrupt.abort();
    this.interrupt = new AbortController();
    this.transport.abort?.(false);
  }

  /** Ends every request in flight and every retry's wait; no request is sent after this. */
  stopNetwork(): void {
    this.closing.abort();
    this.transport.abort?.(true);
  }

  /** Whether local changes wait to be pushed. */
  hasPending(): boolean {
    return this.local.changes.count() > 0;
  }

  close(): void {
    this.stopNetwork();
    this.local.state.close();
    this.local.revert.close();
    this.local.replay.close();
    this.local.rejected.close();
    this.local.staging.close();
  }

  // ---- pending changes -------------------------------------------------------------------

  /** Every change record not yet dropped by a pull (pushed or not), with what the server refused. */
  pendingChanges(): PendingChange[] {
    const rejected = this.local.rejected;
    const info = tableInfoLookup(this.local.conn);
    return this.local.changes.readAll().map((r) => ({
      changeId: r.id,
      ddl: recordDdl(r),
      mutations: decodeSegments(r.segments).flatMap((segment) =>
        'ddl' in segment
          ? []
          : segment.changes.flatMap((c) => {
              const ti = changeTableInfo(c, segment.columns, info);
              return ti ? [toMutation(r.id, c, ti)] : [];
            }),
      ),
      rejected: rejected.reason(r.id) ?? null,
    }));
  }

  /**
   * Drops a pending change: it will not be pushed, and the next pull's rebase leaves its
   * effects out (the local rows converge to the server's).
   */
  dropPendingChange(changeId: number): void {
    this.local.changes.delete(changeId);
    const { state, rejected } = this.local;
    rejected.record(new Map([[changeId, null]]), { changeIdFloor: Math.max(state.value.changeIdFloor, changeId) });
    this.rebaseOwed = true;
  }

  /**
   * Forgets that the server refused a change, so the next push tries it again. A change whose
   * id the server's acknowledgement may have passed (later changes were pushed after it was
   * refused) gets the next change id first: pushes skip ids at or below the acknowledgement and
   * a pull drops them, so under its old id the retried change would be lost. It is then pushed
   * after the changes made since, together with every later change of its rows the server
   * cannot have (refused, or never sent), in their order (conflicts.ts `retryGroup`): alone it
   * would land its older values after their newer ones, whichever order the app retries in.
   * Moved refused changes keep their marks. The move comes first: a crash between the two
   * steps leaves marks on ids that no longer exist (the next pull clears them) and moved changes
   * unmarked (pushed in order, refused again if they still fail), never a change unmarked below
   * the acknowledgement.
   */
  retryRejected(changeId: number): void {
    const { state, changes, rejected } = this.local;
    if (!rejected.has(changeId)) return;
    const marks = new Map<number, string | null>([[changeId, null]]);
    if (changeId <= state.value.changeIdFloor) {
      const sent = pushedUpTo(state.value);
      // Refused ones from the marks (in memory), never-sent ones from the log (usually few).
      const refused = rejected.all().map((m) => m.changeId).filter((id) => id > changeId && id <= sent);
      const later = [...refused.sort((a, b) => a - b), ...changes.idsAbove(Math.max(changeId, sent))];
      const lookup = tableInfoLookup(this.local.conn);
      const group = retryGroup(changeId, later, (id) => this.rowsOfRecord(id, lookup));
      for (const [from, to] of changes.moveToEnd(group)) {
        this.retryRows.delete(from);
        const reason = from === changeId ? undefined : rejected.reason(from);
        if (reason === undefined) continue;
        marks.set(from, null);
        marks.set(to, reason);
      }
    }
    rejected.record(marks);
  }

  /**
   * The rows (table and key) a pending change writes, kept between retries: an app retrying
   * thousands of refused changes one by one must not decode every later change each time.
   * Records change ids only by moves (which drop their entries) and content only by a push's
   * re-key (which clears this), so an entry stays true while its id does.
   */
  private rowsOfRecord(id: number, lookup: ReturnType<typeof tableInfoLookup>): ReadonlySet<string> {
    let rows = this.retryRows.get(id);
    if (!rows) {
      const [record] = this.local.changes.readSome([id]);
      rows = record ? (rowsOfRecords([{ id, segments: decodeSegments(record.segments) }], lookup).get(id) ?? new Set()) : new Set();
      this.retryRows.set(id, rows);
    }
    return rows;
  }

  // ---- status ----------------------------------------------------------------------------

  status(): SyncStatus {
    const s = this.local.state.value;
    let pending = 0;
    try {
      pending = this.local.changes.count();
    } catch {
      // Status listeners run after any operation, one that closed or broke the connection
      // included: the status reports what it can rather than fail.
      pending = 0;
    }
    const bytes = this.bytes();
    return {
      clientId: s.clientId,
      url: s.url,
      revision: s.revision,
      pendingChanges: pending,
      rejectedChanges: this.local.rejected.all(),
      lastPullAt: s.lastPullAt,
      lastPushAt: s.lastPushAt,
      bytesSent: bytes.sent,
      bytesReceived: bytes.received,
      lastError: this.lastError,
    };
  }

  private bytes(): { sent: number; received: number } {
    const { sentBytes, receivedBytes } = this.transport.traffic;
    return { sent: this.bytesBefore.sent + sentBytes, received: this.bytesBefore.received + receivedBytes };
  }

  /** Persists the traffic counters when they moved. */
  private saveCounters(): void {
    const s = this.local.state.value;
    const bytes = this.bytes();
    if (s.bytesSent !== bytes.sent || s.bytesReceived !== bytes.received) {
      this.local.state.update({ bytesSent: bytes.sent, bytesReceived: bytes.received });
    }
  }

  /**
   * After an apply failed part-way (a full disk, a failed write): finishes it now, as a crash
   * recovery at the next open would, so that the open connection holds the synced image with
   * every pending change replayed, never the half-applied files (the reverted image without the
   * pending changes, or the new image before the replay). When that fails too (the disk is still
   * full), the recovery is owed and runs before the next pull or push, or at the next open.
   */
  private undoFailedApply(update: PulledUpdate): void {
    if (this.local.state.value.phase === 'idle') return;
    try {
      // From phase replaying the recovery lands on the new image: live queries hear of the
      // tables that own its pages, as after an apply.
      this.local.conn.replacingPages(() => recover(this.local), () => [...update.pages.keys()]);
      this.recoveryOwed = false;
    } catch {
      this.recoveryOwed = true;
    }
  }

  /** Runs the recovery a failed apply left owed; throws (SQLITE_FULL, say) while it cannot. */
  private finishInterruptedApply(): void {
    if (!this.recoveryOwed) return;
    recover(this.local);
    this.recoveryOwed = false;
  }

  /** Remembers `e` as the status's last error (open.ts: a failed bootstrap), and returns it as an Error to throw. */
  recordError(e: unknown): Error {
    const err = asSqliteFull(e instanceof Error ? e : new Error(String(e)));
    // SyncError, SqliteError, OutpostError and Node's system errors all carry a string code.
    const code = 'code' in err && typeof err.code === 'string' ? err.code : 'ERROR';
    this.lastError = { code, message: err.message };
    return err;
  }
}
