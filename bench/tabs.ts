/**
 * Multi-tab figures, with real pages (tabs) of one browser context on the benchmark page
 * (bench/page/tabs.ts): hand-over time, follower round trip against the engine tab's own, and
 * watch latency in the same tab and across tabs. Called by run.ts with its browser context.
 */
import type { BrowserContext, Page } from 'playwright';

export interface TabsRow {
  metric: string;
  p50Ms: number;
  p95Ms: number;
  samples: number;
}

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? Number.NaN;
};
/** How long a follower has been open before the engine tab ends (handovers). */
const SETTLE_MS = 1000;
const row = (metric: string, xs: number[]): TabsRow => ({ metric, p50Ms: quantile(xs, 0.5), p95Ms: quantile(xs, 0.95), samples: xs.length });

async function tab(context: BrowserContext, url: string, name: string): Promise<Page> {
  const page = await context.newPage();
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready', undefined, { timeout: 60_000 });
  await page.evaluate((n) => window.benchTabs.openShared(n), name);
  return page;
}

/** Ends the engine's page: closed as a user closes a tab, or crashed (CDP `Page.crash`). */
async function endTab(context: BrowserContext, page: Page, how: 'close' | 'crash'): Promise<void> {
  if (how === 'close') return page.close();
  const crashed = page.waitForEvent('crash');
  // A crashed page never answers the command: wait for the crash event instead.
  void (await context.newCDPSession(page)).send('Page.crash').catch(() => {});
  await crashed;
}

/**
 * Hand-over: the engine tab closes (or crashes), and a follower issues a write once it is
 * gone; the time from closing to that write's answer (which the next engine gives). Each round
 * opens a new follower first, so that the previous round's follower is the engine to end, and
 * waits `settleMs` after it opened (a tab open for a moment has warmed up its standby engine;
 * 0 measures a tab that takes over while it is still starting).
 */
async function handovers(context: BrowserContext, url: string, rounds: number, how: 'close' | 'crash', settleMs: number): Promise<number[]> {
  process.stderr.write(`multi-tab: ${rounds} hand-overs (${how}, follower open ${settleMs} ms before)\n`);
  const name = `bench-handover-${how}-${Date.now()}`;
  let engine = await tab(context, url, name);
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const follower = await tab(context, url, name);
    if (settleMs > 0) await new Promise((r) => setTimeout(r, settleMs));
    const t0 = await follower.evaluate(() => window.benchTabs.now());
    // The write is issued once the engine's page is gone, so the old engine cannot answer it.
    await endTab(context, engine, how);
    const answeredAt = await follower.evaluate(() => window.benchTabs.writeOnce());
    times.push(answeredAt - t0);
    process.stderr.write(`  hand-over ${i + 1}: ${(answeredAt - t0).toFixed(1)} ms\n`);
    // A crashed page stays open until closed.
    if (how === 'crash') await engine.close();
    engine = follower;
  }
  await engine.close();
  return times;
}

export async function runTabsBench(context: BrowserContext, url: string, opts: { handovers: number; calls: number }): Promise<TabsRow[]> {
  const rows: TabsRow[] = [];
  rows.push(row('hand-over, engine tab closed → first write answered', await handovers(context, url, opts.handovers, 'close', SETTLE_MS)));
  rows.push(row('hand-over, engine tab crashed → first write answered', await handovers(context, url, opts.handovers, 'crash', SETTLE_MS)));
  rows.push(row('hand-over, engine tab closed as the follower opened → first write answered', await handovers(context, url, opts.handovers, 'close', 0)));

  const name = `bench-tabs-${Date.now()}`;
  const engine = await tab(context, url, name);
  const follower = await tab(context, url, name);
  rows.push(row('SELECT 1 round trip, engine tab', await engine.evaluate((n) => window.benchTabs.select1(n), opts.calls)));
  rows.push(row('SELECT 1 round trip, follower tab', await follower.evaluate((n) => window.benchTabs.select1(n), opts.calls)));
  // The watcher goes first; each write waits for the watcher to have seen the one before.
  await engine.evaluate(() => window.benchTabs.watchCounts());
  rows.push(row('watch, write issued → onRows, same tab (throttleMs 0)', await engine.evaluate((n) => window.benchTabs.writesSeen(n), opts.calls)));
  rows.push(row('watch, write issued → onRows, other tab (throttleMs 0)', await follower.evaluate((n) => window.benchTabs.writesSeen(n), opts.calls)));
  await follower.close();
  await engine.close();
  return rows;
}

export function tabsTable(rows: TabsRow[]): string {
  const lines = ['| multi-tab | p50 ms | p95 ms | samples |', '| --- | ---: | ---: | ---: |'];
  for (const r of rows) lines.push(`| ${r.metric} | ${r.p50Ms.toFixed(2)} | ${r.p95Ms.toFixed(2)} | ${r.samples} |`);
  return lines.join('\n');
}
