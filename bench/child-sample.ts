/**
 * Measuring one operation in a bench child process, whose memory is its own (the bootstrap and
 * large-pull benches each start one process per run), and reading the children's results.
 *
 * A child calls `measure` once after its code and engine are loaded and prints `sample` as its
 * last line; the parent runs it with `runChild` and folds the runs with `summarise`.
 */
import { execFile } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { resourceUsage } from 'node:process';
import { promisify } from 'node:util';

/** One run: wall and CPU time of the operation, and its memory above the process's idle level. */
export interface ChildSample {
  ms: number;
  /** CPU time (user + system, every thread of the process): steadier than `ms` on a loaded machine. */
  cpuMs: number;
  /** The part of `cpuMs` spent in the kernel (writing the database's files, mostly). */
  systemCpuMs?: number;
  rssAboveIdleBytes: number;
  /** JS heap + external. */
  jsAboveIdleBytes: number;
}

/** The runs of one row: best time, worst memory. */
export interface SampleSummary extends ChildSample {
  runs: number;
}

const jsBytes = (): number => {
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
};

/**
 * Runs `op` after a garbage collection (the child runs with `--expose-gc`) and measures it.
 * `rss: 'lifetime'` takes the process's lifetime peak RSS (nothing before `op` may peak higher);
 * `'sampled'` samples RSS every 10 ms, for a process whose loading peaked above the operation
 * (a peak inside a blocking call then shows only as far as it is still there afterwards).
 */
export async function measure<T>(op: () => Promise<T>, rss: 'lifetime' | 'sampled'): Promise<{ sample: ChildSample; result: T; idleRssBytes: number }> {
  (globalThis as { gc?: () => void }).gc?.();
  await new Promise((r) => setTimeout(r, 50));
  const idleRss = process.memoryUsage().rss;
  const idleJs = jsBytes();
  let peakJs = idleJs;
  let peakRss = idleRss;
  const poll = (): void => {
    peakJs = Math.max(peakJs, jsBytes());
    if (rss === 'sampled') peakRss = Math.max(peakRss, process.memoryUsage().rss);
  };
  const sampler = setInterval(poll, 10);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  try {
    const result = await op();
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    poll();
    if (rss === 'lifetime') peakRss = lifetimePeakRssBytes();
    return { sample: { ms, cpuMs: (cpu.user + cpu.system) / 1000, systemCpuMs: cpu.system / 1000, rssAboveIdleBytes: peakRss - idleRss, jsAboveIdleBytes: peakJs - idleJs }, result, idleRssBytes: idleRss };
  } finally {
    clearInterval(sampler);
  }
}

/**
 * The process's own peak RSS. Linux's `getrusage` (`resourceUsage().maxRSS`) carries over the
 * peak of the parent that spawned the process: libuv spawns with a shared address space until
 * exec, and exec folds that space's peak into the child's. A child of a 544 MiB bench process
 * read 504 MiB there with 39 MiB resident, which made every bootstrap look 230-370 MiB above
 * idle. VmHWM in /proc is the peak of the process's own address space; elsewhere getrusage.
 */
function lifetimePeakRssBytes(): number {
  try {
    const hwm = /^VmHWM:\s*(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (hwm) return Number(hwm[1]) * 1024;
  } catch {
    // Not Linux.
  }
  return resourceUsage().maxRSS * 1024;
}

/** Runs `script` (next to this file) in a fresh Node process with `args`; its last output line, parsed. */
export async function runChild<T>(script: string, args: string[]): Promise<T> {
  const path = new URL(script, import.meta.url).pathname;
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '--import', 'tsx', path, ...args], { maxBuffer: 1024 * 1024 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as T;
}

export function summarise(samples: ChildSample[]): SampleSummary {
  return {
    ms: Math.min(...samples.map((x) => x.ms)),
    cpuMs: Math.min(...samples.map((x) => x.cpuMs)),
    rssAboveIdleBytes: Math.max(...samples.map((x) => x.rssAboveIdleBytes)),
    jsAboveIdleBytes: Math.max(...samples.map((x) => x.jsAboveIdleBytes)),
    runs: samples.length,
  };
}

/**
 * The Node entry of the built package under `root` (a checkout), as users run it: loading the
 * TypeScript sources through tsx instead, in the process and again in the engine's thread, cost
 * a 1 MB bootstrap about 300 ms and 10-25 MiB more than the build did. Refuses a build older
 * than any source file (run `npm run build` in that checkout).
 */
export function builtNodeEntry(root: string): string {
  return builtFile(root, 'dist/node/index.js');
}

/** The built server's command line (the package's `outpost` bin) under `root`, refused when stale as `builtNodeEntry`'s. */
export function builtServerEntry(root: string): string {
  return builtFile(root, 'dist/server/cli.js');
}

function builtFile(root: string, path: string): string {
  const entry = join(root, path);
  let builtMs: number;
  try {
    builtMs = statSync(entry).mtimeMs;
  } catch {
    throw new Error(`${entry} is missing: run npm run build in ${root}`);
  }
  const newest = (dir: string): number =>
    Math.max(0, ...readdirSync(dir, { withFileTypes: true }).map((e) => (e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs)));
  if (newest(join(root, 'src')) > builtMs) throw new Error(`${entry} is older than ${root}/src: run npm run build there`);
  return entry;
}
