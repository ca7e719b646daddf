/**
 * The server's metrics, served at `GET /metrics` in Prometheus's text format (prom-client).
 * Each server has its own registry, so two servers in one process (or a host app with its own
 * metrics) never collide; an embedding app can merge it with `Registry.merge`.
 *
 * Labels are bounded: `route` is one of a fixed set of names (never a database name or a raw
 * path), `status` an HTTP status, `outcome` `ok` or `error`. Metrics:
 * - `outpost_http_requests_total{route,method,status}` and
 *   `outpost_http_request_duration_seconds{route}` (a histogram; pulls that long-polled are
 *   left out of it, their wait is in `outpost_long_poll_duration_seconds`);
 * - `outpost_http_requests_in_flight`;
 * - `outpost_http_received_bytes_total`, `outpost_http_sent_bytes_total`: bytes on the
 *   sockets, headers included;
 * - `outpost_pushes_total{outcome}` (pipelines that carry a sync push) and
 *   `outpost_pulls_total{outcome}` (pull-updates requests);
 * - `outpost_long_polls_waiting`, `outpost_long_polls_total`, `outpost_long_poll_duration_seconds`;
 * - `outpost_databases_open`, `outpost_databases_opened_total`, `outpost_databases_evicted_total`;
 * - `outpost_database_files_open`, `outpost_database_files_limit` (the descriptor pool of the
 *   open databases' main files and WALs) and `outpost_database_file_reopens_total` (descriptors
 *   it closed and opened again: a rate near the request rate means the pool is too small);
 * - `outpost_sqlite_heap_bytes`, `outpost_sqlite_heap_peak_bytes` (SQLite's allocator, the whole
 *   process's), `outpost_sqlite_heap_limit_bytes` (the bound in force: `--max-heap`, or the
 *   smallest of the servers in the process) and `outpost_sqlite_wasm_memory_bytes` (the WASM
 *   memory, which only grows), read at each scrape (heap-limit.ts);
 * - `outpost_pull_spool_answers`, `outpost_pull_spool_bytes` (whole pulls' answers kept on disk
 *   for identical pulls, and their bytes, dropped ones still being read included),
 *   `outpost_pull_spool_hits_total` (pulls answered from one) and `outpost_pull_spool_kept_total`
 *   (answers built and kept) (pull-share.ts);
 * - `outpost_ready` (1 when /ready answers 200) and, unless turned off, Node's process
 *   metrics (`process_*`, `nodejs_*`: memory, CPU, event loop lag). Those describe the
 *   process, not a server, so they are collected once per process in a registry of their own
 *   and joined to each scrape: prom-client's collectors (an event-loop monitor, a GC observer)
 *   are never stopped, and one set per server would pile up in a process that starts many.
 */
import type { Socket } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export type Route = 'pull-updates' | 'pipeline' | 'admin' | 'health' | 'ready' | 'metrics' | 'preflight' | 'other';

/** The route label of a path: the endpoint's kind, whatever database or prefix it names. */
export function routeOf(method: string | undefined, pathname: string): Route {
  if (method === 'OPTIONS') return 'preflight';
  if (pathname.endsWith('/pull-updates')) return 'pull-updates';
  if (/\/v[0-9]+\/pipeline$/.test(pathname) || /\/v[0-9]+\/cursor$/.test(pathname)) return 'pipeline';
  if (pathname.startsWith('/admin/')) return 'admin';
  if (pathname === '/health') return 'health';
  if (pathname === '/ready') return 'ready';
  if (pathname === '/metrics') return 'metrics';
  return 'other';
}

let processRegistry: Registry | null = null;

/** The registry of Node's process metrics, created on first use. */
function processMetricsRegistry(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** What the gauges read at each scrape. */
export interface MetricsState {
  openDatabases: () => number;
  ready: () => boolean;
  heap: () => { usedBytes: number; peakBytes: number; wasmBytes: number; limitBytes: number };
  pullSpool: () => { answers: number; bytes: number };
  bodyBytesHeld: () => number;
  databaseFiles: () => { open: number; limit: number; reopens: number };
}

/** Gauges read at each scrape, by name: their help and how to read them. */
function gauges(registers: Registry[], byName: Record<string, [string, () => number]>): void {
  for (const [name, [help, read]] of Object.entries(byName)) {
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  }
}

const LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const LONG_POLL_BUCKETS_S = [0.1, 0.5, 1, 5, 10, 30, 60, 120];

/** Bytes a socket had read and written when last counted. */
interface SocketMark {
  read: number;
  written: number;
}

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'route' | 'method' | 'status'>;
  private readonly latency: Histogram<'route'>;
  readonly inFlight: Gauge;
  private readonly received: Counter;
  private readonly sent: Counter;
  private readonly pushes: Counter<'outcome'>;
  private readonly pulls: Counter<'outcome'>;
  private readonly longPollsWaiting: Gauge;
  private readonly longPolls: Counter;
  private readonly longPollSeconds: Histogram;
  readonly databasesOpened: Counter;
  readonly databasesEvicted: Counter;
  readonly pullSpoolHits: Counter;
  readonly pullSpoolKept: Counter;
  private readonly sockets = new WeakMap<Socket, SocketMark>();

  constructor(
    state: MetricsState,
    private readonly processMetrics = true,
  ) {
    const registers = [this.registry];
    this.requests = new Counter({ name: 'outpost_http_requests_total', help: 'HTTP requests answered, by route, method and status.', labelNames: ['route', 'method', 'status'], registers });
    this.latency = new Histogram({ name: 'outpost_http_request_duration_seconds', help: 'Time from a request to its answer, by route (pulls that long-polled are left out).', labelNames: ['route'], buckets: LATENCY_BUCKETS_S, registers });
    this.inFlight = new Gauge({ name: 'outpost_http_requests_in_flight', help: 'Requests being handled now (long polls included).', registers });
    this.received = new Counter({ name: 'outpost_http_received_bytes_total', help: 'Bytes read from HTTP sockets, headers included.', registers });
    this.sent = new Counter({ name: 'outpost_http_sent_bytes_total', help: 'Bytes written to HTTP sockets, headers included.', registers });
    this.pushes = new Counter({ name: 'outpost_pushes_total', help: 'Pipelines that carry a sync push (write turso_sync_last_change_id), by outcome.', labelNames: ['outcome'], registers });
    this.pulls = new Counter({ name: 'outpost_pulls_total', help: 'pull-updates requests, by outcome.', labelNames: ['outcome'], registers });
    this.longPollsWaiting = new Gauge({ name: 'outpost_long_polls_waiting', help: 'Pulls waiting for a commit now.', registers });
    this.longPolls = new Counter({ name: 'outpost_long_polls_total', help: 'Pulls that waited for a commit.', registers });
    this.longPollSeconds = new Histogram({ name: 'outpost_long_poll_duration_seconds', help: 'How long long polls waited.', buckets: LONG_POLL_BUCKETS_S, registers });
    new Gauge({
      name: 'outpost_databases_open',
      help: 'Databases open now.',
      registers,
      collect() {
        this.set(state.openDatabases());
      },
    });
    this.databasesOpened = new Counter({ name: 'outpost_databases_opened_total', help: 'Databases opened (a database evicted and used again counts again).', registers });
    this.databasesEvicted = new Counter({ name: 'outpost_databases_evicted_total', help: 'Idle databases closed to stay within the open limit.', registers });
    gauges(registers, {
      outpost_sqlite_heap_bytes: ["Bytes SQLite's allocator holds now, all databases and statements of the process together.", () => state.heap().usedBytes],
      outpost_sqlite_heap_peak_bytes: ["Most bytes SQLite's allocator has held at once since the process started.", () => state.heap().peakBytes],
      outpost_sqlite_heap_limit_bytes: ["The bound on SQLite's heap in force in this process (--max-heap; the smallest of the servers running in it).", () => state.heap().limitBytes],
      outpost_sqlite_wasm_memory_bytes: ["Bytes of SQLite's WASM memory (it only grows; the allocator's use is outpost_sqlite_heap_bytes).", () => state.heap().wasmBytes],
      outpost_pull_spool_answers: ["Whole pulls' answers kept on disk for identical pulls.", () => state.pullSpool().answers],
      outpost_pull_spool_bytes: ['Bytes of kept pull answers on disk, dropped ones still being read included.', () => state.pullSpool().bytes],
      outpost_database_files_open: ["Descriptors the open databases' main files and WALs hold now (the pool's).", () => state.databaseFiles().open],
      outpost_database_files_limit: ['Most descriptors the pool of main files and WALs may hold at once (--max-open and the file limit decide it).', () => state.databaseFiles().limit],
      outpost_request_body_bytes_held: ['Bytes of request bodies held now, read or being read, until their requests are answered (one token\'s at most four times the body limit).', () => state.bodyBytesHeld()],
    });
    let reopensSeen = 0;
    new Counter({
      name: 'outpost_database_file_reopens_total',
      help: "Descriptors of open databases' files the pool closed and opened again.",
      registers,
      collect() {
        const now = state.databaseFiles().reopens;
        if (now > reopensSeen) this.inc(now - reopensSeen);
        reopensSeen = now;
      },
    });
    this.pullSpoolHits = new Counter({ name: 'outpost_pull_spool_hits_total', help: 'Pulls answered from a kept answer, without a build.', registers });
    this.pullSpoolKept = new Counter({ name: 'outpost_pull_spool_kept_total', help: 'Whole pull answers built and kept for identical pulls.', registers });
    new Gauge({
      name: 'outpost_ready',
      help: '1 when the server is ready for traffic (GET /ready answers 200), 0 before startup completes and while draining.',
      registers,
      collect() {
        this.set(state.ready() ? 1 : 0);
      },
    });
  }

  /** Records one answered request; `longPolled` keeps its wait out of the latency histogram. */
  request(route: Route, method: string, status: number, seconds: number, longPolled: boolean): void {
    this.requests.inc({ route, method, status: String(status) });
    if (!longPolled) this.latency.observe({ route }, seconds);
    const outcome = status < 400 ? 'ok' : 'error';
    if (route === 'pull-updates') this.pulls.inc({ outcome });
  }

  push(ok: boolean): void {
    this.pushes.inc({ outcome: ok ? 'ok' : 'error' });
  }

  /** A long poll starts waiting; the function returned ends it. */
  longPoll(): () => void {
    this.longPolls.inc();
    this.longPollsWaiting.inc();
    const end = this.longPollSeconds.startTimer();
    return () => {
      this.longPollsWaiting.dec();
      end();
    };
  }

  /**
   * Counts what a socket read and wrote since it was last counted. Called when an answer is
   * sent and when the socket closes, so keep-alive sockets are counted as they go.
   */
  countSocket(socket: Socket): void {
    let mark = this.sockets.get(socket);
    if (!mark) {
      mark = { read: 0, written: 0 };
      this.sockets.set(socket, mark);
      socket.once('close', () => this.countSocket(socket));
    }
    const read = socket.bytesRead;
    const written = socket.bytesWritten;
    if (read > mark.read) this.received.inc(read - mark.read);
    if (written > mark.written) this.sent.inc(written - mark.written);
    mark.read = read;
    mark.written = written;
  }

  /** The text a scrape gets, and its content type. */
  async scrape(): Promise<{ type: string; body: string }> {
    const registry = this.processMetrics ? Registry.merge([this.registry, processMetricsRegistry()]) : this.registry;
    return { type: this.registry.contentType, body: await registry.metrics() };
  }
}
