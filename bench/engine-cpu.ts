/**
 * `npx tsx bench/engine-cpu.ts --base DIR [--also DIR] [--rounds N] [--only c07,c12,c15] [--scale S] [--gc]`
 *
 * The engine-level classic suite (a `Connection` over Node files, as `node-outpost` in
 * bench/node.ts runs it) of this checkout against another checkout of Outpost (`--base`, a
 * worktree of an older commit with its own `node_modules`), in CPU time rather than wall time:
 * on a machine shared with other work, the process's CPU time (`process.cpuUsage`, every
 * thread, GC included) moves far less than the clock. Each round runs every checkout, each in
 * a fresh process, starting from a different one each round; the table gives the median of
 * the rounds and each checkout's ratio to the base (and the ratio of best runs). `--also` adds
 * a third checkout (the commit before a change, to see before and after in one run).
 *
 * The test bodies are this checkout's bench/classic.ts for both, so only the engine differs.
 * The older layouts are found by trying the paths each layout had.
 *
 * `--raw FILE` also writes every run's figures (per checkout, per round) as JSON, for spreads.
 *
 * `--gc` runs each child with `--expose-gc` and collects garbage before every test, outside
 * its measured window, so a test is not charged for a collection its predecessors' garbage
 * caused (which lands in whichever test crosses the threshold, and moves when they change).
 *
 * `--child DIR [--profile OUT]` is the child process's mode: run the suite once on DIR's engine
 * and print JSON; with `--profile`, write a CPU profile of each test of `--only` into OUT.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CLASSIC_TESTS, runClassic } from './classic.js';
import { type EngineConnection, engineOf } from './checkout.js';
import { type CpuProfile, summarise } from './profile.js';

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
  const { Connection, NodeDirectory } = await engineOf(root);
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
          (globalThis as { gc?: () => void }).gc?.();
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
  if (!baseArg) throw new Error('usage: tsx bench/engine-cpu.ts --base DIR [--also DIR] [--rounds N] [--only c07,c12] [--scale S] [--gc] [--raw FILE]');
  // Checkouts by label: the base, optionally one more (`--also`, say the commit before a change), and this one.
  const roots = new Map<string, string>([['base', resolve(baseArg)]]);
  const also = arg(argv, '--also');
  if (also) roots.set('also', resolve(also));
  roots.set('current', resolve(import.meta.dirname, '..'));
  const labels = [...roots.keys()];
  const rounds = Number(arg(argv, '--rounds') ?? 5);
  const runs = new Map<string, Record<string, number>[]>(labels.map((l) => [l, []]));
  for (let r = 0; r < rounds; r++) {
    // Each round starts with a different checkout, so none always runs first or last.
    const order = labels.map((_, i) => labels[(i + r) % labels.length]!);
    for (const which of order) {
      const args = [...(argv.includes('--gc') ? ['--expose-gc'] : []), '--import', 'tsx', join(import.meta.dirname, 'engine-cpu.ts'), '--child', roots.get(which)!, '--scale', String(scale)];
      if (onlyArg) args.push('--only', onlyArg);
      const out = execFileSync(process.execPath, args, { encoding: 'utf8', cwd: roots.get('current')! });
      runs.get(which)!.push(JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>);
    }
    process.stderr.write(`round ${r + 1}/${rounds} done\n`);
  }
  const rawFile = arg(argv, '--raw');
  if (rawFile) writeFileSync(rawFile, JSON.stringify(Object.fromEntries(runs), null, 1));
  const tests = [...CLASSIC_TESTS.map((t) => t.id).filter((id) => !only || only.has(id)), 'total'];
  const others = labels.filter((l) => l !== 'base');
  // The median is the figure; the best run is a second look, since load only ever adds CPU time.
  console.log(`CPU ms of ${rounds} interleaved rounds (scale ${scale}); ${labels.map((l) => `${l} = ${roots.get(l)}`).join(', ')}`);
  const head = ['test', 'base', ...others.flatMap((l) => [l, `${l}/base`]), ...others.map((l) => `best ${l}/base`)];
  console.log(`| ${head.join(' | ')} |\n|${head.map(() => '---').join('|')}|`);
  for (const id of tests) {
    const of = (label: string): number[] => runs.get(label)!.map((x) => x[id] ?? Number.NaN);
    const b = median(of('base'));
    const cells = [id, b.toFixed(0)];
    for (const l of others) cells.push(median(of(l)).toFixed(0), `${(median(of(l)) / b).toFixed(2)}x`);
    for (const l of others) cells.push(`${(Math.min(...of(l)) / Math.min(...of('base'))).toFixed(2)}x`);
    console.log(`| ${cells.join(' | ')} |`);
  }
}

await main(process.argv.slice(2));
