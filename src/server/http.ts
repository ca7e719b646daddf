/**
 * The HTTP plumbing under the server's routes: reading a bounded body, CORS headers, JSON answers, and
 * the one mapping from a thrown error to a status and an error code. An error mapped here is
 * answered (front.ts) as JSON `{ "error": message, "message": message, "code": CODE }`: the
 * message twice, because `@libsql/client` reads an error's code only beside a `message`:
 * - `HttpError`: its own status and code (404 DATABASE_NOT_FOUND, 413 BODY_TOO_LARGE, ...);
 * - `AuthError`: 401 UNAUTHORIZED, 403 FORBIDDEN, or 503 AUTH_UNAVAILABLE (the JWKS is unreachable);
 * - `ProtocolError` (a malformed request): 400 PROTOCOL_ERROR;
 * - `SqliteError` (outside a pipeline's per-statement results): 400 and SQLite's code;
 * - anything else is a bug: 500 INTERNAL, logged as an error.
 */
import type * as http from 'node:http';
import { SqliteError } from '../errors.js';
import { ProtocolError } from '../errors.js';
import { AuthError } from './auth.js';

/** An error the server answers with a given status and code. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
    /** Headers the answer carries besides the usual ones (a 429's Retry-After). */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

/**
 * Which origins browsers may call from: `'*'` (the default: the bearer token, not the origin,
 * is the credential) or a list (`--cors-origin`, repeatable), for deployments that want
 * browsers on other sites refused outright.
 */
export type CorsOrigins = '*' | readonly string[];

const CORS_COMMON = {
  'access-control-allow-methods': 'GET, POST, OPTIONS',
  'access-control-allow-headers': 'authorization, content-type, accept-encoding',
  'access-control-max-age': '86400',
};

/**
 * The CORS headers for a request from `origin`. With a list, an origin on it is echoed back
 * (with `Vary: Origin`, so caches keep answers apart) and any other gets no CORS headers at
 * all, which the browser enforces.
 */
export function corsHeaders(origins: CorsOrigins, origin: string | undefined): Record<string, string> {
  if (origins === '*') return { 'access-control-allow-origin': '*', ...CORS_COMMON };
  if (origin !== undefined && origins.includes(origin)) return { 'access-control-allow-origin': origin, vary: 'Origin', ...CORS_COMMON };
  return { vary: 'Origin' };
}

/** The headers every request gets with the default `'*'`, listed once: they are set on every answer. */
const CORS_ANY = Object.entries(corsHeaders('*', undefined));

/** Sets the CORS headers on an answer before it is written (send() and the pull spool keep them). */
export function setCorsHeaders(res: http.ServerResponse, origins: CorsOrigins, origin: string | undefined): void {
  for (const [name, value] of origins === '*' ? CORS_ANY : Object.entries(corsHeaders(origins, origin))) res.setHeader(name, value);
}

/** Answers a CORS preflight (its headers set by setCorsHeaders). */
export function sendPreflight(res: http.ServerResponse): void {
  res.writeHead(204);
  res.end();
}

/** Sends one whole answer; does nothing when the client is gone or an answer was already sent. */
export function send(res: http.ServerResponse, status: number, type: string, body: string | Uint8Array): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export function sendJson(res: http.ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json', JSON.stringify(value));
}

/**
 * Sends an error answer in the one shape every error has: `{ error, message, code }`. The text
 * is in both fields because Hrana clients (@libsql/client) read a code only beside a `message`.
 */
export function sendError(res: http.ServerResponse, status: number, message: string, code: string): void {
  sendJson(res, status, { error: message, message, code });
}

/**
 * The request bodies the server holds, each from its first byte until its route is done with it
 * (a parsed pipeline waiting for its database's turn still holds its body, whether or not its
 * client is still there): one holder's at most
 * `bytesMax` together, so a token sending many large requests at once cannot grow the process
 * without bound, nor, as a bound on all of them together would let it, take every other
 * tenant's room. A holder is whom a token's requests count against (server.ts `streamHolder`:
 * its subject; for a token without one, the databases it names; for the admin and an
 * unauthenticated server, the database). A request whose next bytes would pass its holder's
 * bound gets 503 BUSY, Retry-After 1, and what it held is let go with that answer.
 */
export class BodyBudget {
  private held = 0;
  private readonly byHolder = new Map<string, number>();
  private readonly byRequest = new WeakMap<http.IncomingMessage, { holder: string; bytes: number }>();

  constructor(readonly bytesMax: number) {}

  /** Bytes held now, all holders together. */
  get heldBytes(): number {
    return this.held;
  }

  /** Counts `req`'s body against `holder`: what readBody calls with each piece. */
  forRequest(req: http.IncomingMessage, holder: string): (bytes: number) => void {
    return (bytes) => this.take(req, holder, bytes);
  }

  /** Counts `bytes` more of `req`'s body; throws 503 BUSY, counting nothing, when that would pass the holder's bound. */
  private take(req: http.IncomingMessage, holder: string, bytes: number): void {
    const holderHeld = this.byHolder.get(holder) ?? 0;
    if (holderHeld + bytes > this.bytesMax) {
      throw new HttpError(503, `this token's requests hold ${holderHeld} bytes of bodies being read or waiting, its bound of ${this.bytesMax}; retry once some are answered`, 'BUSY', { 'retry-after': '1' });
    }
    this.held += bytes;
    this.byHolder.set(holder, holderHeld + bytes);
    const mine = this.byRequest.get(req);
    if (mine) mine.bytes += bytes;
    else this.byRequest.set(req, { holder, bytes });
  }

  /** The route is done with `req` (answered, or failed): its bytes no longer count. A client gone earlier does not end the count: its request may still wait to run. */
  release(req: http.IncomingMessage): void {
    const mine = this.byRequest.get(req);
    if (!mine) return;
    this.byRequest.delete(req);
    this.held -= mine.bytes;
    const left = (this.byHolder.get(mine.holder) ?? 0) - mine.bytes;
    if (left > 0) this.byHolder.set(mine.holder, left);
    else this.byHolder.delete(mine.holder);
  }
}

/**
 * Reads the whole body, refusing (413) one over `bodyBytesMax` before or while it arrives, and
 * (503) one whose bytes `count` refuses (`BodyBudget.forRequest`). On
 * refusal the rest is not read (the caller closes the connection after answering), and a later
 * error on the request stream is swallowed: a client that misbehaves must never crash the
 * process with an unhandled 'error' event.
 */
export function readBody(req: http.IncomingMessage, bodyBytesMax: number, count?: (bytes: number) => void): Promise<Uint8Array> {
  // From here on the request always has an error listener.
  req.on('error', () => {});
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > bodyBytesMax) {
    return Promise.reject(new HttpError(413, `request body of ${declared} bytes exceeds the limit of ${bodyBytesMax}`, 'BODY_TOO_LARGE'));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const stop = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('aborted', onAborted);
      req.off('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > bodyBytesMax) {
        stop();
        req.pause();
        reject(new HttpError(413, `request body exceeds the limit of ${bodyBytesMax} bytes`, 'BODY_TOO_LARGE'));
        return;
      }
      try {
        count?.(chunk.length);
      } catch (e) {
        stop();
        req.pause();
        reject(e);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      stop();
      const buf = Buffer.concat(chunks);
      resolve(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
    };
    const onAborted = (): void => {
      stop();
      reject(new HttpError(400, 'the client closed the request before its body ended', 'BODY_ABORTED'));
    };
    const onError = (e: Error): void => {
      stop();
      reject(new HttpError(400, `the request body could not be read: ${e.message}`, 'BAD_BODY'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('aborted', onAborted);
    req.on('error', onError);
  });
}

/** The request path split at `/` and percent-decoded; a bad escape is a 400. */
export function pathParts(pathname: string): string[] {
  return pathname
    .split('/')
    .filter(Boolean)
    .map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        throw new HttpError(400, 'malformed path', 'BAD_PATH');
      }
    });
}

export interface ErrorAnswer {
  status: number;
  code: string;
  message: string;
  headers: Readonly<Record<string, string>>;
}

const AUTH_CODES = { 401: 'UNAUTHORIZED', 403: 'FORBIDDEN', 503: 'AUTH_UNAVAILABLE' } as const;

/** The answer to a request that threw `e` (see the header for the mapping). */
export function errorAnswer(e: unknown): ErrorAnswer {
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof HttpError) return { status: e.status, code: e.code, message, headers: e.headers };
  if (e instanceof AuthError) return { status: e.status, code: AUTH_CODES[e.status], message, headers: e.status === 503 ? { 'retry-after': '5' } : {} };
  if (e instanceof ProtocolError) return { status: 400, code: 'PROTOCOL_ERROR', message, headers: {} };
  if (e instanceof SqliteError) return { status: 400, code: e.code, message, headers: {} };
  return { status: 500, code: 'INTERNAL', message: `internal error: ${message}`, headers: {} };
}
