/**
 * The Outpost sync server: many databases over HTTP, speaking Turso's sync protocol.
 *
 * Routes (all answers to errors are JSON `{ "error": message, "message": message, "code": CODE }`):
 * - `POST /db/{name}/pull-updates`  protobuf in, length-delimited protobuf out
 * - `POST /db/{name}/v2/pipeline`   Hrana JSON in and out (also `v3/pipeline`); with batons
 *                                   for interactive transactions (`@libsql/client`, drizzle)
 * - `POST /db/{name}/v3/cursor`     a Hrana batch, answered as cursor entries (JSON lines)
 * - `POST /admin/databases`         `{ "name": "..." }`, creates a database (admin token)
 * - `GET  /health`                  `{ "ok": true }`: the process answers
 * - `GET  /ready`                   200 once started and until a drain begins, else 503 (front.ts)
 * - `GET  /metrics`                 Prometheus text format (metrics.ts)
 * The database may also be named by host (`{name}.{baseHost}`) or, when the URL names none, by
 * the token (addressing.ts). Browsers get CORS headers (any origin by default; the bearer token
 * is the credential). Error answers carry `message` as well as `error`: Hrana clients
 * (`@libsql/client`) read an error's `code` only from a body with a `message`.
 *
 * The same routes serve two ways: `createServer` listens on its own socket, and
 * `createHandler` is a `(req, res, next?)` function for an existing Node HTTP app. Both drain
 * the same way (`drain()`): stop accepting, answer long polls at once, let requests in flight
 * (pushes included) finish, then close every database and seal it (database-cache.ts).
 *
 * This file holds the routes: who may call them (auth.ts) and what each does. What happens
 * around every request (mount prefix, CORS, readiness, metrics, the log line, refusal while
 * draining) is in front.ts; body reading and the error -> status mapping are in http.ts; the
 * LRU of open databases (`maxOpenDatabases`) is in database-cache.ts; one database's pull,
 * pipeline and long polls are in hosted-database.ts. A database is created by its first
 * authorised write-capable request (a write token's pull or push) or by the admin route.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { ProtocolError } from '../errors.js';
import { DATABASE_NAME_PATTERN } from '../options.js';
import { decodePullRequest } from '../protocol/pull-updates.js';
import { isSyncPush } from '../protocol/turso-tables.js';
import { type Grant, type Role, type TokenVerifier, authorize, createVerifier, verifyAuthorization } from './auth.js';
import { nameFromGrant, resolveTarget } from './addressing.js';
import { DatabaseCache, fileBudget } from './database-cache.js';
import { RequestFront, checkedMetricsToken } from './front.js';
import { PIPELINE_SLICE_MS, PipelineQueue } from './pipeline-queue.js';
import { type HostedDatabase, STREAMS_PER_HOLDER, STREAM_LIFETIME_MS, WITHOUT_SUBJECT } from './hosted-database.js';
import { HttpError, pathParts, readBody, send, sendJson } from './http.js';
import { type Logger, createLogger } from './log.js';
import { ServerMetrics } from './metrics.js';
import { cursorAnswer, cursorAsPipeline } from './hrana.js';
import { PULL_SPOOL_BYTES, SharedPulls } from './pull-share.js';
import { DescriptorPool } from '../opfs-vfs/storage/descriptors.js';
import { HEAP_BYTES_MAX, heapLimitBytes, heapUsage, heapUsedBytes, holdHeapLimit, releaseHeapLimit } from './heap-limit.js';
import { MAX_OPEN_DATABASES, type ServerOptions } from './server-options.js';

export { MAX_OPEN_DATABASES, type ServerOptions } from './server-options.js';

/** What both ways of serving share. */
export interface OutpostService {
  /**
   * Drains: `/ready` turns 503, new requests get 503 (and a listening server stops
   * accepting), long polls are answered at once, requests in flight finish (up to
   * `drainTimeoutMs`), then everything closes as `close()` does.
   */
  drain(): Promise<void>;
  /** Stops at once: refuses new requests, ends long polls, closes connections and every database (each sealed, a few fsyncs off the event loop: database-cache.ts). */
  close(): Promise<void>;
  /** Resolves once startup has completed (and `/ready` answers 200). */
  whenReady(): Promise<void>;
  readonly ready: boolean;
  /** Number of databases open right now. */
  readonly openDatabases: number;
  /** The Prometheus registry of the server's own metrics (merge it into an app's with `Registry.merge`); Node's process metrics are not in it. */
  readonly metricsRegistry: ServerMetrics['registry'] | null;
  /**
   * Runs SQL on a hosted database as the server itself, outside the tenant sandbox (see
   * sandbox.ts); creates the database when missing. For administration and tests, never
   * reachable over HTTP.
   */
  execTrusted(database: string, sql: string): Promise<void>;
}

export interface OutpostServer extends OutpostService {
  /** Starts listening; resolves to the bound address. */
  listen(): Promise<{ host: string; port: number; url: string }>;
}

/**
 * The server as a request handler for an existing Node HTTP app: `http.createServer(handler)`,
 * or a connect-style `app.use(handler)` with `basePath` (requests outside it go to `next`).
 * The app's server owns the socket; call `drain()` or `close()` when the app stops.
 */
export interface OutpostHandler extends OutpostService {
  (req: http.IncomingMessage, res: http.ServerResponse, next?: (error?: unknown) => void): void;
}

export function createServer(options: ServerOptions): OutpostServer {
  return new SyncServer(options, true);
}

export function createHandler(options: ServerOptions): OutpostHandler {
  const server = new SyncServer(options, false);
  const handler = (req: http.IncomingMessage, res: http.ServerResponse, next?: (error?: unknown) => void): void => server.handle(req, res, next);
  // The function carries the service's methods; getters stay live (not copied values).
  return Object.defineProperties(handler, {
    drain: { value: () => server.drain() },
    close: { value: () => server.close() },
    whenReady: { value: () => server.whenReady() },
    execTrusted: { value: (database: string, sql: string) => server.execTrusted(database, sql) },
    ready: { get: () => server.ready },
    openDatabases: { get: () => server.openDatabases },
    metricsRegistry: { get: () => server.metricsRegistry },
  }) as OutpostHandler;
}

class SyncServer implements OutpostServer {
  /** Checks tokens; null when authentication is off. */
  private readonly verifier: TokenVerifier | null;
  private readonly bodyBytesMax: number;
  private readonly longPollMsMax: number;
  /** How long a client may read nothing of an answer being sent before it is cut off. */
  private readonly answerIdleMs: number;
  private readonly log: Logger;
  private readonly metrics: ServerMetrics | null;
  private readonly front: RequestFront;
  private readonly baseHost: string | null;
  private readonly databases: DatabaseCache;
  /** Descriptors of the open databases' main files and WALs (descriptors.ts). */
  private readonly descriptors: DescriptorPool;
  /** The socket's server; null for `createHandler`, whose app owns the socket. */
  private readonly server: http.Server | null;
  private listening = false;
  /** Resolves when startup has completed; rejects when it failed. */
  private readonly started: Promise<void>;
  private draining: Promise<void> | null = null;
  private closed: Promise<void> | null = null;
  /** Aborted by drain() and close(): ends every long poll. */
  private readonly shutdown = new AbortController();
  /** What ends each long poll waiting now (the shutdown calls them all). */
  private readonly longPolls = new Set<() => void>();
  /** Resolves once SQLite's heap limit is set: no database opens before (heap-limit.ts). */
  private readonly heapLimited: Promise<void>;
  /** Whole pulls' answers kept for identical pulls (pull-share.ts). */
  private readonly pulls: SharedPulls;
  /** Where a read and parsed pipeline waits, with the open it may need, so that pulls are served first (pipeline-queue.ts). */
  private readonly pipelines: PipelineQueue;

  constructor(
    private readonly options: ServerOptions,
    ownSocket: boolean,
  ) {
    this.verifier = options.auth === false ? null : verifierFor(options);
    this.shutdown.signal.addEventListener('abort', () => [...this.longPolls].forEach((end) => end()));
    this.bodyBytesMax = options.maxBodyBytes ?? 32 * 1024 * 1024;
    this.longPollMsMax = options.maxLongPollMs ?? 60_000;
    this.answerIdleMs = Math.max(100, options.bodyTimeoutMs ?? 30_000);
    this.log = createLogger({ format: options.logFormat, level: options.logLevel, ...(options.log ? { sink: options.log } : {}) });
    const state = { openDatabases: () => this.databases.size, ready: () => this.ready, heap: () => ({ ...heapUsage(), limitBytes: heapLimitBytes() }), pullSpool: () => this.pulls.usage, bodyBytesHeld: () => this.front.bodies.heldBytes, databaseFiles: () => ({ open: this.descriptors.size, limit: this.descriptors.limit, reopens: this.descriptors.reopens }) };
    this.metrics = options.metrics === false ? null : new ServerMetrics(state, options.processMetrics !== false);
    this.pulls = new SharedPulls(path.join(options.dataDir, '.pulls'), Math.max(0, options.maxPullSpoolBytes ?? PULL_SPOOL_BYTES), this.answerIdleMs, { hit: () => this.metrics?.pullSpoolHits.inc(), kept: () => this.metrics?.pullSpoolKept.inc() });
    this.front = new RequestFront(
      { log: this.log, metrics: this.metrics, corsOrigins: options.corsOrigins ?? '*', basePath: (options.basePath ?? '').replace(/\/+$/, ''), metricsToken: checkedMetricsToken(options.metricsToken), bodyBytesMax: this.bodyBytesMax },
      (req, res) => this.route(req, res),
    );
    this.pipelines = new PipelineQueue({ sliceMs: Math.max(0, options.pipelineSliceMs ?? PIPELINE_SLICE_MS) });
    this.baseHost = options.baseHost ? options.baseHost.toLowerCase().replace(/^\.+|\.+$/g, '') : null;
    fs.mkdirSync(options.dataDir, { recursive: true });
    this.heapLimited = holdHeapLimit(this, options.maxHeapBytes ?? HEAP_BYTES_MAX);
    const limits = {
      statementTimeoutMs: options.statementTimeoutMs ?? 2000,
      valueBytesMax: options.valueBytesMax ?? this.bodyBytesMax,
      shareOfServer: options.shareOfServer ?? 0.25,
      answerBytesMax: options.maxAnswerBytes ?? this.bodyBytesMax,
    };
    const streamsMax = Math.max(1, options.maxOpenStreams ?? 64);
    const slots = { open: 0, max: streamsMax, perHolderMax: Math.max(1, options.maxOpenStreamsPerHolder ?? STREAMS_PER_HOLDER), withoutSubjectMax: Math.max(1, options.maxOpenStreamsWithoutSubject ?? Math.floor(streamsMax / 2)) };
    const streams = { idleMs: Math.max(10, options.streamIdleMs ?? 10_000), lifetimeMs: Math.max(10, options.streamLifetimeMs ?? STREAM_LIFETIME_MS), slots };
    const files = fileBudget(MAX_OPEN_DATABASES);
    this.descriptors = new DescriptorPool(Math.max(1, options.maxDatabaseFiles ?? files.pooled));
    const events = this.metrics ? { opened: () => this.metrics!.databasesOpened.inc(), evicted: () => this.metrics!.databasesEvicted.inc() } : {};
    this.databases = new DatabaseCache(
      options.dataDir,
      Math.max(1, options.maxOpenDatabases ?? files.databases),
      (name) => ({
        durability: options.durability ?? 'normal',
        cacheKiB: options.cacheKiB ?? 256,
        descriptors: this.descriptors,
        writableTables: options.writeRules?.[name],
        limits,
        streams,
        ...(options.pullSlices ? { pullSlices: options.pullSlices } : {}),
        ...(options.pullEvents ? { pullEvents: options.pullEvents } : {}),
        onCommit: (database) => this.pulls.dropDatabase(database),
      }),
      events,
      // The open databases may hold up to the soft limit (three quarters of the bound, where page caches stop growing); the last quarter stays for statements.
      { usedBytes: heapUsedBytes, openBytesMax: Math.floor((options.maxHeapBytes ?? HEAP_BYTES_MAX) * 0.75) },
    );
    this.server = ownSocket ? this.createSocketServer() : null;
    // Startup: the data folder must be writable; a listening server is also ready only once it listens.
    this.started = Promise.all([fs.promises.access(options.dataDir, fs.constants.W_OK), this.heapLimited]).then(() => {
      if (!ownSocket) this.front.markStarted();
    });
    // An embedding app that never awaits whenReady() must not see an unhandled rejection.
    this.started.catch((e: unknown) => this.log.error('startup failed', { error: (e as Error).message }));
  }

  private createSocketServer(): http.Server {
    const bodyTimeoutMs = Math.max(100, this.options.bodyTimeoutMs ?? 30_000);
    const server = http.createServer(
      {
        // Node enforces both limits only when it checks its connections; check often enough
        // that a slow client is cut off close to the limit (Node's default is every 30 s).
        requestTimeout: bodyTimeoutMs,
        headersTimeout: Math.min(bodyTimeoutMs, 60_000),
        connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(bodyTimeoutMs / 4))),
      },
      (req, res) => this.handle(req, res),
    );
    server.keepAliveTimeout = 5000;
    // A socket on which nothing moves for longer than any wait the server itself makes (a long
    // poll, then a stream's turn) plus the body time is closed: a client that stops reading its
    // answer cannot hold the socket, and the answer's memory or spool file, forever.
    server.timeout = bodyTimeoutMs + this.longPollMsMax + Math.max(10, this.options.streamIdleMs ?? 10_000);
    return server;
  }

  get openDatabases(): number {
    return this.databases.size;
  }

  get ready(): boolean {
    return this.front.ready;
  }

  get metricsRegistry(): ServerMetrics['registry'] | null {
    return this.metrics?.registry ?? null;
  }

  whenReady(): Promise<void> {
    if (this.server && !this.listening) return this.started.then(() => new Promise<void>((resolve) => this.server!.once('listening', () => resolve())));
    return this.started;
  }

  handle(req: http.IncomingMessage, res: http.ServerResponse, next?: (error?: unknown) => void): void {
    this.front.handle(req, res, next);
  }

  async execTrusted(database: string, sql: string): Promise<void> {
    const db = await this.acquire(database, true);
    try {
      db.execTrusted(sql);
    } finally {
      this.databases.release(db);
    }
  }

  async listen(): Promise<{ host: string; port: number; url: string }> {
    const server = this.server;
    if (!server) throw new Error('a handler does not listen: its app owns the socket');
    await this.started;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port ?? 8080, this.options.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        this.listening = true;
        this.front.markStarted();
        const a = server.address() as AddressInfo; // Listening on a TCP host and port, never a pipe name or null.
        const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
        resolve({ host: a.address, port: a.port, url: `http://${host}:${a.port}` });
      });
    });
  }

  drain(): Promise<void> {
    this.draining ??= this.drainNow();
    return this.draining;
  }

  private async drainNow(): Promise<void> {
    this.front.startDraining();
    this.log.info('draining', { inFlight: this.front.requestsInFlight });
    // Stop accepting; idle kept-alive sockets are closed, busy ones after their answer.
    this.server?.close();
    this.server?.closeIdleConnections();
    // Long polls answer now, with what they have; they are in flight until their answer is sent.
    this.shutdown.abort();
    const timeoutMs = this.options.drainTimeoutMs ?? 30_000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = await Promise.race([
      this.front.whenIdle().then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (timedOut) this.log.warn('drain timed out; closing the requests still in flight', { inFlight: this.front.requestsInFlight, timeoutMs });
    await this.close();
    this.log.info('drained');
  }

  close(): Promise<void> {
    this.closed ??= this.closeNow();
    return this.closed;
  }

  private async closeNow(): Promise<void> {
    this.front.startDraining();
    this.shutdown.abort();
    const server = this.server;
    if (server && this.listening) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Long polls were just woken; nothing else may keep a socket (and the process) alive.
        server.closeAllConnections();
      });
    }
    this.pulls.close();
    await this.databases.closeAll();
    await releaseHeapLimit(this);
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<{ status: number; db: string }> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const parts = pathParts(url.pathname);
    if (req.method === 'GET' && url.pathname === '/health') {
      sendJson(res, 200, { ok: true, openDatabases: this.databases.size });
      return { status: 200, db: '-' };
    }
    if (req.method !== 'POST') throw new HttpError(405, `${req.method} is not supported here`, 'METHOD_NOT_ALLOWED');
    if (parts.length === 2 && parts[0] === 'admin' && parts[1] === 'databases') {
      const grant = await this.grantFor(req);
      return { status: await this.createDatabase(grant, req, res), db: '-' };
    }
    const target = resolveTarget(parts, req.headers.host, this.baseHost);
    const grant = await this.grantFor(req);
    const name = target.name ?? nameFromGrant(grant);
    const status = target.endpoint === 'pull-updates' ? await this.pullUpdates(name, grant, req, res) : await this.pipeline(name, grant, req, res, target.endpoint === 'cursor');
    return { status, db: name };
  }

  /** `POST /db/{name}/pull-updates`: pages since the client's revision, after a long poll. */
  private async pullUpdates(name: string, grant: Grant | null, req: http.IncomingMessage, res: http.ServerResponse): Promise<number> {
    allow(grant, name, 'read');
    const request = decodePullRequest(await readBody(req, this.bodyBytesMax, this.front.bodies.forRequest(req, streamHolder(grant, name))));
    const canCreate = !grant || grant.role !== 'read';
    const db = await this.acquire(name, canCreate);
    let released = false;
    try {
      if (request.clientRevision !== '' && request.serverRevision === '' && request.longPollTimeoutMs > 0 && db.isCurrent(request.clientRevision)) {
        await this.longPoll(db, Math.min(request.longPollTimeoutMs, this.longPollMsMax), res);
      }
      // A build waits for a stream's open transaction to end, and a client gone meanwhile stops it
      // (asked between slices: an AbortController per pull cost more than a small pull's answer);
      // an identical whole pull's kept answer needs no build (pull-share.ts).
      let gone: HttpError | null = null;
      const onClose = (): void => void (gone ??= new HttpError(499, 'the client went away before its pull was built', 'CLOSED'));
      res.on('close', onClose);
      let answer;
      try {
        answer = await this.pulls.answer(db, request, { throwIfAborted: () => { if (gone) throw gone; } });
      } finally {
        res.off('close', onClose);
      }
      // The answer is built: the database need not stay pinned while a slow client reads it.
      this.databases.release(db);
      released = true;
      await answer.send(res, 'application/protobuf', this.answerIdleMs);
      return 200;
    } finally {
      if (!released) this.databases.release(db);
    }
  }

  /** Waits for a commit, the timeout, the client going away, or the server closing (a timer and two set entries: thousands wait at once). */
  private async longPoll(db: HostedDatabase, timeoutMs: number, res: http.ServerResponse): Promise<void> {
    // A pull that reaches here while draining answers at once (the abort below already fired).
    if (this.shutdown.signal.aborted) return;
    const ended = this.front.markLongPoll(res, db.name);
    const wait = db.waitForChange(timeoutMs);
    res.once('close', wait.end);
    this.longPolls.add(wait.end);
    await wait.changed;
    res.off('close', wait.end);
    this.longPolls.delete(wait.end);
    ended();
  }

  /**
   * `POST /db/{name}/v2/pipeline` (or `v3/cursor`): a Hrana pipeline, created on first write. A
   * read token's pipeline runs read-only (`HostedDatabase.pipeline`); a sync push needs `write`.
   */
  private async pipeline(name: string, grant: Grant | null, req: http.IncomingMessage, res: http.ServerResponse, cursor = false): Promise<number> {
    allow(grant, name, 'read');
    const readOnly = grant?.role === 'read';
    const raw = await readBody(req, this.bodyBytesMax, this.front.bodies.forRequest(req, streamHolder(grant, name)));
    let body: unknown;
    try {
      // Buffer's UTF-8 decoding (U+FFFD for bad bytes, as TextDecoder) without a decoder per request.
      body = JSON.parse(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8'));
    } catch (e) {
      throw new ProtocolError(`the body is not valid JSON: ${(e as Error).message}`);
    }
    // A cursor body becomes a pipeline first, so the push check below sees its requests too.
    if (cursor) body = cursorAsPipeline(body);
    if (isSyncPush(body)) {
      allow(grant, name, 'write');
      this.front.markPush(res);
    }
    return this.pipelines.run(async () => {
      const db = await this.acquire(name, !readOnly);
      try {
        const answer = await db.inTurn(body, () => {
          db.lastUsedMs = Date.now();
          return db.pipeline(body, grant ? { subject: grant.subject, admin: grant.role === 'admin' } : { subject: null, admin: true }, readOnly, streamHolder(grant, name));
        });
        if (cursor) send(res, 200, 'text/plain', cursorAnswer(answer));
        else sendJson(res, 200, answer);
        return 200;
      } finally {
        this.databases.release(db);
      }
    });
  }

  /** `POST /admin/databases`: `{ "name": ... }`; 201 when created, 200 when it existed. */
  private async createDatabase(grant: Grant | null, req: http.IncomingMessage, res: http.ServerResponse): Promise<number> {
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder().decode(await readBody(req, this.bodyBytesMax, this.front.bodies.forRequest(req, streamHolder(grant, 'admin')))));
    } catch {
      throw new ProtocolError('the body must be JSON: {"name": "..."}');
    }
    const name = (body as { name?: unknown } | null)?.name;
    if (typeof name !== 'string' || !DATABASE_NAME_PATTERN.test(name)) throw new HttpError(400, 'invalid database name', 'INVALID_NAME');
    allow(grant, name, 'admin');
    const existed = this.databases.exists(name);
    this.databases.release(await this.acquire(name, true));
    const status = existed ? 200 : 201;
    sendJson(res, status, { name, created: !existed });
    return status;
  }

  /** The database pinned for this request (see `DatabaseCache`); 404 when it may not be created; 503 once close() began (a pipeline still queued, pipeline-queue.ts, must not open one again). */
  private async acquire(name: string, create: boolean): Promise<HostedDatabase> {
    await this.heapLimited;
    if (this.closed) throw new HttpError(503, 'the server is shutting down', 'SHUTTING_DOWN');
    const db = await this.databases.acquire(name, create);
    if (!db) throw new HttpError(404, `database "${name}" does not exist`, 'DATABASE_NOT_FOUND');
    return db;
  }

  /** The request's grant; null when authentication is off (everything is allowed). */
  private async grantFor(req: http.IncomingMessage): Promise<Grant | null> {
    if (this.verifier === null) return null;
    return verifyAuthorization(req.headers.authorization, this.verifier);
  }
}

/** The token verifier for the options' keys; an error when authentication is on without any. */
function verifierFor(options: ServerOptions): TokenVerifier {
  if (options.authSecret === undefined && options.authPublicKey === undefined && options.authJwksUrl === undefined) {
    throw new Error('createServer needs authSecret, authPublicKey or authJwksUrl, or auth: false');
  }
  return createVerifier({
    secret: options.authSecret,
    publicKey: options.authPublicKey,
    jwksUrl: options.authJwksUrl,
    issuer: options.authIssuer,
    audience: options.authAudience,
  });
}

function allow(grant: Grant | null, name: string | null, need: Role): void { if (grant) authorize(grant, name, need); }

/** Whose share of the stream slots a request's stream takes (`StreamSlots`, hosted-database.ts). */
function streamHolder(grant: Grant | null, database: string): string {
  if (!grant || grant.role === 'admin') return `database:${database}`;
  if (grant.subject !== null) return `subject:${grant.subject}`;
  return `${WITHOUT_SUBJECT}${grant.databases === '*' ? '*' : [...grant.databases].sort().join(',')}`;
}
