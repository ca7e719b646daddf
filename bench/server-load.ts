/**
 * Load on the sync server (part of `npm run bench`), on loopback only: N databases with small
 * data, 200 clients long-polling, M clients pushing small transactions, and a sampler timing
 * incremental pulls. Reports pushes/s, pull latency p50/p99 and the server's peak RSS, and the
 * same workload against `turso --sync-server` (which hosts a single database). Every loop is
 * bounded in count and time, and stops by itself.
 */
import type { ChildProcess } from 'node:child_process';
import { spawnGroup, stopGroup } from '../test/support/processes.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PullStreamReader, encodePullRequest } from '../src/protocol/pull-updates.js';
import { batch, tempDir } from '../test/support/server.js';

export interface LoadRow {
  server: string;
  databases: number;
  pushesPerSecond: number;
  pullP50Ms: number;
  pullP99Ms: number;
  peakRssMiB: number;
}

function peakRssMiB(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return kb / 1024;
  } catch {
    return Number.NaN;
  }
}

/** Resolves once the server at `url` answers /health. */
export async function waitForPort(url: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      await fetch(`${url}/health`);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`server at ${url} did not start`);
}

async function pipeline(url: string, body: unknown): Promise<void> {
  const res = await fetch(`${url}/v2/pipeline`, { method: 'POST', body: JSON.stringify(body) });
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`pipeline ${res.status}`);
}

/** One pull of `url` from `clientRevision`; the server revision it reached. */
export async function pull(url: string, clientRevision: string, longPollTimeoutMs = 0): Promise<string> {
  const res = await fetch(`${url}/pull-updates`, { method: 'POST', body: encodePullRequest({ clientRevision, longPollTimeoutMs }) as BodyInit });
  const body = new Uint8Array(await res.arrayBuffer());
  if (!res.ok) throw new Error(`pull ${res.status}`);
  const reader = new PullStreamReader();
  reader.push(body);
  return reader.finish().serverRevision;
}

async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

export const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
};

async function workload(name: string, dbUrls: string[], child: ChildProcess, seconds: number): Promise<LoadRow> {
  // Create and fill every database.
  await pool(dbUrls, 16, (url) => pipeline(url, batch('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)', "INSERT INTO t(v) VALUES ('seed')")));
  const deadline = Date.now() + seconds * 1000;
  let stop = false;
  // 200 long-polling clients, spread over the databases.
  const pollers = Array.from({ length: 200 }, async (_, i) => {
    const url = dbUrls[i % dbUrls.length]!;
    let rev = await pull(url, '');
    while (!stop) rev = await pull(url, rev, 2000).catch(() => rev);
  });
  // 32 pushers, small transactions on random databases.
  let pushes = 0;
  let n = 0;
  const pushers = Array.from({ length: 32 }, async () => {
    while (Date.now() < deadline) {
      const url = dbUrls[Math.floor(Math.random() * dbUrls.length)]!;
      await pipeline(url, {
        baton: null,
        requests: [{ type: 'batch', batch: { steps: [{ stmt: { sql: 'BEGIN IMMEDIATE' } }, { stmt: { sql: 'INSERT INTO t(v) VALUES (?)', args: [{ type: 'text', value: `push ${n++}` }] }, condition: { type: 'ok', step: 0 } }, { stmt: { sql: 'COMMIT' }, condition: { type: 'ok', step: 1 } }] } }],
      });
      pushes++;
    }
  });
  // A sampler timing incremental pulls while all of that runs.
  const latencies: number[] = [];
  const revs = new Map<string, string>();
  const sampler = (async () => {
    while (Date.now() < deadline) {
      const url = dbUrls[Math.floor(Math.random() * dbUrls.length)]!;
      const t0 = performance.now();
      revs.set(url, await pull(url, revs.get(url) ?? ''));
      latencies.push(performance.now() - t0);
    }
  })();
  await Promise.all([...pushers, sampler]);
  stop = true;
  await Promise.all(pollers);
  return {
    server: name,
    databases: dbUrls.length,
    pushesPerSecond: pushes / seconds,
    pullP50Ms: quantile(latencies, 0.5),
    pullP99Ms: quantile(latencies, 0.99),
    peakRssMiB: peakRssMiB(child.pid!),
  };
}

function stopChild(child: ChildProcess): Promise<void> {
  return stopGroup(child, 'SIGTERM');
}

export async function runServerLoad(databaseCounts = [1000, 10000], seconds = 5): Promise<LoadRow[]> {
  const rows: LoadRow[] = [];
  for (const count of databaseCounts) {
    const port = 22000 + Math.floor(Math.random() * 10000);
    const data = tempDir('outpost-load-');
    const child = spawnGroup(process.execPath, ['--import', 'tsx', 'src/server/cli.ts', 'serve', '--data', data, '--port', String(port), '--no-auth', '--quiet', '--max-open', process.env.LOAD_MAX_OPEN ?? '1000'], { stdio: 'ignore' });
    try {
      await waitForPort(`http://127.0.0.1:${port}`);
      const urls = Array.from({ length: count }, (_, i) => `http://127.0.0.1:${port}/db/d${i}`);
      rows.push(await workload('Outpost server', urls, child, seconds));
    } finally {
      await stopChild(child);
    }
  }
  const port = 32000 + Math.floor(Math.random() * 10000);
  const dir = tempDir('outpost-load-turso-');
  const turso = spawnGroup(process.execPath, [join(process.cwd(), 'node_modules/turso/src/index.js'), '--sync-server', `127.0.0.1:${port}`, join(dir, 'server.db')], { stdio: 'ignore' });
  try {
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 200; i++) {
      try {
        await pipeline(url, { baton: null, requests: [] });
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    // turso's sync server runs as a child of the npm wrapper; its RSS is the wrapper's child.
    rows.push(await workload('turso --sync-server', [url], turso, seconds));
  } finally {
    await stopChild(turso);
  }
  return rows;
}

export function loadTable(rows: LoadRow[]): string {
  return [
    '| server | databases | pushed transactions/s | pull p50 ms | pull p99 ms | peak RSS MiB |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.server} | ${r.databases} | ${r.pushesPerSecond.toFixed(0)} | ${r.pullP50Ms.toFixed(2)} | ${r.pullP99Ms.toFixed(2)} | ${Number.isNaN(r.peakRssMiB) ? 'n/a' : r.peakRssMiB.toFixed(0)} |`),
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(loadTable(await runServerLoad([Number(process.argv[2] ?? 1000)], Number(process.argv[3] ?? 5))));
}
