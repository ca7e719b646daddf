/**
 * The HTTP sync transport (`SyncTransport`, protocol/transport.ts, states the contract): POST
 * requests to `{url}/pull-updates` and `{url}/v2/pipeline` with the bearer token, a timeout,
 * and errors classified as `SyncError` (NETWORK, TIMEOUT, AUTH, HTTP, PROTOCOL). A token given
 * as a function is asked again once after a 401. `pull` resolves only with a complete,
 * well-formed response (header and whole pages); `pipeline` only with a JSON body of the Hrana
 * shape with one result per request.
 */
import { SyncError, withCause } from '../errors.js';
import type { PipelineRequest, PipelineResponse } from '../protocol/hrana.js';
import { type PullRequest, encodePullRequest } from '../protocol/pull-updates.js';
import { type PullResponse, type SyncTransport, readPipelineAnswer, readPullAnswer } from '../protocol/transport.js';
import type { TokenSource } from '../types.js';

export interface TransportOptions {
  url: string;
  authToken?: TokenSource;
  /** Per request, excluding long polls (default 30 s). */
  timeoutMs?: number | undefined;
  /** The fetch to use (a proxy, extra headers, tests); the global one by default. */
  fetch?: typeof fetch | undefined;
}

export class HttpTransport implements SyncTransport {
  private readonly base: string;
  readonly traffic = { sentBytes: 0, receivedBytes: 0 };
  /** Requests in flight, so `abort` can end them. */
  private readonly inFlight = new Set<AbortController>();
  private aborted = false;

  constructor(private readonly options: TransportOptions) {
    this.base = options.url.replace(/\/+$/, '');
  }

  abort(forever: boolean): void {
    if (forever) this.aborted = true;
    for (const controller of this.inFlight) controller.abort('aborted');
  }

  private async token(refresh: boolean): Promise<string | undefined> {
    const t = this.options.authToken;
    return typeof t === 'function' ? t({ refresh }) : t;
  }

  private async request(path: string, body: Uint8Array, contentType: string, timeoutMs: number): Promise<Uint8Array> {
    for (let attempt = 0; ; attempt++) {
      const token = await this.token(attempt > 0);
      if (this.aborted) throw new SyncError(`${path}: the database closed`, 'NETWORK');
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort('timeout'), timeoutMs);
      this.inFlight.add(controller);
      let res: Response;
      try {
        res = await (this.options.fetch ?? fetch)(`${this.base}/${path}`, {
          method: 'POST',
          headers: { 'content-type': contentType, ...(token ? { authorization: `Bearer ${token}` } : {}) },
          body: body as BodyInit,
          signal: controller.signal,
        });
      } catch (e) {
        clearTimeout(timer);
        this.inFlight.delete(controller);
        if (controller.signal.reason === 'aborted') throw new SyncError(`${path}: aborted (offline, or the database closed)`, 'NETWORK');
        if (controller.signal.aborted) throw new SyncError(`${path}: no answer from ${this.base} within ${timeoutMs} ms`, 'TIMEOUT');
        throw withCause(new SyncError(`${path}: cannot reach ${this.base} (${(e as Error).message})`, 'NETWORK'), e);
      }
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(await res.arrayBuffer());
      } catch (e) {
        throw withCause(new SyncError(`${path}: the response broke off (${(e as Error).message})`, controller.signal.reason === 'timeout' ? 'TIMEOUT' : 'NETWORK'), e);
      } finally {
        clearTimeout(timer);
        this.inFlight.delete(controller);
      }
      this.traffic.sentBytes += body.length;
      this.traffic.receivedBytes += bytes.length;
      if (res.status === 401 && attempt === 0 && typeof this.options.authToken === 'function') continue;
      if (res.status === 401 || res.status === 403) {
        throw new SyncError(`${path}: ${res.status} ${describe(bytes)}`, 'AUTH', res.status);
      }
      if (!res.ok) {
        const error = new SyncError(`${path}: the server answered ${res.status}: ${describe(bytes)}`, 'HTTP', res.status);
        const retryAfterS = Number(res.headers.get('retry-after') ?? '');
        if (res.headers.has('retry-after') && Number.isFinite(retryAfterS) && retryAfterS >= 0) error.retryAfterMs = retryAfterS * 1000;
        throw error;
      }
      return bytes;
    }
  }

  async pull(req: Partial<PullRequest>): Promise<PullResponse> {
    const timeout = (this.options.timeoutMs ?? 30_000) + (req.longPollTimeoutMs ?? 0);
    const bytes = await this.request('pull-updates', encodePullRequest(req), 'application/protobuf', timeout);
    return readPullAnswer(bytes);
  }

  async pipeline(req: PipelineRequest): Promise<PipelineResponse> {
    const bytes = await this.request('v2/pipeline', new TextEncoder().encode(JSON.stringify(req)), 'application/json', this.options.timeoutMs ?? 30_000);
    return readPipelineAnswer(req, bytes, describe);
  }
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
