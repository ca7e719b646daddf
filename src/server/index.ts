/**
 * `outpost/server`: the self-hostable sync server, for embedding. The CLI is `outpost serve`.
 *
 * Contract: the server hosts many SQLite databases and speaks Turso's sync protocol over HTTP
 * (`pull-updates`, Hrana `v2/pipeline`), and the rest of Hrana over HTTP that libsql clients
 * (`@libsql/client`, drizzle) use (`v3/pipeline`, `v3/cursor`, streams with batons, stored
 * SQL), with tokens scoped to databases and roles (HS256 with a shared secret, or
 * EdDSA/RS256/ES256 against a public key or a JWKS URL). It runs on its own socket
 * (`createServer`) or inside an existing Node HTTP app (`createHandler`), serves `/metrics`,
 * `/ready` and `/health`, and drains gracefully.
 * Each database runs on the same engine as the client, over Node files; its revisions come
 * from the VFS's WAL observer (revlog.ts). The server never imports the client's sync code:
 * what both sides share is the wire format.
 *
 * May import: engine/, protocol/ (wire formats), sqlite/ (constants), opfs-vfs/storage (the
 * Node backend), options.ts (the database-name rule), errors.ts, types.ts, and Node's standard
 * library; nothing above it (no sync/, worker/, browser code).
 *
 * Files: server.ts (the routes, createServer, createHandler, drain), server-options.ts (its
 * options), front.ts (around every
 * request: mount prefix, CORS, readiness, metrics, log line), metrics.ts (the Prometheus
 * registry), log.ts (text or JSON lines), http.ts (bodies, CORS headers, error -> status), database-cache.ts
 * (the LRU of open databases), hosted-database.ts (one database: pull, pipeline, long polls), stream-limits.ts (its streams' bounds),
 * hrana.ts (pipeline execution), addressing.ts (which database a request names), revlog.ts (revisions), page-writes.ts (which commit last wrote each page), write-rules.ts (the `--write-rules`
 * authorizer), sandbox.ts (what tenant SQL may do), time-share.ts (each database's share of the
 * server's time: 429 BUSY past it), client-owners.ts (who may write which
 * client's acknowledgement), pull-spool.ts (pull answers off the heap), pull-share.ts (identical
 * whole pulls share one answer), auth.ts (tokens),
 * cli.ts and cli-args.ts (`outpost serve`, `outpost token`), in-process-transport.ts (the sync
 * transport without a socket, for the simulation), haproxy.ts (the balancer's configuration for
 * several processes).
 */
export { haproxyConfig, type HaproxyBackend, type HaproxyOptions } from './haproxy.js';
export { createHandler, createServer, type OutpostHandler, type OutpostServer, type OutpostService, type ServerOptions } from './server.js';
export { createVerifier, mintToken, verifyAuthorization, type AuthKeys, type Grant, type Role, type TokenVerifier } from './auth.js';
export type { LogFormat, LogLevel } from './log.js';
export type { CorsOrigins } from './http.js';
