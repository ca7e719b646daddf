/**
 * The sync server's CPU time per request, by kind, for a fixed number of requests (issue 14):
 * a figure that holds on a busy machine, where server-load.ts's throughput and latency say as
 * much about the neighbours, and its CPU per push shifts with how many pulls each push's share
 * of the run brings. The server runs in its own process, as in server-load.ts; its CPU is read
 * from /proc (10 ms ticks, so each phase uses seconds of it).
 *
 * With N databases, each first warmed (one pushed transaction and one pull each, so the
 * figures are of databases in use, their statements prepared), then phase by phase:
 * - push: P pushed transactions (server-load's), 32 at a time, on random databases;
 * - pull: P incremental pulls (each from the revision that database's previous pull reached),
 *   32 at a time, on random databases, without long polls;
 * - wake: 200 clients long-poll the first 200 databases; P/4 pushes, one at a time on each of
 *   those databases in turn, each waking one long poll, which pulls its page and polls again.
 *   Reported per push: its own cost, the wake, the answer and the next long poll's request.
 * With `LOAD_BASELINE=DIR`, a baseline server (that checkout's source) runs the same phases
 * right after each round of this checkout's, so before/after figures come from one run, each
 * the median of the rounds.
 *
 * Usage: npx tsx bench/server-cpu.ts [databases=1000] [pushes=4000] [rounds=2]
 */
import { type OutpostProcess, cpuMs, fillDatabases, pipeline, pool, pull, pushText, startOutpost } from './server-load.js';

interface CpuRow {
  server: string;
  pushMs: number;
  pullMs: number;
  wakeMs: number;
}

/** CPU ms the server spent on `work`, divided by `count`. */
async function perRequest(server: OutpostProcess, count: number, work: () => Promise<void>): Promise<number> {
  const before = cpuMs(server.child.pid!);
  await work();
  return (cpuMs(server.child.pid!) - before) / count;
}

async function phases(name: string, root: string, databases: number, pushes: number): Promise<CpuRow> {
  const server = await startOutpost(name, root, databases);
  try {
    const urls = Array.from({ length: databases }, (_, i) => `${server.url}/db/d${i}`);
    const token = server.token;
    await fillDatabases(urls, token);
    const revs = new Map<string, string>();
    let n = 0;
    // Warm: every database has served a push and a pull before anything is measured.
    await pool(urls, 16, async (url) => {
      await pipeline(url, pushText(`warm ${n++}`), token);
      revs.set(url, await pull(url, '', 0, token));
    });
    const random = (): string => urls[Math.floor(Math.random() * urls.length)]!;
    const indices = Array.from({ length: pushes }, (_, i) => i);
    const pushMs = await perRequest(server, pushes, () => pool(indices, 32, () => pipeline(random(), pushText(`push ${n++}`), token)));
    const pullMs = await perRequest(server, pushes, () =>
      pool(indices, 32, async () => {
        const url = random();
        revs.set(url, await pull(url, revs.get(url) ?? '', 0, token));
      }),
    );
    // 200 long polls; each push wakes the one on its database, whose client polls again.
    const polled = urls.slice(0, Math.min(200, urls.length));
    let stop = false;
    let woken = 0;
    const waiting = new Set<string>();
    const arrived: (() => void)[] = [];
    const pollers = polled.map(async (url) => {
      let rev = await pull(url, '', 0, token);
      while (!stop) {
        waiting.add(url);
        for (const f of arrived.splice(0)) f();
        // Once the server stops, the last poll may break off; that ends the loop.
        rev = await pull(url, rev, 60_000, token).catch(() => rev);
        woken++;
      }
    });
    const allWaiting = async (): Promise<void> => {
      while (waiting.size < polled.length) await new Promise<void>((r) => arrived.push(r));
    };
    await allWaiting();
    const wakes = Math.max(polled.length, Math.floor(pushes / 4));
    const wakeMs = await perRequest(server, wakes, async () => {
      for (let i = 0; i < wakes; i += polled.length) {
        waiting.clear();
        await pool(polled.slice(0, Math.min(polled.length, wakes - i)), 32, (url) => pipeline(url, pushText(`wake ${n++}`), token));
        // Every woken client has its answer and polls again before the next round.
        await allWaiting();
      }
    });
    stop = true;
    await server.stop();
    await Promise.allSettled(pollers);
    if (woken === 0) throw new Error('no long poll was woken');
    return { server: name, pushMs, pullMs, wakeMs };
  } finally {
    await server.stop();
  }
}

/** The middle value, or the mean of the two middle ones. */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const databases = Number(process.argv[2] ?? 1000);
  const pushes = Number(process.argv[3] ?? 4000);
  const rounds = Number(process.argv[4] ?? 2);
  const baseline = process.env.LOAD_BASELINE;
  const rows: CpuRow[] = [];
  for (let r = 0; r < rounds; r++) {
    rows.push(await phases('Outpost server', process.cwd(), databases, pushes));
    if (baseline) rows.push(await phases('Outpost server (baseline)', baseline, databases, pushes));
  }
  const lines = ['| server | round | CPU ms per push | per pull | per push with a long poll woken |', '| --- | ---: | ---: | ---: | ---: |'];
  rows.forEach((row, i) => lines.push(`| ${row.server} | ${Math.floor(i / (baseline ? 2 : 1)) + 1} | ${row.pushMs.toFixed(3)} | ${row.pullMs.toFixed(3)} | ${row.wakeMs.toFixed(3)} |`));
  for (const name of new Set(rows.map((row) => row.server))) {
    const mine = rows.filter((row) => row.server === name);
    lines.push(`| ${name} | median | ${median(mine.map((x) => x.pushMs)).toFixed(3)} | ${median(mine.map((x) => x.pullMs)).toFixed(3)} | ${median(mine.map((x) => x.wakeMs)).toFixed(3)} |`);
  }
  console.log(`${databases} databases, ${pushes} pushes and pulls per phase, ${rounds} rounds\n${lines.join('\n')}`);
  process.exit(0);
}
