/**
 * A `SyncTransport` (protocol/transport.ts states the contract) that calls one `HostedDatabase`
 * in the same process: what the HTTP transport and the server's routes do together, without a
 * socket. The seeded sync simulation runs thousands of seeds on it; a conformance suite
 * (test/sync/transport-conformance.test.ts) runs the same checks against it and the HTTP one.
 *
 * Same semantics as `POST /db/{name}/pull-updates` and `POST /db/{name}/v2/pipeline`
 * (server.ts), request by request:
 * - The request travels as the bytes HTTP would carry (protobuf, or JSON both ways), so what
 *   changes on the wire changes here too, and `traffic` counts those bytes: answers and error
 *   answers, never a request that failed on the network.
 * - A body over `maxBodyBytes` is refused (413); a pull that is current with a long poll waits
 *   for a commit or the poll's end (at most `maxLongPollMs`); the database stays pinned
 *   meanwhile, as it does for a request in the server.
 * - A failure is the `SyncError` the HTTP transport makes of the server's error answer: the
 *   status and code come from the same mapping (http.ts `errorAnswer`), 401/403 as AUTH and any
 *   other status as HTTP with the status; a malformed answer is PROTOCOL.
 * - There are no tokens: whoever holds the transport may do everything (a server with
 *   `auth: false`), and there are no timeouts, since nothing can hang on a network.
 *
 * Faults, for simulations: `faults(route)` decides each request's fate before it runs.
 * 'offline' fails with NETWORK and the server never sees the request; 'lose-answer' runs it on
 * the server and then fails with NETWORK, as a connection that broke after the server
 * answered. `SeededFaults` makes those decisions from a seed.
 */
import { ProtocolError, SyncError } from '../errors.js';
import type { PipelineRequest, PipelineResponse } from '../protocol/hrana.js';
import { type PullRequest, decodePullRequest, encodePullRequest } from '../protocol/pull-updates.js';
import { type PullResponse, type SyncTransport, readPipelineAnswer, readPullAnswer } from '../protocol/transport.js';
import type { HostedDatabase } from './hosted-database.js';
import { HttpError, errorAnswer } from './http.js';

/** The two requests of the protocol, named by their path under `/db/{name}/`. */
export type TransportRoute = 'pull-updates' | 'v2/pipeline';

/** What happens to one request: delivered, never sent, or run by the server with its answer lost. */
export type NetworkFault = 'deliver' | 'offline' | 'lose-answer';

export interface InProcessTransportOptions {
  /** Largest request body accepted (default 32 MiB, the server's default). */
  maxBodyBytes?: number;
  /** Longest long poll honoured (default 60 s, the server's default). */
  maxLongPollMs?: number;
  /** Decides each request's fate; every request is delivered when absent. */
  faults?: (route: TransportRoute) => NetworkFault;
}

export class InProcessTransport implements SyncTransport {
  readonly traffic = { sentBytes: 0, receivedBytes: 0 };
  private readonly bodyBytesMax: number;
  private readonly longPollMsMax: number;
  /** Aborted by close(): ends every long poll, as the server's shutdown does. */
  private readonly shutdown = new AbortController();

  constructor(
    private readonly db: HostedDatabase,
    private readonly options: InProcessTransportOptions = {},
  ) {
    this.bodyBytesMax = options.maxBodyBytes ?? 32 * 1024 * 1024;
    this.longPollMsMax = options.maxLongPollMs ?? 60_000;
  }

  async pull(req: Partial<PullRequest>): Promise<PullResponse> {
    return readPullAnswer(await this.exchange('pull-updates', encodePullRequest(req), (body) => this.servePull(body)));
  }

  async pipeline(req: PipelineRequest): Promise<PipelineResponse> {
    const body = new TextEncoder().encode(JSON.stringify(req));
    const bytes = await this.exchange('v2/pipeline', body, (b) => this.servePipeline(b));
    return readPipelineAnswer(req, bytes);
  }

  /** Ends every long poll in progress (they answer at once); the transport stays usable. */
  close(): void {
    this.shutdown.abort();
  }

  /**
   * One request: the fault decision, the route (`serve`), the error answer a thrown error
   * becomes, and the traffic of the request and its answer.
   */
  private async exchange(route: TransportRoute, body: Uint8Array, serve: (body: Uint8Array) => Promise<Uint8Array>): Promise<Uint8Array> {
    const fault = this.options.faults?.(route) ?? 'deliver';
    if (fault === 'offline') throw new SyncError(`${route}: cannot reach the server (offline)`, 'NETWORK');
    let status = 200;
    let answer: Uint8Array;
    let message = '';
    this.db.pins++;
    try {
      if (body.length > this.bodyBytesMax) {
        throw new HttpError(413, `request body of ${body.length} bytes exceeds the limit of ${this.bodyBytesMax}`, 'BODY_TOO_LARGE');
      }
      this.db.lastUsedMs = Date.now();
      answer = await serve(body);
    } catch (e) {
      const refused = errorAnswer(e);
      ({ status, message } = refused);
      // The same body as the HTTP server's error answers (server.ts).
      answer = new TextEncoder().encode(JSON.stringify({ error: refused.message, message: refused.message, code: refused.code }));
    } finally {
      this.db.pins--;
    }
    if (fault === 'lose-answer') throw new SyncError(`${route}: the connection broke off before the answer arrived`, 'NETWORK');
    this.traffic.sentBytes += body.length;
    this.traffic.receivedBytes += answer.length;
    if (status === 401 || status === 403) throw new SyncError(`${route}: ${status} ${message}`, 'AUTH', status);
    if (status !== 200) throw new SyncError(`${route}: the server answered ${status}: ${message}`, 'HTTP', status);
    return answer;
  }

  /** The pull-updates route: after a long poll when the client is current, the pages since its revision. */
  private async servePull(body: Uint8Array): Promise<Uint8Array> {
    const request = decodePullRequest(body);
    if (request.clientRevision !== '' && request.serverRevision === '' && request.longPollTimeoutMs > 0 && this.db.isCurrent(request.clientRevision)) {
      const wait = this.db.waitForChange(Math.min(request.longPollTimeoutMs, this.longPollMsMax));
      if (this.shutdown.signal.aborted) wait.end();
      else this.shutdown.signal.addEventListener('abort', wait.end, { once: true });
      await wait.changed;
      this.shutdown.signal.removeEventListener('abort', wait.end);
    }
    const chunks: Uint8Array[] = [];
    let bytes = 0;
    await this.db.inTurn(null, async () =>
      this.db.pull(request, (chunk) => {
        chunks.push(chunk);
        bytes += chunk.length;
      }),
    );
    const answer = new Uint8Array(bytes);
    let at = 0;
    for (const c of chunks) {
      answer.set(c, at);
      at += c.length;
    }
    return answer;
  }

  /** The v2/pipeline route: a JSON body in, the pipeline's JSON answer out. */
  private async servePipeline(body: Uint8Array): Promise<Uint8Array> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder().decode(body));
    } catch (e) {
      throw new ProtocolError(`the body is not valid JSON: ${(e as Error).message}`);
    }
    return new TextEncoder().encode(JSON.stringify(await this.db.inTurn(parsed, () => this.db.pipeline(parsed))));
  }
}

/**
 * Seeded network faults for one client: `offline` refuses every request; otherwise each answer
 * is lost with probability `lossRate`. The same seed and the same requests give the same faults.
 */
export class SeededFaults {
  offline = false;
  lossRate = 0;
  /** Answers lost so far. */
  lost = 0;
  private state: number;

  constructor(seed: number) {
    // xorshift32 never leaves zero, so zero becomes a fixed odd constant.
    this.state = seed >>> 0 || 0x9e3779b9;
  }

  /** The decision for one request (pass it as `faults`). */
  readonly decide = (_route: TransportRoute): NetworkFault => {
    if (this.offline) return 'offline';
    if (this.lossRate > 0 && this.next() < this.lossRate) {
      this.lost++;
      return 'lose-answer';
    }
    return 'deliver';
  };

  /** A uniform number in [0, 1), xorshift32. */
  private next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state / 2 ** 32;
  }
}
