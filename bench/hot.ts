/**
 * `npx tsx bench/hot.ts [--base DIR] [--rounds N] [--calls C] [--rows R] [--queries Q] [--storage opfs|memory] [--no-t1] [--profile DIR]`
 *
 * The per-call figures of issue 15 alone, in headless Chromium through the public API: the
 * `SELECT 1` round trip (median of C calls), a bare postMessage echo to a worker in the same page
 * (the floor), and `query()` of R rows x 5 columns (the best of Q queries). With --base, the same
 * page built from another checkout (DIR, which gets bench/hot-page copied in if it lacks it) runs
 * in the same browser, interleaved round by round with alternating order: on a busy machine only
 * such same-run ratios mean anything. Unless --no-t1, also T1 of the classic suite through the
 * public API (1,000 awaited autocommit INSERTs) on OPFS and on memory, and its floor (memory T1
 * plus 1,000 raw OPFS frame appends). On Linux also the CPU time of the whole Chromium (every
 * process, `treeCpuMs`) over the `SELECT 1` calls and over T1. Prints per-round figures and the
 * medians over rounds. --profile DIR takes CPU profiles (bench/profile.ts) of the page and its
 * workers over each tree's `SELECT 1` calls, from pages built unminified, into DIR/<tree>-<round>-*.
 */
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright';
import { chromiumPath } from '../scripts/chromium.js';
import { serveCheckoutPage } from './checkout.js';
import { WorkerProfiler, saveProfiles } from './profile.js';
import { treeCpuMs } from './tree-cpu.js';

interface Args {
  base?: string | undefined;
  rounds: number;
  calls: number;
  rows: number;
  queries: number;
  storage: 'opfs' | 'memory';
  t1: boolean;
  profile?: string | undefined;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { rounds: 6, calls: 2000, rows: 100_000, queries: 3, storage: 'opfs', t1: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--base') args.base = resolve(next());
    else if (a === '--rounds') args.rounds = Number(next());
    else if (a === '--calls') args.calls = Number(next());
    else if (a === '--rows') args.rows = Number(next());
    else if (a === '--queries') args.queries = Number(next());
    else if (a === '--no-t1') args.t1 = false;
    else if (a === '--profile') args.profile = resolve(next());
    else if (a === '--storage') {
      const s = next();
      if (s !== 'opfs' && s !== 'memory') throw new Error('--storage is opfs or memory');
      args.storage = s;
    } else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};


interface Round {
  select1Ms: number;
  echoMs: number;
  queryMs: number;
  /** CPU ms of Chromium per `SELECT 1` call (treeCpuMs), per `query()`, and of T1 on OPFS. */
  select1CpuMs: number;
  queryCpuMs: number;
  t1CpuMs: number;
  /** T1 (1,000 awaited autocommit INSERTs) on OPFS and on memory, and 1,000 raw frame appends; NaN with --no-t1. */
  t1Ms: number;
  t1MemoryMs: number;
  appendsMs: number;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const trees: Record<string, string> = { current: resolve(new URL('..', import.meta.url).pathname) };
  if (args.base) trees.base = args.base;
  const urls: Record<string, string> = {};
  for (const [label, tree] of Object.entries(trees)) urls[label] = await serveCheckoutPage(tree, 'hot-page', true, !args.profile);
  const profile = mkdtempSync(join(tmpdir(), 'outpost-hot-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    headless: true,
    args: ['--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', ...(args.profile ? ['--remote-debugging-port=0'] : [])],
  });
  if (args.profile) mkdirSync(args.profile, { recursive: true });
  const rounds: Record<string, Round[]> = {};
  try {
    for (let round = 0; round < args.rounds; round++) {
      const order = Object.keys(urls);
      if (round % 2) order.reverse();
      for (const label of order) {
        const page = await context.newPage();
        page.on('pageerror', (e) => console.error(`${label}: page error: ${e.message}`));
        await page.goto(urls[label]!);
        await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready', undefined, { timeout: 60_000 });
        await page.evaluate(([n, s, r]) => window.hot.prepare(n, s, r), [`hot-${label}-${round}`, args.storage, args.rows] as const);
        // The profiler attaches to the pages open now: this one, with its database's worker.
        const profiler = args.profile ? await WorkerProfiler.connect(profile) : null;
        await profiler?.start();
        const cpu0 = treeCpuMs();
        const select1Ms = await page.evaluate((c) => window.hot.select1(c), args.calls);
        const select1CpuMs = (treeCpuMs() - cpu0) / (args.calls + 50);
        if (profiler) {
          saveProfiles(args.profile!, `${label}-${round}-select1`, await profiler.stop());
          profiler.close();
        }
        const echoMs = await page.evaluate((c) => window.hot.echo(c), args.calls);
        const queries: number[] = [];
        const cpu2 = treeCpuMs();
        for (let q = 0; q < args.queries; q++) queries.push(await page.evaluate(() => window.hot.query()));
        const queryCpuMs = (treeCpuMs() - cpu2) / args.queries;
        await page.evaluate(() => window.hot.close());
        // T1 and its floor (issue 15): the pages of checkouts without them measure NaN.
        const hasT1 = args.t1 && (await page.evaluate(() => typeof window.hot.t1 === 'function'));
        const cpu1 = treeCpuMs();
        const t1Ms = hasT1 ? await page.evaluate((n) => window.hot.t1(n, 'opfs'), `t1-${label}-${round}`) : Number.NaN;
        const t1CpuMs = treeCpuMs() - cpu1;
        const t1MemoryMs = hasT1 ? await page.evaluate((n) => window.hot.t1(n, 'memory'), `t1m-${label}-${round}`) : Number.NaN;
        const appendsMs = hasT1 ? await page.evaluate((n) => window.hot.appends(n), `app-${label}-${round}`) : Number.NaN;
        await page.close();
        const r: Round = { select1Ms, echoMs, queryMs: Math.min(...queries), select1CpuMs, queryCpuMs, t1CpuMs, t1Ms, t1MemoryMs, appendsMs };
        (rounds[label] ??= []).push(r);
        process.stderr.write(
          `round ${round + 1} ${label}: SELECT 1 ${select1Ms.toFixed(3)} ms (echo ${echoMs.toFixed(3)}, ${(select1Ms / echoMs).toFixed(2)}x; CPU ${select1CpuMs.toFixed(3)} ms a call); ` +
            `query ${queries.map((q) => ((args.rows / q) * 1e-3).toFixed(2)).join(' ')} M rows/s` +
            (hasT1 ? `; T1 ${t1Ms.toFixed(1)} ms (CPU ${t1CpuMs.toFixed(0)}; memory ${t1MemoryMs.toFixed(1)}, appends ${appendsMs.toFixed(1)}, ${(t1Ms / (t1MemoryMs + appendsMs)).toFixed(2)}x floor)\n` : '\n'),
        );
      }
    }
  } finally {
    await context.close();
  }
  console.log(`| ${args.storage}, ${args.rounds} rounds, median over rounds (best) | ${Object.keys(urls).join(' | ')} |`);
  console.log(`|---|${Object.keys(urls).map(() => '---:').join('|')}|`);
  const row = (name: string, f: (r: Round) => number, fmt: (x: number) => string, higherBetter = false): void => {
    const cells = Object.keys(urls).map((l) => {
      const xs = (rounds[l] ?? []).map(f);
      return `${fmt(median(xs))} (${fmt(higherBetter ? Math.max(...xs) : Math.min(...xs))})`;
    });
    console.log(`| ${name} | ${cells.join(' | ')} |`);
  };
  row('SELECT 1 median, ms', (r) => r.select1Ms, (x) => x.toFixed(3));
  row('bare echo median, ms', (r) => r.echoMs, (x) => x.toFixed(3));
  row('SELECT 1 / echo', (r) => r.select1Ms / r.echoMs, (x) => `${x.toFixed(2)}x`);
  row('SELECT 1, Chromium CPU ms a call (all processes)', (r) => r.select1CpuMs, (x) => x.toFixed(4));
  row(`query() ${args.rows} x 5, M rows/s`, (r) => args.rows / r.queryMs / 1e3, (x) => x.toFixed(2), true);
  row('query(), Chromium CPU ms a query', (r) => r.queryCpuMs, (x) => x.toFixed(0));
  if (args.t1) {
    row('T1 through the API, opfs, ms', (r) => r.t1Ms, (x) => x.toFixed(1));
    row('T1 through the API, opfs, Chromium CPU ms', (r) => r.t1CpuMs, (x) => x.toFixed(0));
    row('T1 through the API, memory, ms', (r) => r.t1MemoryMs, (x) => x.toFixed(1));
    row('1,000 raw frame appends, ms', (r) => r.appendsMs, (x) => x.toFixed(1));
    row('T1 / floor (memory T1 + appends; target 1.3x)', (r) => r.t1Ms / (r.t1MemoryMs + r.appendsMs), (x) => `${x.toFixed(2)}x`);
  }
  process.exit(0);
}

await main();
