/**
 * Live sync latency (part of `npm run bench`, or `npx tsx bench/live.ts [writes]`): two Node
 * clients of one database, both `live: true`. Client A inserts a row; the time until client B's
 * `watch` callback shows it is one sample (A's debounced push, the server, B's long poll, B's
 * apply, B's watch). One write at a time, on loopback, through the Outpost server and through
 * `turso --sync-server`, each in its own process, and client B in its own (bench/live-client.ts),
 * so that B's long poll and apply do not wait behind A's work in one Node thread. Prints p50/p95.
 */
import { join } from 'node:path';
import { open } from '../src/node/index.js';
import { stopGroup, spawnGroup } from '../test/support/processes.js';
import { startTursoServer, tempDir } from '../test/support/server.js';
import { quantile, waitForPort } from './server-load.js';

export interface LiveBenchRow {
  server: string;
  writes: number;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
}

/** Client B in its own process: `seen(id)` resolves with B's wall-clock time when its watch first shows `id`. */
async function startClientB(url: string, file: string): Promise<{ seen: (id: number) => Promise<number>; close: () => Promise<void> }> {
  const child = spawnGroup(process.execPath, ['--import', 'tsx', 'bench/live-client.ts', url, file], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const waiting = new Map<number, (atMs: number) => void>();
  const ready = new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`client B exited (${code}) before it was ready`)));
    child.on('message', (message: 'ready' | { id: number; atMs: number }) => {
      if (message === 'ready') return resolve();
      waiting.get(message.id)?.(message.atMs);
      waiting.delete(message.id);
    });
  });
  try {
    await ready;
  } catch (e) {
    await stopGroup(child);
    throw e;
  }
  return {
    seen: (id) => new Promise((resolve) => waiting.set(id, resolve)),
    close: async () => {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.send('close');
      await exited;
    },
  };
}

async function measure(url: string, writes: number): Promise<number[]> {
  const dir = tempDir('outpost-livebench-');
  const a = await open(join(dir, 'a.db'), { sync: { url, live: true } });
  let b: Awaited<ReturnType<typeof startClientB>> | null = null;
  try {
    await a.exec('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, at REAL)');
    b = await startClientB(url, join(dir, 'b.db'));
    const samples: number[] = [];
    for (let i = 1; i <= writes; i++) {
      const seen = b.seen(i);
      const t0 = performance.timeOrigin + performance.now();
      await a.run('INSERT INTO t(id, at) VALUES (?, ?)', [i, t0]);
      samples.push((await seen) - t0);
    }
    return samples;
  } finally {
    await a.close();
    await b?.close();
  }
}

export async function runLiveBench(writes = 50): Promise<LiveBenchRow[]> {
  const rows: LiveBenchRow[] = [];
  const servers = [
    {
      // Its own process, as turso's is: its commits' fsyncs do not stall the clients' loop.
      name: 'Outpost server',
      start: async () => {
        const port = 22000 + Math.floor(Math.random() * 10000);
        const args = ['--import', 'tsx', 'src/server/cli.ts', 'serve', '--data', tempDir('outpost-livebench-server-'), '--port', String(port), '--no-auth', '--quiet'];
        const child = spawnGroup(process.execPath, args, { stdio: 'ignore' });
        const url = `http://127.0.0.1:${port}`;
        try {
          await waitForPort(url);
        } catch (e) {
          await stopGroup(child);
          throw e;
        }
        return { url: `${url}/db/live`, stop: () => stopGroup(child, 'SIGTERM') };
      },
    },
    {
      name: 'turso --sync-server',
      start: async () => {
        const t = await startTursoServer();
        return { url: t.url, stop: t.stop };
      },
    },
  ];
  for (const server of servers) {
    const { url, stop } = await server.start();
    try {
      const samples = (await measure(url, writes)).sort((x, y) => x - y);
      rows.push({ server: server.name, writes, p50Ms: quantile(samples, 0.5), p95Ms: quantile(samples, 0.95), maxMs: samples[samples.length - 1] ?? 0 });
    } finally {
      await stop();
    }
  }
  return rows;
}

export function liveTable(rows: LiveBenchRow[]): string {
  return [
    '| server | writes | p50 ms | p95 ms | max ms |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.server} | ${r.writes} | ${r.p50Ms.toFixed(1)} | ${r.p95Ms.toFixed(1)} | ${r.maxMs.toFixed(1)} |`),
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(liveTable(await runLiveBench(Number(process.argv[2] ?? 50))));
  process.exit(0);
}
