/**
 * Sync figures (part of `npm run bench`): a 20 MB bootstrap and a one-row incremental pull,
 * Outpost's client against the official @tursodatabase/sync client, both on the same server,
 * for each server (turso --sync-server and the Outpost server). Bytes are what each client
 * reports receiving.
 */
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { connect } from '@tursodatabase/sync';
import type { Page } from 'playwright';
import type { BootstrapSample } from './bootstrap-child.js';
import { type SampleSummary, runChild, summarise } from './child-sample.js';
import type { BrowserBootstrapResult } from './page/bootstrap.js';
import { treeCpuMs } from './tree-cpu.js';
import { open } from '../src/node/index.js';
import { batch, rawPipeline, startServer, startTursoServer, tempDir } from '../test/support/server.js';

export interface SyncBenchRow {
  server: string;
  client: string;
  bootstrapMs: number;
  bootstrapBytes: number;
  incrementalMs: number;
  incrementalBytes: number;
}

/** SQLite's own random blobs, 1,000 rows of 1,000 bytes per statement: fast, but `turso --sync-server` has no recursive CTEs. */
const FILL_ONE_MB_SQL = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) INSERT INTO big(payload) SELECT randomblob(1000) FROM c';

export async function fill(url: string, megabytes: number, recursiveCte = false): Promise<void> {
  const check = (res: { status: number; json: any }): void => {
    const errors = res.json?.results?.[0]?.response?.result?.step_errors ?? [];
    const bad = errors.find((e: unknown) => e !== null);
    if (res.status !== 200 || bad) throw new Error(`filling the bench database failed: ${JSON.stringify(bad ?? res.json)}`);
  };
  check(await rawPipeline(url, batch('CREATE TABLE big(id INTEGER PRIMARY KEY, payload BLOB)')));
  const payload = Buffer.alloc(1000);
  for (let i = 0; i < megabytes; i++) {
    const steps = recursiveCte ? [{ sql: FILL_ONE_MB_SQL }] : Array.from({ length: 1000 }, (_, j) => {
      payload.writeUInt32LE(i * 1000 + j, 0);
      for (let k = 4; k < 1000; k += 4) payload.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, k);
      return { sql: 'INSERT INTO big(payload) VALUES (?)', args: [{ type: 'blob', base64: payload.toString('base64') }] };
    });
    for (;;) {
      const res = await rawPipeline(url, batch(...steps));
      // The Outpost server rations each database's time: a bulk fill waits as it is told.
      if (res.status === 429) await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get('retry-after') ?? 1)));
      else {
        check(res);
        break;
      }
    }
  }
}

export async function runSyncBench(megabytes = 20): Promise<SyncBenchRow[]> {
  const rows: SyncBenchRow[] = [];
  const servers = benchServers();
  for (const server of servers) {
    const { url, stop } = await server.start();
    try {
      await fill(url, megabytes);
      const dir = tempDir('outpost-syncbench-');
      // Outpost
      let t0 = performance.now();
      const db = await open(join(dir, 'outpost.db'), { sync: { url } });
      const bootstrapMs = performance.now() - t0;
      const s0 = (await db.syncStatus())!;
      // Official
      t0 = performance.now();
      const official = await connect({ path: join(dir, 'official.db'), url, clientName: 'bench' });
      const officialBootstrapMs = performance.now() - t0;
      const o0 = await official.stats();
      // One row changes on the server; both pull it.
      await rawPipeline(url, batch("UPDATE big SET payload = x'00' WHERE id = 12345"));
      t0 = performance.now();
      await db.pull();
      const incrementalMs = performance.now() - t0;
      const s1 = (await db.syncStatus())!;
      t0 = performance.now();
      await official.pull();
      const officialIncrementalMs = performance.now() - t0;
      const o1 = await official.stats();
      rows.push({ server: server.name, client: 'outpost', bootstrapMs, bootstrapBytes: s0.bytesReceived, incrementalMs, incrementalBytes: s1.bytesReceived - s0.bytesReceived });
      rows.push({
        server: server.name,
        client: '@tursodatabase/sync',
        bootstrapMs: officialBootstrapMs,
        bootstrapBytes: o0.networkReceivedBytes,
        incrementalMs: officialIncrementalMs,
        incrementalBytes: o1.networkReceivedBytes - o0.networkReceivedBytes,
      });
      await db.close();
      await official.close();
    } finally {
      await stop();
    }
  }
  return rows;
}

export function syncTable(rows: SyncBenchRow[]): string {
  const mb = (b: number): string => (b / 1e6).toFixed(2);
  return [
    '| server | client | 20 MB bootstrap ms | bootstrap MB received | one-row pull ms | one-row pull KB received |',
    '| --- | --- | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.server} | ${r.client} | ${r.bootstrapMs.toFixed(0)} | ${mb(r.bootstrapBytes)} | ${r.incrementalMs.toFixed(1)} | ${(r.incrementalBytes / 1e3).toFixed(1)} |`),
  ].join('\n');
}

/** The bootstrap targets of issue 15: memory above idle, and time against the official client. */
export const BOOTSTRAP_MEMORY_TARGET_BYTES = 64 * 1024 * 1024;

export interface BootstrapBenchRow extends SampleSummary {
  server: string;
  client: string;
  megabytes: number;
}

/**
 * A large bootstrap (200 MB by default) by each client in its own process, against each
 * server, the clients interleaved run by run so that load on the machine hits them alike.
 * `OUTPOST_BENCH_BASELINE_ROOT` names another checkout whose Outpost runs beside this one
 * (a before/after comparison in the same run); `OUTPOST_BENCH_SERVER` picks one server.
 */
export async function runBootstrapBench(megabytes = 200, runs = 2): Promise<BootstrapBenchRow[]> {
  const baselineRoot = process.env.OUTPOST_BENCH_BASELINE_ROOT;
  const clients = [
    { name: 'outpost', kind: 'outpost', root: undefined as string | undefined },
    ...(baselineRoot ? [{ name: 'outpost (baseline)', kind: 'outpost', root: baselineRoot }] : []),
    { name: '@tursodatabase/sync', kind: 'official', root: undefined },
  ];
  const rows: BootstrapBenchRow[] = [];
  // OUTPOST_BENCH_SERVER=outpost (or turso) runs against that server alone: filling
  // turso --sync-server with 200 MB takes minutes and gigabytes of WAL.
  const only = process.env.OUTPOST_BENCH_SERVER;
  for (const server of benchServers().filter((s) => !only || s.name.toLowerCase().includes(only.toLowerCase()))) {
    const { url, stop } = await server.start();
    try {
      await fill(url, megabytes, server.name === 'Outpost server');
      const samples = new Map<string, BootstrapSample[]>(clients.map((c) => [c.name, []]));
      for (let run = 0; run < runs; run++) {
        for (const c of clients) {
          process.stderr.write(`bootstrap ${megabytes} MB: ${server.name}, ${c.name}, run ${run + 1}\n`);
          const dir = tempDir('outpost-bootstrapbench-');
          const sample = await runChild<BootstrapSample>('./bootstrap-child.ts', [c.kind, url, join(dir, 'db'), ...(c.root ? [c.root] : [])]);
          // Each run's figures, for medians and ratios run by run (the table keeps the best).
          process.stderr.write(`  ${Math.round(sample.ms)} ms, CPU ${Math.round(sample.cpuMs)} ms (system ${Math.round(sample.systemCpuMs ?? 0)}), load ${loadavg()[0]!.toFixed(1)}\n`);
          samples.get(c.name)!.push(sample);
        }
      }
      for (const c of clients) rows.push({ server: server.name, client: c.name, megabytes, ...summarise(samples.get(c.name)!) });
    } finally {
      await stop();
    }
  }
  return rows;
}

function benchServers(): { name: string; start: () => Promise<{ url: string; stop: () => Promise<void> }> }[] {
  return [
    { name: 'turso --sync-server', start: async () => { const t = await startTursoServer(); return { url: t.url, stop: t.stop }; } },
    { name: 'Outpost server', start: async () => { const s = await startServer({ auth: false }); return { url: `${s.url}/db/bench`, stop: () => s.server.close() }; } },
  ];
}

export function bootstrapTable(rows: BootstrapBenchRow[]): string {
  const mb = (b: number): string => (b / 1024 / 1024).toFixed(0);
  const official = (server: string): BootstrapBenchRow | undefined => rows.find((r) => r.server === server && r.client === '@tursodatabase/sync');
  return [
    `| server | client | bootstrap ms (best of ${rows[0]?.runs ?? 0}) | / official (target ≤ 1.00) | client CPU ms (best) | CPU / official | RSS above idle MiB (target ≤ ${mb(BOOTSTRAP_MEMORY_TARGET_BYTES)}) | JS heap + external above idle MiB |`,
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => {
      const base = official(r.server);
      const ratio = base ? (r.ms / base.ms).toFixed(2) : '';
      const cpuRatio = base?.cpuMs ? (r.cpuMs / base.cpuMs).toFixed(2) : '';
      return `| ${r.server} | ${r.client} | ${r.ms.toFixed(0)} | ${ratio} | ${r.cpuMs?.toFixed(0) ?? ''} | ${cpuRatio} | ${mb(r.rssAboveIdleBytes)} | ${mb(r.jsAboveIdleBytes)} |`;
    }),
  ].join('\n');
}

export interface BrowserBootstrapRow {
  client: string;
  megabytes: number;
  /** Best of the runs. */
  ms: number;
  /** CPU time, best of the runs: every Chromium process for Outpost (page, worker, network, browser), the process for the official client. */
  cpuMs: number;
  /** Page and workers, peak during the bootstrap above the idle page and an idle empty database's worker (worst run); null for Node. */
  aboveIdleBytes: number | null;
  /** What an idle empty database's worker holds (the engine loaded). */
  idleWorkerBytes: number | null;
}

/**
 * A large bootstrap in Chromium (the bench page on `page`, OPFS) against the Outpost server,
 * beside @tursodatabase/sync in Node against the same server in the same run (it has no
 * browser build to run beside it). Each run times a bootstrap without sampling, then measures
 * memory in a second one (sampling forces collections, which would slow the timed one).
 */
export async function runBrowserBootstrapBench(page: Page, megabytes = 200, runs = 2): Promise<BrowserBootstrapRow[]> {
  const started = await startServer({ auth: false });
  const url = `${started.url}/db/browser-bench`;
  try {
    await fill(url, megabytes, true);
    const timed: number[] = [];
    const timedCpu: number[] = [];
    const measured: BrowserBootstrapResult[] = [];
    const official: BootstrapSample[] = [];
    for (let run = 0; run < runs; run++) {
      process.stderr.write(`browser bootstrap ${megabytes} MB, run ${run + 1}\n`);
      const name = `bench-bootstrap-${run}-${Date.now()}`;
      const cpu0 = treeCpuMs();
      timed.push((await page.evaluate(([u, n]) => window.benchBootstrap(u, n, false), [url, `${name}-t`] as const)).ms);
      timedCpu.push(treeCpuMs() - cpu0);
      official.push(await runChild<BootstrapSample>('./bootstrap-child.ts', ['official', url, join(tempDir('outpost-bootstrapbench-'), 'db')]));
      measured.push(await page.evaluate(([u, n]) => window.benchBootstrap(u, n, true), [url, `${name}-m`] as const));
      await page.evaluate(() => window.bench.cleanup());
    }
    const above = measured.map((m) => m.peakBytes - m.idleBytes - m.idleWorkerBytes);
    return [
      { client: 'outpost (Chromium, OPFS)', megabytes, ms: Math.min(...timed), cpuMs: Math.min(...timedCpu), aboveIdleBytes: Math.max(...above), idleWorkerBytes: Math.max(...measured.map((m) => m.idleWorkerBytes)) },
      { client: '@tursodatabase/sync (Node)', megabytes, ms: Math.min(...official.map((o) => o.ms)), cpuMs: Math.min(...official.map((o) => o.cpuMs)), aboveIdleBytes: null, idleWorkerBytes: null },
    ];
  } finally {
    await started.server.close();
  }
}

export function browserBootstrapTable(rows: BrowserBootstrapRow[]): string {
  const mb = (b: number | null): string => (b === null ? '' : (b / 1024 / 1024).toFixed(0));
  const official = rows.find((r) => r.client.startsWith('@tursodatabase/sync'));
  return [
    `| client | bootstrap ms | / official (target ≤ 1.00) | CPU ms | CPU / official | page + worker above idle MiB (target ≤ ${mb(BOOTSTRAP_MEMORY_TARGET_BYTES)}) | idle worker MiB |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.client} | ${r.ms.toFixed(0)} | ${official ? (r.ms / official.ms).toFixed(2) : ''} | ${r.cpuMs.toFixed(0)} | ${official ? (r.cpuMs / official.cpuMs).toFixed(2) : ''} | ${mb(r.aboveIdleBytes)} | ${mb(r.idleWorkerBytes)} |`),
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (process.argv[2] === 'bootstrap') {
    const rows = await runBootstrapBench(Number(process.argv[3] ?? 200), Number(process.argv[4] ?? 2));
    console.log(bootstrapTable(rows));
  } else console.log(syncTable(await runSyncBench(Number(process.argv[2] ?? 20))));
}
