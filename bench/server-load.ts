/**
 * Load on the sync server (part of `npm run bench`), on loopback only: N databases with small
 * data, 200 clients long-polling, 32 clients pushing small transactions, and a sampler timing
 * incremental pulls. The load generator is this process; the server is another. Reports
 * pushes/s, pull latency p50/p99, the server's peak RSS and the server's CPU time per pushed
 * transaction (all its work, pulls and long polls included, divided by the pushes: a figure
 * that holds on a busy machine, where throughput says as much about the neighbours; the load
 * generator's own CPU per push beside it, which bounds the throughput from its side), each
 * beside its target, and the same workload against `turso --sync-server` (which hosts a single
 * database). With `LOAD_BASELINE=DIR` (a checkout's root, whose `src/server/cli.ts` is run), a
 * baseline server runs the same workload right after each Outpost row, so before/after figures
 * come from one run (`LOAD_BASELINE_FIRST=1` runs it first: alternate the order between
 * rounds). Requests go over kept-alive sockets written by hand (raw-http.ts: the bytes
 * `node:http` sends, for a fraction of its CPU; fetch costs several times as much again), with a
 * write token when the server checks them, as in production.
 * Every loop is bounded in count and time, and stops by itself. With `LOAD_PROFILE=DIR`, each
 * Outpost server is CPU-profiled over the measured window alone (server-profile-hook.ts), into
 * `DIR/<server>-<databases>.cpuprofile` and a summary beside it (`.txt`). `LOAD_TURSO=0` leaves
 * turso's row out. `LOAD_SERVER_ARGS` adds flags to every Outpost server's command line
 * (`--max-heap 512MiB`), `LOAD_MAX_OPEN` sets `--max-open` on this checkout's.
 */
import type { ChildProcess } from 'node:child_process';
import { spawnGroup, stopGroup } from '../test/support/processes.js';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { mintToken } from '../src/server/auth.js';
import { PullStreamReader, encodePullRequest } from '../src/protocol/pull-updates.js';
import { SECRET, batch, tempDir } from '../test/support/server.js';
import { type RawAnswer, RawHttpClients } from './raw-http.js';
import { builtServerEntry } from './child-sample.js';

export interface LoadRow {
  server: string;
  databases: number;
  pushesPerSecond: number;
  pullP50Ms: number;
  pullP99Ms: number;
  /**
   * The sampler's pulls per second: it pulls one after another, so a faster pull means more of
   * them, and more of the server's CPU (in `cpuMsPerPush`) goes to pulls.
   */
  sampledPullsPerSecond: number;
  peakRssMiB: number;
  /** The server's CPU time (user + system, every process of its group) per pushed transaction. */
  cpuMsPerPush: number;
  /**
   * This process's (the load generator's) CPU time per pushed transaction: with the server on
   * one core and this on the other, the throughput can be no more than 1000 / this.
   */
  generatorCpuMsPerPush: number;
}

/** The targets (on this machine, the generator in another process). */
export const TARGETS = { pushesPerSecond: 2000, pullP99Ms: 20, rssMiB: 1024 } as const;

/** The processes of the group `pgid` leads (the npm `turso` wrapper and its binary, or one node). */
export function groupPids(pgid: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command's closing parenthesis: state ppid pgrp ...
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid) pids.push(Number(entry));
    } catch {
      // The process ended while listed.
    }
  }
  return pids;
}

/** Peak RSS of the group, summed over its processes. */
function peakRssMiB(pgid: number): number {
  let kb = 0;
  for (const pid of groupPids(pgid)) {
    try {
      kb += Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      // Gone.
    }
  }
  return kb > 0 ? kb / 1024 : Number.NaN;
}

/** CPU milliseconds (user + system) the group has used so far. */
export function cpuMs(pgid: number): number {
  const tickMs = 10; // USER_HZ is 100 on Linux.
  let ticks = 0;
  for (const pid of groupPids(pgid)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // Gone.
    }
  }
  return ticks * tickMs;
}

/** Resolves once the server at `url` answers /health. */
export async function waitForPort(url: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    try {
      await fetch(`${url}/health`);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`server at ${url} did not start`);
}

/** The generator's kept-alive sockets (raw-http.ts: the same bytes as `node:http`, for a fraction of its CPU). */
export const agent = new RawHttpClients();

/** One POST over a kept-alive socket; the status and body. */
function post(url: string, body: Uint8Array | string, token: string | null): Promise<RawAnswer> {
  const { client, path } = agent.route(url);
  return client.send(client.encode(path, typeof body === 'string' ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength), token));
}

/** A Hrana pipeline (`body`, or its JSON text) to `url`; throws unless 200. */
export async function pipeline(url: string, body: unknown, token: string | null): Promise<void> {
  const res = await post(`${url}/v2/pipeline`, typeof body === 'string' ? body : JSON.stringify(body), token);
  if (res.status !== 200) throw new Error(`pipeline ${res.status}: ${res.body.toString().slice(0, 200)}`);
}

/** One pull of `url` from `clientRevision`; the server revision it reached. */
export async function pull(url: string, clientRevision: string, longPollTimeoutMs = 0, token: string | null = null): Promise<string> {
  const res = await post(`${url}/pull-updates`, encodePullRequest({ clientRevision, longPollTimeoutMs }), token);
  if (res.status !== 200) throw new Error(`pull ${res.status}: ${res.body.toString().slice(0, 300)}`);
  const reader = new PullStreamReader();
  reader.push(new Uint8Array(res.body.buffer, res.body.byteOffset, res.body.byteLength));
  return reader.finish().serverRevision;
}

export async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

export const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
};

/** Where a profiled server writes its profile (without the extension), or null when not profiled. */
export type ProfileBase = string | null;

/** Tells a profiled server that the measured window starts or ends (server-profile-hook.ts). */
export function markWindow(child: ChildProcess, profile: ProfileBase): void {
  if (profile !== null) process.kill(child.pid!, 'SIGUSR2');
}

/** Waits (bounded) for a profiled server to write its profile once its window ended. */
export async function profileWritten(profile: ProfileBase): Promise<void> {
  for (let i = 0; profile !== null && i < 200 && !existsSync(`${profile}.txt`); i++) await new Promise((r) => setTimeout(r, 50));
}

/** The pushed transaction: one row in a Hrana batch, as a libsql client's transaction sends it. */
export function pushBody(value: string): unknown {
  return {
    baton: null,
    requests: [{ type: 'batch', batch: { steps: [{ stmt: { sql: 'BEGIN IMMEDIATE' } }, { stmt: { sql: 'INSERT INTO t(v) VALUES (?)', args: [{ type: 'text', value }] }, condition: { type: 'ok', step: 0 } }, { stmt: { sql: 'COMMIT' }, condition: { type: 'ok', step: 1 } }] } }],
  };
}

const PUSH_MARK = '\u0000';
const [PUSH_BEFORE, PUSH_AFTER] = JSON.stringify(pushBody(PUSH_MARK)).split(JSON.stringify(PUSH_MARK)) as [string, string];

/** `JSON.stringify(pushBody(value))`, from the text around the value: the generator's pushes pay for one small stringify. */
export function pushText(value: string): string {
  return PUSH_BEFORE + JSON.stringify(value) + PUSH_AFTER;
}

/** Creates and fills every database (one table, one row). */
export async function fillDatabases(dbUrls: string[], token: string | null): Promise<void> {
  await pool(dbUrls, 16, (url) => pipeline(url, batch('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)', "INSERT INTO t(v) VALUES ('seed')"), token));
}

async function workload(name: string, dbUrls: string[], child: ChildProcess, seconds: number, token: string | null, profile: ProfileBase = null): Promise<LoadRow> {
  await fillDatabases(dbUrls, token);
  markWindow(child, profile);
  const deadline = Date.now() + seconds * 1000;
  const cpuBefore = cpuMs(child.pid!);
  const generatorBefore = process.cpuUsage();
  let stop = false;
  // 200 long-polling clients, spread over the databases.
  const pollers = Array.from({ length: 200 }, async (_, i) => {
    const url = dbUrls[i % dbUrls.length]!;
    let rev = await pull(url, '', 0, token);
    while (!stop) rev = await pull(url, rev, 2000, token).catch(() => rev);
  });
  // 32 pushers, small transactions on random databases.
  let pushes = 0;
  let n = 0;
  const pushers = Array.from({ length: 32 }, async () => {
    while (Date.now() < deadline) {
      const url = dbUrls[Math.floor(Math.random() * dbUrls.length)]!;
      await pipeline(url, pushText(`push ${n++}`), token);
      pushes++;
    }
  });
  // A sampler timing incremental pulls while all of that runs, one after another, starting one
  // at most every LOAD_SAMPLE_MS ms (default 20): two servers whose pulls both take less get the
  // same pulls, whose CPU is in the CPU per push. LOAD_SAMPLE_MS=0 samples back to back, so a
  // faster server gets more pulls and its CPU per push and pushes/s pay for them.
  const latencies: number[] = [];
  const revs = new Map<string, string>();
  const sampleMs = Number(process.env.LOAD_SAMPLE_MS ?? 20);
  const sampler = (async () => {
    while (Date.now() < deadline) {
      const url = dbUrls[Math.floor(Math.random() * dbUrls.length)]!;
      const t0 = performance.now();
      revs.set(url, await pull(url, revs.get(url) ?? '', 0, token));
      latencies.push(performance.now() - t0);
      const restMs = t0 + sampleMs - performance.now();
      if (restMs > 0) await new Promise((r) => setTimeout(r, restMs));
    }
  })();
  await Promise.all([...pushers, sampler]);
  const cpuSpent = cpuMs(child.pid!) - cpuBefore;
  const generator = process.cpuUsage(generatorBefore);
  markWindow(child, profile);
  stop = true;
  await Promise.all(pollers);
  await profileWritten(profile);
  return {
    server: name,
    databases: dbUrls.length,
    pushesPerSecond: pushes / seconds,
    pullP50Ms: quantile(latencies, 0.5),
    pullP99Ms: quantile(latencies, 0.99),
    sampledPullsPerSecond: latencies.length / seconds,
    peakRssMiB: peakRssMiB(child.pid!),
    cpuMsPerPush: cpuSpent / Math.max(1, pushes),
    generatorCpuMsPerPush: (generator.user + generator.system) / 1000 / Math.max(1, pushes),
  };
}

function stopChild(child: ChildProcess): Promise<void> {
  return stopGroup(child, 'SIGTERM');
}

/** A running Outpost server started by `startOutpost`. */
export interface OutpostProcess {
  child: ChildProcess;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** A write token for every database. */
  token: string;
  /** Where it writes its profile when profiled (`LOAD_PROFILE`), else null. */
  profile: ProfileBase;
  stop(): Promise<void>;
}

/** Starts an Outpost server (the source at `root`) in its own process and waits until it answers. */
export async function startOutpost(name: string, root: string, count: number): Promise<OutpostProcess> {
  const port = 22000 + Math.floor(Math.random() * 10000);
  const data = tempDir('outpost-load-');
  const nodeArgs = (process.env.LOAD_NODE_ARGS ?? '').split(' ').filter(Boolean);
  // The server's own open limit unless LOAD_MAX_OPEN sets one (a baseline runs with its own default).
  const maxOpen = process.env.LOAD_MAX_OPEN ? ['--max-open', process.env.LOAD_MAX_OPEN] : [];
  const serverArgs = ['serve', '--data', data, '--port', String(port), '--auth-secret', SECRET, '--quiet', ...maxOpen, ...(process.env.LOAD_SERVER_ARGS ?? '').split(' ').filter(Boolean)];
  const profileDir = process.env.LOAD_PROFILE;
  const profile = profileDir ? join(profileDir, `${name.replace(/\W+/g, '-').replace(/^-|-$/g, '')}-${count}`) : null;
  if (profile !== null) {
    mkdirSync(profileDir!, { recursive: true });
    rmSync(`${profile}.txt`, { force: true });
  }
  // This checkout's hook profiles a baseline's server too.
  const hook = profile !== null ? ['--import', join(process.cwd(), 'bench/server-profile-hook.ts')] : [];
  const env = profile !== null ? { ...process.env, LOAD_PROFILE: profile } : process.env;
  // The server runs as users run it, from the build (tsc's output, the package's `outpost` bin);
  // LOAD_FROM_SOURCE=1 runs its TypeScript through tsx instead, which costs more per push
  // (esbuild's keepNames wraps every closure the server makes). The profile hook needs tsx.
  const fromSource = process.env.LOAD_FROM_SOURCE === '1';
  const entry = fromSource ? join(root, 'src/server/cli.ts') : builtServerEntry(root);
  const tsx = fromSource || profile !== null ? ['--import', 'tsx'] : [];
  const child = spawnGroup(process.execPath, [...nodeArgs, ...tsx, ...hook, entry, ...serverArgs], { stdio: 'ignore', cwd: root, env });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForPort(url);
  } catch (e) {
    await stopChild(child);
    rmSync(data, { recursive: true, force: true });
    throw e;
  }
  const token = await mintToken(SECRET, { db: '*', role: 'write' });
  // A run at 10,000 databases leaves about a gigabyte of files: they go with the server.
  const stop = async () => {
    await stopChild(child);
    rmSync(data, { recursive: true, force: true });
  };
  return { child, url, token, profile, stop };
}

/** One Outpost server (the source at `root`) under the workload with `count` databases. */
async function outpostRow(name: string, root: string, count: number, seconds: number): Promise<LoadRow> {
  const server = await startOutpost(name, root, count);
  try {
    const urls = Array.from({ length: count }, (_, i) => `${server.url}/db/d${i}`);
    return await workload(name, urls, server.child, seconds, server.token, server.profile);
  } finally {
    await server.stop();
  }
}

export async function runServerLoad(databaseCounts = [1000, 10000], seconds = 5): Promise<LoadRow[]> {
  const rows: LoadRow[] = [];
  const baseline = process.env.LOAD_BASELINE;
  // Which server runs second matters on a loaded machine (the first's files are still being
  // written back while the second runs; 2026-11-27 the second did better at 1,000 databases and
  // worse at 10,000): LOAD_BASELINE_FIRST=1 runs the baseline first, so rounds can alternate.
  const baselineFirst = process.env.LOAD_BASELINE_FIRST === '1';
  for (const count of databaseCounts) {
    if (baseline && baselineFirst) rows.push(await outpostRow('Outpost server (baseline)', baseline, count, seconds));
    rows.push(await outpostRow('Outpost server', process.cwd(), count, seconds));
    if (baseline && !baselineFirst) rows.push(await outpostRow('Outpost server (baseline)', baseline, count, seconds));
  }
  // LOAD_TURSO=0 leaves turso's row out (for runs that compare Outpost with its baseline only).
  if (process.env.LOAD_TURSO === '0') {
    agent.destroy();
    return rows;
  }
  const port = 32000 + Math.floor(Math.random() * 10000);
  const dir = tempDir('outpost-load-turso-');
  const turso = spawnGroup(process.execPath, [join(process.cwd(), 'node_modules/turso/src/index.js'), '--sync-server', `127.0.0.1:${port}`, join(dir, 'server.db')], { stdio: 'ignore' });
  try {
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 200; i++) {
      try {
        await pipeline(url, { baton: null, requests: [] }, null);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    // The group's figures: the npm wrapper and the tursodb binary it runs.
    rows.push(await workload('turso --sync-server', [url], turso, seconds, null));
  } finally {
    await stopChild(turso);
    rmSync(dir, { recursive: true, force: true });
    agent.destroy();
  }
  return rows;
}

/** `figure` beside its target, with a mark when it misses. */
function against(figure: number, target: number, higherIsBetter: boolean, digits: number): string {
  if (Number.isNaN(figure)) return 'n/a';
  const met = higherIsBetter ? figure >= target : figure <= target;
  return `${figure.toFixed(digits)} ${met ? '(met)' : '(short)'}`;
}

export function loadTable(rows: LoadRow[]): string {
  return [
    `| server | databases | pushed transactions/s (target ≥ ${TARGETS.pushesPerSecond}) | pull p50 ms | pull p99 ms (target ≤ ${TARGETS.pullP99Ms}) | sampled pulls/s | peak RSS MiB (target ≤ ${TARGETS.rssMiB}) | server CPU ms per push | load generator CPU ms per push |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.server} | ${r.databases} | ${against(r.pushesPerSecond, TARGETS.pushesPerSecond, true, 0)} | ${r.pullP50Ms.toFixed(2)} | ${against(r.pullP99Ms, TARGETS.pullP99Ms, false, 2)} | ${r.sampledPullsPerSecond.toFixed(0)} | ${against(r.peakRssMiB, TARGETS.rssMiB, false, 0)} | ${r.cpuMsPerPush.toFixed(2)} | ${r.generatorCpuMsPerPush.toFixed(2)} |`,
    ),
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(loadTable(await runServerLoad([Number(process.argv[2] ?? 1000)], Number(process.argv[3] ?? 5))));
}
