/**
 * `npx tsx bench/open.ts [--base DIR] [--rounds N] [--opens K] [--mb M] [--alone]`
 *
 * The open of an existing database as users see it, in headless Chromium through the public
 * API, in one persistent browser profile: a first page makes a database of about M MiB (50),
 * then each round, per tree, measures two visits of a returning user, in fresh pages:
 * - first visit of the assets: the browser's HTTP cache is cleared and the page opens the
 *   database once (the data is there but the page, worker and WASM are fetched again, as after
 *   a deploy that renamed them);
 * - return visit: the assets are cached (by that first visit) and the page opens the database K
 *   times (3): its first open pays for loading SQLite, the later ones show what the page reuses.
 * With --base, the same pages built from another checkout (DIR, which gets bench/open-page
 * copied in if it lacks it) run in the same browser, interleaved round by round with
 * alternating order: on a busy machine only such same-run ratios mean anything. --alone opens
 * with an explicit lockTimeoutMs (the database alone, no tab sharing); the default is
 * `open(name)`, shared. Prints the min and median of each open by position.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright';
import { chromiumPath } from '../scripts/chromium.js';
import { serveCheckoutPage } from './checkout.js';

interface Args {
  base?: string | undefined;
  rounds: number;
  opens: number;
  mb: number;
  alone: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { rounds: 8, opens: 3, mb: 50, alone: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--base') args.base = resolve(next());
    else if (a === '--rounds') args.rounds = Number(next());
    else if (a === '--opens') args.opens = Number(next());
    else if (a === '--mb') args.mb = Number(next());
    else if (a === '--alone') args.alone = true;
    else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const trees: Record<string, string> = { current: resolve(new URL('..', import.meta.url).pathname) };
  if (args.base) trees.base = args.base;
  const urls: Record<string, string> = {};
  for (const [label, tree] of Object.entries(trees)) urls[label] = await serveCheckoutPage(tree, 'open-page');
  const profile = mkdtempSync(join(tmpdir(), 'outpost-open-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    headless: true,
    args: ['--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const name = `open-probe-${args.mb}`;
  const lockTimeoutMs = args.alone ? 10_000 : undefined;
  const times: Record<string, number[][]> = {};
  try {
    const runPage = async (label: string, work: (page: import('playwright').Page) => Promise<void>, clearCache = false): Promise<void> => {
      const page = await context.newPage();
      if (clearCache) {
        const cdp = await context.newCDPSession(page);
        await cdp.send('Network.clearBrowserCache');
        await cdp.detach();
      }
      page.on('pageerror', (e) => console.error(`${label}: page error: ${e.message}`));
      await page.goto(urls[label]!);
      await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready', undefined, { timeout: 60_000 });
      await work(page);
      await page.close();
    };
    for (const label of Object.keys(urls)) await runPage(label, (page) => page.evaluate(([n, mb]) => window.probe.prepare(n, mb), [name, args.mb] as const));
    for (let round = 0; round < args.rounds; round++) {
      const order = Object.keys(urls);
      if (round % 2) order.reverse();
      for (const label of order) {
        const row: number[] = [];
        const openOnce = (page: import('playwright').Page): Promise<number> => page.evaluate(([n, l]) => window.probe.openOnce(n, l ?? undefined), [name, lockTimeoutMs ?? null] as const);
        // The first visit first: the browser's whole HTTP cache is cleared, and this tree's
        // return visit right after finds its assets cached again (by that first visit).
        let first = 0;
        await runPage(label, async (page) => void (first = await openOnce(page)), true);
        await runPage(label, async (page) => {
          for (let k = 0; k < args.opens; k++) row.push(await openOnce(page));
        });
        row.push(first);
        (times[label] ??= []).push(row);
        process.stderr.write(`round ${round + 1} ${label}: ${row.map((t) => t.toFixed(1)).join(' ')} ms\n`);
      }
    }
  } finally {
    await context.close();
  }
  console.log(`| open (${args.mb} MiB, ${args.alone ? 'alone' : 'shared'}), ${args.rounds} rounds | ${Object.keys(urls).map((l) => `${l} min / median`).join(' | ')} |`);
  console.log(`|---|${Object.keys(urls).map(() => '---:').join('|')}|`);
  const rowNames = [...Array.from({ length: args.opens }, (_, k) => `return visit: open ${k + 1} in the page`), 'first visit of the assets (HTTP cache cleared): open 1'];
  for (const [k, rowName] of rowNames.entries()) {
    const cells = Object.keys(urls).map((l) => {
      const xs = (times[l] ?? []).map((row) => row[k]!);
      return `${Math.min(...xs).toFixed(1)} / ${median(xs).toFixed(1)} ms`;
    });
    console.log(`| ${rowName} | ${cells.join(' | ')} |`);
  }
  process.exit(0);
}

await main();
