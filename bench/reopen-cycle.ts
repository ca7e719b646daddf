/**
 * What a server pays to reopen a database while thousands of others stay open (issue 14): at
 * 10,000 databases about a third of pushes reopen one, and an open with 6,300 held costs about
 * twice one with none (V8 Map churn on keys that come back was part of it: ARCHITECTURE, "Maps
 * whose keys come back"). `bench/open-cost.ts` keeps every database it opens, so it cannot see
 * that; this one holds `--held` databases open, then cycles `--cycles` others: open, two pushes,
 * close, yielding to the event loop after each as the server does between requests.
 *
 * Each round runs in a fresh process per checkout, in turn (`--base DIR` adds another built
 * checkout), on a data folder of each checkout's own kept between rounds, so only the first
 * round creates files (the first round is the slower for it). Prints each round's wall time per
 * cycle and the medians' ratio.
 *
 * Usage: npm run build, then npx tsx bench/reopen-cycle.ts [--held 6300] [--cycles 4000] [--rounds 4] [--base DIR]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type * as Hosted from '../src/server/hosted-database.js';
import { builtServerEntry } from './child-sample.js';

const PUSH = { baton: null, requests: [{ type: 'batch', batch: { steps: [{ stmt: { sql: 'BEGIN IMMEDIATE' } }, { stmt: { sql: "INSERT INTO t(v) VALUES ('x')" } }, { stmt: { sql: 'COMMIT' } }] } }] };
const SCHEMA = 'CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)';

/** One round in this process: prints the wall and CPU microseconds per cycle as JSON. */
async function child(root: string, dir: string, held: number, cycles: number): Promise<void> {
  const { HostedDatabase, defaultStreamLimits } = (await import(join(root, 'dist/server/hosted-database.js'))) as typeof Hosted;
  const options: Hosted.HostedDatabaseOptions = {
    durability: 'normal',
    cacheKiB: 256,
    limits: { statementTimeoutMs: 2000, valueBytesMax: 1 << 24, shareOfServer: 1, answerBytesMax: 1 << 24 },
    streams: defaultStreamLimits(),
  };
  const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  // The table is made when the database is (a reopen, like the server's, runs only the pushes).
  const open = async (name: string): Promise<Hosted.HostedDatabase> => {
    const created = !existsSync(join(dir, `${name}.db`));
    const db = await HostedDatabase.open(dir, name, options);
    if (created) db.execTrusted(SCHEMA);
    return db;
  };
  const kept: Hosted.HostedDatabase[] = [];
  for (let i = 0; i < held; i++) {
    kept.push(await open(`held${i}`));
    await turn();
  }
  const cpu = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < cycles; i++) {
    const db = await open(`cycled${i}`);
    db.pipeline(PUSH);
    db.pipeline(PUSH);
    await db.close();
    await turn();
  }
  const wallUs = ((performance.now() - start) * 1000) / cycles;
  const used = process.cpuUsage(cpu);
  console.log(JSON.stringify({ wallUs, cpuUs: (used.user + used.system) / cycles }));
  for (const db of kept) await db.close();
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { held: { type: 'string', default: '6300' }, cycles: { type: 'string', default: '4000' }, rounds: { type: 'string', default: '4' }, base: { type: 'string' }, child: { type: 'string' }, dir: { type: 'string' } },
    strict: true,
  });
  const held = Number(values.held);
  const cycles = Number(values.cycles);
  if (values.child) return child(values.child, values.dir!, held, cycles);
  const trees = [{ name: 'this checkout', root: process.cwd() }, ...(values.base ? [{ name: `base (${values.base})`, root: values.base }] : [])];
  for (const t of trees) builtServerEntry(t.root); // refuses a missing or stale build
  const dirs = trees.map(() => mkdtempSync(join(tmpdir(), 'outpost-reopen-cycle-')));
  const walls: number[][] = trees.map(() => []);
  try {
    for (let round = 0; round < Number(values.rounds); round++) {
      // Alternate which tree goes first: the machine's state drifts within a round.
      const order = round % 2 === 0 ? trees.map((_, i) => i) : trees.map((_, i) => trees.length - 1 - i);
      for (const i of order) {
        const out = execFileSync(process.execPath, ['--import', 'tsx', 'bench/reopen-cycle.ts', '--child', trees[i]!.root, '--dir', dirs[i]!, '--held', String(held), '--cycles', String(cycles)], { encoding: 'utf8', maxBuffer: 1 << 20 });
        const { wallUs, cpuUs } = JSON.parse(out.trim().split('\n').at(-1)!) as { wallUs: number; cpuUs: number };
        walls[i]!.push(wallUs);
        console.log(`round ${round + 1} ${trees[i]!.name}: ${wallUs.toFixed(0)} µs wall, ${cpuUs.toFixed(0)} µs CPU per cycle`);
      }
    }
  } finally {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
  const medians = walls.map(median);
  console.log(`median wall per cycle: ${trees.map((t, i) => `${t.name} ${medians[i]!.toFixed(0)} µs`).join(', ')}`);
  if (medians.length === 2) console.log(`this checkout / base: ${(medians[0]! / medians[1]!).toFixed(2)}x`);
}

await main();
