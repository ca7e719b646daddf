/**
 * `ServerOptions`, what `createServer` and `createHandler` take, and the default open limit.
 * Types only, beside server.ts (which re-exports them), so the routes' file stays readable.
 *
 * May import: what server.ts may (types from the server's own files, node:crypto's KeyObject).
 */
import type { KeyObject } from 'node:crypto';
import type { PullSlices } from './hosted-database.js';
import type { CorsOrigins } from './http.js';
import type { LogFormat, LogLevel } from './log.js';
/**
 * The default open limit, lowered to what the process's file limit allows (`fileBudget`): a
 * small open database holds about 61 KiB of SQLite's heap (32 KiB of it the WAL index), whose
 * share of the default bound (heap-limit.ts) keeps about 12,000 of them open too, and about
 * 90 KiB of the process's memory in all. Past it, a request to a closed database pays an open
 * (about a millisecond) and an eviction.
 */
export const MAX_OPEN_DATABASES = 12_000;

export interface ServerOptions {
  /** Where the databases live (created when missing). */
  dataDir: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** HS256 secret for tokens. One of the secret, `authPublicKey` and `authJwksUrl` is required unless `auth: false`. */
  authSecret?: string;
  /** A public key tokens may be signed for (EdDSA, RS256 or ES256): PEM (SPKI) text, a JWK, or a KeyObject. */
  authPublicKey?: string | object | KeyObject;
  /** An identity provider's JWKS URL; tokens signed with its keys (EdDSA, RS256, ES256) are accepted. */
  authJwksUrl?: string;
  /** When set, every token's `iss` claim must be this. */
  authIssuer?: string;
  /** When set, every token's `aud` claim must name this. */
  authAudience?: string;
  /** `false` turns authentication off (every request may do everything). */
  auth?: boolean;
  /** Origins browsers may call from: `'*'` (default) or a list (see `CorsOrigins` in http.ts). */
  corsOrigins?: CorsOrigins;
  /** For `createHandler` in a bigger app: the path prefix it is mounted under (`/sync`). */
  basePath?: string;
  /** `false` removes `GET /metrics` (default true). */
  metrics?: boolean;
  /**
   * When set, `GET /metrics` answers only requests with `Authorization: Bearer <metricsToken>`
   * (401 otherwise); by default it is open, as Prometheus endpoints usually are. At least 16 characters.
   */
  metricsToken?: string;
  /** Node's process metrics (`process_*`, `nodejs_*`) in `/metrics` (default true; an app with its own may turn them off). */
  processMetrics?: boolean;
  /** How long `drain()` waits for requests in flight before closing their connections (default 30 s). */
  drainTimeoutMs?: number;
  /** Largest request body accepted (default 32 MiB); one token's bodies held at once are at most four times it (503 BUSY past that). */
  maxBodyBytes?: number;
  /**
   * Most bytes of rows one pipeline may answer with (default: the body limit); a read past it
   * fails with SQLITE_TOOBIG, so one request cannot make the server build and encode gigabytes.
   */
  maxAnswerBytes?: number;
  /** Largest TEXT or BLOB value (and SQL text) a statement may make (default: the body limit). */
  valueBytesMax?: number;
  /**
   * Most memory SQLite may hold in this process, all open databases and the running statement
   * together (default 1 GiB, `HEAP_BYTES_MAX`): a statement that would need more fails with
   * SQLITE_NOMEM, so one tenant's query cannot grow the process's memory for good (heap-limit.ts).
   * Servers in one process share one SQLite: the smallest limit of those running applies.
   */
  maxHeapBytes?: number;
  /** Longest one statement of a pipeline may run before it is interrupted (default 2000 ms). */
  statementTimeoutMs?: number;
  /**
   * The long-run fraction of the server's time one database's statements may use (default
   * 0.25): past a burst of one `statementTimeoutMs`, its pipelines wait (429 BUSY with
   * Retry-After) so that one tenant's heavy queries cannot keep the others waiting (time-share.ts).
   */
  shareOfServer?: number;
  /**
   * Longest a client may take to send a whole request, headers and body (default 30 s); a
   * slower one gets 408 and its socket is closed, so a trickling body cannot hold a socket.
   */
  bodyTimeoutMs?: number;
  /** How long a stream across requests (a Hrana baton) may stay idle before it is rolled back (default 10 s). */
  streamIdleMs?: number;
  /**
   * How long a stream may stay open in all, however often its client pings it, before it is
   * rolled back (default 30 s, `STREAM_LIFETIME_MS`): the longest any request waits for a stream,
   * and the longest a streamed push may take to upload.
   */
  streamLifetimeMs?: number;
  /** Streams across requests open at once in the whole server (default 64). */
  maxOpenStreams?: number;
  /**
   * Of those, how many one holder may have open at once (default 8): a token's subject, or
   * for a token without one, the databases it names; for the admin and an unauthenticated
   * server, each database. More gets 503 BUSY, so one tenant cannot take every slot.
   */
  maxOpenStreamsPerHolder?: number;
  /**
   * How many streams tokens without a subject may have open at once, all of them together
   * (default half of `maxOpenStreams`): such tokens cannot be told apart, so many of them
   * cannot take the slots of tokens with a subject.
   */
  maxOpenStreamsWithoutSubject?: number;
  /**
   * Databases kept open at once (default `MAX_OPEN_DATABASES`, or fewer under the process's file
   * limit). An open database holds about 61 KiB of SQLite's heap (the WAL index, SQLite's
   * connection, its statements), plus up to `cacheKiB` of page cache as its pages are read.
   */
  maxOpenDatabases?: number;
  /**
   * Descriptors the open databases' main files and WALs may hold at once (default: a quarter of
   * what the process's file limit leaves, `fileBudget`). Past it the least recently used is
   * closed, and opened again when its database next reads or writes (descriptors.ts).
   */
  maxDatabaseFiles?: number;
  /**
   * Disk that answers to whole pulls may keep for identical pulls of the same database at the same
   * revision (default 1 GiB, `PULL_SPOOL_BYTES`; 0 builds every pull's answer, pull-share.ts).
   */
  maxPullSpoolBytes?: number;
  /** How pull answers are built between yields (default `PULL_SLICES`, hosted-database.ts); for tests. */
  pullSlices?: PullSlices;
  /** Told of each slice after which a pull's build yields, and of each finished build; for tests that observe the order of events. */
  pullEvents?: (event: 'slice' | 'built', database: string) => void;
  /** How long the pipelines started in one turn of the event loop may run before pulls waiting on their sockets are served (default 1 ms; 0: one pipeline a turn; pipeline-queue.ts). */
  pipelineSliceMs?: number;
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
  /**
   * The host under which `{name}.{baseHost}` names database `name` (as sqld and Turso Cloud
   * do), e.g. `db.example.com`; default: databases are named by path or token only.
   */
  baseHost?: string;
  /** Where log lines go; default stdout. Pass `() => {}` to silence. */
  log?: (line: string) => void;
  /** `text` (default) or `json`: one JSON object per line (log.ts). */
  logFormat?: LogFormat;
  /** Least level logged (default `info`; `debug` adds request starts and long polls). */
  logLevel?: LogLevel;
}
