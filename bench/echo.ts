/**
 * `npx tsx bench/echo.ts [--rounds N] [--calls C]`
 *
 * The floor under a `SELECT 1` round trip (issue 15): in headless Chromium, in a persistent
 * profile, one cross-origin isolated page measures a message round trip to a dedicated worker by
 * every transport `bench/echo-page/main.ts` lists (postMessage with arrays or objects, map or
 * per-call listeners, a port pair, a transfer, Comlink, SharedArrayBuffer counters, and threads
 * kept awake by a bounded spin), each the median of C round trips in a fresh worker (one that
 * does not finish in 60 s counts as not finished, and the next runs in a fresh page). The
 * variants run interleaved, in a rotated order each round; prints each round, then the median
 * and best over rounds, with the load average before and after.
 */
import { loadavg, tmpdir } from 'node:os';
import { mkdtempSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright';
import { chromiumPath } from '../scripts/chromium.js';
import { serveCheckoutPage } from './checkout.js';

const argv = process.argv.slice(2);
const opt = (name: string, fallback: number): number => {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
};
const rounds = opt('--rounds', 6);
const calls = opt('--calls', 2000);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');

async function main(): Promise<void> {
  const url = await serveCheckoutPage(resolve(new URL('..', import.meta.url).pathname), 'echo-page', true);
  const context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'outpost-echo-profile-')), {
    executablePath: chromiumPath(),
    headless: true,
    args: ['--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const loadBefore = load();
  const got: Record<string, number[]> = {};
  try {
    const openPage = async (): Promise<import('playwright').Page> => {
      const page = await context.newPage();
      page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
      await page.goto(url);
      await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready', undefined, { timeout: 60_000 });
      if (!(await page.evaluate(() => window.echo.isolated))) throw new Error('the page is not cross-origin isolated');
      return page;
    };
    let page = await openPage();
    const variants = await page.evaluate(() => window.echo.variants);
    for (let round = 0; round < rounds; round++) {
      const k = round % variants.length;
      const order = [...variants.slice(k), ...variants.slice(0, k)];
      const r: Record<string, number> = {};
      for (const v of order) {
        // A variant that does not finish in 60 s is reported as NaN, in a fresh page.
        const timedOut = new Promise<null>((resolve) => setTimeout(() => resolve(null), 60_000));
        const got1 = await Promise.race([page.evaluate(([c, o]) => window.echo.all(c, o as never), [calls, [v]] as const), timedOut]);
        r[v] = got1?.[v] ?? Number.NaN;
        if (!got1) {
          process.stderr.write(`round ${round + 1}: ${v} did not finish\n`);
          await page.close();
          page = await openPage();
        }
      }
      for (const [v, ms] of Object.entries(r)) (got[v] ??= []).push(ms);
      process.stderr.write(`round ${round + 1} (load ${load()}): ${variants.map((v) => `${v} ${r[v]!.toFixed(3)}`).join(', ')}\n`);
    }
  } finally {
    await context.close();
  }
  console.log(`| echo round trip, ${rounds} rounds of ${calls}, load ${loadBefore} -> ${load()} | median ms | best ms |`);
  console.log('|---|---:|---:|');
  for (const [v, all] of Object.entries(got)) {
    const xs = all.filter((x) => !Number.isNaN(x));
    const hung = all.length - xs.length;
    console.log(`| ${v}${hung ? ` (${hung} of ${all.length} did not finish)` : ''} | ${xs.length ? median(xs).toFixed(3) : '-'} | ${xs.length ? Math.min(...xs).toFixed(3) : '-'} |`);
  }
  process.exit(0);
}

await main();
