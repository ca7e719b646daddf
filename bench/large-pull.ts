/**
 * A large incremental pull (issue 15, "large pulls stream the same way"): a replica
 * bootstrapped while the server's database was small, then `megabytes` of new rows on the
 * server, then one pull, each in its own process (bench/pull-child.ts) from a fresh copy of the
 * replica, against the Outpost server. The engine thread (as users run it) and the inline
 * engine (whose JS memory the child can see), interleaved run by run;
 * `OUTPOST_BENCH_BASELINE_ROOT` names another checkout whose Outpost runs beside this one.
 * `tsx bench/large-pull.ts [megabytes] [runs]` runs it alone.
 */
import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { type SampleSummary, runChild, summarise } from './child-sample.js';
import type { PullSample } from './pull-child.js';
import { fill } from './sync.js';
import { open } from '../src/node/index.js';
import { NODE_SUFFIXES } from '../src/opfs-vfs/storage/files.js';
import { batch, rawPipeline, startServer, tempDir } from '../test/support/server.js';

/** The target: memory above idle during the pull. */
export const LARGE_PULL_MEMORY_TARGET_BYTES = 64 * 1024 * 1024;

export interface LargePullRow extends SampleSummary {
  client: string;
  engine: string;
  megabytes: number;
}

export async function runLargePullBench(megabytes = 100, runs = 2): Promise<LargePullRow[]> {
  const baselineRoot = process.env.OUTPOST_BENCH_BASELINE_ROOT;
  const clients = [
    { name: 'outpost', root: undefined as string | undefined },
    ...(baselineRoot ? [{ name: 'outpost (baseline)', root: baselineRoot }] : []),
  ];
  const engines = ['thread', 'inline'];
  const s = await startServer({ auth: false });
  const url = `${s.url}/db/bench-pull`;
  const dir = tempDir('outpost-pullbench-');
  const template = join(dir, 'template.db');
  const samples = new Map<string, PullSample[]>();
  try {
    await rawPipeline(url, batch('CREATE TABLE seed(id INTEGER PRIMARY KEY)', 'INSERT INTO seed VALUES (1)'));
    const replica = await open(template, { sync: { url } });
    await replica.close();
    await fill(url, megabytes, true);
    for (let run = 0; run < runs; run++) {
      for (const engine of engines) {
        for (const c of clients) {
          process.stderr.write(`large pull ${megabytes} MB: ${c.name}, ${engine} engine, run ${run + 1}\n`);
          const path = join(dir, `run-${run}-${engine}-${c.root ? 'base' : 'new'}.db`);
          for (const suffix of NODE_SUFFIXES) if (existsSync(template + suffix)) copyFileSync(template + suffix, path + suffix);
          const sample = await runChild<PullSample>('./pull-child.ts', [path, engine, ...(c.root ? [c.root] : [])]);
          if (!sample.pulled) throw new Error('the pull brought nothing');
          const key = `${c.name}\t${engine}`;
          samples.set(key, [...(samples.get(key) ?? []), sample]);
        }
      }
    }
  } finally {
    await s.server.close();
  }
  return [...samples].map(([key, list]) => {
    const [client, engine] = key.split('\t') as [string, string];
    return { client, engine, megabytes, ...summarise(list) };
  });
}

export function largePullTable(rows: LargePullRow[]): string {
  const mb = (b: number): string => (b / 1024 / 1024).toFixed(0);
  return [
    `| client | engine | pull ms (best of ${rows[0]?.runs ?? 0}) | CPU ms (best) | RSS above idle MiB (target ≤ ${mb(LARGE_PULL_MEMORY_TARGET_BYTES)}) | JS heap + external above idle MiB |`,
    '| --- | --- | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.client} | ${r.engine} | ${r.ms.toFixed(0)} | ${r.cpuMs.toFixed(0)} | ${mb(r.rssAboveIdleBytes)} | ${mb(r.jsAboveIdleBytes)} |`),
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(largePullTable(await runLargePullBench(Number(process.argv[2] ?? 100), Number(process.argv[3] ?? 2))));
}
