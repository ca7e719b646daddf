/**
 * One database the server hosts: an engine connection over the Node backend (page size 4096,
 * WAL), its revision log fed by the VFS's WAL observer, and the long polls waiting on it.
 *
 * Everything the engine does is synchronous, so one request's SQL never interleaves with
 * another's, and a pipeline runs as one stream. A pull answer is built in slices that yield to
 * other databases' requests (`pull`); it keeps this database's turn (`inTurn`) from its first
 * slice to its last, so nothing commits meanwhile and the answer is one revision, and its
 * slices are charged to the database's time share like statement time.
 *
 * Streams across requests (Hrana batons), for transactions too large for one request: a
 * pipeline that ends with a transaction open (and no `close`) keeps it open on the database's
 * connection and answers with a baton, a random 128-bit name that only the next request of the
 * same stream, on the same database and with a token of the same subject, can present (each
 * answer names a new one). At most `streams.slots.max` streams are open in the whole server,
 * at most `streams.slots.perHolderMax` of them for one token's subject, and at most
 * `streams.slots.withoutSubjectMax` for all tokens without a subject together (`StreamSlots`).
 *
 * No stream keeps the database from the others for longer than a bound (`inTurn`):
 * - While a stream holds the transaction, every other request to this database, pulls
 *   included, waits in one first-come, first-served queue.
 * - A stream is rolled back when it stays idle for `streams.idleMs`, and in any case once it
 *   has been open for `streams.lifetimeMs`, however often its client pings its baton.
 * - A request may leave a new stream open only when no request waits behind it; otherwise its
 *   transaction is rolled back and it gets 503 BUSY. So once a stream ends, every request that
 *   waited for it runs before the next stream opens, and a request waits for one stream at most.
 * - A read-only stream (a read token's, or `BEGIN TRANSACTION READONLY`) wrote nothing, so it
 *   never makes anyone wait: a request that needs the database ends it (rolled back), and the
 *   stream's next request gets 400 STREAM_ENDED.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Connection } from '../engine/connection.js';
import { beginEffects } from '../engine/effects.js';
import type { StorageDirectory } from '../opfs-vfs/storage/backend.js';
import type { DescriptorPool } from '../opfs-vfs/storage/descriptors.js';
import { NodeDirectory } from '../opfs-vfs/storage/node.js';
import { ProtocolError } from '../errors.js';
import { randomHex } from '../protocol/ids.js';
import { HttpError } from './http.js';
import type { PipelineResponse } from '../protocol/hrana.js';
import { APPLY_INCREMENTAL, APPLY_REPLACE_BASE, ENCODING_RAW, PAGE_BYTES, type PullRequest, encodePage, encodePullHeader } from '../protocol/pull-updates.js';
import { decodeRoaring } from '../protocol/roaring.js';
import { TURSO_SYNC_TABLE, isSyncPush } from '../protocol/turso-tables.js';
import { AnswerBudget, type StreamSession, checkPipelineBody, executePipeline, newStreamSession, pipelineResultFailed } from './hrana.js';
import { type LogFiles, RevisionLog, syncDirectory } from './revlog.js';
import { ClientOwners, type Writer } from './client-owners.js';
import { type SandboxLimits, type SessionReset, type StatementClock, applySandbox } from './sandbox.js';
import { TimeShare } from './time-share.js';
import { writeRulesAuthorizer } from './write-rules.js';
import { STREAM_LIFETIME_MS, type StreamLimits, type StreamSlots, WITHOUT_SUBJECT, defaultStreamLimits } from './stream-limits.js';

export { STREAMS_PER_HOLDER, STREAM_LIFETIME_MS, type StreamLimits, type StreamSlots, WITHOUT_SUBJECT, defaultStreamLimits } from './stream-limits.js';

export interface HostedDatabaseOptions {
  durability: 'normal' | 'full';
  cacheKiB: number;
  /** When set, the only tables pushed statements may write (see `writeRulesAuthorizer`). */
  writableTables?: string[] | undefined;
  /** What tenant SQL may do (see sandbox.ts). */
  limits: SandboxLimits;
  /** Streams across requests (see the header); the slots are shared by the server's databases. */
  streams?: StreamLimits;
  /** How pull answers are built (default `PULL_SLICES`); tests make every page a slice. */
  pullSlices?: PullSlices;
  /** Told of each slice a pull yields after, and of each finished build (tests observe the order of events with it). */
  pullEvents?: (event: 'slice' | 'built', database: string) => void;
  /** Where the database's files live (default: Node files at `<dataDir>/<name>.db`); tests inject crashes here, and power losses with `revlogFiles`. */
  directory?: (file: string) => StorageDirectory;
  /** Where the default Node files take their descriptors (the server's pool, descriptors.ts); each file holds its own without. */
  descriptors?: DescriptorPool;
  revlogFiles?: LogFiles;
  /** Told of each commit as the revision log records it (its revision has moved): whole-pull answers kept for older ones are stale (pull-share.ts). */
  onCommit?: (database: string) => void;
}

/** The stream holding the database's write transaction between its requests. */
interface HeldStream {
  baton: string;
  subject: string | null;
  timer: ReturnType<typeof setTimeout>;
  /** Ends the triggers-off state of a streamed push (engine/effects.ts); null for other streams. */
  endEffects: (() => void) | null;
  /** The SQL texts the stream stored (`store_sql`), kept for its next requests. */
  session: StreamSession;
  /** It cannot have written (a read token's, or `BEGIN TRANSACTION READONLY`): it yields to any request. */
  readOnly: boolean;
  /** When (`performance.now()`) its lifetime is over and it is rolled back. */
  endsAtMs: number;
  /** Whose share of the stream slots it takes (`StreamSlots`). */
  holder: string;
}

/**
 * How a pull answer is built: `groupPages` pages are read and encoded at a time, and after
 * each group that ends a slice of at least `sliceMs`, the build yields to other requests.
 */
export interface PullSlices {
  groupPages: number;
  sliceMs: number;
}

/**
 * The default: 1 MiB of page images at a time, yielding every 10 ms or so. At the build's speed
 * here (30-100 MB/s) that is a few hundred KiB to 1 MiB a slice, so another tenant's request
 * waits about one slice, and a 200 MB bootstrap yields only a few hundred times.
 */
export const PULL_SLICES: PullSlices = { groupPages: 256, sliceMs: 10 };

export class HostedDatabase {
  lastUsedMs = Date.now();
  /** Requests and long polls using it right now; a pinned database is never evicted. */
  pins = 0;
  private readonly waiters = new Set<() => void>();
  private readonly share: TimeShare;
  private stream: HeldStream | null = null;
  /** Requests waiting for their turn, first come first served; each is woken with true, or false when the database closes. */
  private readonly queue: ((turn: boolean) => void)[] = [];
  /** A request was woken for its turn and has not run yet: newcomers queue behind it. */
  private turnPending = false;
  /** An asynchronous turn (a pull being built in slices) holds the database: newcomers queue behind it. */
  private busy = false;
  private closed = false;

  private constructor(
    readonly name: string,
    private readonly conn: Connection,
    private readonly revlog: RevisionLog,
    private readonly clock: StatementClock,
    private readonly owners: ClientOwners,
    limits: SandboxLimits,
    private readonly streams: StreamLimits,
    private readonly sessionReset: SessionReset,
    private readonly storedSqlCharsMax: number,
    private readonly pullSlices: PullSlices,
    private readonly pullEvents: HostedDatabaseOptions['pullEvents'],
  ) {
    this.share = new TimeShare({ shareOfServer: limits.shareOfServer, burstMs: limits.statementTimeoutMs });
    this.answerBytesMax = limits.answerBytesMax ?? limits.valueBytesMax;
  }

  /** The most bytes of rows one pipeline may answer with (sandbox.ts, `answerBytesMax`). */
  private readonly answerBytesMax: number;

  /** Whether a commit after `seq` rewrote page 1, where every schema change lands (client-owners.ts). */
  private readonly wrotePage1Since = (seq: number): boolean => this.revlog.wrotePageSince(seq, 1);

  /**
   * The committed database's size in pages: the last commit frame's, which the revision log
   * saw; SQLite's own count (a read transaction) only before the first commit since the open
   * or after a request that failed.
   */
  private committedPages(): number {
    this.revlog.dbPages ??= this.conn.pageCount();
    return this.revlog.dbPages;
  }

  static async open(dataDir: string, name: string, options: HostedDatabaseOptions): Promise<HostedDatabase> {
    const file = path.join(dataDir, `${name}.db`);
    const revlog = new RevisionLog(`${file}-revlog`, options.durability === 'full', options.revlogFiles);
    // Under 'full', files this open creates are made durable in the folder before any commit in
    // them is acknowledged: otherwise a power loss could take a new database's WAL, commits and all.
    const creates = options.durability === 'full' && !options.directory && !(fs.existsSync(file) && fs.existsSync(`${file}-wal`));
    try {
      const conn = await Connection.open(options.directory ? options.directory(file) : new NodeDirectory(file, options.descriptors ?? null), {
        durability: options.durability,
        intMode: 'number',
        walObserver: { onWalFrame: (page: number, dbSize: number) => (revlog.onWalFrame(page, dbSize), dbSize !== 0 && options.onCommit?.(name)) },
        cacheKiB: options.cacheKiB,
        // Eviction from the server's cache must be cheap; the idle checkpoint keeps WALs small.
        checkpointOnClose: false,
        // Thousands of databases stay open: lookaside's 64 KiB and the page cache's first 20 pages (84 KiB) each would be most of their memory.
        lookaside: false, pageCacheBulk: false,
      });
      if (creates) syncDirectory(dataDir);
      const { clock, session } = applySandbox(conn, options.limits, options.writableTables ? writeRulesAuthorizer(options.writableTables) : undefined);
      const owners = new ClientOwners(`${file}-owners`, options.durability === 'full');
      owners.register(conn);
      const streams = options.streams ?? defaultStreamLimits();
      const hosted = new HostedDatabase(name, conn, revlog, clock, owners, options.limits, streams, session, options.limits.valueBytesMax, options.pullSlices ?? PULL_SLICES, options.pullEvents);
      owners.afterRequest(conn, (sql) => hosted.execTrusted(sql), revlog.seq);
      return hosted;
    } catch (e) {
      void revlog.close();
      throw e;
    }
  }

  get revision(): string {
    return this.revlog.revision;
  }

  /**
   * Writes a pull-updates response body (header, then pages, length-delimited) to `sink`, one
   * slice at a time (`PullSlices`): between slices it yields, so other databases' requests run
   * while a large answer is built, and each slice's time is charged to this database's share
   * of the server, as statement time is. The caller holds this database's turn (`inTurn`), so
   * nothing commits between slices: the answer is one revision. 429 BUSY when the database has
   * used its share before the pull starts; a pull under way is not cut for it. Stops (throws
   * the signal's reason) when `signal` aborts, and with 503 when the database closes. Returns
   * the key under which the answer may be shared (`wholePullKey`).
   */
  async pull(req: PullRequest, sink: (chunk: Uint8Array) => void, signal?: Pick<AbortSignal, 'throwIfAborted'>): Promise<PullBuilt> {
    if (req.encoding !== ENCODING_RAW) throw new ProtocolError('only raw page encoding is supported (zstd was requested)');
    if (req.streamKind !== 0) throw new ProtocolError('only the Pages stream kind is supported');
    this.share.check(this.name, performance.now());
    const dbPages = this.committedPages();
    const selector = req.serverPagesSelector.length > 0 ? new Set(decodeRoaring(req.serverPagesSelector, 1 << 22).map((id) => id + 1)) : null;
    let applyMode = APPLY_INCREMENTAL;
    let pages: Iterable<number>;
    if (req.clientRevision === '') {
      pages = selector ?? range(1, dbPages);
    } else {
      const changed = this.revlog.pagesSince(req.clientRevision);
      if (changed === null) {
        applyMode = APPLY_REPLACE_BASE;
        pages = selector ?? range(1, dbPages);
      } else {
        pages = [...changed].filter((p) => p <= dbPages && (!selector || selector.has(p))).sort((a, b) => a - b);
      }
    }
    const revision = this.revlog.revision;
    // Only a whole-database answer is the same for every client at this revision.
    const key = selector === null && (req.clientRevision === '' || applyMode === APPLY_REPLACE_BASE) ? wholePullKey(this.name, revision, applyMode) : null;
    sink(encodePullHeader({ serverRevision: revision, dbSize: dbPages, applyMode }));
    const { groupPages, sliceMs } = this.pullSlices;
    let group: number[] = [];
    let sliceStartMs = performance.now();
    const flush = async (): Promise<void> => {
      const images = this.conn.readPages(group);
      const parts: Uint8Array[] = [];
      for (const [pgno, data] of images) parts.push(encodePage(pgno - 1, data));
      sink(Buffer.concat(parts));
      group = [];
      const nowMs = performance.now();
      if (nowMs - sliceStartMs < sliceMs) return;
      this.share.charge(nowMs - sliceStartMs, nowMs);
      this.pullEvents?.('slice', this.name);
      await new Promise((resolve) => setImmediate(resolve));
      if (this.closed) throw new HttpError(503, 'the server is closing this database; pull again', 'BUSY');
      signal?.throwIfAborted();
      // The turn is held, so nothing may have committed; this guards that rule.
      if (this.revlog.revision !== revision) throw new Error('the database changed while a pull was built');
      sliceStartMs = performance.now();
    };
    for (const p of pages) {
      if (p < 1 || p > dbPages) continue;
      group.push(p);
      if (group.length === groupPages) await flush();
    }
    if (group.length > 0) await flush();
    const endMs = performance.now();
    this.share.charge(endMs - sliceStartMs, endMs);
    this.pullEvents?.('built', this.name);
    return { key };
  }

  /**
   * The key of the answer `req` would get if it is the whole database at the committed
   * revision (raw pages, no page selector, and a first pull or one from a revision the log
   * cannot answer); null for any other pull, whose answer depends on the client's revision.
   * Identical whole pulls may share one answer (pull-share.ts). Read outside this database's
   * turn it still names committed state: the revision moves only when a commit frame is
   * written (revlog.ts), whatever a stream's open transaction holds.
   */
  wholePullKey(req: PullRequest): string | null {
    if (req.encoding !== ENCODING_RAW || req.streamKind !== 0 || req.serverPagesSelector.length > 0) return null;
    if (req.clientRevision === '') return wholePullKey(this.name, this.revlog.revision, APPLY_INCREMENTAL);
    return this.revlog.pagesSince(req.clientRevision) === null ? wholePullKey(this.name, this.revlog.revision, APPLY_REPLACE_BASE) : null;
  }

  /** True when a pull from `clientRevision` would return nothing new. */
  isCurrent(clientRevision: string): boolean {
    return clientRevision === this.revlog.revision;
  }

  /**
   * A wait for the next commit: `changed` resolves when a new revision commits, after
   * `timeoutMs`, when the database closes, or when `end` is called (the client went away, the
   * server drains), whichever comes first.
   */
  waitForChange(timeoutMs: number): { changed: Promise<void>; end: () => void } {
    let end: () => void = () => {};
    const changed = new Promise<void>((resolve) => {
      end = (): void => {
        clearTimeout(timer);
        this.waiters.delete(end);
        resolve();
      };
      const timer = setTimeout(end, timeoutMs);
      this.waiters.add(end);
    });
    return { changed, end };
  }

  /**
   * Runs a Hrana pipeline for `writer` (whose token may write only its own sync clients'
   * acknowledgements: client-owners.ts); wakes long polls when it committed something.
   * With `readOnly` (a read token), SQLite itself refuses every write: `query_only` is on from
   * the request's first statement to its last, and the sandbox's authorizer keeps it on
   * (`StatementClock.readOnly`); the next request starts with it off again.
   */
  pipeline(body: unknown, writer: Writer = { subject: null, admin: true }, readOnly = false, holder = `database:${this.name}`): PipelineResponse {
    checkPipelineBody(body);
    const baton = body.baton ?? null;
    if (this.stream && performance.now() >= this.stream.endsAtMs) this.abandonStream();
    if (baton === null && this.stream?.readOnly) this.abandonStream();
    const held = this.stream;
    if (baton !== null) {
      if (!held || held.baton !== baton || (held.subject !== writer.subject && !writer.admin)) {
        throw new HttpError(
          400,
          `this stream has ended (committed, rolled back, idle longer than ${this.streams.idleMs} ms, open longer than ${this.lifetimeMs} ms, or read-only and ended for another request), or is not this database's`,
          'STREAM_ENDED',
        );
      }
    } else if (held) {
      throw new HttpError(503, 'a stream holds this database\'s write transaction; try again later', 'BUSY');
    } else {
      // A stream's later requests are not refused: that would only make its transaction idle out.
      this.share.check(this.name, performance.now());
    }
    const before = this.revlog.seq;
    this.owners.writer = writer;
    // A push's changes already hold what the client's triggers did (engine/effects.ts); a
    // streamed push keeps triggers off from its first request to its last.
    let endEffects = held ? held.endEffects : isSyncPush(body) ? beginEffects(this.conn, (sql) => this.execTrusted(sql)) : null;
    const session = held ? held.session : newStreamSession();
    const trusted = (sql: string): void => this.execTrusted(sql);
    if (readOnly) {
      trusted('PRAGMA query_only = 1');
      this.clock.readOnly = true;
    }
    // Until the answer shows none failed, a commit frame the log saw may not have committed.
    let failed = true;
    try {
      const { response, open } = executePipeline({ conn: this.conn, clock: this.clock, session, trusted, storedSqlCharsMax: this.storedSqlCharsMax, answer: new AnswerBudget(this.answerBytesMax) }, body);
      failed = response.results.some(pipelineResultFailed);
      if (!open) {
        this.endStream();
        return response;
      }
      if (!held && this.streams.slots.open >= this.streams.slots.max) {
        this.conn.rollbackQuietly();
        throw new HttpError(503, `the server has ${this.streams.slots.max} streams open, its limit; the transaction was rolled back, try again later`, 'BUSY');
      }
      const holding = this.streams.slots.byHolder?.get(holder) ?? 0;
      const share = this.streams.slots.perHolderMax ?? this.streams.slots.max;
      if (!held && holding >= share) {
        this.conn.rollbackQuietly();
        throw new HttpError(503, `this token already holds ${holding} streams open, its share of the server's ${this.streams.slots.max}; the transaction was rolled back: finish or close another stream first`, 'BUSY');
      }
      const withoutSubjectMax = this.streams.slots.withoutSubjectMax ?? this.streams.slots.max;
      if (!held && holder.startsWith(WITHOUT_SUBJECT) && (this.streams.slots.withoutSubjectOpen ?? 0) >= withoutSubjectMax) {
        this.conn.rollbackQuietly();
        throw new HttpError(503, `tokens without a subject hold ${withoutSubjectMax} streams open, all the server lets them share; the transaction was rolled back, try again later (a token with a subject, sub, gets a share of its own)`, 'BUSY');
      }
      if (!held && this.queue.length > 0) {
        // Opening a stream now would make the requests queued behind this one wait a second
        // stream's lifetime; refusing it bounds every wait by one (see the header).
        this.conn.rollbackQuietly();
        throw new HttpError(503, 'other requests are waiting for this database, so a transaction may not stay open across requests now; it was rolled back, try again later', 'BUSY');
      }
      const next = this.holdStream(writer.subject, endEffects, session, (readOnly || session.readOnly) && (!held || held.readOnly), holder);
      endEffects = null;
      return { ...response, baton: next };
    } catch (e) {
      this.endStream();
      throw e;
    } finally {
      if (readOnly) {
        this.clock.readOnly = false;
        // A read-only transaction the stream keeps open (BEGIN TRANSACTION READONLY) keeps it on.
        trusted(`PRAGMA query_only = ${session.readOnly && this.conn.inTransaction ? 1 : 0}`);
      }
      // Effects begun for this request alone end with it; a stream's end with the stream.
      if (!held) endEffects?.();
      this.share.charge(this.clock.takeSpentMs(), performance.now());
      // Inside a stream's open transaction the protocol table may not be committed yet: the
      // owner triggers are installed once it is, and the rows of the request that created it go
      // to that request's writer (so the writer is reset only after). The stream over, the
      // connection's session settings go back to what every request starts from.
      if (!this.conn.inTransaction) {
        this.owners.afterRequest(this.conn, trusted, this.revlog.seq, this.wrotePage1Since);
        this.sessionReset.reset(this.clock, trusted);
      }
      this.owners.writer = { subject: null, admin: true };
      if (this.revlog.seq !== before) {
        if (failed) this.revlog.forgetSize();
        for (const wake of [...this.waiters]) wake();
      }
    }
  }

  /**
   * Runs `work` (this request's pipeline or pull) in its turn: at once for a stream's own next
   * request (it carries a baton) or when the database is free; otherwise after the stream that
   * holds it ends and every request queued before this one has run. A read-only stream is ended
   * instead of waited for. 503 BUSY when the wait outlasts every bound (the database closed, or
   * a stream outlived its lifetime). A pipeline first awaits the revision log's `commitsReady`.
   */
  async inTurn<T>(body: unknown, work: () => T | Promise<T>): Promise<T> {
    // A pipeline waits for a reopened log's flush only while one is under way (no await otherwise: every request passes here).
    const ready = body !== null ? this.revlog.commitsReady() : null;
    if (ready !== null) await ready;
    const baton = typeof body === 'object' && body !== null ? (body as { baton?: unknown }).baton : null;
    if (baton !== null && baton !== undefined) {
      try {
        return await work();
      } finally {
        this.passTurn();
      }
    }
    if (this.stream?.readOnly) this.abandonStream();
    if (this.stream || this.busy || this.queue.length > 0 || this.turnPending) {
      if (!(await this.queueForTurn())) throw new HttpError(503, "a stream holds this database's write transaction; try again later", 'BUSY');
      this.turnPending = false;
    }
    // Asynchronous work (a pull built in slices) keeps the turn until it is done.
    this.busy = true;
    try {
      return await work();
    } finally {
      this.busy = false;
      this.passTurn();
    }
  }

  /** Waits in the queue: true when woken for this request's turn, false when the wait gave up. */
  private queueForTurn(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const wake = (turn: boolean): void => {
        clearTimeout(timer);
        resolve(turn);
      };
      // Only a fault could make a request wait longer than a stream may live (its turn comes
      // when that stream ends); the slack keeps the stream's own timer first.
      const timer = setTimeout(() => {
        const at = this.queue.indexOf(wake);
        if (at >= 0) this.queue.splice(at, 1);
        resolve(false);
      }, this.lifetimeMs + this.streams.idleMs);
      this.queue.push(wake);
    });
  }

  /** Wakes the first queued request when nothing holds the database and no woken one is still to run. */
  private passTurn(): void {
    if (this.stream || this.turnPending || this.busy) return;
    const next = this.queue.shift();
    if (!next) return;
    this.turnPending = true;
    next(true);
  }

  /** Whether a stream holds the write transaction now. */
  get streaming(): boolean {
    return this.stream !== null;
  }

  private get lifetimeMs(): number {
    return this.streams.lifetimeMs ?? STREAM_LIFETIME_MS;
  }

  /** Keeps the open transaction for the stream's next request; returns that request's baton. */
  private holdStream(subject: string | null, endEffects: (() => void) | null, session: StreamSession, readOnly: boolean, holder: string): string {
    const endsAtMs = this.stream ? this.stream.endsAtMs : performance.now() + this.lifetimeMs;
    // A stream keeps the holder its first request counted it against.
    if (this.stream) {
      clearTimeout(this.stream.timer);
      holder = this.stream.holder;
    } else {
      this.streams.slots.open++;
      const byHolder = (this.streams.slots.byHolder ??= new Map());
      byHolder.set(holder, (byHolder.get(holder) ?? 0) + 1);
      if (holder.startsWith(WITHOUT_SUBJECT)) this.streams.slots.withoutSubjectOpen = (this.streams.slots.withoutSubjectOpen ?? 0) + 1;
      this.pins++;
    }
    const baton = randomHex(16);
    const timer = setTimeout(() => this.abandonStream(), Math.max(0, Math.min(this.streams.idleMs, endsAtMs - performance.now())));
    this.stream = { baton, subject, timer, endEffects, session, readOnly, endsAtMs, holder };
    return baton;
  }

  /** Rolls the stream's transaction back and ends it (idle, past its lifetime, or yielding as read-only). */
  private abandonStream(): void {
    if (!this.stream) return;
    this.conn.rollbackQuietly();
    this.endStream();
    // A read-only stream kept `query_only` on between its requests (see `pipeline`).
    this.execTrusted('PRAGMA query_only = 0');
    this.sessionReset.reset(this.clock, (sql) => this.execTrusted(sql));
  }

  /** The stream (if any) is over: its slot and pin are freed and the next queued request goes on. */
  private endStream(): void {
    if (!this.stream) return;
    clearTimeout(this.stream.timer);
    this.stream.endEffects?.();
    const byHolder = this.streams.slots.byHolder;
    const left = (byHolder?.get(this.stream.holder) ?? 1) - 1;
    if (left > 0) byHolder?.set(this.stream.holder, left);
    else byHolder?.delete(this.stream.holder);
    if (this.stream.holder.startsWith(WITHOUT_SUBJECT)) this.streams.slots.withoutSubjectOpen = (this.streams.slots.withoutSubjectOpen ?? 1) - 1;
    this.stream = null;
    this.streams.slots.open--;
    this.pins--;
    this.passTurn();
  }

  /**
   * Runs SQL as the server itself, outside the tenant sandbox (no authorizer, no time limit):
   * for administration and for tests that observe the server (a TEMP trigger that counts what
   * pushes apply). Never reachable from a request.
   */
  execTrusted(sql: string): void {
    try {
      this.conn.execWithoutRules(sql);
    } catch (e) {
      // A commit frame the revision log saw may not have committed (see `committedPages`).
      this.revlog.forgetSize();
      throw e;
    }
  }

  /** Closes it; under 'normal' its revision log stays unclean until sealed (seal.ts), under 'full' it is marked clean (revlog.ts `close`). */
  async close(): Promise<void> {
    this.closed = true;
    for (const wake of [...this.waiters]) wake();
    for (const wake of this.queue.splice(0)) wake(false);
    if (this.stream) {
      this.conn.rollbackQuietly();
      this.endStream();
    }
    await this.conn.close();
    void this.revlog.close();
  }
}

/** What a pull's build answered: the key under which its answer may be shared, null when it is not the whole database. */
export interface PullBuilt {
  key: string | null;
}

/** A whole-database answer is determined by these: the database, its revision, the apply mode in the header, and the page size and encoding (raw). */
function wholePullKey(name: string, revision: string, applyMode: number): string {
  return `${name}\n${revision}\n${applyMode}\n${PAGE_BYTES}\nraw`;
}

function* range(from: number, to: number): Generator<number> {
  for (let i = from; i <= to; i++) yield i;
}
