/**
 * Identical whole pulls at once (issue 10): `clients` clients bootstrap the same database of
 * `megabytes` at the same revision at the same moment, against a server in its own process
 * (bench/server-child.ts). The bench reads the server's CPU time (user + system, every thread,
 * from /proc) and its peak RSS above its idle level (sampled every 20 ms) over the pulls. Each
 * run starts a fresh server on a fresh copy of one data folder; `OUTPOST_BENCH_BASELINE_ROOT`
 * names another checkout whose server runs interleaved with this one's. A client retries a 429
 * after its Retry-After, as the sync client does. Every client's answer is hashed, and all must
 * be the same. Linux only.
 * `tsx bench/identical-pulls.ts [megabytes] [clients] [runs]`.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fill } from './sync.js';
import { encodePullRequest } from '../src/protocol/pull-updates.js';
import { tempDir } from '../test/support/server.js';

export interface IdenticalPullsRow {
  server: string;
  run: number;
  /** Wall time until every client had its whole answer. */
  ms: number;
  /** The server's CPU time over the pulls. */
  cpuMs: number;
  rssAboveIdleBytes: number;
  /** 429s the clients waited out. */
  busy: number;
  answerBytes: number;
}

const TICKS_PER_S = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_S;
}

function rssOf(pid: number): number {
  const kib = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kib ?? 0) * 1024;
}

/** Starts a server on `dataDir` (from `root`'s source, default this checkout's); resolves with its URL once it listens. */
async function startChild(dataDir: string, root?: string): Promise<{ child: ChildProcess; url: string }> {
  const script = new URL('./server-child.ts', import.meta.url).pathname;
  const child = spawn(process.execPath, ['--import', 'tsx', script, dataDir, ...(root ? [root] : [])], { stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the server child exited with ${code}`)));
  });
  return { child, url: (JSON.parse(line) as { url: string }).url };
}

async function stopChild(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.stdin!.end();
  await exited;
}

/** One whole pull, read as it arrives; its bytes and hash. */
async function pullWhole(url: string, busy: { count: number }): Promise<{ bytes: number; hash: string }> {
  for (;;) {
    const res = await fetch(`${url}/pull-updates`, { method: 'POST', headers: { 'content-type': 'application/protobuf' }, body: encodePullRequest({}) as BodyInit });
    if (res.status === 429) {
      busy.count++;
      await res.arrayBuffer();
      await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get('retry-after') ?? 1)));
      continue;
    }
    if (res.status !== 200 || !res.body) throw new Error(`pull answered ${res.status}`);
    const hash = createHash('sha1');
    let bytes = 0;
    const reader = res.body.getReader();
    for (let part = await reader.read(); !part.done; part = await reader.read()) {
      hash.update(part.value);
      bytes += part.value.length;
    }
    return { bytes, hash: hash.digest('hex') };
  }
}

async function measureRun(template: string, clients: number, server: string, run: number, root?: string): Promise<IdenticalPullsRow> {
  const dataDir = `${template}-run`;
  rmSync(dataDir, { recursive: true, force: true });
  cpSync(template, dataDir, { recursive: true });
  const { child, url } = await startChild(dataDir, root);
  try {
    const pid = child.pid!;
    // Opening the database is not the pulls' cost: a small query opens it first.
    await fetch(`${url}/db/bench/v2/pipeline`, { method: 'POST', body: JSON.stringify({ baton: null, requests: [{ type: 'execute', stmt: { sql: 'SELECT 1' } }] }) });
    const idleRss = rssOf(pid);
    let peakRss = idleRss;
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, rssOf(pid))), 20);
    const cpu0 = cpuMsOf(pid);
    const t0 = performance.now();
    const busy = { count: 0 };
    const answers = await Promise.all(Array.from({ length: clients }, () => pullWhole(`${url}/db/bench`, busy)));
    const ms = performance.now() - t0;
    const cpuMs = cpuMsOf(pid) - cpu0;
    clearInterval(sampler);
    peakRss = Math.max(peakRss, rssOf(pid));
    if (new Set(answers.map((a) => a.hash)).size !== 1) throw new Error('identical pulls got different answers');
    return { server, run, ms, cpuMs, rssAboveIdleBytes: peakRss - idleRss, busy: busy.count, answerBytes: answers[0]!.bytes };
  } finally {
    await stopChild(child);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export async function runIdenticalPullsBench(megabytes = 100, clients = 10, runs = 2): Promise<IdenticalPullsRow[]> {
  const baselineRoot = process.env.OUTPOST_BENCH_BASELINE_ROOT;
  const servers = [{ name: 'outpost', root: undefined as string | undefined }, ...(baselineRoot ? [{ name: 'baseline', root: baselineRoot }] : [])];
  const template = join(tempDir('outpost-identical-pulls-'), 'data');
  const rows: IdenticalPullsRow[] = [];
  try {
    const { child, url } = await startChild(template);
    await fill(`${url}/db/bench`, megabytes, true);
    await stopChild(child);
    for (let run = 0; run < runs; run++) {
      // Alternate which server goes first, so neither always runs on the warmer machine.
      const order = run % 2 === 0 ? servers : [...servers].reverse();
      for (const s of order) {
        process.stderr.write(`identical pulls: ${clients} × ${megabytes} MB, ${s.name}, run ${run + 1}\n`);
        rows.push(await measureRun(template, clients, s.name, run + 1, s.root));
      }
    }
  } finally {
    rmSync(join(template, '..'), { recursive: true, force: true });
  }
  return rows;
}

export function identicalPullsTable(rows: IdenticalPullsRow[]): string {
  const mib = (b: number): string => (b / 1024 / 1024).toFixed(0);
  return [
    '| server | run | wall ms | server CPU ms | server RSS above idle MiB | 429s waited out | answer MiB |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.server} | ${r.run} | ${r.ms.toFixed(0)} | ${r.cpuMs.toFixed(0)} | ${mib(r.rssAboveIdleBytes)} | ${r.busy} | ${mib(r.answerBytes)} |`),
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [megabytes, clients, runs] = process.argv.slice(2).map(Number);
  console.log(identicalPullsTable(await runIdenticalPullsBench(megabytes || 100, clients || 10, runs || 2)));
}
