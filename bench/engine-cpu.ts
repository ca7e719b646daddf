/**
 * `npx tsx bench/engine-cpu.ts --base DIR [--rounds N] [--only c07,c12,c15] [--scale S]`
 *
 * The engine-level classic suite (a `Connection` over Node files, as `node-outpost` in
 * bench/node.ts runs it) of this checkout against another checkout of Outpost (`--base`, a
 * worktree of an older commit with its own `node_modules`), in CPU time rather than wall time:
 * on a machine shared with other work, the process's CPU time (`process.cpuUsage`, every
 * thread, GC included) moves far less than the clock. Each round runs both checkouts, each in
 * a fresh process, in alternating order; the table gives the median of the rounds and the
 * ratio of this checkout to the base.
 *
 * The test bodies are this checkout's bench/classic.ts for both, so only the engine differs.
 * The older layouts are found by trying the paths each layout had.
 *
 * `--child DIR [--profile OUT]` is the child process's mode: run the suite once on DIR's engine
 * and print JSON; with `--profile`, write a CPU profile of each test of `--only` into OUT.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CLASSIC_TESTS, runClassic } from './classic.js';
import { type CpuProfile, summarise } from './profile.js';

interface EngineConnection {
  exec(sql: string): void;
  run(sql: string, params: unknown[]): unknown;
  close(): Promise<void>;
}

/** The first of `paths` (relative to `root`) that exists, imported. */
async function importFirst(root: string, paths: string[]): Promise<Record<string, unknown>> {
  for (const p of paths) {
    const file = join(root, p);
    if (existsSync(file)) return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  }
  throw new Error(`none of ${paths.join(', ')} in ${root}`);
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * Runs the suite once on `root`'s engine; CPU milliseconds per test, and `total`. With
 * `profileDir`, each test of `only` is also profiled into `<profileDir>/<test>.txt` (a summary)
 * and `.cpuprofile`.
 */
async function child(root: string, scale: number, only: Set<string> | undefined, profileDir?: string): Promise<Record<string, number>> {
  // Both layouts export `Connection` from engine/connection.ts; the Node backend moved.
  const { Connection } = (await importFirst(root, ['src/engine/connection.ts'])) as {
    Connection: { open(dir: unknown, options: object): Promise<EngineConnection> };
  };
  const { NodeDirectory } = (await importFirst(root, ['src/opfs-vfs/storage/node.ts', 'src/opfs-vfs/node-backend.ts'])) as {
    NodeDirectory: new (path: string) => unknown;
  };
  const dir = mkdtempSync(join(tmpdir(), 'outpost-cpu-'));
  const cpu: Record<string, number> = {};
  try {
    const conn = await Connection.open(new NodeDirectory(join(dir, 'bench.db')), { durability: 'normal', intMode: 'number' });
    let started = 0;
    const session = profileDir ? new Session() : null;
    if (session && profileDir) {
      mkdirSync(profileDir, { recursive: true });
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 50 });
    }
    const profiled = (id: string): boolean => session !== null && (!only || only.has(id));
    const t0 = cpuMs();
    await runClassic(
      { exec: (sql) => conn.exec(sql), prepare: (sql) => ({ run: (params) => conn.run(sql, params) }) },
      scale,
      undefined,
      async (id, phase) => {
        if (phase === 'start') {
          if (process.env.OUTPOST_CPU_FILES) process.stderr.write(`${id} ${listFiles(dir)} notes=${(globalThis as any).__notes}\n`);
          if (profiled(id)) await session?.post('Profiler.start');
          started = cpuMs();
          return;
        }
        if (!only || only.has(id)) cpu[id] = cpuMs() - started;
        if (profiled(id) && session && profileDir) {
          const { profile } = (await session.post('Profiler.stop')) as { profile: CpuProfile };
          writeFileSync(join(profileDir, `${id}.cpuprofile`), JSON.stringify(profile));
          writeFileSync(join(profileDir, `${id}.txt`), summarise(profile, 40));
        }
      },
    );
    cpu.total = cpuMs() - t0;
    await conn.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return cpu;
}

function listFiles(dir: string): string {
  return readdirSync(dir, { recursive: true }).map((f) => `${String(f)}=${statSync(join(dir, String(f))).size}`).join(' ');
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

async function main(argv: string[]): Promise<void> {
  const scale = Number(arg(argv, '--scale') ?? 1);
  const onlyArg = arg(argv, '--only');
  const only = onlyArg ? new Set(onlyArg.split(',')) : undefined;
  const childRoot = arg(argv, '--child');
  if (childRoot) {
    process.stdout.write(`${JSON.stringify(await child(childRoot, scale, only, arg(argv, '--profile')))}\n`);
    return;
  }
  const baseArg = arg(argv, '--base');
  if (!baseArg) throw new Error('usage: tsx bench/engine-cpu.ts --base DIR [--rounds N] [--only c07,c12] [--scale S]');
  const roots = { base: resolve(baseArg), current: resolve(import.meta.dirname, '..') };
  const rounds = Number(arg(argv, '--rounds') ?? 5);
  const runs: Record<'base' | 'current', Record<string, number>[]> = { base: [], current: [] };
  for (let r = 0; r < rounds; r++) {
    const order: ('base' | 'current')[] = r % 2 === 0 ? ['base', 'current'] : ['current', 'base'];
    for (const which of order) {
      const args = ['--import', 'tsx', join(import.meta.dirname, 'engine-cpu.ts'), '--child', roots[which], '--scale', String(scale)];
      if (onlyArg) args.push('--only', onlyArg);
      const out = execFileSync(process.execPath, args, { encoding: 'utf8', cwd: roots.current });
      runs[which].push(JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>);
    }
    process.stderr.write(`round ${r + 1}/${rounds} done\n`);
  }
  const tests = [...CLASSIC_TESTS.map((t) => t.id).filter((id) => !only || only.has(id)), 'total'];
  // The median is the figure; the best run is a second look, since load only ever adds CPU time.
  console.log(`CPU ms of ${rounds} interleaved rounds (scale ${scale}); base ${roots.base}`);
  console.log('| test | base median | current median | ratio | base best | current best | ratio |\n|---|---|---|---|---|---|---|');
  for (const id of tests) {
    const of = (which: 'base' | 'current'): number[] => runs[which].map((x) => x[id] ?? Number.NaN);
    const [b, c] = [median(of('base')), median(of('current'))];
    const [bBest, cBest] = [Math.min(...of('base')), Math.min(...of('current'))];
    console.log(`| ${id} | ${b.toFixed(0)} | ${c.toFixed(0)} | ${(c / b).toFixed(2)}x | ${bBest.toFixed(0)} | ${cBest.toFixed(0)} | ${(cBest / bBest).toFixed(2)}x |`);
  }
}

await main(process.argv.slice(2));
