/**
 * The sync engine of one database: bootstrap, pull (revert, apply pages, replay), push
 * (exactly once), and the local checkpoint that keeps a long offline session's WAL bounded.
 * It runs where the engine runs (the worker, or Node) and drives a `Connection`.
 *
 * ```
 *            pull-updates (pages)                      v2/pipeline (row SQL)
 *   server ───────────────────────▶ fetchPull ──▶ applyPull        push ──▶ server
 *                                                   │                ▲
 *   local files:  db (+ revert pre-images) ◀─ revert ┘                │
 *                 db-wal: [synced frames | local frames]   _outpost_changes (captured)
 * ```
 *
 * Invariants (from the design note):
 * 1. The main file with the revert file's pre-images written back, truncated to
 *    `syncedDbPages`, plus the WAL up to `walWatermarkBytes`, is byte for byte the server's
 *    image at `revision`. Everything after the watermark is local.
 * 2. Every committed local write transaction leaves exactly one change record, in the same
 *    transaction (capture.ts).
 * 3. A change record is dropped only when the server's `turso_sync_last_change_id` row for this
 *    client, as pulled, shows it applied.
 * 4. After a crash at any instant the database opens, passes integrity_check, and holds every
 *    committed transaction and pending change: `phase` in the metadata says what to finish.
 *
 * Apply, step by step (each meta update is flushed before the next step):
 *   a. save every pending change record to the replay file; meta phase = applying
 *   b. revert (close SQLite, write pre-images back, truncate main and WAL, reopen)
 *   c. one transaction writes the pulled pages through `sqlite_dbpage` (atomic via the WAL)
 *   d. meta: revision, size, watermark = WAL size, phase = replaying
 *   e. checkpoint (TRUNCATE); meta watermark = 0; reopen so the connection sees the new schema
 *   f. read this client's acknowledged change id from the pulled image; drop the changes it
 *      covers; replay the rest, with their ids, in one transaction; meta phase = idle
 * A crash in a or b leaves phase applying: revert and replay the saved changes, at the old
 * revision. A crash in c is undone by the revert (the watermark is still the old one). A crash
 * after d or e leaves phase replaying: revert to the new image and replay. A WAL shorter than
 * the recorded watermark means step e's checkpoint ran; the main file is then the image.
 */
import type { Connection } from '../engine/connection.js';
import { OutpostError, SqliteError, SyncError, isTransient } from '../errors.js';
import type { StorageBackend } from '../opfs-vfs/backend.js';
import type { Mutation, PendingChange, SyncOptions, SyncStatus } from '../types.js';
import { type ChangeLog, type ChangeRecord, isTrackedTable } from './change-log.js';
import { decodeChangeset, replayChangeset } from './changeset.js';
import { tableExists, tableInfoLookup } from './schema.js';
import { MetaStore } from './meta.js';
import type { HranaBatchStep, HranaCondition, HranaValue } from '../protocol/hrana.js';
import { PAGE_BYTES } from '../protocol/pull-updates.js';
import { encodeRoaring } from '../protocol/roaring.js';
import type { SyncTransport } from '../protocol/transport.js';
import { CREATE_TURSO_SYNC_TABLE, PULL_GEN, SELECT_TURSO_SYNC, TURSO_SYNC_TABLE, UPSERT_TURSO_SYNC } from '../protocol/turso-tables.js';
import { type PushStep, hranaArgs, rewriteDdl, rowChangeSql, toMutation } from './push-sql.js';

const BOOTSTRAP_CHUNK_PAGES = 2048;
const REVERT_ENTRY_BYTES = 4 + PAGE_BYTES;

export interface PullTicket {
  revision: string;
  dbSize: number;
  pages: Map<number, Uint8Array>;
}

export interface SyncFiles {
  meta: StorageBackend;
  revert: StorageBackend;
  replay: StorageBackend;
}

export class SyncEngine {
  readonly meta: MetaStore;
  private lastError: { code: string; message: string } | null = null;
  private pushing: Promise<number> | null = null;
  private revertPages = new Set<number>();

  constructor(
    private readonly conn: Connection,
    private readonly files: SyncFiles,
    private readonly changes: ChangeLog,
    meta: MetaStore,
    private readonly options: SyncOptions,
    private readonly transport: SyncTransport,
  ) {
    this.meta = meta;
    this.bytesBefore = { sent: meta.value.bytesSent, received: meta.value.bytesReceived };
    for (let i = 0; i < meta.value.revertEntries; i++) {
      const head = new Uint8Array(4);
      files.revert.read(head, i * REVERT_ENTRY_BYTES);
      this.revertPages.add(new DataView(head.buffer).getUint32(0, true));
    }
  }

  /** The persisted traffic counters when this engine started; the transport counts from there. */
  private readonly bytesBefore: { sent: number; received: number };

  private get bytes(): { sent: number; received: number } {
    return { sent: this.bytesBefore.sent + this.transport.traffic.sentBytes, received: this.bytesBefore.received + this.transport.traffic.receivedBytes };
  }

  /** The id this client pushes under. */
  get clientId(): string {
    return this.meta.value.clientId;
  }

  /** Finishes an apply a crash interrupted (see the header). Call once after opening. */
  recover(): void {
    if (this.meta.value.phase === 'idle') return;
    this.revert();
    this.replay(this.readReplayFile());
    this.meta.update({ phase: 'idle', replayEntries: 0 });
  }

  // ---- pull ------------------------------------------------------------------------------

  /** Runs `op`, again after a backoff when it fails for a transient reason. */
  private async withRetries<T>(op: () => Promise<T>): Promise<T> {
    const retries = Math.max(0, this.options.retries ?? 2);
    for (let attempt = 0; ; attempt++) {
      try {
        return await op();
      } catch (e) {
        if (attempt >= retries || !isTransient(e)) throw e;
        const delayMs = 250 * 4 ** attempt * (0.75 + Math.random() / 2);
        await new Promise((r) => setTimeout(r, delayMs));
      }
    }
  }

  /** Downloads what changed since the synced revision. Null when nothing did. Touches nothing. */
  fetchPull(longPollTimeoutMs = this.options.longPollTimeoutMs ?? 0): Promise<PullTicket | null> {
    return this.withRetries(() => this.fetchPullOnce(longPollTimeoutMs));
  }

  private async fetchPullOnce(longPollTimeoutMs: number): Promise<PullTicket | null> {
    try {
      const revision = this.meta.value.revision;
      if (revision === null) return await this.fetchBootstrap();
      const res = await this.transport.pull({ clientRevision: revision, longPollTimeoutMs });
      this.saveCounters();
      if (res.header.serverRevision === revision && res.pages.length === 0) return null;
      return { revision: res.header.serverRevision, dbSize: res.header.dbSize, pages: new Map(res.pages.map((p) => [p.pageId + 1, p.page])) };
    } catch (e) {
      throw this.fail(e);
    }
  }

  /** A whole image in chunks of pages, then the pages that changed while it downloaded. */
  private async fetchBootstrap(): Promise<PullTicket> {
    const pages = new Map<number, Uint8Array>();
    const chunk = (from: number): Uint8Array => encodeRoaring(Array.from({ length: BOOTSTRAP_CHUNK_PAGES }, (_, i) => from + i));
    const first = await this.transport.pull({ clientRevision: '', serverPagesSelector: chunk(0) });
    const base = first.header.serverRevision;
    for (const p of first.pages) pages.set(p.pageId + 1, p.page);
    let dbSize = first.header.dbSize;
    let revision = base;
    if (dbSize > BOOTSTRAP_CHUNK_PAGES) {
      for (let from = BOOTSTRAP_CHUNK_PAGES; from < dbSize; from += BOOTSTRAP_CHUNK_PAGES) {
        const res = await this.transport.pull({ clientRevision: '', serverRevision: base, serverPagesSelector: chunk(from) });
        for (const p of res.pages) pages.set(p.pageId + 1, p.page);
      }
      // Chunks may come from newer revisions than the first; catching up from the first
      // revision makes every page current as of one revision.
      const rest = await this.transport.pull({ clientRevision: base });
      for (const p of rest.pages) pages.set(p.pageId + 1, p.page);
      dbSize = rest.header.dbSize;
      revision = rest.header.serverRevision;
    }
    this.saveCounters();
    for (const pgno of pages.keys()) if (pgno > dbSize) pages.delete(pgno);
    if (pages.size < dbSize) throw new SyncError(`bootstrap: the server sent ${pages.size} of ${dbSize} pages`, 'PROTOCOL');
    return { revision, dbSize, pages };
  }

  /** Applies a downloaded update (see the header). Must run outside any transaction. */
  applyPull(ticket: PullTicket): void {
    if (this.conn.inTransaction) throw new OutpostError('cannot apply a pull inside a transaction', 'INVALID_ARGUMENT');
    // a. save pending changes
    const pending = this.readChangeRecords();
    this.writeReplayFile(pending);
    this.meta.update({ phase: 'applying', replayEntries: pending.length });
    // b. back to the synced image
    this.revert();
    // c. the new pages, atomically
    const before = this.conn.pageCount();
    this.conn.withoutCapture(() => {
      this.conn.exec('BEGIN IMMEDIATE');
      try {
        // Page 1 (the schema) goes last: once it changes, SQLite re-reads the schema, which
        // must by then find every page it points to.
        if (before > ticket.dbSize) this.conn.run('INSERT INTO sqlite_dbpage(pgno, data) VALUES (?, NULL)', [ticket.dbSize + 1]);
        const ordered = [...ticket.pages].sort((a, b) => (a[0] === 1 ? 1 : b[0] === 1 ? -1 : a[0] - b[0]));
        for (const [pgno, page] of ordered) this.conn.run('INSERT INTO sqlite_dbpage(pgno, data) VALUES (?, ?)', [pgno, page]);
        this.conn.exec('COMMIT');
      } catch (e) {
        this.conn.rollbackQuietly();
        throw e;
      }
    });
    // d. the new revision
    const walBytes = this.conn.rawFiles().wal.size();
    this.meta.update({ revision: ticket.revision, syncedDbPages: ticket.dbSize, walWatermarkBytes: walBytes, revertEntries: 0, phase: 'replaying' });
    this.revertPages.clear();
    // e. fold the synced frames into the main file
    this.conn.exec('PRAGMA wal_checkpoint(TRUNCATE)');
    this.meta.update({ walWatermarkBytes: 0 });
    // Reopen so the connection sees the new schema. SQLite stamped its own change counter and
    // version into page 1's header when it committed the page; put the server's bytes back so
    // the file is the server's image byte for byte (the main file alone is the image now).
    const page1 = ticket.pages.get(1);
    this.conn.withDatabaseClosed(({ db }) => {
      if (page1) {
        db.write(page1, 0);
        db.flush();
      }
    });
    // f. replay what the server does not have yet
    this.replay(pending);
    this.meta.update({ phase: 'idle', replayEntries: 0, lastPullMs: Date.now() });
    this.lastError = null;
  }

  /** Back to the synced image: pre-images written back, main truncated, local WAL frames dropped. */
  private revert(): void {
    const m = this.meta.value;
    let watermark = m.walWatermarkBytes;
    this.conn.withDatabaseClosed(({ db, wal }) => {
      // A WAL shorter than the watermark was checkpointed and truncated after the watermark was
      // recorded (apply step e): the main file is then the synced image.
      if (wal.size() < watermark) watermark = 0;
      if (watermark === 0) {
        const entry = new Uint8Array(REVERT_ENTRY_BYTES);
        for (let i = 0; i < m.revertEntries; i++) {
          this.files.revert.read(entry, i * REVERT_ENTRY_BYTES);
          const pgno = new DataView(entry.buffer).getUint32(0, true);
          if (pgno <= m.syncedDbPages) db.write(entry.subarray(4), (pgno - 1) * PAGE_BYTES);
        }
        db.truncate(m.syncedDbPages * PAGE_BYTES);
        db.flush();
      }
      wal.truncate(watermark);
      wal.flush();
    });
    this.meta.update({ walWatermarkBytes: watermark, revertEntries: 0 });
    this.revertPages.clear();
  }

  /** Replays the change records the pulled image does not cover, keeping their ids. */
  private replay(records: ChangeRecord[]): void {
    const acked = this.acknowledgedLocally();
    const rejected = this.meta.value.rejected;
    const keep = records.filter((r) => r.id > acked || rejected[r.id] !== undefined);
    const maxId = records.reduce((a, r) => Math.max(a, r.id), 0);
    const stillRejected = Object.fromEntries(Object.entries(rejected).filter(([id]) => keep.some((r) => r.id === Number(id))));
    this.meta.update({ changeIdFloor: Math.max(this.meta.value.changeIdFloor, acked, maxId), rejected: stillRejected });
    if (keep.length === 0) return;
    this.conn.withoutCapture(() => {
      this.conn.exec('BEGIN IMMEDIATE');
      try {
        for (const r of keep) {
          for (const ddl of r.ddl) {
            const { sql, ignorable } = rewriteDdl(ddl);
            try {
              this.conn.exec(sql);
            } catch (e) {
              if (!ignorable) throw e;
            }
          }
          replayChangeset(this.conn, r.changeset);
          this.changes.restore(r);
        }
        this.conn.exec('COMMIT');
      } catch (e) {
        this.conn.rollbackQuietly();
        throw e;
      }
    });
  }

  /** This client's acknowledged change id in the local (pulled) image. */
  private acknowledgedLocally(): number {
    if (!tableExists(this.conn, TURSO_SYNC_TABLE)) return 0;
    const row = this.conn.execute(SELECT_TURSO_SYNC, [this.clientId]).rows[0];
    return row ? Number(row[1] ?? 0) : 0;
  }

  // ---- push ------------------------------------------------------------------------------

  /** Pushes pending changes; resolves to how many change records the server took. */
  push(): Promise<number> {
    // A retry starts over, reading the server's acknowledgement first: never a blind resend.
    this.pushing ??= this.withRetries(() => this.pushOnce()).finally(() => {
      this.pushing = null;
    });
    return this.pushing;
  }

  private async pushOnce(): Promise<number> {
    try {
      const records = this.readChangeRecords();
      if (records.length === 0) return 0;
      let acked = await this.fetchRemoteAck();
      const rejected = { ...this.meta.value.rejected };
      const todo = records.filter((r) => r.id > acked && rejected[r.id] === undefined);
      const batchLimit = Math.max(1, this.options.pushBatchSize ?? 1000);
      let pushed = 0;
      let batch: ChangeRecord[] = [];
      let rows = 0;
      const flush = async (): Promise<void> => {
        if (batch.length === 0) return;
        const outcome = await this.sendBatch(batch, acked);
        if (outcome.ok) {
          acked = Math.max(acked, batch[batch.length - 1]!.id);
          pushed += batch.length;
        } else if (batch.length > 1) {
          // Find the change the server refuses: push the batch one transaction at a time.
          for (const r of batch) {
            const single = await this.sendBatch([r], acked);
            if (single.ok) {
              acked = Math.max(acked, r.id);
              pushed++;
            } else rejected[r.id] = single.reason;
          }
        } else rejected[batch[0]!.id] = outcome.reason;
        batch = [];
        rows = 0;
      };
      for (const r of todo) {
        batch.push(r);
        rows += Math.max(1, r.ddl.length + Math.ceil(r.changeset.length / 64));
        if (rows >= batchLimit) await flush();
      }
      await flush();
      this.meta.update({ rejected, lastPushMs: Date.now() });
      this.saveCounters();
      const refused = todo.filter((r) => rejected[r.id] !== undefined);
      if (refused.length > 0) {
        const first = refused[0]!;
        const detail = rejected[first.id]!;
        const table = /table ([^:)]+)/.exec(detail)?.[1];
        const error = new SyncError(
          `the server refused change ${first.id}${refused.length > 1 ? ` (and ${refused.length - 1} more)` : ''}: ${detail}. It stays local; inspect it with pendingChanges(), then drop it or fix it with sync.transform and retryRejectedChange()`,
          'REJECTED',
          undefined,
          first.id,
          table,
        );
        throw error;
      }
      this.lastError = null;
      return pushed;
    } catch (e) {
      throw this.fail(e);
    }
  }

  /** The server's acknowledged change id for this client (0 when it has none). */
  private async fetchRemoteAck(): Promise<number> {
    const res = await this.transport.pipeline({
      baton: null,
      requests: [{ type: 'batch', batch: { steps: [{ stmt: { sql: SELECT_TURSO_SYNC, args: [{ type: 'text', value: this.clientId }], want_rows: true } }] } }],
    });
    const r = res.results[0];
    if (r?.type !== 'ok' || r.response.type !== 'batch') throw new SyncError('v2/pipeline: unexpected answer to the acknowledgement query', 'PROTOCOL');
    const error = r.response.result.step_errors[0];
    if (error) {
      if (/no such table/i.test(error.message)) return 0;
      throw new SyncError(`reading this client's acknowledged change failed: ${error.message}`, 'HTTP');
    }
    const row = r.response.result.step_results[0]?.rows[0];
    if (!row) return 0;
    const [gen, id] = row as [HranaValue, HranaValue];
    if (gen.type !== 'integer' || id.type !== 'integer') throw new SyncError('the acknowledgement row has an unexpected shape', 'PROTOCOL');
    return Number(id.value);
  }

  /** Sends one batch as one server transaction. */
  private async sendBatch(records: ChangeRecord[], acked: number): Promise<{ ok: true } | { ok: false; reason: string }> {
    const steps = await this.buildSteps(records);
    const lastId = records[records.length - 1]!.id;
    const hrana: HranaBatchStep[] = [{ stmt: { sql: 'BEGIN IMMEDIATE', args: [], want_rows: false } }];
    // Each step runs only if the last step that must succeed did: one failure skips the rest,
    // COMMIT included, and the final ROLLBACK (which runs only while a transaction is open)
    // undoes the batch. The server applies all of it or nothing.
    let gate = 0;
    const gated = (): HranaCondition => ({ type: 'and', conds: [{ type: 'ok', step: gate }, { type: 'not', cond: { type: 'is_autocommit' } }] });
    const push = (sql: string, args: HranaValue[], ignorable: boolean): void => {
      hrana.push({ stmt: { sql, args, want_rows: false }, condition: gated() });
      if (!ignorable) gate = hrana.length - 1;
    };
    push(CREATE_TURSO_SYNC_TABLE, [], false);
    for (const s of steps) push(s.sql, s.args, s.ignorable);
    push(UPSERT_TURSO_SYNC, hranaArgs([this.clientId, PULL_GEN, Math.max(acked, lastId)]), false);
    push('COMMIT', [], false);
    hrana.push({ stmt: { sql: 'ROLLBACK', args: [], want_rows: false }, condition: { type: 'not', cond: { type: 'is_autocommit' } } });
    const res = await this.transport.pipeline({ baton: null, requests: [{ type: 'batch', batch: { steps: hrana } }] });
    const r = res.results[0];
    if (r?.type === 'error') throw new SyncError(`v2/pipeline: ${r.error.message}`, 'HTTP');
    if (r?.type !== 'ok' || r.response.type !== 'batch') throw new SyncError('v2/pipeline: unexpected answer to a push', 'PROTOCOL');
    const errors = r.response.result.step_errors;
    const commitStep = hrana.length - 2;
    for (let i = 0; i < errors.length; i++) {
      const e = errors[i];
      if (!e) continue;
      const step = i >= 2 && i - 2 < steps.length ? steps[i - 2] : undefined;
      if (step?.ignorable) continue;
      const where = step ? ` (change ${step.changeId}${step.table ? `, table ${step.table}` : ''}: ${step.sql})` : '';
      return { ok: false, reason: `${e.message}${where}` };
    }
    if (r.response.result.step_results[commitStep] === null) return { ok: false, reason: 'the server skipped the COMMIT of a push batch' };
    return { ok: true };
  }

  private async buildSteps(records: ChangeRecord[]): Promise<PushStep[]> {
    const info = tableInfoLookup(this.conn);
    const steps: PushStep[] = [];
    const pendingMutations: { step: PushStep; mutation: Mutation }[] = [];
    for (const r of records) {
      for (const ddl of r.ddl) {
        const { sql, ignorable } = rewriteDdl(ddl);
        steps.push({ sql, args: [], changeId: r.id, table: null, ignorable });
      }
      for (const change of decodeChangeset(this.conn, r.changeset)) {
        if (!isTrackedTable(change.table)) continue;
        const ti = info(change.table);
        // A table dropped later: its rows go with it, and the DROP is pushed in its own record.
        if (!ti) continue;
        const q = rowChangeSql(change, ti);
        if (!q) continue;
        const step: PushStep = { sql: q.sql, args: hranaArgs(q.args), changeId: r.id, table: change.table, ignorable: false };
        steps.push(step);
        if (this.options.transform) pendingMutations.push({ step, mutation: toMutation(r.id, change, ti) });
      }
    }
    if (this.options.transform && pendingMutations.length > 0) {
      const results = await this.options.transform(pendingMutations.map((p) => p.mutation));
      if (!Array.isArray(results) || results.length !== pendingMutations.length) {
        throw new OutpostError('sync.transform must return one result per mutation', 'INVALID_ARGUMENT');
      }
      const skipped = new Set<PushStep>();
      results.forEach((res, i) => {
        const { step } = pendingMutations[i]!;
        if (res === 'skip') skipped.add(step);
        else if (res !== 'keep') {
          step.sql = res.sql;
          step.args = hranaArgs(res.args ?? []);
        }
      });
      return steps.filter((s) => !skipped.has(s));
    }
    return steps;
  }

  // ---- local checkpoint ------------------------------------------------------------------

  /**
   * Keeps the WAL bounded during long offline sessions: saves the main file's image of every
   * page the local frames touch (pre-images) into the revert file, flushes it, then checkpoints.
   * Reverting writes the pre-images back.
   */
  maybeCheckpointLocal(): void {
    const m = this.meta.value;
    if (m.phase !== 'idle' || m.walWatermarkBytes !== 0 || this.conn.inTransaction) return;
    const { db, wal } = this.conn.rawFiles();
    if (wal.size() < (this.options.maxLocalWalBytes ?? 8 * 1024 * 1024)) return;
    const frames = new Set<number>();
    const header = new Uint8Array(4);
    for (let at = 32; at + 24 + PAGE_BYTES <= wal.size(); at += 24 + PAGE_BYTES) {
      wal.read(header, at);
      frames.add(new DataView(header.buffer).getUint32(0, false));
    }
    const entry = new Uint8Array(REVERT_ENTRY_BYTES);
    let added = 0;
    for (const pgno of [...frames].sort((a, b) => a - b)) {
      // Pages past the synced size need no pre-image: revert truncates them away.
      if (pgno > m.syncedDbPages || this.revertPages.has(pgno)) continue;
      new DataView(entry.buffer).setUint32(0, pgno, true);
      db.read(entry.subarray(4), (pgno - 1) * PAGE_BYTES);
      this.files.revert.write(entry, (m.revertEntries + added) * REVERT_ENTRY_BYTES);
      this.revertPages.add(pgno);
      added++;
    }
    this.files.revert.flush();
    if (added > 0) this.meta.update({ revertEntries: m.revertEntries + added });
    this.conn.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  }

  close(): void {
    for (const f of [this.files.meta, this.files.revert, this.files.replay]) f.close();
  }

  // ---- change records --------------------------------------------------------------------

  readChangeRecords(): ChangeRecord[] {
    return this.changes.readAll();
  }

  /** Every change record not yet dropped by a pull (pushed or not), with what the server refused. */
  pendingChanges(): PendingChange[] {
    const rejected = this.meta.value.rejected;
    const info = tableInfoLookup(this.conn);
    return this.readChangeRecords().map((r) => ({
        changeId: r.id,
        ddl: r.ddl,
        mutations: decodeChangeset(this.conn, r.changeset).flatMap((c) => {
          const ti = info(c.table);
          return ti ? [toMutation(r.id, c, ti)] : [];
        }),
        rejected: rejected[r.id] ?? null,
      }));
  }

  /**
   * Drops a pending change: it will not be pushed, and the next pull's rebase leaves its
   * effects out (the local rows converge to the server's).
   */
  dropPendingChange(changeId: number): void {
    this.changes.delete(changeId);
    const rejected = { ...this.meta.value.rejected };
    delete rejected[changeId];
    this.meta.update({ rejected, changeIdFloor: Math.max(this.meta.value.changeIdFloor, changeId) });
  }

  /** Forgets that the server refused a change, so the next push tries it again. */
  retryRejected(changeId: number): void {
    const rejected = { ...this.meta.value.rejected };
    delete rejected[changeId];
    this.meta.update({ rejected });
  }

  private writeReplayFile(records: ChangeRecord[]): void {
    const body = new TextEncoder().encode(
      JSON.stringify(records.map((r) => ({ id: r.id, ddl: r.ddl, changeset: Array.from(r.changeset) }))),
    );
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, body.length, true);
    this.files.replay.truncate(0);
    this.files.replay.write(header, 0);
    this.files.replay.write(body, 4);
    this.files.replay.flush();
  }

  private readReplayFile(): ChangeRecord[] {
    if (this.meta.value.replayEntries === 0) return [];
    const header = new Uint8Array(4);
    if (this.files.replay.read(header, 0) < 4) throw new Error('the sync replay file is missing; cannot finish an interrupted pull');
    const body = new Uint8Array(new DataView(header.buffer).getUint32(0, true));
    this.files.replay.read(body, 4);
    const parsed = JSON.parse(new TextDecoder().decode(body)) as { id: number; ddl: string[]; changeset: number[] }[];
    return parsed.map((r) => ({ id: r.id, ddl: r.ddl, changeset: Uint8Array.from(r.changeset) }));
  }

  // ---- status ----------------------------------------------------------------------------

  status(): SyncStatus {
    const m = this.meta.value;
    let pending = 0;
    try {
      pending = this.changes.count();
    } catch {
      pending = 0;
    }
    return {
      clientId: m.clientId,
      url: m.url,
      revision: m.revision,
      pendingChanges: pending,
      rejectedChanges: Object.entries(m.rejected).map(([id, reason]) => ({ changeId: Number(id), reason })),
      lastPullAt: m.lastPullMs,
      lastPushAt: m.lastPushMs,
      bytesSent: this.bytes.sent,
      bytesReceived: this.bytes.received,
      lastError: this.lastError,
    };
  }

  private saveCounters(): void {
    const m = this.meta.value;
    if (m.bytesSent !== this.bytes.sent || m.bytesReceived !== this.bytes.received) {
      this.meta.update({ bytesSent: this.bytes.sent, bytesReceived: this.bytes.received });
    }
  }

  private fail(e: unknown): Error {
    const err = e instanceof Error ? e : new Error(String(e));
    this.lastError = { code: (err as SyncError).code ?? (err instanceof SqliteError ? err.code : 'ERROR'), message: err.message };
    return err;
  }
}
