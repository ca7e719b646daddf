/**
 * The Outpost sync server: many databases over HTTP, speaking Turso's sync protocol.
 *
 * Routes (all answers to errors are JSON `{ "error": message, "message": message, "code": CODE }`):
 * - `POST /db/{name}/pull-updates`  protobuf in, length-delimited protobuf out
 * - `POST /db/{name}/v2/pipeline`   Hrana JSON in and out (also `v3/pipeline`); with batons
 *                                   for interactive transactions (`@libsql/client`, drizzle)
 * - `POST /db/{name}/v3/cursor`     a Hrana batch, answered as cursor entries (JSON lines)
 * - `POST /admin/databases`         `{ "name": "..." }`, creates a database (admin token)
 * - `GET  /health`                  `{ "ok": true }`
 * The database may also be named by host (`{name}.{baseHost}`) or, when the URL names none, by
 * the token (addressing.ts). Browsers get CORS headers (any origin; the bearer token is the
 * credential). Error answers carry `message` as well as `error`: Hrana clients
 * (`@libsql/client`) read an error's `code` only from a body with a `message`.
 *
 * This file holds the routes: who may call them (auth.ts) and what each does. Body reading,
 * CORS and the error -> status mapping are in http.ts; the LRU of open databases
 * (`maxOpenDatabases`) is in database-cache.ts; one database's pull, pipeline and long polls
 * are in hosted-database.ts. A database is created by its first authorised write-capable
 * request (a write token's pull or push) or by the admin route.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { ProtocolError } from '../errors.js';
import { DATABASE_NAME_PATTERN } from '../options.js';
import { decodePullRequest } from '../protocol/pull-updates.js';
import { type Grant, type Role, authorize, verifyAuthorization } from './auth.js';
import { nameFromGrant, resolveTarget } from './addressing.js';
import { DatabaseCache } from './database-cache.js';
import type { HostedDatabase } from './hosted-database.js';
import { HttpError, errorAnswer, pathParts, readBody, send, sendJson, sendPreflight } from './http.js';
import { cursorAnswer, cursorAsPipeline } from './hrana.js';
import { PullSpool } from './pull-spool.js';

export interface ServerOptions {
  /** Where the databases live (created when missing). */
  dataDir: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** HS256 secret for tokens; required unless `auth: false`. */
  authSecret?: string;
  /** `false` turns authentication off (every request may do everything). */
  auth?: boolean;
  /** Largest request body accepted (default 32 MiB). */
  maxBodyBytes?: number;
  /** Largest TEXT or BLOB value (and SQL text) a statement may make (default: the body limit). */
  valueBytesMax?: number;
  /** Longest one statement of a pipeline may run before it is interrupted (default 2000 ms). */
  statementTimeoutMs?: number;
  /**
   * The long-run fraction of the server's time one database's statements may use (default
   * 0.25): past a burst of one `statementTimeoutMs`, its pipelines wait (429 BUSY with
   * Retry-After) so that one tenant's heavy queries cannot keep the others waiting (time-share.ts).
   */
  shareOfServer?: number;
  /**
   * Longest a client may take to send a whole request, headers and body (default 30 s); a
   * slower one gets 408 and its socket is closed, so a trickling body cannot hold a socket.
   */
  bodyTimeoutMs?: number;
  /** How long a stream across requests (a Hrana baton) may stay idle before it is rolled back (default 10 s). */
  streamIdleMs?: number;
  /** Streams across requests open at once in the whole server (default 64). */
  maxOpenStreams?: number;
  /** Databases kept open at once (default 1000; about a third of a MiB each). */
  maxOpenDatabases?: number;
  /** Page cache per open database in KiB (default 256). */
  cacheKiB?: number;
  durability?: 'normal' | 'full';
  /** Longest long poll honoured (default 60 s). */
  maxLongPollMs?: number;
  /**
   * Optional write rules: database name -> the tables pushed statements may write. SQLite's
   * authorizer refuses any other write, and any DDL, in those databases.
   */
  writeRules?: Record<string, string[]>;
  /**
   * The host under which `{name}.{baseHost}` names database `name` (as sqld and Turso Cloud
   * do), e.g. `db.example.com`; default: databases are named by path or token only.
   */
  baseHost?: string;
  /** Per-request log lines; default writes to stdout. Pass `() => {}` to silence. */
  log?: (line: string) => void;
}

export interface OutpostServer {
  /** Starts listening; resolves to the bound address. */
  listen(): Promise<{ host: string; port: number; url: string }>;
  /** Stops accepting, ends long polls, closes every database. */
  close(): Promise<void>;
  /** Number of databases open right now. */
  readonly openDatabases: number;
  /**
   * Runs SQL on a hosted database as the server itself, outside the tenant sandbox (see
   * sandbox.ts); creates the database when missing. For administration and tests, never
   * reachable over HTTP.
   */
  execTrusted(database: string, sql: string): Promise<void>;
}


export function createServer(options: ServerOptions): OutpostServer {
  return new SyncServer(options);
}

class SyncServer implements OutpostServer {
  /** The token secret; null when authentication is off. */
  private readonly authSecret: string | null;
  private readonly bodyBytesMax: number;
  private readonly longPollMsMax: number;
  private readonly log: (line: string) => void;
  private readonly baseHost: string | null;
  private readonly databases: DatabaseCache;
  private readonly server: http.Server;
  private closing = false;
  /** Aborted by close(): ends every long poll. */
  private readonly shutdown = new AbortController();

  constructor(private readonly options: ServerOptions) {
    const authOn = options.auth !== false;
    if (authOn && !options.authSecret) throw new Error('createServer needs authSecret, or auth: false');
    this.authSecret = authOn ? options.authSecret! : null;
    this.bodyBytesMax = options.maxBodyBytes ?? 32 * 1024 * 1024;
    this.longPollMsMax = options.maxLongPollMs ?? 60_000;
    this.log = options.log ?? ((line: string) => console.log(line));
    this.baseHost = options.baseHost ? options.baseHost.toLowerCase().replace(/^\.+|\.+$/g, '') : null;
    fs.mkdirSync(options.dataDir, { recursive: true });
    const limits = {
      statementTimeoutMs: options.statementTimeoutMs ?? 2000,
      valueBytesMax: options.valueBytesMax ?? this.bodyBytesMax,
      shareOfServer: options.shareOfServer ?? 0.25,
    };
    const streams = { idleMs: Math.max(10, options.streamIdleMs ?? 10_000), slots: { open: 0, max: Math.max(1, options.maxOpenStreams ?? 64) } };
    this.databases = new DatabaseCache(options.dataDir, Math.max(1, options.maxOpenDatabases ?? 1000), (name) => ({
      durability: options.durability ?? 'normal',
      cacheKiB: options.cacheKiB ?? 256,
      writableTables: options.writeRules?.[name],
      limits,
      streams,
    }));
    const bodyTimeoutMs = Math.max(100, options.bodyTimeoutMs ?? 30_000);
    this.server = http.createServer(
      {
        // Node enforces both limits only when it checks its connections; check often enough
        // that a slow client is cut off close to the limit (Node's default is every 30 s).
        requestTimeout: bodyTimeoutMs,
        headersTimeout: Math.min(bodyTimeoutMs, 60_000),
        connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(bodyTimeoutMs / 4))),
      },
      (req, res) => this.handle(req, res),
    );
    this.server.keepAliveTimeout = 5000;
  }

  get openDatabases(): number {
    return this.databases.size;
  }

  async execTrusted(database: string, sql: string): Promise<void> {
    const db = await this.acquire(database, true);
    try {
      db.execTrusted(sql);
    } finally {
      this.databases.release(db);
    }
  }

  listen(): Promise<{ host: string; port: number; url: string }> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port ?? 8080, this.options.host ?? '127.0.0.1', () => {
        // Listening on a TCP host and port, the address is never a pipe name or null.
        const a = this.server.address() as AddressInfo;
        const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
        resolve({ host: a.address, port: a.port, url: `http://${host}:${a.port}` });
      });
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    this.shutdown.abort();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      // Long polls were just woken; nothing else may keep a socket (and the process) alive.
      this.server.closeAllConnections?.();
    });
    await this.databases.closeAll();
  }

  /** Every request: preflight, refusal while closing, the route, one log line. */
  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const started = performance.now();
    const elapsed = (): string => `${(performance.now() - started).toFixed(1)}ms`;
    if (req.method === 'OPTIONS') return sendPreflight(res);
    if (this.closing) return sendJson(res, 503, { error: 'the server is shutting down', code: 'SHUTTING_DOWN' });
    this.route(req, res)
      .then(({ status, db }) => this.log(`info ${req.method} ${req.url} ${status} ${elapsed()} db=${db}`))
      .catch((e: unknown) => {
        const { status, code, message, headers } = errorAnswer(e);
        // A body left unread (refused before or while it arrived) must not stay half-received
        // on a kept-alive socket: close the connection once the answer is out.
        const unread = !req.complete;
        if (!res.headersSent) for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
        if (unread && !res.headersSent) res.setHeader('connection', 'close');
        // `message` as well: Hrana clients (@libsql/client) read an error's code only beside it.
        sendJson(res, status, { error: message, message, code });
        if (unread) res.once('finish', () => req.socket.destroy());
        this.log(`${status >= 500 ? 'error' : 'info'} ${req.method} ${req.url} ${status} ${elapsed()} ${code}: ${message}`);
      });
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
    const request = decodePullRequest(await readBody(req, this.bodyBytesMax));
    const canCreate = !grant || grant.role !== 'read';
    const db = await this.acquire(name, canCreate);
    let released = false;
    try {
      if (request.clientRevision !== '' && request.serverRevision === '' && request.longPollTimeoutMs > 0 && db.isCurrent(request.clientRevision)) {
        await this.longPoll(db, Math.min(request.longPollTimeoutMs, this.longPollMsMax), res);
      }
      // A stream's open transaction is not the database's committed state: wait for it to end.
      await db.waitForTurn(null);
      db.lastUsedMs = Date.now();
      const spool = new PullSpool(path.join(this.options.dataDir, '.pulls'));
      try {
        db.pull(request, spool.write);
      } catch (e) {
        spool.discard();
        throw e;
      }
      // The answer is built: the database need not stay pinned while a slow client reads it.
      this.databases.release(db);
      released = true;
      await spool.send(res, 'application/protobuf');
      return 200;
    } finally {
      if (!released) this.databases.release(db);
    }
  }

  /** Waits for a commit, the timeout, the client going away, or the server closing. */
  private async longPoll(db: HostedDatabase, timeoutMs: number, res: http.ServerResponse): Promise<void> {
    const abort = new AbortController();
    const onClose = (): void => abort.abort();
    res.on('close', onClose);
    this.shutdown.signal.addEventListener('abort', onClose);
    await db.waitForChange(timeoutMs, abort.signal);
    res.off('close', onClose);
    this.shutdown.signal.removeEventListener('abort', onClose);
  }

  /** `POST /db/{name}/v2/pipeline` (or `v3/cursor`): a Hrana pipeline, created on first write. */
  private async pipeline(name: string, grant: Grant | null, req: http.IncomingMessage, res: http.ServerResponse, cursor = false): Promise<number> {
    allow(grant, name, 'write');
    const raw = await readBody(req, this.bodyBytesMax);
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder().decode(raw));
    } catch (e) {
      throw new ProtocolError(`the body is not valid JSON: ${(e as Error).message}`);
    }
    if (cursor) body = cursorAsPipeline(body);
    const db = await this.acquire(name, true);
    try {
      await db.waitForTurn(body);
      db.lastUsedMs = Date.now();
      const answer = db.pipeline(body, grant ? { subject: grant.subject, admin: grant.role === 'admin' } : { subject: null, admin: true });
      if (cursor) send(res, 200, 'text/plain', cursorAnswer(answer));
      else sendJson(res, 200, answer);
      return 200;
    } finally {
      this.databases.release(db);
    }
  }

  /** `POST /admin/databases`: `{ "name": ... }`; 201 when created, 200 when it existed. */
  private async createDatabase(grant: Grant | null, req: http.IncomingMessage, res: http.ServerResponse): Promise<number> {
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder().decode(await readBody(req, this.bodyBytesMax)));
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

  /** The database pinned for this request (see `DatabaseCache`); 404 when it may not be created. */
  private async acquire(name: string, create: boolean): Promise<HostedDatabase> {
    const db = await this.databases.acquire(name, create);
    if (!db) throw new HttpError(404, `database "${name}" does not exist`, 'DATABASE_NOT_FOUND');
    return db;
  }

  /** The request's grant; null when authentication is off (everything is allowed). */
  private async grantFor(req: http.IncomingMessage): Promise<Grant | null> {
    if (this.authSecret === null) return null;
    return verifyAuthorization(req.headers.authorization, this.authSecret);
  }
}

function allow(grant: Grant | null, name: string | null, need: Role): void {
  if (grant) authorize(grant, name, need);
}
