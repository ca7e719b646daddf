/**
 * `outpost/server`: the self-hostable sync server, for embedding. The CLI is `outpost serve`.
 *
 * Contract: the server hosts many SQLite databases and speaks Turso's sync protocol over HTTP
 * (`pull-updates`, Hrana `v2/pipeline`), and the rest of Hrana over HTTP that libsql clients
 * (`@libsql/client`, drizzle) use (`v3/pipeline`, `v3/cursor`, streams with batons, stored
 * SQL), with HS256 tokens scoped to databases and roles.
 * Each database runs on the same engine as the client, over Node files; its revisions come
 * from the VFS's WAL observer (revlog.ts). The server never imports the client's sync code:
 * what both sides share is the wire format.
 *
 * May import: engine/, protocol/ (wire formats), sqlite/ (constants), opfs-vfs/storage (the
 * Node backend), options.ts (the database-name rule), errors.ts, types.ts, and Node's standard
 * library; nothing above it (no sync/, worker/, browser code).
 *
 * Files: server.ts (the routes), http.ts (bodies, CORS, error -> status), database-cache.ts
 * (the LRU of open databases), hosted-database.ts (one database: pull, pipeline, long polls),
 * hrana.ts (pipeline execution), addressing.ts (which database a request names), revlog.ts (revisions), write-rules.ts (the `--write-rules`
 * authorizer), sandbox.ts (what tenant SQL may do), client-owners.ts (who may write which
 * client's acknowledgement), pull-spool.ts (pull answers off the heap), auth.ts (tokens),
 * cli.ts and cli-args.ts (`outpost serve`, `outpost token`), in-process-transport.ts (the sync
 * transport without a socket, for the simulation).
 */
export { createServer, type OutpostServer, type ServerOptions } from './server.js';
export { mintToken, verifyAuthorization, type Grant, type Role } from './auth.js';
