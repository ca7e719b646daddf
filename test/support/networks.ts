/**
 * Two ways to reach a hosted database, behind one interface, for the tests that must run on
 * both (the transport conformance suite, the seeded simulation):
 * - `inProcessNetwork`: `HostedDatabase`s opened in this process and called through the
 *   in-process transport (no sockets);
 * - `httpNetwork`: databases on a running Outpost server, through the HTTP transport.
 * Either way a client's transport takes a fault decision per request (`NetworkFault`): the HTTP
 * one through a fetch that fails before sending or after the answer arrived.
 */
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SyncTransport } from '../../src/protocol/transport.js';
import { HostedDatabase } from '../../src/server/hosted-database.js';
import type { OutpostServer } from '../../src/server/server.js';
import { InProcessTransport, type InProcessTransportOptions, type NetworkFault, type TransportRoute } from '../../src/server/in-process-transport.js';
import { HttpTransport } from '../../src/sync/transport.js';

export type FaultDecider = (route: TransportRoute) => NetworkFault;

/** One hosted database and the ways to reach it. */
export interface Endpoint {
  /** The URL clients sync with (only an identity for the in-process network). */
  url: string;
  /** A transport without faults (setup, checks). */
  admin: SyncTransport;
  /** Another transport; `faults` decides the fate of each of its requests. */
  client(faults?: FaultDecider): SyncTransport;
  /** Runs SQL as the server itself, outside the tenant sandbox (TEMP triggers that observe it). */
  execTrusted(sql: string): Promise<void>;
  /** Ends its long polls and, in process, closes the database and removes its files. */
  close(): Promise<void>;
}

export interface Network {
  readonly kind: 'in-process' | 'http' | 'turso';
  /** The database `name` (created by its first request or here). */
  open(name: string): Promise<Endpoint>;
}

/**
 * A fresh folder for hosted databases, in memory where the system has one (/dev/shm on Linux):
 * the server's fsyncs (new revision logs, checkpoints) then cost nothing, and nothing here
 * needs to survive the process.
 */
export function scratchDataDir(prefix: string): string {
  // Under a test run, the run's own memory root (temp-root.ts), removed when the run ends.
  return mkdtempSync(join(process.env.OUTPOST_TEST_SHM ?? memoryFolder() ?? tmpdir(), prefix));
}

/** /dev/shm where it is writable, else null. */
function memoryFolder(): string | null {
  try {
    accessSync('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return null;
  }
}

/** `HostedDatabase`s in `dataDir`, called in-process; closing an endpoint removes its files. */
export function inProcessNetwork(dataDir: string, options: Omit<InProcessTransportOptions, 'faults'> = {}): Network {
  return {
    kind: 'in-process',
    async open(name) {
      // The simulation is the only tenant: its database never waits for its share. The share
      // lets a database run up its statement limit before it waits (429), and on a loaded
      // machine one large push takes seconds (the fuzzer's seed 401031 met a 429 at 2 s).
      const limits = { statementTimeoutMs: 60_000, valueBytesMax: 32 * 1024 * 1024, shareOfServer: 1 };
      const db = await HostedDatabase.open(dataDir, name, { durability: 'normal', cacheKiB: 256, limits });
      const transports: InProcessTransport[] = [];
      const transport = (faults?: FaultDecider): InProcessTransport => {
        const t = new InProcessTransport(db, { ...options, faults });
        transports.push(t);
        return t;
      };
      return {
        url: `http://in-process/db/${name}`,
        admin: transport(),
        client: transport,
        execTrusted: async (sql) => db.execTrusted(sql),
        close: async () => {
          for (const t of transports) t.close();
          await db.close();
          for (const suffix of ['', '-wal', '-revlog']) rmSync(join(dataDir, `${name}.db${suffix}`), { force: true });
        },
      };
    },
  };
}

/** Databases on a running Outpost server at `base` (authentication off), over HTTP. */
export function httpNetwork(base: string, server: Pick<OutpostServer, 'execTrusted'>): Network {
  return {
    kind: 'http',
    async open(name) {
      const url = `${base}/db/${name}`;
      const controllers: AbortController[] = [];
      const transport = (faults?: FaultDecider): HttpTransport => {
        const controller = new AbortController();
        controllers.push(controller);
        return new HttpTransport({ url, fetch: faultyFetch(faults, controller.signal) });
      };
      return {
        url,
        admin: transport(),
        client: transport,
        execTrusted: (sql) => server.execTrusted(name, sql),
        close: async () => {
          for (const c of controllers) c.abort();
        },
      };
    },
  };
}

/**
 * The one database of a `turso --sync-server` at `url`, over HTTP. It has no tenant sandbox
 * and no trusted side: `execTrusted` runs the SQL as any client would.
 */
export function tursoEndpoint(url: string): Endpoint {
  const controllers: AbortController[] = [];
  const transport = (faults?: FaultDecider): HttpTransport => {
    const controller = new AbortController();
    controllers.push(controller);
    return new HttpTransport({ url, fetch: faultyFetch(faults, controller.signal) });
  };
  const admin = transport();
  return {
    url,
    admin,
    client: transport,
    execTrusted: async (sql) => {
      await admin.pipeline({ baton: null, requests: [{ type: 'execute', stmt: { sql, args: [], want_rows: false } }] });
    },
    close: async () => {
      for (const c of controllers) c.abort();
    },
  };
}

/**
 * The one database a `turso --sync-server` at `base` hosts (whatever the name), over HTTP. It
 * runs no SQL as a trusted server: `execTrusted` throws.
 */
export function tursoNetwork(base: string): Network {
  return {
    kind: 'turso',
    async open() {
      const controllers: AbortController[] = [];
      const transport = (faults?: FaultDecider): HttpTransport => {
        const controller = new AbortController();
        controllers.push(controller);
        return new HttpTransport({ url: base, fetch: faultyFetch(faults, controller.signal) });
      };
      return {
        url: base,
        admin: transport(),
        client: transport,
        execTrusted: () => Promise.reject(new Error('turso --sync-server runs no trusted SQL')),
        close: async () => {
          for (const c of controllers) c.abort();
        },
      };
    },
  };
}

/**
 * A fetch that fails as `faults` decides: before sending ('offline'), or after the server
 * answered ('lose-answer'). `closed` aborts its requests, as closing an endpoint must.
 */
function faultyFetch(faults: FaultDecider | undefined, closed: AbortSignal): typeof fetch {
  return (async (input: RequestInfo | URL, init?: RequestInit) => {
    const route: TransportRoute = String(input).endsWith('/pull-updates') ? 'pull-updates' : 'v2/pipeline';
    const fault = faults?.(route) ?? 'deliver';
    if (fault === 'offline') throw new TypeError('fetch failed: offline');
    const signal = init?.signal ? AbortSignal.any([init.signal, closed]) : closed;
    const res = await fetch(input, { ...init, signal });
    const body = await res.arrayBuffer();
    if (fault === 'lose-answer') throw new TypeError('fetch failed: the answer was lost');
    return new Response(body, { status: res.status, headers: res.headers });
  }) as typeof fetch;
}
