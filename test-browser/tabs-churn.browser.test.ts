/**
 * Multi-tab churn, generated: tabs open, close and crash at random (seeded) while the others
 * write, run read-modify-write transactions and watch. Each "tab" is a tab.ts context; the test
 * page opens the database only at the end, to check what landed.
 *
 * What must hold whatever the order: every call of a surviving tab settles; an acknowledged
 * write is there exactly once, and nothing is there twice; a transaction rejected
 * TRANSACTION_LOST left nothing; OUTCOME_UNKNOWN never comes for calls whose fate the next
 * engine can tell (plain inserts and committed transactions are recorded); transactions never
 * interleave (each read a distinct counter value, and the counter equals their number); the
 * watcher's last rows equal a fresh query.
 */
import { afterEach, describe, expect, test, vi } from 'vitest';
import { type Database, open } from '../src/index.js';
import { int, pick, rng, testSeed } from '../test/support/generate.js';
import { Tab, type TabKind } from './tab.js';
import type { MixStep } from './tabs.worker.js';

const tabs: Tab[] = [];
const databases: Database[] = [];
afterEach(async () => {
  for (const t of tabs.splice(0)) t.terminate();
  for (const db of databases.splice(0)) await db.close().catch(() => {});
  vi.unstubAllGlobals();
});

/** A tab running a mixLoop, in the order tabs were opened (the oldest alive is most likely the engine). */
interface Looper {
  who: string;
  tab: Tab;
  result: Promise<MixStep[]>;
  lastStep: number;
}

const WATCH_SQL = 'SELECT (SELECT count(*) FROM t) AS n, (SELECT v FROM ctr WHERE id = 1) AS c';

describe.each([
  { path: 'broker (SharedWorker)', kind: 'frame' as TabKind, sharedWorker: true },
  { path: 'fallback (BroadcastChannel only)', kind: 'worker' as TabKind, sharedWorker: false },
])('tabs churn: $path', ({ kind, sharedWorker }) => {
  test('generated: tabs open, close and crash at random while others write, transact and watch', { timeout: 240_000 }, async () => {
    if (!sharedWorker) vi.stubGlobal('SharedWorker', undefined);
    const seed = testSeed();
    console.log(`tabs churn seed ${seed} on ${kind} (OUTPOST_SEED replays it)`);
    const random = rng(seed);
    const name = `tabs-churn-${crypto.randomUUID()}`;
    const steps = 40;
    const newTab = (): Tab => {
      const t = new Tab(kind);
      tabs.push(t);
      return t;
    };
    const first = newTab();
    await first.call({ op: 'open', name });
    for (const sql of ['CREATE TABLE t(who TEXT, seq INTEGER)', 'CREATE TABLE txlog(who TEXT, seq INTEGER, seen INTEGER)', 'CREATE TABLE ctr(id INTEGER PRIMARY KEY, v INTEGER)', 'INSERT INTO ctr VALUES (1, 0)']) {
      await first.call({ op: 'run', sql });
    }

    let made = 0;
    const alive: Looper[] = [];
    const finished: { who: string; steps: MixStep[] }[] = [];
    const crashed: string[] = [];
    const startLooper = async (tab: Tab): Promise<void> => {
      const who = `tab${made++}`;
      await tab.call({ op: 'open', name });
      const looper: Looper = { who, tab, result: tab.call<MixStep[]>({ op: 'mixLoop', who, count: steps, seed: int(random, 1, 1e9) }), lastStep: -1 };
      alive.push(looper);
    };
    await startLooper(first);
    let watcher = newTab();
    await watcher.call({ op: 'open', name });
    await watcher.call({ op: 'watch', sql: WATCH_SQL });
    await startLooper(newTab());
    await startLooper(newTab());

    const actions = 6;
    for (let a = 0; a < actions; a++) {
      // Let some writes happen first: wait for a random looper to move on a few steps (or end).
      const busy = pick(random, alive);
      const target = busy.lastStep + int(random, 2, 10);
      await Promise.race([busy.tab.event((e) => e.event === 'step' && (e.seq as number) >= target), busy.result]);
      busy.lastStep = target;
      const roll = random();
      const victim = roll < 0.65 ? alive[0]! : pick(random, alive);
      const action = roll < 0.4 || (roll >= 0.65 && roll < 0.85) ? 'crash' : 'close';
      const watcherToo = random() < 0.15;
      console.log(`tabs churn seed ${seed}: action ${a}: ${action} ${victim.who}${watcherToo ? ' and the watcher' : ''}`);
      alive.splice(alive.indexOf(victim), 1);
      if (action === 'crash') {
        victim.tab.terminate();
        crashed.push(victim.who);
      } else {
        await victim.tab.call({ op: 'stopLoop' });
        finished.push({ who: victim.who, steps: await victim.result });
        await victim.tab.call({ op: 'close' });
        victim.tab.terminate();
      }
      if (watcherToo) {
        watcher.terminate();
        watcher = newTab();
        await watcher.call({ op: 'open', name });
        await watcher.call({ op: 'watch', sql: WATCH_SQL });
      }
      // Opening while the hand-over may still be under way.
      await startLooper(newTab());
    }
    for (const looper of alive) finished.push({ who: looper.who, steps: await looper.result });

    const page = await open(name);
    databases.push(page);
    const inserts = await page.query<{ who: string; seq: number; n: number }>('SELECT who, seq, count(*) AS n FROM t GROUP BY who, seq');
    const logged = await page.query<{ who: string; seq: number; n: number }>('SELECT who, seq, count(*) AS n FROM txlog GROUP BY who, seq');
    const twice = [...inserts, ...logged].filter((r) => r.n !== 1);
    expect(twice, `seed ${seed}: applied twice`).toEqual([]);
    const key = (who: string, seq: number): string => `${who}/${seq}`;
    const inT = new Set(inserts.map((r) => key(r.who, r.seq)));
    const inLog = new Set(logged.map((r) => key(r.who, r.seq)));
    for (const { who, steps: done } of finished) {
      expect(done.filter((s) => s.fate === 'failed' || s.fate === 'unknown'), `seed ${seed}: ${who} failed or unknown`).toEqual([]);
      for (const s of done) {
        const k = key(who, s.seq);
        if (s.kind === 'insert') {
          expect(inT.has(k), `seed ${seed}: acked insert ${k}`).toBe(true);
          expect(inLog.has(k), `seed ${seed}: insert ${k} in txlog`).toBe(false);
        } else {
          expect(inLog.has(k), `seed ${seed}: transaction ${k} ${s.fate}`).toBe(s.fate === 'acked');
          expect(inT.has(k), `seed ${seed}: transaction ${k} in t`).toBe(false);
        }
      }
    }
    // Transactions never interleaved: each read its own counter value, the counter counts them.
    const seen = (await page.query<{ seen: number }>('SELECT seen FROM txlog ORDER BY seen')).map((r) => r.seen);
    expect(seen, `seed ${seed}: counter values read`).toEqual(seen.map((_, i) => i));
    expect(await page.get('SELECT v FROM ctr WHERE id = 1')).toEqual({ v: seen.length });
    expect(await page.query('PRAGMA integrity_check')).toEqual([{ integrity_check: 'ok' }]);
    const fresh = JSON.stringify(await page.query(WATCH_SQL));
    await watcher.event((e) => e.event === 'rows' && JSON.stringify(e.rows) === fresh);
    console.log(`tabs churn seed ${seed}: ${made} loopers, ${crashed.length} crashed, ${inserts.length} inserts and ${seen.length} transactions landed`);
  });
});
