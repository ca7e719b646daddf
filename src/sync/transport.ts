/**
 * The HTTP sync transport (`SyncTransport`, protocol/transport.ts, states the contract): POST
 * requests to `{url}/pull-updates` and `{url}/v2/pipeline` with the bearer token, a timeout,
 * and errors classified as `SyncError` (NETWORK, TIMEOUT, AUTH, HTTP, PROTOCOL). A token given
 * as a function is asked again once after a 401. `pull` resolves only with a complete,
 * well-formed response (header and whole pages); `pipeline` only with a JSON body of the Hrana
 * shape with one result per request.
 *
 * A request whose connection dies under it before any answer (undici's "other side closed", a
 * reset: typically a kept-alive connection the server or a proxy had already closed) is sent
 * again, up to `DEAD_CONNECTION_RESENDS` times (after a server restart every pooled connection
 * is dead, and each is found so only when used), when the server may receive it twice without
 * harm: a pull or a pipeline of SELECTs outside a stream (read-only), or a push batch gated on
 * its change ids (push-batch.ts: a batch the server already applied applies nothing). Any
 * other pipeline (a stream's later parts, writes that are not pushes) fails with NETWORK, as
 * before.
 *
 * Requests go out through an `HttpSend` (http-send.ts): `fetch` by default, a user's
 * `sync.fetch` whenever given, or the sender Node's entry passes (node:http).
 */
import { SyncError, withCause } from '../errors.js';
import type { PipelineRequest, PipelineResponse } from '../protocol/hrana.js';
import { BATCH_ALREADY_APPLIED, isSyncPush } from '../protocol/turso-tables.js';
import { type PageData, type PullHeader, type PullRequest, encodePullRequest } from '../protocol/pull-updates.js';
import { type HttpAnswer, type HttpSend, fetchSend } from './http-send.js';
import { PullAnswerStream, type PullResponse, type SyncTransport, readPipelineAnswer, readPullAnswer } from '../protocol/transport.js';
import type { TokenSource } from '../types.js';

export interface TransportOptions {
  url: string;
  authToken?: TokenSource;
  /** Per request, excluding long polls (default 30 s); for `pullStream`, the longest wait for the next piece of the body. */
  timeoutMs?: number | undefined;
  /** The fetch to use (a proxy, extra headers, tests); the global one by default. */
  fetch?: typeof fetch | undefined;
  /** How requests are sent when `fetch` is not given (http-send.ts); `fetch()` by default. */
  send?: HttpSend | undefined;
}

export class HttpTransport implements SyncTransport {
  private readonly base: string;
  readonly traffic = { sentBytes: 0, receivedBytes: 0 };
  /** Requests in flight, so `abort` can end them. */
  private readonly inFlight = new Set<AbortController>();
  private aborted = false;
  private readonly send: HttpSend;

  constructor(private readonly options: TransportOptions) {
    this.base = options.url.replace(/\/+$/, '');
    // A user's fetch always wins (README).
    this.send = options.fetch || !options.send ? fetchSend(() => options.fetch ?? fetch) : options.send;
  }

  abort(forever: boolean): void {
    if (forever) this.aborted = true;
    for (const controller of this.inFlight) controller.abort('aborted');
  }

  private async token(refresh: boolean): Promise<string | undefined> {
    const t = this.options.authToken;
    return typeof t === 'function' ? t({ refresh }) : t;
  }

  /**
   * Sends one request and hands a successful response to `read`; a failure status becomes the
   * matching `SyncError`. The timeout covers reading the body too. With `resendable`, a request
   * whose connection died before any answer is sent again (see the header).
   */
  private async request<T>(
    path: string,
    body: Uint8Array,
    contentType: string,
    timeoutMs: number,
    read: (res: HttpAnswer, progressed: () => void) => Promise<T>,
    resendable: boolean,
  ): Promise<T> {
    let refresh = false;
    let resends = 0;
    for (;;) {
      const token = await this.token(refresh);
      if (this.aborted) throw new SyncError(`${path}: the database closed`, 'NETWORK');
      const controller = new AbortController();
      let timer = setTimeout(() => controller.abort('timeout'), timeoutMs);
      // A streamed body that keeps arriving may take longer than the timeout in all: each piece restarts it.
      const progressed = (): void => {
        clearTimeout(timer);
        timer = setTimeout(() => controller.abort('timeout'), timeoutMs);
      };
      this.inFlight.add(controller);
      let res: HttpAnswer;
      try {
        res = await this.send(`${this.base}/${path}`, {
          headers: { 'content-type': contentType, ...(token ? { authorization: `Bearer ${token}` } : {}) },
          body,
          signal: controller.signal,
        });
      } catch (e) {
        clearTimeout(timer);
        this.inFlight.delete(controller);
        if (controller.signal.reason === 'aborted') throw new SyncError(`${path}: aborted (offline, or the database closed)`, 'NETWORK');
        if (controller.signal.aborted) throw new SyncError(`${path}: no answer from ${this.base} within ${timeoutMs} ms`, 'TIMEOUT');
        if (resendable && resends < DEAD_CONNECTION_RESENDS && deadConnection(e)) {
          resends++;
          continue;
        }
        throw withCause(new SyncError(`${path}: cannot reach ${this.base} (${(e as Error).message})`, 'NETWORK'), e);
      }
      this.traffic.sentBytes += body.length;
      try {
        if (res.status >= 200 && res.status < 300) return await read(res, progressed);
        const bytes = await this.bodyBytes(res);
        if (res.status === 401 && !refresh && typeof this.options.authToken === 'function') {
          refresh = true;
          continue;
        }
        if (res.status === 401 || res.status === 403) {
          throw new SyncError(`${path}: ${res.status} ${describe(bytes)}`, 'AUTH', res.status);
        }
        const error = new SyncError(`${path}: the server answered ${res.status}: ${describe(bytes)}`, 'HTTP', res.status);
        const retryAfter = res.header('retry-after');
        const retryAfterS = Number(retryAfter ?? '');
        if (retryAfter !== null && Number.isFinite(retryAfterS) && retryAfterS >= 0) error.retryAfterMs = retryAfterS * 1000;
        throw error;
      } catch (e) {
        if (e instanceof SyncError) throw e;
        throw withCause(new SyncError(`${path}: the response broke off (${(e as Error).message})`, controller.signal.reason === 'timeout' ? 'TIMEOUT' : 'NETWORK'), e);
      } finally {
        clearTimeout(timer);
        this.inFlight.delete(controller);
      }
    }
  }

  /** The whole body, counted as received. */
  private async bodyBytes(res: HttpAnswer): Promise<Uint8Array> {
    const bytes = await res.bytes();
    this.traffic.receivedBytes += bytes.length;
    return bytes;
  }

  async pull(req: Partial<PullRequest>): Promise<PullResponse> {
    const timeout = (this.options.timeoutMs ?? 30_000) + (req.longPollTimeoutMs ?? 0);
    return this.request('pull-updates', encodePullRequest(req), 'application/protobuf', timeout, async (res) => readPullAnswer(await this.bodyBytes(res)), true);
  }

  async pullStream(req: Partial<PullRequest>, onPage: (page: PageData, header: PullHeader) => void): Promise<PullHeader> {
    const timeout = (this.options.timeoutMs ?? 30_000) + (req.longPollTimeoutMs ?? 0);
    // A failure of the caller's own (a page it could not store) is its error, not the network's.
    const failure: { error?: unknown } = {};
    const take = (page: PageData, header: PullHeader): void => {
      try {
        onPage(page, header);
      } catch (e) {
        failure.error = e;
        throw e;
      }
    };
    const read = async (res: HttpAnswer, progressed: () => void): Promise<PullHeader> => {
      const answer = new PullAnswerStream();
      try {
        for (;;) {
          const value = await res.read();
          if (value === null) break;
          this.traffic.receivedBytes += value.length;
          progressed();
          const pages = answer.push(value);
          // The header is the first message, so every page comes after it.
          for (const page of pages) take(page, answer.header!);
        }
      } finally {
        // A failed page write ends the read early: the rest of the body is not wanted.
        res.cancel();
      }
      return answer.finish();
    };
    try {
      return await this.request('pull-updates', encodePullRequest(req), 'application/protobuf', timeout, read, true);
    } catch (e) {
      throw 'error' in failure ? failure.error : e;
    }
  }

  async pipeline(req: PipelineRequest): Promise<PipelineResponse> {
    const json = JSON.stringify(req);
    const bytes = await this.request('v2/pipeline', new TextEncoder().encode(json), 'application/json', this.options.timeoutMs ?? 30_000, (res) => this.bodyBytes(res), resendablePipeline(req, json));
    return readPipelineAnswer(req, bytes, describe);
  }
}

/** How often a request is sent again after its connection died under it (see the header). */
const DEAD_CONNECTION_RESENDS = 3;

/**
 * A pipeline the server may receive twice without harm: a push batch gated on its change ids
 * (push-batch.ts; `json`, the request as sent, names the gate), or one that only reads outside a stream (the acknowledgement a push reads
 * first: every statement a SELECT, no baton).
 */
function resendablePipeline(req: PipelineRequest, json: string): boolean {
  if (isSyncPush(req)) return json.includes(BATCH_ALREADY_APPLIED);
  const select = (stmt: { sql?: string | null }): boolean => /^\s*SELECT\b/i.test(stmt.sql ?? '');
  return req.baton === null && req.requests.every((r) => (r.type === 'execute' ? select(r.stmt) : r.type === 'batch' ? r.batch.steps.every((s) => select(s.stmt)) : r.type === 'close'));
}

/** The connection died under the request before any answer: undici's "other side closed", or a reset. */
function deadConnection(e: unknown): boolean {
  const code = (e as { cause?: { code?: unknown } } | null)?.cause?.code;
  return code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE';
}

/** A short, printable description of an error body (JSON error, text, or binary). */
function describe(bytes: Uint8Array): string {
  const text = new TextDecoder().decode(bytes.subarray(0, 300));
  try {
    const j = JSON.parse(text) as { error?: unknown; message?: unknown };
    if (typeof j.error === 'string') return j.error;
    if (typeof j.message === 'string') return j.message;
  } catch {
    // not JSON
  }
  return /<html|<!doctype/i.test(text) ? 'an HTML page instead of a protocol answer' : text.replace(/[^\x20-\x7e]+/g, ' ').trim() || '(empty body)';
}
