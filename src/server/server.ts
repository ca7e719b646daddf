/**
 * The Outpost sync server: many databases over HTTP, speaking Turso's sync protocol.
 *
 * Routes (all answers to errors are JSON `{ "error": message, "code": CODE }`):
 * - `POST /db/{name}/pull-updates`  protobuf in, length-delimited protobuf out
 * - `POST /db/{name}/v2/pipeline`   Hrana JSON in and out
 * - `POST /admin/databases`         `{ "name": "..." }`, creates a database (admin token)
 * - `GET  /health`                  `{ "ok": true }`
 * Browsers get CORS headers (any origin; the bearer token is the credential).
 *
 * Databases are files `<data>/<name>.db` (WAL beside), opened lazily and kept in an LRU of at
 * most `maxOpenDatabases`; an idle database beyond that is closed, so one process serves
 * thousands of databases in bounded memory. A database is created by its first authorised
 * write-capable request (a write token's pull or push) or by the admin route.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ProtocolError, SqliteError } from '../errors.js';
import { decodePullRequest } from '../protocol/pull-updates.js';
import { AuthError, type Grant, type Role, authorize, verifyAuthorization } from './auth.js';
import { HostedDatabase } from './hosted-database.js';

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
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

export function createServer(options: ServerOptions): OutpostServer {
  const authOn = options.auth !== false;
  if (authOn && !options.authSecret) throw new Error('createServer needs authSecret, or auth: false');
  const dataDir = options.dataDir;
  fs.mkdirSync(dataDir, { recursive: true });
  const maxBody = options.maxBodyBytes ?? 32 * 1024 * 1024;
  const maxOpen = Math.max(1, options.maxOpenDatabases ?? 1000);
  const maxLongPollMs = options.maxLongPollMs ?? 60_000;
  const log = options.log ?? ((line: string) => console.log(line));
  const open = new Map<string, HostedDatabase>();
  const opening = new Map<string, Promise<HostedDatabase>>();
  let closing = false;
  const shutdown = new AbortController();

  const exists = (name: string): boolean => fs.existsSync(`${dataDir}/${name}.db`);

  async function database(name: string, create: boolean): Promise<HostedDatabase> {
    const hosted = open.get(name);
    if (hosted) {
      // Re-insert: the Map's order is the LRU order.
      open.delete(name);
      open.set(name, hosted);
      return hosted;
    }
    const pending = opening.get(name);
    if (pending) return pending;
    if (!create && !exists(name)) throw new HttpError(404, `database "${name}" does not exist`, 'DATABASE_NOT_FOUND');
    const p = HostedDatabase.open(dataDir, name, {
      durability: options.durability ?? 'normal',
      cacheKiB: options.cacheKiB ?? 256,
      writableTables: options.writeRules?.[name],
    });
    opening.set(name, p);
    try {
      const db = await p;
      open.set(name, db);
      await evict();
      return db;
    } finally {
      opening.delete(name);
    }
  }

  /** Closes least-recently-used idle databases beyond the limit. */
  async function evict(): Promise<void> {
    for (const [name, db] of open) {
      if (open.size <= maxOpen) break;
      if (db.pins > 0) continue;
      open.delete(name);
      await db.close();
    }
  }

  async function grantFor(req: http.IncomingMessage): Promise<Grant | null> {
    if (!authOn) return null;
    return verifyAuthorization(req.headers.authorization, options.authSecret!);
  }

  function allow(grant: Grant | null, name: string | null, need: Role): void {
    if (grant) authorize(grant, name, need);
  }

  async function readBody(req: http.IncomingMessage): Promise<Uint8Array> {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > maxBody) throw new HttpError(413, `request body of ${declared} bytes exceeds the limit of ${maxBody}`, 'BODY_TOO_LARGE');
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > maxBody) throw new HttpError(413, `request body exceeds the limit of ${maxBody} bytes`, 'BODY_TOO_LARGE');
      chunks.push(chunk as Buffer);
    }
    const buf = Buffer.concat(chunks);
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  async function pullUpdates(name: string, grant: Grant | null, req: http.IncomingMessage, res: http.ServerResponse): Promise<number> {
    allow(grant, name, 'read');
    const request = decodePullRequest(await readBody(req));
    const canCreate = !grant || grant.role !== 'read';
    const db = await database(name, canCreate);
    db.pins++;
    try {
      if (request.clientRevision !== '' && request.serverRevision === '' && request.longPollTimeoutMs > 0 && db.isCurrent(request.clientRevision)) {
        const abort = new AbortController();
        const onClose = (): void => abort.abort();
        res.on('close', onClose);
        shutdown.signal.addEventListener('abort', onClose);
        await db.waitForChange(Math.min(request.longPollTimeoutMs, maxLongPollMs), abort.signal);
        res.off('close', onClose);
        shutdown.signal.removeEventListener('abort', onClose);
      }
      db.lastUsedMs = Date.now();
      const body = db.pull(request);
      send(res, 200, 'application/protobuf', body);
      return 200;
    } finally {
      db.pins--;
    }
  }

  async function pipeline(name: string, grant: Grant | null, req: http.IncomingMessage, res: http.ServerResponse): Promise<number> {
    allow(grant, name, 'write');
    const raw = await readBody(req);
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder().decode(raw));
    } catch (e) {
      throw new ProtocolError(`the body is not valid JSON: ${(e as Error).message}`);
    }
    const db = await database(name, true);
    db.pins++;
    try {
      db.lastUsedMs = Date.now();
      const response = db.pipeline(body);
      send(res, 200, 'application/json', JSON.stringify(response));
      return 200;
    } finally {
      db.pins--;
    }
  }

  async function createDatabase(grant: Grant | null, req: http.IncomingMessage, res: http.ServerResponse): Promise<number> {
    let body: unknown;
    try {
      body = JSON.parse(new TextDecoder().decode(await readBody(req)));
    } catch {
      throw new ProtocolError('the body must be JSON: {"name": "..."}');
    }
    const name = (body as { name?: unknown } | null)?.name;
    if (typeof name !== 'string' || !NAME.test(name)) throw new HttpError(400, 'invalid database name', 'INVALID_NAME');
    allow(grant, name, 'admin');
    const existed = exists(name) || open.has(name);
    await database(name, true);
    send(res, existed ? 200 : 201, 'application/json', JSON.stringify({ name, created: !existed }));
    return existed ? 200 : 201;
  }

  async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<{ status: number; db: string }> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const parts = url.pathname.split('/').filter(Boolean).map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        throw new HttpError(400, 'malformed path', 'BAD_PATH');
      }
    });
    if (req.method === 'GET' && url.pathname === '/health') {
      send(res, 200, 'application/json', JSON.stringify({ ok: true, openDatabases: open.size }));
      return { status: 200, db: '-' };
    }
    if (req.method !== 'POST') throw new HttpError(405, `${req.method} is not supported here`, 'METHOD_NOT_ALLOWED');
    if (parts.length === 2 && parts[0] === 'admin' && parts[1] === 'databases') {
      const grant = await grantFor(req);
      return { status: await createDatabase(grant, req, res), db: '-' };
    }
    const endpoint = parts.slice(2).join('/');
    if (parts[0] !== 'db' || parts.length < 3 || (endpoint !== 'pull-updates' && endpoint !== 'v2/pipeline')) {
      throw new HttpError(404, `no such endpoint: ${url.pathname} (use /db/{name}/pull-updates or /db/{name}/v2/pipeline)`, 'NOT_FOUND');
    }
    const name = parts[1]!;
    if (!NAME.test(name)) throw new HttpError(400, `invalid database name ${JSON.stringify(name)}`, 'INVALID_NAME');
    const grant = await grantFor(req);
    const status = endpoint === 'pull-updates' ? await pullUpdates(name, grant, req, res) : await pipeline(name, grant, req, res);
    return { status, db: name };
  }

  function send(res: http.ServerResponse, status: number, type: string, body: string | Uint8Array): void {
    if (res.headersSent || res.destroyed) return;
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...cors });
    res.end(body);
  }

  const cors = {
    'access-control-allow-origin': '*',
    'access-control-allow-methods': 'GET, POST, OPTIONS',
    'access-control-allow-headers': 'authorization, content-type, accept-encoding',
    'access-control-max-age': '86400',
  };

  const server = http.createServer((req, res) => {
    const started = performance.now();
    if (req.method === 'OPTIONS') {
      res.writeHead(204, cors);
      res.end();
      return;
    }
    if (closing) {
      send(res, 503, 'application/json', JSON.stringify({ error: 'the server is shutting down', code: 'SHUTTING_DOWN' }));
      return;
    }
    route(req, res)
      .then(({ status, db }) => log(`info ${req.method} ${req.url} ${status} ${(performance.now() - started).toFixed(1)}ms db=${db}`))
      .catch((e: unknown) => {
        let status = 500;
        let code = 'INTERNAL';
        let message = e instanceof Error ? e.message : String(e);
        if (e instanceof HttpError) ({ status, code } = e);
        else if (e instanceof AuthError) {
          status = e.status;
          code = status === 401 ? 'UNAUTHORIZED' : 'FORBIDDEN';
        } else if (e instanceof ProtocolError) {
          status = 400;
          code = 'PROTOCOL_ERROR';
        } else if (e instanceof SqliteError) {
          status = 400;
          code = e.code;
        } else message = `internal error: ${message}`;
        send(res, status, 'application/json', JSON.stringify({ error: message, code }));
        log(`${status >= 500 ? 'error' : 'info'} ${req.method} ${req.url} ${status} ${(performance.now() - started).toFixed(1)}ms ${code}: ${message}`);
        // A body we refused to read must not be left half-received on a kept-alive socket.
        if (status === 413) req.socket.destroySoon?.();
      });
  });
  server.keepAliveTimeout = 5000;

  return {
    get openDatabases() {
      return open.size;
    },
    listen: () =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.port ?? 8080, options.host ?? '127.0.0.1', () => {
          const a = server.address() as AddressInfo;
          const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
          resolve({ host: a.address, port: a.port, url: `http://${host}:${a.port}` });
        });
      }),
    close: async () => {
      closing = true;
      shutdown.abort();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Long polls were just woken; nothing else may keep a socket (and the process) alive.
        server.closeAllConnections?.();
      });
      for (const db of open.values()) await db.close();
      open.clear();
    },
  };
}
