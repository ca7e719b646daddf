/**
 * `npx tsx bench/engine-calls.ts --base DIR [--also DIR]... [--rounds N] [--calls N] [--repeats N] [--test c07|c12]`
 *
 * A sharper look than bench/engine-cpu.ts at one classic test's per-call cost, for comparing
 * checkouts of Outpost (`--base`, `--also`: worktrees of other commits with `node_modules`).
 * Each child process opens a `Connection` over Node files as engine-cpu's child does, builds
 * t2 as bench/classic.ts does (25,000 rows, then its two indexes), and then:
 * - `c07`: runs c07's statement (`SELECT count(*), avg(b) FROM t2 WHERE b >= ? AND b < ?`, in
 *   autocommit) `--calls` times per repeat, `--repeats` times, and prints each repeat's CPU
 *   microseconds per call (`process.cpuUsage`, so load from other processes adds little);
 * - `c12`: per repeat, refills t2 and times c12's `DELETE FROM t2 WHERE c LIKE '%fifty%'`
 *   (CPU milliseconds for the one statement).
 * The parent runs each checkout in a fresh process per round, rotating which goes first, and
 * prints per checkout the median over rounds of each round's best repeat, the best overall, and
 * the ratios to the base. A child's best-of-repeats drops the repeats another process's burst
 * or a collection landed in, which is what makes a difference of a few microseconds visible.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { numberName, runClassic } from './classic.js';
import { type EngineConnection, engineOf } from './checkout.js';
import { type CpuProfile, summarise } from './profile.js';

function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** Each thread's CPU nanoseconds so far (Linux schedstat), by thread name and id. */
function threadCpuNs(): Map<string, number> {
  const out = new Map<string, number>();
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      const name = readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim();
      const ns = Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      out.set(`${name}#${tid}`, ns);
    }
  } catch {
    // Not Linux: no per-thread figures.
  }
  return out;
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
}

function fillT2(conn: EngineConnection, seed: number): void {
  const rand = lcg(seed);
  conn.exec('BEGIN');
  for (let i = 1; i <= 25000; i++) {
    const r = rand() % 500000;
    conn.run('INSERT INTO t2 VALUES(?, ?, ?)', [i, r, numberName(r)]);
  }
  conn.exec('COMMIT');
}

/** One child run: the figure of each repeat (µs per call for c07, ms for c12). */
async function child(root: string, test: string, calls: number, repeats: number, suiteState: boolean, cachePages?: number, profileFile?: string, count = false, settleMs = 0): Promise<number[]> {
  const { Connection, NodeDirectory, NodeFileBackend } = await engineOf(root);
  // `--count`: counts the storage calls (per method and file) in the measured calls, instead of timing alone.
  const counts = new Map<string, number>();
  let counting = false;
  if (count) {
    for (const method of ['read', 'write', 'size', 'truncate', 'flush']) {
      const original = NodeFileBackend.prototype[method] as (this: { path: string }, ...a: unknown[]) => unknown;
      NodeFileBackend.prototype[method] = function (this: { path: string }, ...a: unknown[]): unknown {
        if (counting) {
          const key = `${method} ${this.path.split('-').pop()}`;
          counts.set(key, (counts.get(key) ?? 0) + 1);
        }
        return original.apply(this, a);
      };
    }
  }
  const gc = (globalThis as { gc?: () => void }).gc;
  const dir = mkdtempSync(join(tmpdir(), 'outpost-calls-'));
  const figures: number[] = [];
  try {
    const conn = await Connection.open(new NodeDirectory(join(dir, 'bench.db')), { durability: 'normal', intMode: 'number' });
    if (suiteState) {
      // The database and process exactly as the suite leaves them when `test` starts: run the
      // suite and stop it there.
      const stop = new Error('stop');
      await runClassic({ exec: (sql) => conn.exec(sql), prepare: (sql) => ({ run: (params) => conn.run(sql, params) }) }, 1, undefined, async (id) => {
        if (id === test) throw stop;
      }).catch((e: unknown) => {
        if (e !== stop) throw e;
      });
    } else {
      conn.exec('CREATE TABLE t2(a INTEGER, b INTEGER, c VARCHAR(100))');
      fillT2(conn, 42);
      conn.exec('CREATE INDEX i2a ON t2(a)');
      conn.exec('CREATE INDEX i2b ON t2(b)');
    }
    // A small page cache sends most page reads to the VFS, to weigh its read path.
    if (cachePages !== undefined) conn.exec(`PRAGMA cache_size = ${cachePages}`);
    if (test === 'c07') {
      const sql = 'SELECT count(*), avg(b) FROM t2 WHERE b >= ? AND b < ?';
      // Warm up: the JIT, the statement cache and the page cache (the suite's state is taken as it is).
      for (let i = 0; i < (suiteState ? 0 : 5000); i++) conn.run(sql, [(i % 5000) * 100, (i % 5000) * 100 + 100]);
      const session = profileFile ? new Session() : null;
      if (session) {
        session.connect();
        await session.post('Profiler.enable');
        await session.post('Profiler.setSamplingInterval', { interval: 50 });
        await session.post('Profiler.start');
      }
      counting = count;
      const threadNs = new Map<string, number>();
      for (let r = 0; r < repeats; r++) {
        gc?.();
        // The collection's sweeping goes on in background threads after gc() returns: let it finish outside the window.
        if (settleMs > 0) await new Promise((r) => setTimeout(r, settleMs));
        if (count) process.stdout.write('--- measured calls start\n');
        const threadsBefore = count ? threadCpuNs() : null;
        const t0 = cpuUs();
        for (let i = 0; i < calls; i++) conn.run(sql, [(i % 5000) * 100, (i % 5000) * 100 + 100]);
        figures.push((cpuUs() - t0) / calls);
        if (threadsBefore) for (const [k, v] of threadCpuNs()) threadNs.set(k, (threadNs.get(k) ?? 0) + v - (threadsBefore.get(k) ?? 0));
      }
      counting = false;
      if (count) {
        const deltas = [...threadNs].map(([k, v]) => [k, v / 1000 / calls / repeats] as const);
        const main = deltas.filter(([k]) => k.endsWith(`#${process.pid}`)).reduce((a, [, v]) => a + v, 0);
        const others = deltas.reduce((a, [, v]) => a + v, 0) - main;
        process.stderr.write(`thread CPU µs per call: main ${main.toFixed(2)} others ${others.toFixed(2)}\n`);
      }
      if (count) process.stderr.write(`storage calls per call: ${[...counts].map(([k, v]) => `${k} ${(v / calls / repeats).toFixed(3)}`).join(', ')}\n`);
      if (session && profileFile) {
        const { profile } = (await session.post('Profiler.stop')) as { profile: CpuProfile };
        writeFileSync(`${profileFile}.cpuprofile`, JSON.stringify(profile));
        writeFileSync(`${profileFile}.txt`, summarise(profile, 60));
      }
    } else if (test === 'c12') {
      for (let r = 0; r < repeats; r++) {
        if (r > 0) {
          conn.exec('DELETE FROM t2');
          fillT2(conn, 42 + r);
        }
        gc?.();
        const t0 = cpuUs();
        conn.exec("DELETE FROM t2 WHERE c LIKE '%fifty%'");
        figures.push((cpuUs() - t0) / 1000);
      }
    } else {
      throw new Error(`unknown test ${test}`);
    }
    await conn.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return figures;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function args(argv: string[], name: string): string[] {
  return argv.flatMap((a, i) => (a === name && argv[i + 1] !== undefined ? [argv[i + 1]!] : []));
}

async function main(argv: string[]): Promise<void> {
  const test = args(argv, '--test')[0] ?? 'c07';
  const calls = Number(args(argv, '--calls')[0] ?? 20000);
  const repeats = Number(args(argv, '--repeats')[0] ?? (test === 'c07' ? 15 : 7));
  const childRoot = args(argv, '--child')[0];
  if (childRoot) {
    process.stdout.write(`${JSON.stringify(await child(childRoot, test, calls, repeats, argv.includes('--suite-state'), args(argv, '--cache-pages')[0] === undefined ? undefined : Number(args(argv, '--cache-pages')[0]), args(argv, '--profile')[0], argv.includes('--count'), Number(args(argv, '--settle-ms')[0] ?? 0)))}\n`);
    return;
  }
  const base = args(argv, '--base')[0];
  if (!base) throw new Error('usage: tsx bench/engine-calls.ts --base DIR [--also DIR]... [--rounds N] [--calls N] [--repeats N] [--test c07|c12]');
  const roots = new Map<string, string>([['base', resolve(base)]]);
  args(argv, '--also').forEach((d, i) => roots.set(`also${i + 1}`, resolve(d)));
  roots.set('current', resolve(import.meta.dirname, '..'));
  const labels = [...roots.keys()];
  const rounds = Number(args(argv, '--rounds')[0] ?? 5);
  const best = new Map<string, number[]>(labels.map((l) => [l, []]));
  const first = new Map<string, number[]>(labels.map((l) => [l, []]));
  for (let r = 0; r < rounds; r++) {
    const order = labels.map((_, i) => labels[(i + r) % labels.length]!);
    for (const which of order) {
      const childArgs = ['--expose-gc', '--import', 'tsx', join(import.meta.dirname, 'engine-calls.ts'), '--child', roots.get(which)!];
      childArgs.push('--test', test, '--calls', String(calls), '--repeats', String(repeats));
      // The child's options, passed on as given (a comma expression here once passed none of them).
      for (const flag of ['--suite-state', '--count']) if (argv.includes(flag)) childArgs.push(flag);
      for (const flag of ['--cache-pages', '--profile', '--settle-ms']) {
        const value = args(argv, flag)[0];
        if (value !== undefined) childArgs.push(flag, value);
      }
      const out = execFileSync(process.execPath, childArgs, { encoding: 'utf8', cwd: roots.get('current')! });
      const figures = JSON.parse(out.trim().split('\n').pop()!) as number[];
      best.get(which)!.push(Math.min(...figures));
      first.get(which)!.push(figures[0]!);
    }
    process.stderr.write(`round ${r + 1}/${rounds}: ${labels.map((l) => `${l} ${first.get(l)!.at(-1)!.toFixed(2)}/${best.get(l)!.at(-1)!.toFixed(2)}`).join(', ')}\n`);
  }
  const rawFile = args(argv, '--raw')[0];
  if (rawFile) writeFileSync(rawFile, JSON.stringify({ roots: Object.fromEntries(roots), first: Object.fromEntries(first), best: Object.fromEntries(best) }, null, 1));
  const unit = test === 'c07' ? 'CPU µs per call' : 'CPU ms per DELETE';
  const state = argv.includes('--suite-state') ? 'in the suite\'s state' : 'on a fresh t2';
  for (const [what, figures] of [
    ['the first repeat', first],
    [`the best of ${repeats} repeats`, best],
  ] as const) {
    console.log(`\n${test} ${state}, ${unit}, per round ${what}${test === 'c07' ? ` of ${calls} calls` : ''}; ${rounds} interleaved rounds`);
    console.log('| checkout | median | best | median/base | best/base | rounds above base median |\n|---|---:|---:|---:|---:|---:|');
    const b = figures.get('base')!;
    for (const l of labels) {
      const v = figures.get(l)!;
      const above = v.filter((x) => x > median(b)).length;
      console.log(`| ${l} = ${roots.get(l)} | ${median(v).toFixed(2)} | ${Math.min(...v).toFixed(2)} | ${(median(v) / median(b)).toFixed(3)}x | ${(Math.min(...v) / Math.min(...b)).toFixed(3)}x | ${above}/${v.length} |`);
    }
  }
}

await main(process.argv.slice(2));
