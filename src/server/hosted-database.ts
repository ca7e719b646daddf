/**
 * One database the server hosts: an engine connection over the Node backend (page size 4096,
 * WAL), its revision log fed by the VFS's WAL observer, and the long polls waiting on it.
 *
 * Everything the engine does is synchronous, so one request's SQL never interleaves with
 * another's: a pull reads a consistent snapshot, and a pipeline runs as one stream.
 */
import * as path from 'node:path';
import { Connection } from '../engine/connection.js';
import { applyingEffects } from '../engine/effects.js';
import { NodeDirectory } from '../opfs-vfs/storage/node.js';
import { ProtocolError } from '../errors.js';
import type { PipelineResponse } from '../protocol/hrana.js';
import { APPLY_INCREMENTAL, APPLY_REPLACE_BASE, ENCODING_RAW, type PullRequest, encodePage, encodePullHeader } from '../protocol/pull-updates.js';
import { decodeRoaring } from '../protocol/roaring.js';
import { TURSO_SYNC_TABLE, writesAcknowledgement } from '../protocol/turso-tables.js';
import { executePipeline } from './hrana.js';
import { RevisionLog } from './revlog.js';
import { ClientOwners, type Writer } from './client-owners.js';
import { type SandboxLimits, type StatementClock, applySandbox } from './sandbox.js';
import { TimeShare } from './time-share.js';
import { writeRulesAuthorizer } from './write-rules.js';

export interface HostedDatabaseOptions {
  durability: 'normal' | 'full';
  cacheKiB: number;
  /** When set, the only tables pushed statements may write (see `writeRulesAuthorizer`). */
  writableTables?: string[] | undefined;
  /** What tenant SQL may do (see sandbox.ts). */
  limits: SandboxLimits;
}

/** Pages read and encoded at a time while a pull is written out (1 MiB of page images). */
const PULL_CHUNK_PAGES = 256;

export class HostedDatabase {
  lastUsedMs = Date.now();
  /** Requests and long polls using it right now; a pinned database is never evicted. */
  pins = 0;
  private readonly waiters = new Set<() => void>();
  private readonly share: TimeShare;

  private constructor(
    readonly name: string,
    private readonly conn: Connection,
    private readonly revlog: RevisionLog,
    private readonly durable: boolean,
    private readonly clock: StatementClock,
    private readonly authorizer: Parameters<Connection['setAuthorizer']>[0],
    private readonly owners: ClientOwners,
    limits: SandboxLimits,
  ) {
    this.share = new TimeShare({ shareOfServer: limits.shareOfServer, burstMs: limits.statementTimeoutMs });
  }

  static async open(dataDir: string, name: string, options: HostedDatabaseOptions): Promise<HostedDatabase> {
    const file = path.join(dataDir, `${name}.db`);
    const revlog = new RevisionLog(`${file}-revlog`);
    try {
      const conn = await Connection.open(new NodeDirectory(file), {
        durability: options.durability,
        intMode: 'number',
        walObserver: revlog,
        cacheKiB: options.cacheKiB,
        // Eviction from the server's cache must be cheap; the idle checkpoint keeps WALs small.
        checkpointOnClose: false,
      });
      const { clock, authorizer } = applySandbox(conn, options.limits, options.writableTables ? writeRulesAuthorizer(options.writableTables) : undefined);
      const owners = new ClientOwners(`${file}-owners`);
      owners.register(conn);
      const hosted = new HostedDatabase(name, conn, revlog, options.durability === 'full', clock, authorizer, owners, options.limits);
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
   */
  pipeline(body: unknown, writer: Writer = { subject: null, admin: true }): PipelineResponse {
    this.share.check(this.name, performance.now());
    const before = this.revlog.seq;
    this.owners.writer = writer;
    try {
      const run = (): PipelineResponse => executePipeline(this.conn, body, this.clock);
      // A push's changes already hold what the client's triggers did (engine/effects.ts).
      return writesAcknowledgement(body) ? applyingEffects(this.conn, run, (sql) => this.execTrusted(sql)) : run();
    } finally {
      this.share.charge(this.clock.takeSpentMs(), performance.now());
      this.owners.writer = { subject: null, admin: true };
      this.owners.afterRequest(this.conn, (sql) => this.execTrusted(sql));
      if (this.revlog.seq !== before) for (const wake of [...this.waiters]) wake();
    }
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
