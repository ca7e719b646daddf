/**
 * protocol/: the wire formats of Turso's sync protocol, shared by Outpost's sync client
 * (sync/) and its server (server/), and the contract of a transport between them.
 *
 *   transport.ts      SyncTransport: what the sync engine needs of a server (this file)
 *   pull-updates.ts   protobuf messages of pull-updates, PullStreamReader
 *   hrana.ts          Hrana over HTTP (v2/pipeline): types and value codecs
 *   roaring.ts        page-selector bitmaps
 *   turso-tables.ts   the turso_sync_last_change_id table: DDL, SQL, PULL_GEN
 *   checksum.ts       FNV-1a, the checksum of Outpost's record formats
 *   ids.ts            random identifiers that travel on the wire
 *
 * Contract: formats only, no I/O (no fetch, no files, no timers), so both sides and tests can
 * use them anywhere. May import: errors.ts (and protobufjs), nothing else internal.
 *
 * `SyncTransport` is the seam between the sync engine and a server. The HTTP implementation is
 * sync/transport.ts; tests may pass their own (an in-process server, injected faults). Every
 * method fails only with `SyncError`, with one of these codes:
 *   NETWORK   the server could not be reached, or its answer broke off
 *   TIMEOUT   no complete answer within the transport's timeout
 *   AUTH      the server refused the credentials (HTTP 401/403)
 *   HTTP      any other failure status (5xx, 404, 429, an HTML page)
 *   PROTOCOL  the answer arrived but is not the protocol (truncated, malformed, wrong shape)
 * A timeout says nothing about what the server did: a request that timed out may have been
 * executed. Nothing local ever changes inside a transport.
 */
import type { PipelineRequest, PipelineResponse } from './hrana.js';
import { type PageData, type PullHeader, type PullRequest, PullStreamReader } from './pull-updates.js';
import { ProtocolError, SyncError } from '../errors.js';

/** A complete pull-updates answer. */
export interface PullResponse {
  header: PullHeader;
  /** Whole raw pages, in the order the server sent them. */
  pages: PageData[];
}

export interface SyncTransport {
  /**
   * One pull-updates request. Resolves only with a complete, well-formed answer (a header and
   * whole raw pages). Read-only on the server, so it is idempotent: a retry is always safe.
   * With `longPollTimeoutMs`, the server may hold the answer that long while nothing changed,
   * and the transport's timeout is extended by as much.
   */
  pull(request: Partial<PullRequest>): Promise<PullResponse>;
  /**
   * The same request, with the pages handed to `onPage` as they arrive instead of collected
   * (so a large answer never sits in memory whole). Resolves with the header once the whole
   * answer arrived well-formed; when it rejects, the pages already handed over belong to a
   * broken answer and must be thrown away. Optional: without it, callers use `pull`.
   */
  pullStream?(request: Partial<PullRequest>, onPage: (page: PageData, header: PullHeader) => void): Promise<PullHeader>;
  /**
   * One v2/pipeline request. Resolves with one result per request; a statement's SQL error is
   * a result (`step_errors`), not a rejection. Not idempotent: after NETWORK or TIMEOUT the
   * server may have executed it (only the answer was lost), so a caller that resends must make
   * the resend safe itself (push reads its acknowledged change id from the server first).
   */
  pipeline(request: PipelineRequest): Promise<PipelineResponse>;
  /**
   * Ends every request in flight at once (each fails with `SyncError('NETWORK')`); with
   * `forever`, every later request fails the same way (the database closed). Optional: a
   * transport without it lets its requests run out.
   */
  abort?(forever: boolean): void;
  /** Bytes sent and received so far, by answered and failed requests alike; only grows. */
  readonly traffic: { readonly sentBytes: number; readonly receivedBytes: number };
}

/**
 * A pull-updates answer as every transport must check it: a complete, well-formed stream of
 * raw pages. Anything else is `SyncError('PROTOCOL')`.
 */
export function readPullAnswer(bytes: Uint8Array): PullResponse {
  try {
    const reader = new PullStreamReader();
    const pages = reader.push(bytes);
    const header = reader.finish();
    if (header.encoding === 'zstd') throw new ProtocolError('the server sent zstd pages, which were not asked for');
    return { header, pages };
  } catch (e) {
    if (e instanceof ProtocolError) throw new SyncError(`pull-updates: ${e.message}`, 'PROTOCOL');
    throw e;
  }
}

/**
 * `readPullAnswer` for an answer that arrives in pieces: `push` each piece as it comes and take
 * the pages it completes; `finish` at the end returns the header. The same checks, the same
 * `SyncError('PROTOCOL')`; a page is a view into the piece that carried it.
 */
export class PullAnswerStream {
  private readonly reader = new PullStreamReader();

  push(chunk: Uint8Array): PageData[] {
    return asSyncError(() => {
      const pages = this.reader.push(chunk);
      if (this.reader.header?.encoding === 'zstd') throw new ProtocolError('the server sent zstd pages, which were not asked for');
      return pages;
    });
  }

  /** The header, once a piece carried it. */
  get header(): PullHeader | null {
    return this.reader.header;
  }

  finish(): PullHeader {
    return asSyncError(() => this.reader.finish());
  }
}

function asSyncError<T>(read: () => T): T {
  try {
    return read();
  } catch (e) {
    if (e instanceof ProtocolError) throw new SyncError(`pull-updates: ${e.message}`, 'PROTOCOL');
    throw e;
  }
}

/**
 * A v2/pipeline answer as every transport must check it: JSON with one result per request.
 * `describe`, when given, adds what the body held to the message for an answer that is not JSON.
 */
export function readPipelineAnswer(req: PipelineRequest, bytes: Uint8Array, describe?: (bytes: Uint8Array) => string): PipelineResponse {
  let answer: PipelineResponse;
  try {
    // The answer's shape is checked right below.
    answer = JSON.parse(new TextDecoder().decode(bytes)) as PipelineResponse;
  } catch {
    throw new SyncError(`v2/pipeline: the answer is not JSON${describe ? `: ${describe(bytes)}` : ''}`, 'PROTOCOL');
  }
  if (!answer || !Array.isArray(answer.results) || answer.results.length !== req.requests.length) {
    throw new SyncError('v2/pipeline: the answer does not have one result per request', 'PROTOCOL');
  }
  return answer;
}
