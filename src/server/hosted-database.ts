/**
 * One database the server hosts: an engine connection over the Node backend (page size 4096,
 * WAL), its revision log fed by the VFS's WAL observer, and the long polls waiting on it.
 *
 * Everything the engine does is synchronous, so one request's SQL never interleaves with
 * another's: a pull reads a consistent snapshot, and a pipeline runs as one stream.
 *
 * Streams across requests (Hrana batons), for transactions too large for one request: a
 * pipeline that ends with a transaction open (and no `close`) keeps it open on the database's
 * connection and answers with a baton, a random 128-bit name that only the next request of the
 * same stream, on the same database and with a token of the same subject, can present (each
 * answer names a new one). While a stream holds the transaction, every other request to this
 * database, pulls included, waits (`whenFree`) until the stream commits, rolls back, or stays
 * idle for `streams.idleMs`, after which it is rolled back; a request that waited that long
 * gets 503 BUSY. At most `streams.slots.max` streams are open in the whole server.
 */
import * as path from 'node:path';
import { Connection } from '../engine/connection.js';
import { beginEffects } from '../engine/effects.js';
import type { StorageDirectory } from '../opfs-vfs/storage/backend.js';
import { NodeDirectory } from '../opfs-vfs/storage/node.js';
import { ProtocolError } from '../errors.js';
import { randomHex } from '../protocol/ids.js';
import { HttpError } from './http.js';
import type { PipelineResponse } from '../protocol/hrana.js';
import { APPLY_INCREMENTAL, APPLY_REPLACE_BASE, ENCODING_RAW, type PullRequest, encodePage, encodePullHeader } from '../protocol/pull-updates.js';
import { decodeRoaring } from '../protocol/roaring.js';
import { TURSO_SYNC_TABLE, isSyncPush } from '../protocol/turso-tables.js';
import { AnswerBudget, type StreamSession, checkPipelineBody, executePipeline, newStreamSession } from './hrana.js';
import { RevisionLog } from './revlog.js';
import { ClientOwners, type Writer } from './client-owners.js';
import { type SandboxLimits, type SessionReset, type StatementClock, applySandbox } from './sandbox.js';
import { TimeShare } from './time-share.js';
import { writeRulesAuthorizer } from './write-rules.js';

export interface HostedDatabaseOptions {
  durability: 'normal' | 'full';
  cacheKiB: number;
  /** When set, the only tables pushed statements may write (see `writeRulesAuthorizer`). */
  writableTables?: string[] | undefined;
  /** What tenant SQL may do (see sandbox.ts). */
  limits: SandboxLimits;
  /** Streams across requests (see the header); the slots are shared by the server's databases. */
  streams?: StreamLimits;
  /** Where the database's files live (default: Node files at `<dataDir>/<name>.db`); tests inject crashes here. */
  directory?: (file: string) => StorageDirectory;
}

export interface StreamLimits {
  /** How long a stream may stay idle before its transaction is rolled back. */
  idleMs: number;
  /** Open streams in the whole server, and how many may be. */
  slots: { open: number; max: number };
}

/** The default: a stream idle for 10 s is rolled back, at most 64 open in one server. */
export function defaultStreamLimits(): StreamLimits {
  return { idleMs: 10_000, slots: { open: 0, max: 64 } };
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
}

/** Pages read and encoded at a time while a pull is written out (1 MiB of page images). */
const PULL_CHUNK_PAGES = 256;

export class HostedDatabase {
  lastUsedMs = Date.now();
  /** Requests and long polls using it right now; a pinned database is never evicted. */
  pins = 0;
  private readonly waiters = new Set<() => void>();
  private readonly share: TimeShare;
  private stream: HeldStream | null = null;
  /** Requests waiting for the stream to end. */
  private readonly streamWaiters = new Set<() => void>();

  private constructor(
    readonly name: string,
    private readonly conn: Connection,
    private readonly revlog: RevisionLog,
    private readonly durable: boolean,
    private readonly clock: StatementClock,
    private readonly authorizer: Parameters<Connection['setAuthorizer']>[0],
    private readonly owners: ClientOwners,
    limits: SandboxLimits,
    private readonly streams: StreamLimits,
    private readonly sessionReset: SessionReset,
    private readonly storedSqlCharsMax: number,
  ) {
    this.share = new TimeShare({ shareOfServer: limits.shareOfServer, burstMs: limits.statementTimeoutMs });
    this.answerBytesMax = limits.answerBytesMax ?? limits.valueBytesMax;
  }

  /** The most bytes of rows one pipeline may answer with (sandbox.ts, `answerBytesMax`). */
  private readonly answerBytesMax: number;

  static async open(dataDir: string, name: string, options: HostedDatabaseOptions): Promise<HostedDatabase> {
    const file = path.join(dataDir, `${name}.db`);
    const revlog = new RevisionLog(`${file}-revlog`);
    try {
      const conn = await Connection.open(options.directory ? options.directory(file) : new NodeDirectory(file), {
        durability: options.durability,
        intMode: 'number',
        walObserver: revlog,
        cacheKiB: options.cacheKiB,
        // Eviction from the server's cache must be cheap; the idle checkpoint keeps WALs small.
        checkpointOnClose: false,
      });
      const { clock, authorizer, session } = applySandbox(conn, options.limits, options.writableTables ? writeRulesAuthorizer(options.writableTables) : undefined);
      const owners = new ClientOwners(`${file}-owners`);
      owners.register(conn);
      const streams = options.streams ?? defaultStreamLimits();
      const hosted = new HostedDatabase(name, conn, revlog, options.durability === 'full', clock, authorizer, owners, options.limits, streams, session, options.limits.valueBytesMax);
      owners.afterRequest(conn, (sql) => hosted.execTrusted(sql));
      return hosted;
    } catch (e) {
      revlog.close();
      throw e;
    }
  }

  get revision(): string {
    return this.revlog.revision;
  }

  /**
   * Writes a pull-updates response body (header, then pages, length-delimited) to `sink`, a
   * few hundred pages at a time: the whole answer is never in memory at once. It runs
   * synchronously, so it reads one consistent revision.
   */
  pull(req: PullRequest, sink: (chunk: Uint8Array) => void): void {
    if (req.encoding !== ENCODING_RAW) throw new ProtocolError('only raw page encoding is supported (zstd was requested)');
    if (req.streamKind !== 0) throw new ProtocolError('only the Pages stream kind is supported');
    const dbPages = this.conn.pageCount();
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
    sink(encodePullHeader({ serverRevision: this.revlog.revision, dbSize: dbPages, applyMode }));
    let group: number[] = [];
    const flush = (): void => {
      const images = this.conn.readPages(group);
      const parts: Uint8Array[] = [];
      for (const [pgno, data] of images) parts.push(encodePage(pgno - 1, data));
      sink(concat(parts));
      group = [];
    };
    for (const p of pages) {
      if (p < 1 || p > dbPages) continue;
      group.push(p);
      if (group.length === PULL_CHUNK_PAGES) flush();
    }
    if (group.length > 0) flush();
  }

  /** True when a pull from `clientRevision` would return nothing new. */
  isCurrent(clientRevision: string): boolean {
    return clientRevision === this.revlog.revision;
  }

  /** Resolves when a new revision commits, or after `timeoutMs`. */
  waitForChange(timeoutMs: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(done);
      signal.addEventListener('abort', done);
    });
  }

  /**
   * Runs a Hrana pipeline for `writer` (whose token may write only its own sync clients'
   * acknowledgements: client-owners.ts); wakes long polls when it committed something.
   * With `readOnly` (a read token), SQLite itself refuses every write: `query_only` is on from
   * the request's first statement to its last, and the sandbox's authorizer keeps it on
   * (`StatementClock.readOnly`); the next request starts with it off again.
   */
  pipeline(body: unknown, writer: Writer = { subject: null, admin: true }, readOnly = false): PipelineResponse {
    checkPipelineBody(body);
    const baton = body.baton ?? null;
    const held = this.stream;
    if (baton !== null) {
      if (!held || held.baton !== baton || (held.subject !== writer.subject && !writer.admin)) {
        throw new HttpError(400, `this stream has ended (committed, rolled back, or idle longer than ${this.streams.idleMs} ms), or is not this database's`, 'STREAM_ENDED');
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
    try {
      const { response, open } = executePipeline({ conn: this.conn, clock: this.clock, session, trusted, storedSqlCharsMax: this.storedSqlCharsMax, answer: new AnswerBudget(this.answerBytesMax) }, body);
      if (!open) {
        this.endStream();
        return response;
      }
      if (!held && this.streams.slots.open >= this.streams.slots.max) {
        this.conn.rollbackQuietly();
        throw new HttpError(503, `the server has ${this.streams.slots.max} streams open, its limit; the transaction was rolled back, try again later`, 'BUSY');
      }
      const next = this.holdStream(writer.subject, endEffects, session);
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
      this.owners.writer = { subject: null, admin: true };
      // Inside a stream's open transaction the protocol table may not be committed yet: the
      // owner triggers are installed once it is. The stream over, the connection's session
      // settings go back to what every request starts from.
      if (!this.conn.inTransaction) {
        this.owners.afterRequest(this.conn, trusted);
        this.sessionReset.reset(this.clock, trusted);
      }
      if (this.revlog.seq !== before) for (const wake of [...this.waiters]) wake();
    }
  }

  /** Waits as `whenFree` does for a request without a baton; 503 BUSY when the stream outlasts the wait. */
  async waitForTurn(body: unknown): Promise<void> {
    const baton = typeof body === 'object' && body !== null ? (body as { baton?: unknown }).baton : null;
    if (baton !== null && baton !== undefined) return;
    if (!(await this.whenFree())) throw new HttpError(503, "a stream holds this database's write transaction; try again later", 'BUSY');
  }

  /**
   * Resolves once no stream holds the database (true), or after `timeoutMs` with one still
   * holding it (false). Requests without a baton wait here before they run.
   */
  whenFree(timeoutMs = this.streams.idleMs): Promise<boolean> {
    if (!this.stream) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.streamWaiters.delete(done);
        resolve(this.stream === null);
      };
      const timer = setTimeout(done, timeoutMs);
      this.streamWaiters.add(done);
    });
  }

  /** Whether a stream holds the write transaction now. */
  get streaming(): boolean {
    return this.stream !== null;
  }

  /** Keeps the open transaction for the stream's next request; returns that request's baton. */
  private holdStream(subject: string | null, endEffects: (() => void) | null, session: StreamSession): string {
    if (this.stream) clearTimeout(this.stream.timer);
    else {
      this.streams.slots.open++;
      this.pins++;
    }
    const baton = randomHex(16);
    const timer = setTimeout(() => {
      this.conn.rollbackQuietly();
      this.endStream();
      this.sessionReset.reset(this.clock, (sql) => this.execTrusted(sql));
    }, this.streams.idleMs);
    this.stream = { baton, subject, timer, endEffects, session };
    return baton;
  }

  /** The stream (if any) is over: its slot and pin are freed and waiting requests go on. */
  private endStream(): void {
    if (!this.stream) return;
    clearTimeout(this.stream.timer);
    this.stream.endEffects?.();
    this.stream = null;
    this.streams.slots.open--;
    this.pins--;
    for (const wake of [...this.streamWaiters]) wake();
  }

  /**
   * Runs SQL as the server itself, outside the tenant sandbox (no authorizer, no time limit):
   * for administration and for tests that observe the server (a TEMP trigger that counts what
   * pushes apply). Never reachable from a request.
   */
  execTrusted(sql: string): void {
    this.conn.setAuthorizer(null);
    try {
      this.conn.exec(sql);
    } finally {
      this.conn.setAuthorizer(this.authorizer);
    }
  }

  async close(): Promise<void> {
    for (const wake of [...this.waiters]) wake();
    if (this.stream) {
      this.conn.rollbackQuietly();
      this.endStream();
    }
    await this.conn.close();
    this.revlog.close(this.durable);
  }
}

function* range(from: number, to: number): Generator<number> {
  for (let i = from; i <= to; i++) yield i;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
