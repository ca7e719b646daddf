/**
 * The sync transport's requests over node:http and node:https (sync/http-send.ts states a
 * sender's contract), with one keep-alive Agent per scheme for the process. Reading a long
 * answer this way costs about half the CPU of Node's global `fetch` (undici's WHATWG streams):
 * 244–256 ms against 491–725 ms for 200 MB (issue 15). node/index.ts and node/engine-thread.ts
 * open synced databases with `openSyncedOverNode`, which uses it unless the app gave its own
 * `sync.fetch` (which always wins) or the caller its own transport.
 *
 * Errors keep undici's classification: a request whose connection died before any answer
 * rejects with node's error (ECONNRESET for "socket hang up", EPIPE) as the `cause`, so
 * transport.ts resends it when it may. Idle pooled sockets are unref'd by the Agent, so a
 * script that never closes its database still exits.
 *
 * May import: sync/ (the sender's types, openSynced), node builtins.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { HttpAnswer, HttpRequest, HttpSend } from '../sync/http-send.js';
import { openSynced } from '../sync/open-synced.js';

const agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };

/** How many 307/308 redirects a request follows, as fetch does (its limit is 20). */
const REDIRECTS_MAX = 20;

/**
 * One POST over node:http(s). A 307 or 308 is followed with the same body, as fetch follows it;
 * the token is not sent to another origin (fetch drops it too).
 */
export const nodeSend: HttpSend = async (url, request) => {
  for (let hops = 0; ; hops++) {
    const answer = await post(url, request);
    const location = answer.header('location');
    if ((answer.status !== 307 && answer.status !== 308) || location === null || hops === REDIRECTS_MAX) return answer;
    answer.cancel();
    const next = new URL(location, url);
    if (next.origin !== new URL(url).origin) {
      const { authorization: _, ...headers } = request.headers;
      request = { ...request, headers };
    }
    url = next.href;
  }
};

function post(url: string, request: HttpRequest): Promise<HttpAnswer> {
  return new Promise<HttpAnswer>((resolve, reject) => {
    const target = new URL(url);
    const secure = target.protocol === 'https:';
    const headers = { ...request.headers, 'content-length': String(request.body.length) };
    const options = { method: 'POST', headers, signal: request.signal };
    const req = secure ? https.request(target, { ...options, agent: agents.https }) : http.request(target, { ...options, agent: agents.http });
    // `on`, not `once`: a later error of the same request (its socket after the answer) must find a listener.
    req.on('error', (e) => reject(new Error(`request failed (${e.message})`, { cause: e })));
    req.once('response', (res) => resolve(new NodeAnswer(res, request.signal)));
    req.end(request.body);
  });
}

class NodeAnswer implements HttpAnswer {
  private readonly pieces: AsyncIterator<Buffer>;

  constructor(
    private readonly res: http.IncomingMessage,
    signal: AbortSignal,
  ) {
    this.pieces = res[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    // The request's signal ends a body being read, too.
    const stop = (): void => {
      if (!res.complete) res.destroy(new Error('aborted'));
    };
    // The body's errors reach `read`/`bytes` through the iterator, which listens only once read:
    // one before that (an abort, a reset) must not be an uncaught 'error' event.
    res.on('error', () => {});
    signal.addEventListener('abort', stop, { once: true });
    res.once('close', () => signal.removeEventListener('abort', stop));
  }

  get status(): number {
    return this.res.statusCode ?? 0;
  }

  header(name: string): string | null {
    const value = this.res.headers[name.toLowerCase()];
    return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
  }

  async read(): Promise<Uint8Array | null> {
    const { done, value } = await this.pieces.next();
    if (done) return this.ended();
    // A plain view: Buffer's own methods (slice) differ from Uint8Array's.
    return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }

  async bytes(): Promise<Uint8Array> {
    const parts: Buffer[] = [];
    for (;;) {
      const { done, value } = await this.pieces.next();
      if (done) break;
      parts.push(value);
    }
    this.ended();
    const whole = Buffer.concat(parts);
    return new Uint8Array(whole.buffer, whole.byteOffset, whole.byteLength);
  }

  /** The body ended: whole, or cut short without an error (which node reports as `aborted`). */
  private ended(): null {
    if (!this.res.complete) throw new Error('the answer broke off', { cause: Object.assign(new Error('aborted'), { code: 'ECONNRESET' }) });
    return null;
  }

  cancel(): void {
    if (!this.res.complete) this.res.destroy();
  }
}

/** open-synced.ts `openSynced`, its HTTP requests over node:http unless `sync.fetch` or `transport` is given. */
export const openSyncedOverNode: typeof openSynced = (directory, options, sync, transport, behaviour) =>
  openSynced(directory, options, sync, transport, behaviour, nodeSend);
