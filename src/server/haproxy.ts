/**
 * Scale-out on standard parts: an HAProxy configuration that puts several Outpost server
 * processes behind one address and sends every request for one database to one process.
 *
 * Each process keeps its databases in its own data directory, so a database must always reach
 * the same process: HAProxy hashes the database's name (`/db/{name}/…`, or the first label of
 * the Host header for `{name}.<host>` addressing) with consistent hashing, which keeps most
 * databases where they are when a process joins or leaves. A URL without the name (a token
 * naming one database, `/db/v2/pipeline`) cannot be routed by name: behind a load balancer,
 * clients put the name in the URL. Pure text building; no I/O.
 */

export interface HaproxyBackend {
  /** A name for the process in HAProxy's logs and stats (letters, digits, `-`, `_`). */
  name: string;
  host: string;
  port: number;
}

export interface HaproxyOptions {
  /** Where HAProxy listens. */
  bind: { host: string; port: number };
  servers: readonly HaproxyBackend[];
  /** How long a request may take end to end; long polls last up to the server's own limit. */
  serverTimeoutMs?: number;
  /** Checks each process's `/health` this often. */
  checkIntervalMs?: number;
}

const NAME = /^[A-Za-z0-9_-]+$/;
/** A host name, IPv4 address or bracketed IPv6 address: nothing that could end the line. */
const HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])$/;

/** The configuration text for `haproxy -f`. */
export function haproxyConfig(options: HaproxyOptions): string {
  if (options.servers.length === 0) throw new Error('haproxyConfig needs at least one server');
  if (!HOST.test(options.bind.host)) throw new Error(`bind host ${JSON.stringify(options.bind.host)} is not a host name or address`);
  for (const s of options.servers) {
    if (!HOST.test(s.host)) throw new Error(`server ${s.name}: host ${JSON.stringify(s.host)} is not a host name or address`);
    if (!NAME.test(s.name)) throw new Error(`server name ${JSON.stringify(s.name)} may hold only letters, digits, - and _`);
    if (!Number.isInteger(s.port) || s.port <= 0 || s.port > 65535) throw new Error(`server ${s.name}: port ${s.port} is not a TCP port`);
  }
  const serverTimeoutMs = options.serverTimeoutMs ?? 120_000;
  const checkIntervalMs = options.checkIntervalMs ?? 2_000;
  return [
    'global',
    '  maxconn 4096',
    '',
    'defaults',
    '  mode http',
    '  timeout connect 5s',
    '  timeout client 120s',
    `  timeout server ${serverTimeoutMs}ms`,
    '  timeout http-request 30s',
    '',
    'frontend outpost',
    `  bind ${options.bind.host}:${options.bind.port}`,
    // The database's name: from the path where the URL has one, else from the Host header.
    '  http-request set-var(txn.database) path,field(3,/) if { path_beg /db/ }',
    '  http-request set-var(txn.database) req.hdr(host),field(1,.) unless { var(txn.database) -m found }',
    '  default_backend outpost_servers',
    '',
    'backend outpost_servers',
    '  balance hash var(txn.database)',
    '  hash-type consistent',
    '  option httpchk GET /health',
    ...options.servers.map((s) => `  server ${s.name} ${s.host}:${s.port} check inter ${checkIntervalMs}ms`),
    '',
  ].join('\n');
}
