/**
 * What happens around every request, whatever its route: the mount prefix, CORS and
 * preflights, `GET /ready` and `GET /metrics`, refusal while draining, the count of requests in
 * flight (which a drain waits for), the error -> answer mapping (http.ts), one log line and
 * the request metrics. The routes themselves are server.ts's.
 *
 * Readiness: `/ready` answers 200 only once startup has completed (the data folder is usable
 * and, for `createServer`, the socket listens) and until a drain begins; `/health` says only
 * that the process answers. While draining every answer carries `Connection: close`, and a
 * request that arrives then gets 503 SHUTTING_DOWN.
 *
 * `/metrics` is open unless a metrics token is set: then a scrape must send
 * `Authorization: Bearer <token>` (Prometheus's `authorization.credentials` or
 * `bearer_token_file`), and gets 401 without it. The token is compared in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type * as http from 'node:http';
import { BodyBudget, type CorsOrigins, errorAnswer, sendError, sendJson, sendPreflight, setCorsHeaders, send } from './http.js';
import type { Logger } from './log.js';
import { type Route, type ServerMetrics, routeOf } from './metrics.js';

/** What a route reports for the log line: the status it answered and the database it served. */
export interface RouteResult {
  status: number;
  db: string;
}

export type RouteFn = (req: http.IncomingMessage, res: http.ServerResponse) => Promise<RouteResult>;

export interface FrontOptions {
  log: Logger;
  /** Null: no `/metrics` route, nothing recorded. */
  metrics: ServerMetrics | null;
  corsOrigins: CorsOrigins;
  /** A path prefix the handler is mounted under (`/sync`), or '' for none. */
  basePath: string;
  /** The bearer token `/metrics` asks for; null: `/metrics` is open. */
  metricsToken: string | null;
  /** The largest request body: one holder's bodies held at once are at most four times it (`bodies`). */
  bodyBytesMax: number;
}

/** What the route told the front about one request while it ran. */
interface RequestMarks {
  longPolled: boolean;
  push: boolean;
}

export class RequestFront {
  private started = false;
  private draining = false;
  private inFlight = 0;
  private readonly idleWaiters = new Set<() => void>();
  private readonly marks = new WeakMap<http.ServerResponse, RequestMarks>();
  /** The request bodies held, by holder (http.ts); what a request held is let go once its route is done with it. */
  readonly bodies: BodyBudget;

  constructor(
    private readonly options: FrontOptions,
    private readonly route: RouteFn,
  ) {
    this.bodies = new BodyBudget(4 * options.bodyBytesMax);
  }

  /** Startup has completed: `/ready` may answer 200. */
  markStarted(): void {
    this.started = true;
  }

  get ready(): boolean {
    return this.started && !this.draining;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  get requestsInFlight(): number {
    return this.inFlight;
  }

  /** From now on `/ready` answers 503 and new requests are refused. */
  startDraining(): void {
    this.draining = true;
  }

  /** Resolves once no request is in flight. */
  whenIdle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.add(resolve));
  }

  /** The request is a sync push (counted in `outpost_pushes_total` when it is answered). */
  markPush(res: http.ServerResponse): void {
    const marks = this.marks.get(res);
    if (marks) marks.push = true;
  }

  /** The request starts a long poll; the function returned ends it. */
  markLongPoll(res: http.ServerResponse, db: string): () => void {
    const marks = this.marks.get(res);
    if (marks) marks.longPolled = true;
    this.options.log.debug('long poll waiting', { db });
    return this.options.metrics?.longPoll() ?? (() => {});
  }

  /**
   * Handles one request. With `next` (a connect-style app), a request outside the mount
   * prefix is passed on; without it, it gets 404.
   */
  handle(req: http.IncomingMessage, res: http.ServerResponse, next?: (error?: unknown) => void): void {
    if (!this.strip(req)) {
      if (next) return next();
      return sendError(res, 404, `no such endpoint: ${req.url} (this server is mounted at ${this.options.basePath})`, 'NOT_FOUND');
    }
    const startedMs = performance.now();
    const pathname = (req.url ?? '/').split('?')[0]!;
    const route = routeOf(req.method, pathname);
    const method = req.method ?? 'GET';
    const marks: RequestMarks = { longPolled: false, push: false };
    this.marks.set(res, marks);
    this.enter();
    res.once('close', () => {
      this.leave();
      const seconds = (performance.now() - startedMs) / 1000;
      const metrics = this.options.metrics;
      if (metrics) {
        metrics.request(route, method, res.statusCode, seconds, marks.longPolled);
        if (marks.push) metrics.push(res.statusCode < 400);
        metrics.countSocket(req.socket);
      }
    });
    setCorsHeaders(res, this.options.corsOrigins, req.headers.origin);
    // Kept-alive clients of a draining server reconnect, and so reach another instance.
    if (this.draining) res.setHeader('connection', 'close');
    if (route === 'preflight') return sendPreflight(res);
    const path = loggedPath(req.url);
    this.options.log.debug('request started', { method, path, route });
    if (method === 'GET' && (route === 'ready' || route === 'metrics')) return void this.serveOwn(route, req, res);
    if (this.draining) return sendError(res, 503, 'the server is shutting down', 'SHUTTING_DOWN');
    const elapsedMs = (): number => Number((performance.now() - startedMs).toFixed(1));
    this.route(req, res)
      .then(({ status, db }) => this.options.log.info('request', { method, path, status, ms: elapsedMs(), db }))
      .catch((e: unknown) => {
        const { status, code, message, headers } = errorAnswer(e);
        // A body left unread (refused before or while it arrived) must not stay half-received
        // on a kept-alive socket: close the connection once the answer is out.
        const unread = !req.complete;
        if (!res.headersSent) for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
        if (unread && !res.headersSent) res.setHeader('connection', 'close');
        sendError(res, status, message, code);
        if (unread) res.once('finish', () => req.socket.destroy());
        const fields = { method, path, status, ms: elapsedMs(), code, error: message };
        if (status >= 500) this.options.log.error('request', fields);
        else this.options.log.info('request', fields);
      })
      // Once the route is done with the request, not when its client goes away: a pipeline whose
      // client left still holds its body until it has run.
      .finally(() => this.bodies.release(req));
  }

  /** `/ready` and `/metrics`: answered while draining too, so a balancer and a scraper see it. */
  private async serveOwn(route: Route, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (route === 'ready') {
      return sendJson(res, this.ready ? 200 : 503, { ready: this.ready, draining: this.draining });
    }
    const metrics = this.options.metrics;
    if (!metrics) return sendError(res, 404, 'metrics are turned off', 'NOT_FOUND');
    if (!bearerMatches(req.headers.authorization, this.options.metricsToken)) {
      res.setHeader('www-authenticate', 'Bearer realm="metrics"');
      return sendError(res, 401, '/metrics needs the metrics token: Authorization: Bearer <token>', 'UNAUTHORIZED');
    }
    try {
      const { type, body } = await metrics.scrape();
      send(res, 200, type, body);
    } catch (e) {
      this.options.log.error('metrics scrape failed', { error: (e as Error).message });
      sendError(res, 500, 'metrics could not be collected', 'INTERNAL');
    }
  }

  /** Removes the mount prefix from `req.url`; false when the request is outside it. */
  private strip(req: http.IncomingMessage): boolean {
    const base = this.options.basePath;
    if (base === '') return true;
    const url = req.url ?? '/';
    if (url !== base && !url.startsWith(`${base}/`) && !url.startsWith(`${base}?`)) return false;
    req.url = url.slice(base.length) || '/';
    if (req.url.startsWith('?')) req.url = `/${req.url}`;
    return true;
  }

  private enter(): void {
    this.inFlight++;
    this.options.metrics?.inFlight.inc();
  }

  private leave(): void {
    this.inFlight--;
    this.options.metrics?.inFlight.dec();
    if (this.inFlight === 0) {
      for (const wake of [...this.idleWaiters]) wake();
      this.idleWaiters.clear();
    }
  }
}

/**
 * A request's URL as the log shows it: the query string's values are left out (`?authToken=…`).
 * The server reads nothing there, and a client that put its token there must not have it
 * written to every log line; the names stay, so an operator sees what was sent.
 */
function loggedPath(url: string | undefined): string {
  const [pathname, query] = (url ?? '/').split(/\?(.*)/s, 2) as [string, string | undefined];
  if (query === undefined) return pathname;
  return `${pathname}?${query.split('&').map((pair) => `${pair.split('=', 1)[0]}=…`).join('&')}`;
}

/** Whether `header` is `Bearer <token>`; always true when no token is set. */
function bearerMatches(header: string | undefined, token: string | null): boolean {
  if (token === null) return true;
  const given = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1] ?? '';
  // Digests of equal length, so the comparison takes the same time whatever was sent.
  const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(token));
}

/** The metrics token, checked: a short one would be guessed. */
export function checkedMetricsToken(token: string | undefined): string | null {
  if (token === undefined) return null;
  if (token.length < 16) throw new Error('the metrics token must be at least 16 characters');
  return token;
}
