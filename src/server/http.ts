/**
 * The HTTP plumbing under the server's routes: reading a bounded body, CORS, JSON answers, and
 * the one mapping from a thrown error to a status and an error code. Every error answer is
 * JSON `{ "error": message, "code": CODE }`:
 * - `HttpError`: its own status and code (404 DATABASE_NOT_FOUND, 413 BODY_TOO_LARGE, ...);
 * - `AuthError`: 401 UNAUTHORIZED or 403 FORBIDDEN;
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
  ) {
    super(message);
  }
}

/** Browsers may call from any origin: the bearer token, not the origin, is the credential. */
export const CORS_HEADERS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, POST, OPTIONS',
  'access-control-allow-headers': 'authorization, content-type, accept-encoding',
  'access-control-max-age': '86400',
};

/** Answers a CORS preflight. */
export function sendPreflight(res: http.ServerResponse): void {
  res.writeHead(204, CORS_HEADERS);
  res.end();
}

/** Sends one whole answer; does nothing when the client is gone or an answer was already sent. */
export function send(res: http.ServerResponse, status: number, type: string, body: string | Uint8Array): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...CORS_HEADERS });
  res.end(body);
}

export function sendJson(res: http.ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json', JSON.stringify(value));
}

/** Reads the whole body, refusing (413) one over `bodyBytesMax` before or while it arrives. */
export async function readBody(req: http.IncomingMessage, bodyBytesMax: number): Promise<Uint8Array> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > bodyBytesMax) throw new HttpError(413, `request body of ${declared} bytes exceeds the limit of ${bodyBytesMax}`, 'BODY_TOO_LARGE');
  const chunks: Buffer[] = [];
  let size = 0;
  // Without setEncoding, a request stream yields Buffers.
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > bodyBytesMax) throw new HttpError(413, `request body exceeds the limit of ${bodyBytesMax} bytes`, 'BODY_TOO_LARGE');
    chunks.push(chunk);
  }
  const buf = Buffer.concat(chunks);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
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
}

/** The answer to a request that threw `e` (see the header for the mapping). */
export function errorAnswer(e: unknown): ErrorAnswer {
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof HttpError) return { status: e.status, code: e.code, message };
  if (e instanceof AuthError) return { status: e.status, code: e.status === 401 ? 'UNAUTHORIZED' : 'FORBIDDEN', message };
  if (e instanceof ProtocolError) return { status: 400, code: 'PROTOCOL_ERROR', message };
  if (e instanceof SqliteError) return { status: 400, code: e.code, message };
  return { status: 500, code: 'INTERNAL', message: `internal error: ${message}` };
}
