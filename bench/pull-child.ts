/**
 * One large incremental pull in its own process, so that its memory is its own
 * (bench/large-pull.ts starts it):
 * `tsx bench/pull-child.ts <database path> <thread|inline> [Outpost source root]`.
 * The database at the path is a synced replica that is behind its server (the URL is in its
 * sync state). Prints one JSON line: wall and CPU time of the pull, and the peak RSS and JS
 * memory (heap + external) above the process's level after the open, before the pull. With the
 * thread engine the pull runs in the engine's worker thread, whose heap the JS figure does not
 * see (RSS does); with `inline` it runs on this thread and the JS figure sees it all.
 */
export interface PullSample {
  ms: number;
  cpuMs: number;
  rssAboveIdleBytes: number;
  jsAboveIdleBytes: number;
  pulled: boolean;
}

const [path, engine, root] = process.argv.slice(2);
if (!path || (engine !== 'thread' && engine !== 'inline')) throw new Error('usage: pull-child.ts <path> <thread|inline> [root]');

const jsBytes = (): number => {
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
};

// Imported by path, so the same script runs an older checkout's source too.
const { open } = (await import(`${root ?? new URL('..', import.meta.url).pathname}/src/node/index.js`)) as typeof import('../src/node/index.js');
const db = await open(path, { engine });
(globalThis as { gc?: () => void }).gc?.();
await new Promise((r) => setTimeout(r, 50));
const idleRss = process.memoryUsage().rss;
const idleJs = jsBytes();
let peakJs = idleJs;
// Sampled, not the process's lifetime peak (maxRSS), which the open's own peak (the engine's
// compile) may hold: with the inline engine the apply blocks this thread, so a peak inside it
// shows only as far as it is still there when the thread is free again.
let peakRss = idleRss;
const sample = (): void => {
  peakJs = Math.max(peakJs, jsBytes());
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
};
const sampler = setInterval(sample, 10);
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const pulled = await db.pull();
const ms = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
clearInterval(sampler);
sample();
await db.close();
const result: PullSample = { ms, cpuMs: (cpu.user + cpu.system) / 1000, rssAboveIdleBytes: peakRss - idleRss, jsAboveIdleBytes: peakJs - idleJs, pulled };
process.stdout.write(`${JSON.stringify(result)}\n`);
