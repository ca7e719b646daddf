/** Servers for the server and sync tests (and benchmarks): on 127.0.0.1, with throwaway data folders. */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnGroup, stopGroup } from './processes.js';
import { createServer, type OutpostServer, type ServerOptions } from '../../src/server/server.js';
import { encodePullRequest } from '../../src/protocol/pull-updates.js';

export const SECRET = 'test-secret-0123456789abcdef';

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function startServer(options: Partial<ServerOptions> = {}): Promise<{ server: OutpostServer; url: string; dataDir: string }> {
  const dataDir = options.dataDir ?? tempDir('outpost-server-');
  const server = createServer({ dataDir, port: 0, authSecret: SECRET, log: () => {}, ...options });
  const { url } = await server.listen();
  return { server, url, dataDir };
}

/** A raw pull-updates request; returns the status and body. */
export async function rawPull(url: string, body: Parameters<typeof encodePullRequest>[0], token?: string): Promise<{ status: number; body: Uint8Array; headers: Headers }> {
  const res = await fetch(`${url}/pull-updates`, {
    method: 'POST',
    headers: { 'content-type': 'application/protobuf', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: encodePullRequest(body) as BodyInit,
  });
  return { status: res.status, body: new Uint8Array(await res.arrayBuffer()), headers: res.headers };
}

/** A raw Hrana pipeline with one batch of statements; returns status and JSON. */
export async function rawPipeline(url: string, body: unknown, token?: string): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(`${url}/v2/pipeline`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json(), headers: res.headers };
}

export function batch(...sql: (string | { sql: string; args?: unknown[] })[]): unknown {
  return {
    baton: null,
    requests: [
      {
        type: 'batch',
        batch: {
          steps: sql.map((s) => ({ stmt: typeof s === 'string' ? { sql: s, args: [], want_rows: true } : { sql: s.sql, args: s.args ?? [], want_rows: true } })),
        },
      },
    ],
  };
}

/** What one Hrana batch gave: the HTTP status, each step's error message (or null) and rows. */
export interface BatchOutcome {
  status: number;
  errors: (string | null)[];
  rows: unknown[][];
}

/** Runs statements as one Hrana batch at `dbUrl` (`…/db/NAME`) with `token`. */
export async function runBatch(dbUrl: string, token: string, ...sql: string[]): Promise<BatchOutcome> {
  const { status, json } = await rawPipeline(dbUrl, batch(...sql), token);
  if (status !== 200) return { status, errors: [String(json?.error ?? status)], rows: [] };
  const result = json.results[0];
  if (result.type !== 'ok') return { status, errors: [result.error.message], rows: [] };
  const r = result.response.result;
  return {
    status,
    errors: r.step_errors.map((e: { message: string } | null) => e?.message ?? null),
    rows: r.step_results.map((s: { rows: unknown[] } | null) => s?.rows ?? []),
  };
}

/**
 * A port nothing listens on now, from the OS. (A random port could be another test's server:
 * tests run in parallel, and a client would then sync with that server instead.)
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** Starts `turso --sync-server` (the reference server from npm) on a free port. */
export async function startTursoServer(): Promise<{ url: string; process: ChildProcess; stop: () => Promise<void> }> {
  const dir = tempDir('outpost-turso-');
  const port = await freePort();
  const child = spawnGroup(process.execPath, [join(process.cwd(), 'node_modules/turso/src/index.js'), '--sync-server', `127.0.0.1:${port}`, join(dir, 'server.db')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(`${url}/v2/pipeline`, { method: 'POST', body: JSON.stringify({ baton: null, requests: [] }) });
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    url,
    process: child,
    // The wrapper and the tursodb binary it started, both.
    stop: () => stopGroup(child),
  };
}
