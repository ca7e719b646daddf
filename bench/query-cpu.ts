/**
 * `npx tsx bench/query-cpu.ts [--base DIR] [--rounds N] [--repeats N] [--rows R]`
 *
 * CPU time (`process.cpuUsage`, so load from other processes adds little) of the three stages
 * of a `query()` of R rows x 5 columns (the bench's `big` table), in Node on a `Connection`
 * over Node files: the engine's `query()` (stepping, reading cells, packing), the structured
 * clone of its answer with its buffers transferred (what postMessage does, once per side), and
 * `unpackRows` (the page's objects). A checkout that sends large results in parts
 * (packed-rows.ts `RowParts`) is measured that way: the engine stage packs and hands out the
 * parts, the clone stage clones each, the unpack stage makes each part's objects; the three
 * run one after another here, where the browser overlaps the engine with the unpacking, so
 * these are CPU costs, not the wall time of the pipeline. Each checkout runs in a fresh process per round, rotating
 * which goes first; a child prints each stage's best of `--repeats`. The parent prints the
 * median over rounds per stage and the ratios to --base. `--child ROOT ROWS REPEATS [PROFILE]`
 * runs one child alone (with PROFILE, it writes a summary of its CPU profile there).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { engineOf } from './checkout.js';
import { type CpuProfile, summarise } from './profile.js';

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

interface QueryConnection {
  exec(sql: string): void;
  query(sql: string, params: undefined, maxRows?: number, onPart?: (part: unknown) => void): unknown;
  close(): Promise<void>;
}

type Stages = Record<'engine' | 'clone' | 'unpack' | 'total', number>;

async function child(root: string, rows: number, repeats: number, profileFile?: string): Promise<Stages> {
  const { Connection, NodeDirectory } = await engineOf(root);
  const packedFile = join(root, 'src/engine/packed-rows.ts');
  if (!existsSync(packedFile)) throw new Error(`no ${packedFile}`);
  const packed = (await import(pathToFileURL(packedFile).href)) as {
    unpackRows(rows: unknown): unknown[];
    transferables(rows: unknown): ArrayBuffer[];
    RowParts?: new () => { add(part: unknown): void; finish(last: unknown): unknown };
  };
  const { RowParts } = packed;
  const dir = mkdtempSync(join(tmpdir(), 'outpost-query-cpu-'));
  try {
    const conn = (await Connection.open(new NodeDirectory(join(dir, 'q.db')), { durability: 'normal', intMode: 'number' })) as unknown as QueryConnection;
    conn.exec(`CREATE TABLE big(id INTEGER PRIMARY KEY, x REAL, label TEXT, tag TEXT, n INTEGER);
      WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ${rows})
      INSERT INTO big SELECT i, i * 1.5, 'label number ' || i, hex(i * 7919), i % 97 FROM s;`);
    const best: Stages = { engine: Infinity, clone: Infinity, unpack: Infinity, total: Infinity };
    const session = profileFile ? new Session() : null;
    if (session) {
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 50 });
      await session.post('Profiler.start');
    }
    for (let r = 0; r < repeats; r++) {
      (globalThis as { gc?: () => void }).gc?.();
      const parts: unknown[] = [];
      const t0 = cpuMs();
      const sql = 'SELECT id, x, label, tag, n FROM big';
      const answer = RowParts ? conn.query(sql, undefined, Number.POSITIVE_INFINITY, (part) => parts.push(part)) : conn.query(sql, undefined);
      const t1 = cpuMs();
      const cloned = [...parts, answer].map((rows) => structuredClone(rows, { transfer: packed.transferables(rows) }));
      const t2 = cpuMs();
      let out: unknown[];
      if (RowParts) {
        const receiving = new RowParts();
        for (const part of cloned.slice(0, -1)) receiving.add(part);
        out = packed.unpackRows(receiving.finish(cloned.at(-1)));
      } else out = packed.unpackRows(cloned[0]);
      const t3 = cpuMs();
      if (out.length !== rows) throw new Error(`expected ${rows} rows, got ${out.length}`);
      best.engine = Math.min(best.engine, t1 - t0);
      best.clone = Math.min(best.clone, t2 - t1);
      best.unpack = Math.min(best.unpack, t3 - t2);
      best.total = Math.min(best.total, t3 - t0);
    }
    if (session && profileFile) {
      const { profile } = (await session.post('Profiler.stop')) as { profile: CpuProfile };
      writeFileSync(profileFile, summarise(profile, 40));
    }
    await conn.close();
    return best;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    const [, root, rows, repeats, profileFile] = argv;
    console.log(JSON.stringify(await child(root!, Number(rows), Number(repeats), profileFile)));
    return;
  }
  let base: string | undefined;
  let rounds = 6;
  let repeats = 5;
  let rows = 100_000;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    if (a === '--base') base = resolve(v);
    else if (a === '--rounds') rounds = Number(v);
    else if (a === '--repeats') repeats = Number(v);
    else if (a === '--rows') rows = Number(v);
    else throw new Error(`unknown argument ${a}`);
  }
  const trees: Record<string, string> = { current: resolve(new URL('..', import.meta.url).pathname) };
  if (base) trees.base = base;
  const got: Record<string, Stages[]> = {};
  const self = new URL(import.meta.url).pathname;
  for (let round = 0; round < rounds; round++) {
    const order = Object.keys(trees);
    if (round % 2) order.reverse();
    for (const label of order) {
      const out = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', self, '--child', trees[label]!, String(rows), String(repeats)], { encoding: 'utf8', cwd: trees[label] });
      const s = JSON.parse(out.trim().split('\n').pop()!) as Stages;
      (got[label] ??= []).push(s);
      process.stderr.write(`round ${round + 1} ${label}: engine ${s.engine.toFixed(1)} clone ${s.clone.toFixed(1)} unpack ${s.unpack.toFixed(1)} total ${s.total.toFixed(1)} CPU ms\n`);
    }
  }
  const labels = Object.keys(trees);
  console.log(`| ${rows} rows x 5, CPU ms, median over ${rounds} rounds of best of ${repeats} | ${labels.join(' | ')} |${base ? ' current / base |' : ''}`);
  console.log(`|---|${labels.map(() => '---:').join('|')}|${base ? '---:|' : ''}`);
  for (const stage of ['engine', 'clone', 'unpack', 'total'] as const) {
    const m = labels.map((l) => median(got[l]!.map((s) => s[stage])));
    console.log(`| ${stage} | ${m.map((x) => x.toFixed(1)).join(' | ')} |${base ? ` ${(m[0]! / m[1]!).toFixed(2)}x |` : ''}`);
  }
}

await main();
