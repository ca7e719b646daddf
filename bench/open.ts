/**
 * `npx tsx bench/open.ts [--base DIR] [--rounds N] [--opens K] [--mb M] [--alone]`
 *
 * The open of an existing database as users see it, in headless Chromium through the public
 * API: each round loads a fresh page and opens a database of about M MiB (50) K times (3) in it,
 * so the first open pays for loading SQLite and the later ones show what the page reuses. With
 * --base, the same page built from another checkout (DIR, which gets bench/open-page copied in
 * if it lacks it) runs in the same browser, interleaved round by round with alternating order:
 * on a busy machine only such same-run ratios mean anything. --alone opens with an explicit
 * lockTimeoutMs (the database alone, no tab sharing); the default is `open(name)`, shared.
 * Prints the min and median of each open by position.
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
    const runPage = async (label: string, work: (page: import('playwright').Page) => Promise<void>): Promise<void> => {
      const page = await context.newPage();
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
        await runPage(label, async (page) => {
          const row: number[] = [];
          for (let k = 0; k < args.opens; k++) row.push(await page.evaluate(([n, l]) => window.probe.openOnce(n, l ?? undefined), [name, lockTimeoutMs ?? null] as const));
          (times[label] ??= []).push(row);
          process.stderr.write(`round ${round + 1} ${label}: ${row.map((t) => t.toFixed(1)).join(' ')} ms\n`);
        });
      }
    }
  } finally {
    await context.close();
  }
  console.log(`| open (${args.mb} MiB, ${args.alone ? 'alone' : 'shared'}), ${args.rounds} rounds | ${Object.keys(urls).map((l) => `${l} min / median`).join(' | ')} |`);
  console.log(`|---|${Object.keys(urls).map(() => '---:').join('|')}|`);
  for (let k = 0; k < args.opens; k++) {
    const cells = Object.keys(urls).map((l) => {
      const xs = (times[l] ?? []).map((row) => row[k]!);
      return `${Math.min(...xs).toFixed(1)} / ${median(xs).toFixed(1)} ms`;
    });
    console.log(`| open ${k + 1} in the page | ${cells.join(' | ')} |`);
  }
  process.exit(0);
}

await main();
