/**
 * One bootstrap in its own process, so that its memory is its own (bench/sync.ts starts it):
 * `tsx bench/bootstrap-child.ts <outpost|official> <url> <database path> [Outpost source root]`.
 * Prints one JSON line: the time, and the peak RSS and JS memory (heap + external) above the
 * process's idle level (measured after the client's code and engine are loaded, before the
 * bootstrap). The source root lets the bench run an older Outpost beside this one.
 */
import { resourceUsage } from 'node:process';

export interface BootstrapSample {
  ms: number;
  rssAboveIdleBytes: number;
  jsAboveIdleBytes: number;
  idleRssBytes: number;
  /** CPU time (user + system, every thread of the process) the bootstrap took: steadier than `ms` on a loaded machine. */
  cpuMs: number;
}

const [client, url, path, root] = process.argv.slice(2);
if (!client || !url || !path) throw new Error('usage: bootstrap-child.ts <outpost|official> <url> <path> [root]');

const jsBytes = (): number => {
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
};
const settle = async (): Promise<void> => {
  (globalThis as { gc?: () => void }).gc?.();
  await new Promise((r) => setTimeout(r, 50));
};

let bootstrap: () => Promise<() => Promise<void>>;
if (client === 'outpost') {
  // Imported by path, so the same script runs an older checkout's source too.
  const { open } = (await import(`${root ?? new URL('..', import.meta.url).pathname}/src/node/index.js`)) as typeof import('../src/node/index.js');
  // Loads the engine (WASM) before the idle level is taken.
  const warm = await open(':memory:');
  await warm.close();
  bootstrap = async () => {
    const db = await open(path, { sync: { url } });
    const status = await db.syncStatus();
    if (!status?.revision) throw new Error(`the bootstrap failed: ${JSON.stringify(status?.lastError)}`);
    return () => db.close();
  };
} else {
  const { connect } = await import('@tursodatabase/sync');
  bootstrap = async () => {
    const db = await connect({ path, url, clientName: 'bench' });
    return () => db.close();
  };
}

await settle();
const idleRss = process.memoryUsage().rss;
const idleJs = jsBytes();
let peakJs = idleJs;
const sampler = setInterval(() => {
  peakJs = Math.max(peakJs, jsBytes());
}, 10);
const t0 = performance.now();
const cpu0 = process.cpuUsage();
const close = await bootstrap();
const ms = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
clearInterval(sampler);
peakJs = Math.max(peakJs, jsBytes());
const peakRss = resourceUsage().maxRSS * 1024;
await close();
const sample: BootstrapSample = { ms, rssAboveIdleBytes: peakRss - idleRss, jsAboveIdleBytes: peakJs - idleJs, idleRssBytes: idleRss, cpuMs: (cpu.user + cpu.system) / 1000 };
process.stdout.write(`${JSON.stringify(sample)}\n`);
