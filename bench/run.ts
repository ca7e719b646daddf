/**
 * `npm run bench [-- --out FILE] [--runs N] [--quick] [--configs a,b] [--no-node] [--no-tabs] [--tabs-only] [--bootstrap-only] [--browser-bootstrap-only] [--profile DIR]`
 *
 * Builds the benchmark page (bench/page) with Vite and serves it on 127.0.0.1, with COOP/COEP headers
 * because Turso's WASM engine needs SharedArrayBuffer (Outpost does not; the headers do not
 * change its speed). Drives headless Chromium in a *persistent* profile (a throwaway profile
 * makes OPFS about 20 times slower), runs every configuration in a fresh dedicated worker,
 * then the Node suite in this process. Prints a markdown table of medians and, with --out,
 * writes JSON: { machine, configs, results: { test: { config: { ms, runs, ... } } } }.
 *
 * --quick is the smoke run `npm test` uses: one run of a few tests at a small scale.
 * The sync part's Node children (the 200 MB bootstrap, the large pull) and the load bench's
 * servers run Outpost's build: `npm run bench` builds first (`prebench`); run directly,
 * `npm run build` first (bench/child-sample.ts refuses a stale build).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { type Page, chromium } from 'playwright';
import { build, preview } from 'vite';
import { chromiumPath } from '../scripts/chromium.js';
import { CLASSIC_TESTS } from './classic.js';
import { NODE_CONFIGS, runNodeAbortStop, runNodeClassic, runNodeOpen, runNodeSelect1, runNodeWatchLatency } from './node.js';
import { type LoadRow, loadTable, runServerLoad } from './server-load.js';
import { type NeighbourRow, neighbourTable, runNeighbourBench } from './neighbour.js';
import { type LargePullRow, largePullTable, runLargePullBench } from './large-pull.js';
import { type BootstrapBenchRow, type BrowserBootstrapRow, type SyncBenchRow, bootstrapTable, browserBootstrapTable, runBootstrapBench, runBrowserBootstrapBench, runSyncBench, syncTable } from './sync.js';
import { type LiveBenchRow, liveTable, runLiveBench } from './live.js';
import { type TabsRow, runTabsBench, tabsTable } from './tabs.js';
import { speedTable } from './targets.js';
import { WorkerProfiler, saveProfiles } from './profile.js';
import type { ApiResult } from './page/main.js';

export const BROWSER_CONFIGS = ['outpost', 'outpost-full', 'memory', 'sahpool', 'sahpool-wal', 'turso-wasm'] as const;
const API_CONFIGS = ['outpost', 'outpost-full', 'memory'];

export interface Cell {
  ms: number;
  runs: number[];
  /** The fastest run (the issue-15 table compares best runs). */
  best?: number;
  /** The highest rate of the runs. */
  bestRate?: number;
  p99Ms?: number;
  rate?: number;
  unit?: string;
}
export interface BenchReport {
  machine: Record<string, string | number>;
  configs: string[];
  results: Record<string, Record<string, Cell>>;
  failures: Record<string, string>;
  sync?: SyncBenchRow[];
  bootstrap?: BootstrapBenchRow[];
  largePull?: LargePullRow[];
  browserBootstrap?: BrowserBootstrapRow[];
  live?: LiveBenchRow[];
  serverLoad?: LoadRow[];
  neighbour?: NeighbourRow[];
  tabs?: TabsRow[];
}

export interface Options {
  out?: string | undefined;
  runs: number;
  scale: number;
  only?: Set<string> | undefined;
  configs: string[];
  node: boolean;
  api: boolean;
  /** Per configuration and run, for the classic tests. */
  timeoutMs: number;
  /** The sync (20 MB bootstrap) and server load parts. */
  sync: boolean;
  /** Of the sync part, only the 200 MB bootstraps (Node and browser). */
  bootstrapOnly?: boolean;
  /** Of those, only the browser's (with `--profile`: its page and worker profiled). */
  browserBootstrapOnly?: boolean;
  load: boolean;
  /** The multi-tab figures (bench/tabs.ts): hand-overs, round trips, watch latency. */
  tabs: boolean;
  /** CPU profiles of the workers, per test of the classic suite through the API (bench/profile.ts). */
  profileDir?: string | undefined;
}

export function parseArgs(argv: string[]): Options {
  const opts: Options = { runs: 3, scale: 1, configs: [...BROWSER_CONFIGS], node: true, api: true, timeoutMs: 240_000, sync: true, load: true, tabs: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--out') opts.out = next();
    else if (a === '--runs') opts.runs = Math.max(1, Number(next()));
    else if (a === '--configs') opts.configs = next().split(',');
    else if (a === '--no-node') opts.node = false;
    else if (a === '--no-api') opts.api = false;
    else if (a === '--no-sync') opts.sync = false;
    else if (a === '--no-load') opts.load = false;
    else if (a === '--no-tabs') opts.tabs = false;
    else if (a === '--tabs-only') Object.assign(opts, { configs: [], node: false, api: false, sync: false, load: false, tabs: true });
    else if (a === '--load-only') Object.assign(opts, { configs: [], node: false, api: false, sync: false, load: true, tabs: false });
    else if (a === '--profile') opts.profileDir = next();
    else if (a === '--bootstrap-only') Object.assign(opts, { configs: [], node: false, api: false, sync: true, bootstrapOnly: true, load: false, tabs: false });
    else if (a === '--browser-bootstrap-only') Object.assign(opts, { configs: [], node: false, api: false, sync: true, bootstrapOnly: true, browserBootstrapOnly: true, load: false, tabs: false });
    else if (a === '--scale') opts.scale = Number(next());
    else if (a === '--only') opts.only = new Set(next().split(','));
    else if (a === '--timeout') opts.timeoutMs = Number(next()) * 1000;
    else if (a === '--quick') {
      opts.runs = 1;
      opts.scale = 0.02;
      opts.only = new Set(['c01', 'c02', 'c07']);
      opts.configs = ['outpost', 'memory', 'sahpool-wal'];
      opts.sync = false;
      opts.load = false;
      opts.tabs = false;
    } else throw new Error(`unknown argument ${a}`);
  }
  return opts;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function record(report: BenchReport, test: string, config: string, sample: Omit<Cell, 'runs'>): void {
  const row = (report.results[test] ??= {});
  const cell = (row[config] ??= { ms: 0, runs: [] });
  cell.runs.push(sample.ms);
  cell.ms = median(cell.runs);
  cell.best = Math.min(...cell.runs);
  if (sample.p99Ms !== undefined) cell.p99Ms = sample.p99Ms;
  if (sample.rate !== undefined) {
    cell.unit = sample.unit;
    // Keep the rate of the median run.
    const rates = (cell as Cell & { rates?: number[] }).rates ?? [];
    rates.push(sample.rate);
    Object.defineProperty(cell, 'rates', { value: rates, enumerable: false, configurable: true });
    cell.rate = median(rates);
    cell.bestRate = Math.max(...rates);
  }
}

/**
 * The classic suite through the public API on `:memory:` and OPFS (alternating which goes
 * first), and T1's storage floor (raw frame appends) in the same page run.
 */
/** What the profiles taken now belong to (`--profile`). */
let profileLabel = '';

async function runApiClassicPair(page: Page, report: BenchReport, opts: Options, run: number): Promise<void> {
  const storages = run % 2 === 0 ? (['memory', 'opfs'] as const) : (['opfs', 'memory'] as const);
  for (const storage of storages) {
    const config = storage === 'memory' ? 'api-memory' : 'api-outpost';
    const runId = `${config}-${run}-${Date.now()}`;
    profileLabel = `${config}-run${run + 1}`;
    const reply = await page.evaluate(([s, id, sc, only]) => window.bench.runApiClassic(s, id, sc, only), [storage, runId, opts.scale, opts.only ? [...opts.only] : undefined] as const);
    if (!reply.ok) {
      report.failures[config] = reply.error ?? 'failed';
      continue;
    }
    for (const [test, ms] of Object.entries(reply.times ?? {})) record(report, test, config, { ms });
    process.stderr.write(`run ${run + 1}/${opts.runs} ${config}: classic through the API done\n`);
  }
  // The same suite through the official Worker1 promiser on opfs-sahpool (page/worker1.ts).
  profileLabel = `api-worker1-run${run + 1}`;
  const worker1 = await page.evaluate(([id, sc, only]) => window.bench.runWorker1Classic(id, sc, only), [`worker1-${run}-${Date.now()}`, opts.scale, opts.only ? [...opts.only] : undefined] as const);
  if (worker1.ok) {
    for (const [test, ms] of Object.entries(worker1.times ?? {})) record(report, test, 'api-worker1', { ms });
    process.stderr.write(`run ${run + 1}/${opts.runs} api-worker1: classic through Worker1 done\n`);
  } else report.failures['api-worker1'] = worker1.error ?? 'failed';
  const appends = await page.evaluate((req) => window.bench.runClassicConfig(req), {
    config: 'raw-appends', runId: `appends-${run}-${Date.now()}`, scale: opts.scale, timeoutMs: opts.timeoutMs, pragmas: undefined,
  });
  if (appends.ok && appends.times?.appends !== undefined) record(report, 'raw-appends', 'opfs', { ms: appends.times.appends });
}

export async function runBench(opts: Options): Promise<BenchReport> {
  const report: BenchReport = {
    machine: {
      date: new Date().toISOString(),
      cpus: `${cpus().length} x ${cpus()[0]?.model ?? 'unknown'}`,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
    },
    configs: [...opts.configs, ...(opts.api && opts.configs.includes('outpost') ? ['api-outpost', 'api-memory', 'api-worker1'] : []), ...(opts.node ? NODE_CONFIGS : [])],
    results: {},
    failures: {},
  };
  const root = new URL('./page/', import.meta.url).pathname;
  const outDir = mkdtempSync(join(tmpdir(), 'outpost-bench-build-'));
  // A production build, served by Vite's preview server: what users ship, and no dev-server
  // dependency discovery reloading the page in the middle of a run.
  await build({
    root,
    configFile: false,
    logLevel: 'warn',
    build: { outDir, emptyOutDir: true, target: 'es2022' },
    worker: { format: 'es' },
  });
  const server = await preview({
    root,
    configFile: false,
    logLevel: 'warn',
    build: { outDir },
    preview: {
      host: '127.0.0.1',
      port: 0,
      headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' },
    },
  });
  const address = server.httpServer.address();
  if (!address || typeof address === 'string') throw new Error('vite did not bind');
  // The same build without COOP/COEP: Outpost's default page, where an abort reaches a running
  // statement through the abort file instead of shared memory (src/worker/abort-file.ts).
  const unisolatedServer = await preview({ root, configFile: false, logLevel: 'warn', build: { outDir }, preview: { host: '127.0.0.1', port: 0 } });
  const unisolatedAddress = unisolatedServer.httpServer.address();
  if (!unisolatedAddress || typeof unisolatedAddress === 'string') throw new Error('vite did not bind');
  const profile = mkdtempSync(join(tmpdir(), 'outpost-bench-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    headless: true,
    // ForceEagerMeasureMemory: measureUserAgentSpecificMemory answers at once (the bootstrap's memory samples).
    args: ['--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--enable-blink-features=ForceEagerMeasureMemory', ...(opts.profileDir ? ['--remote-debugging-port=0'] : [])],
  });
  let profiler: WorkerProfiler | null = null;
  try {
    const page = await context.newPage();
    page.on('pageerror', (e) => console.error('page error:', e.message));
    await page.goto(`http://127.0.0.1:${address.port}/`);
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready', undefined, { timeout: 60_000 });
    if (opts.profileDir) {
      const dir = opts.profileDir;
      mkdirSync(dir, { recursive: true });
      const live = await WorkerProfiler.connect(profile);
      profiler = live;
      await page.exposeFunction('benchStep', async (id: string, phase: 'start' | 'end') => {
        if (phase === 'start') await live.start();
        else saveProfiles(dir, `${profileLabel}-${id}`, await live.stop());
      });
    }
    report.machine.browser = `Chromium ${context.browser()?.version() ?? (await page.evaluate(() => navigator.userAgent))}`;
    await page.evaluate(() => window.bench.cleanup());
    const unisolated = opts.api ? await context.newPage() : null;
    if (unisolated) {
      unisolated.on('pageerror', (e) => console.error('page error (no isolation):', e.message));
      await unisolated.goto(`http://127.0.0.1:${unisolatedAddress.port}/`);
      await unisolated.waitForFunction(() => document.getElementById('status')?.textContent === 'ready', undefined, { timeout: 60_000 });
      await unisolated.evaluate(() => window.bench.cleanup());
    }

    for (let run = 0; run < opts.runs; run++) {
      for (const config of opts.configs) {
        if (report.failures[config]) continue;
        const runId = `${config}-${run}-${Date.now()}`;
        const reply = await page.evaluate(
          (req) => window.bench.runClassicConfig(req),
          { config, runId, scale: opts.scale, only: opts.only ? [...opts.only] : undefined, timeoutMs: opts.timeoutMs, pragmas: process.env.BENCH_PRAGMAS },
        );
        if (!reply.ok) {
          report.failures[config] = reply.error ?? 'failed';
          console.error(`${config}: could not run: ${reply.error}`);
          continue;
        }
        for (const [test, ms] of Object.entries(reply.times ?? {})) record(report, test, config, { ms });
        process.stderr.write(`run ${run + 1}/${opts.runs} ${config}: classic done\n`);
      }
      if (opts.api && opts.configs.includes('outpost')) await runApiClassicPair(page, report, opts, run);
      if (opts.api) {
        for (const config of API_CONFIGS.filter((c) => opts.configs.includes(c))) {
          const runId = `${config}-${run}-${Date.now()}`;
          profileLabel = `${config}-run${run + 1}`;
          const api: ApiResult[] = await page.evaluate(([c, id, s]) => window.bench.runApi(c, id, s), [config, runId, opts.scale] as const);
          const opens: ApiResult[] = await page.evaluate(([c, id, s]) => window.bench.runOpen(c, id, s), [config, runId, opts.scale] as const);
          for (const r of [...api, ...opens]) record(report, r.metric, config, r);
        }
        for (const config of ['outpost', 'memory'].filter((c) => opts.configs.includes(c))) {
          const runId = `abort-${config}-${run}-${Date.now()}`;
          const storage = config === 'memory' ? 'memory' : 'opfs';
          const rows: ApiResult[] = await unisolated!.evaluate(([s, id, sc]) => window.bench.runAbort(s, id, sc), [storage, runId, opts.scale] as const);
          for (const r of rows) record(report, r.metric, config, r);
        }
        await unisolated!.evaluate(() => window.bench.cleanup());
      }
      await page.evaluate(() => window.bench.cleanup());
    }
    if (opts.tabs) {
      process.stderr.write('multi-tab: hand-overs, round trips, watch latency\n');
      report.tabs = await runTabsBench(context, `http://127.0.0.1:${address.port}/`, { handovers: 20, calls: Math.max(50, Math.round(500 * opts.scale)) });
    }
    if (opts.sync) {
      process.stderr.write('browser: a 200 MB bootstrap, time and page + worker memory\n');
      profileLabel = 'browser-bootstrap';
      report.browserBootstrap = await runBrowserBootstrapBench(page, 200);
      process.stderr.write(`${browserBootstrapTable(report.browserBootstrap)}\n`);
    }
  } finally {
    profiler?.close();
    await context.close();
    await server.close();
    await unisolatedServer.close();
    rmSync(profile, { recursive: true, force: true });
    rmSync(outDir, { recursive: true, force: true });
  }

  if (opts.sync && !opts.browserBootstrapOnly) {
    if (!opts.bootstrapOnly) {
      process.stderr.write('sync: 20 MB bootstrap and one-row pull\n');
      report.sync = await runSyncBench(20);
    }
    process.stderr.write('sync: a 200 MB bootstrap per client, each in its own process\n');
    report.bootstrap = await runBootstrapBench(200);
    process.stderr.write('sync: a 100 MB incremental pull, in its own process\n');
    report.largePull = await runLargePullBench(100);
    if (!opts.bootstrapOnly) {
      process.stderr.write('live sync: a write in client A to the watch callback in client B\n');
      report.live = await runLiveBench(50);
    }
  }
  if (opts.load) {
    process.stderr.write('server load: 1,000 and 10,000 databases\n');
    report.serverLoad = await runServerLoad([1000, 10000], 5);
    process.stderr.write('server: a heavy tenant beside normal traffic\n');
    report.neighbour = await runNeighbourBench(8);
  }
  if (opts.node) {
    for (let run = 0; run < opts.runs; run++) {
      for (const config of NODE_CONFIGS) {
        const times = await runNodeClassic(config, opts.scale, opts.only);
        for (const [test, ms] of Object.entries(times)) record(report, test, config, { ms });
        const s1 = await runNodeSelect1(config, Math.max(10, Math.round(1000 * opts.scale)));
        record(report, 'api-select1', config, s1);
      }
      record(report, 'api-select1-inline', 'node-outpost', await runNodeSelect1('node-outpost', Math.max(10, Math.round(1000 * opts.scale)), 'inline'));
      record(report, 'api-abort-stop', 'node-outpost', await runNodeAbortStop(Math.max(5, Math.round(20 * opts.scale))));
      record(report, 'open-new', 'node-outpost', await runNodeOpen('thread'));
      record(report, 'open-new-inline', 'node-outpost', await runNodeOpen('inline'));
      const watch = await runNodeWatchLatency(Math.max(20, Math.round(500 * opts.scale)));
      // The report's second figure is a p99 elsewhere; for the watch it is the p95 (see the title).
      record(report, 'api-watch-latency', 'node-outpost', { ms: watch.ms, p99Ms: watch.p95Ms });
    }
  }
  return report;
}

const TITLES: Record<string, string> = {
  ...Object.fromEntries(CLASSIC_TESTS.map((t) => [t.id, `${t.id} ${t.title}`])),
  'api-select1': 'API: SELECT 1 round trip, median (p99)',
  'api-echo': 'API floor: a bare postMessage round trip to an echoing worker, median',
  'api-select1-inline': 'API: SELECT 1 round trip, Node engine: "inline", median (p99)',
  'api-abort-stop': 'API: abort() of a running statement to its AbortError, median (p99)',
  'api-abort-stop-unisolated': 'API: abort() of a running statement to its AbortError, page without cross-origin isolation, median (p99)',
  'api-long-call-signal': 'API: a 2,000,000-step count with a signal, page without isolation (best of 3)',
  'api-long-call': 'API: the same count without a signal (best of 3, interleaved)',
  'open-new-inline': 'open() a new database, Node engine: "inline"',
  'api-watch-latency': 'API: watch, commit to onRows (throttleMs 0, same process), median (p95)',
  'api-query-100k': 'API: query 100,000 rows x 5 columns',
  'api-blob-write': 'API: write a 10 MB blob',
  'api-blob-read': 'API: read a 10 MB blob',
  'api-run-1000': 'API: 1000 autocommit run() calls',
  'open-new': 'open() a new database',
  'open-50mb': 'open() an existing 50 MB database',
};

function formatCell(cell: Cell | undefined): string {
  if (!cell) return '';
  let s = cell.ms < 1 ? cell.ms.toFixed(3) : cell.ms < 100 ? cell.ms.toFixed(1) : cell.ms.toFixed(0);
  if (cell.p99Ms !== undefined) s += ` (${cell.p99Ms.toFixed(3)})`;
  if (cell.rate !== undefined) s += ` · ${cell.rate >= 1e5 ? `${(cell.rate / 1e6).toFixed(2)}M` : cell.rate.toFixed(0)} ${cell.unit}`;
  return s;
}

export function toMarkdown(report: BenchReport): string {
  const configs = report.configs;
  const lines: string[] = [];
  lines.push(`Milliseconds, median of runs (lower is better). ${report.machine.date}; ${report.machine.cpus}; ${report.machine.browser ?? ''}; Node ${report.machine.node}.`);
  lines.push('');
  lines.push(`| test | ${configs.join(' | ')} | outpost / memory |`);
  lines.push(`| --- | ${configs.map(() => '---:').join(' | ')} | ---: |`);
  for (const test of Object.keys(TITLES)) {
    const row = report.results[test];
    if (!row) continue;
    const ratio = row.outpost && row.memory ? `${(row.outpost.ms / row.memory.ms).toFixed(2)}x` : '';
    lines.push(`| ${TITLES[test]} | ${configs.map((c) => formatCell(row[c])).join(' | ')} | ${ratio} |`);
  }
  for (const [config, error] of Object.entries(report.failures)) lines.push(`\n${config} could not run: ${error}`);
  if (report.results['c01']?.['api-outpost']) lines.push('', "Issue 15's targets (best run of each figure; api-* run through the public API):", '', speedTable(report));
  if (report.sync) lines.push('', 'Sync (Node clients, both against the same server):', '', syncTable(report.sync));
  if (report.bootstrap) lines.push('', 'A 200 MB bootstrap (Node clients, each in its own process; memory is the peak RSS above the idle process):', '', bootstrapTable(report.bootstrap));
  if (report.largePull) lines.push('', 'A 100 MB incremental pull after a small bootstrap (Node, each in its own process, Outpost server; memory is the sampled peak above the process after the open; CPU is the whole process):', '', largePullTable(report.largePull));
  if (report.browserBootstrap) lines.push('', 'A 200 MB bootstrap in Chromium (OPFS) against the Outpost server, beside @tursodatabase/sync in Node against the same server:', '', browserBootstrapTable(report.browserBootstrap));
  if (report.live) lines.push('', "Live sync: client A's insert to client B's watch callback (Node clients, both live, loopback, one write at a time):", '', liveTable(report.live));
  if (report.serverLoad) lines.push('', 'Sync server under load (loopback; 200 long-polling clients, 32 pushing):', '', loadTable(report.serverLoad));
  if (report.tabs) lines.push('', 'Several tabs of one browser context sharing one OPFS database:', '', tabsTable(report.tabs));
  if (report.neighbour) lines.push('', 'Other tenants beside one running heavy queries back to back (default limits: 2 s a statement, a quarter of the server):', '', neighbourTable(report.neighbour));
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const opts = parseArgs(process.argv.slice(2));
  // Every temporary directory of the run (databases, profiles, servers' data, children's files)
  // goes under one root, removed at the end, as the tests do (test/support/temp-root.ts).
  const tempRoot = mkdtempSync(join(tmpdir(), 'outpost-bench-run-'));
  process.env.TMPDIR = tempRoot;
  process.on('exit', () => rmSync(tempRoot, { recursive: true, force: true, maxRetries: 3 }));
  const report = await runBench(opts);
  console.log(toMarkdown(report));
  if (opts.out) {
    writeFileSync(opts.out, JSON.stringify(report, null, 2));
    console.error(`wrote ${opts.out}`);
  }
  // Everything the run started has been stopped; a handle some library keeps open (the sync
  // clients' timers, a keep-alive socket) must not keep the command running after its report.
  process.exit(0);
}
