/**
 * A heavy tenant beside normal traffic (part of `npm run bench`): the latency other tenants see
 * while one tenant keeps sending queries that run until the statement time limit stops them,
 * against the same traffic with no such tenant, in the same run. Normal traffic is 8 clients
 * pushing small transactions to 50 databases and a sampler timing incremental pulls; the heavy
 * tenant ignores Retry-After and sends its next query as soon as an answer comes (the worst
 * case the time share must bound). Reports p50/p99 of pushes and pulls in both phases, their
 * ratios, and how the heavy tenant fared.
 */
import { spawnGroup, stopGroup } from '../test/support/processes.js';
import { batch, tempDir } from '../test/support/server.js';
import { pull, quantile, waitForPort } from './server-load.js';

export interface NeighbourRow {
  phase: string;
  pushP50Ms: number;
  pushP99Ms: number;
  pullP50Ms: number;
  pullP99Ms: number;
  /** The longest any push or pull of the others waited. */
  maxMs: number;
  /** Heavy queries the server ran to their limit, and how many it refused with 429. */
  heavyRun: number;
  heavyRefused: number;
}

const HEAVY_SQL = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c';

async function post(url: string, body: BodyInit): Promise<Response> {
  const res = await fetch(url, { method: 'POST', body });
  await res.arrayBuffer();
  return res;
}

async function phase(name: string, urls: string[], heavyUrl: string | null, seconds: number): Promise<NeighbourRow> {
  const deadline = Date.now() + seconds * 1000;
  const pushMs: number[] = [];
  const pullMs: number[] = [];
  let n = 0;
  const pushers = Array.from({ length: 8 }, async () => {
    while (Date.now() < deadline) {
      const url = urls[Math.floor(Math.random() * urls.length)]!;
      const t0 = performance.now();
      const res = await post(`${url}/v2/pipeline`, JSON.stringify(batch({ sql: 'INSERT INTO t(v) VALUES (?)', args: [{ type: 'text', value: `p${n++}` }] })));
      if (!res.ok) throw new Error(`push ${res.status}`);
      pushMs.push(performance.now() - t0);
    }
  });
  const revisions = new Map<string, string>();
  const sampler = (async () => {
    while (Date.now() < deadline) {
      const url = urls[Math.floor(Math.random() * urls.length)]!;
      const t0 = performance.now();
      revisions.set(url, await pull(url, revisions.get(url) ?? ''));
      pullMs.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  let heavyRun = 0;
  let heavyRefused = 0;
  const heavy = heavyUrl
    ? (async () => {
        while (Date.now() < deadline) {
          const res = await post(`${heavyUrl}/v2/pipeline`, JSON.stringify(batch(HEAVY_SQL)));
          if (res.status === 429) heavyRefused++;
          else heavyRun++;
        }
      })()
    : Promise.resolve();
  await Promise.all([...pushers, sampler, heavy]);
  return { phase: name, pushP50Ms: quantile(pushMs, 0.5), pushP99Ms: quantile(pushMs, 0.99), pullP50Ms: quantile(pullMs, 0.5), pullP99Ms: quantile(pullMs, 0.99), maxMs: Math.max(...pushMs, ...pullMs), heavyRun, heavyRefused };
}

/** Runs both phases against one server process with its default limits. */
export async function runNeighbourBench(seconds = 8): Promise<NeighbourRow[]> {
  const port = 42000 + Math.floor(Math.random() * 10000);
  const base = `http://127.0.0.1:${port}`;
  const child = spawnGroup(process.execPath, ['--import', 'tsx', 'src/server/cli.ts', 'serve', '--data', tempDir('outpost-neighbour-'), '--port', String(port), '--no-auth', '--quiet'], { stdio: 'ignore' });
  try {
    await waitForPort(base);
    const urls = Array.from({ length: 50 }, (_, i) => `${base}/db/n${i}`);
    for (const url of urls) await post(`${url}/v2/pipeline`, JSON.stringify(batch('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)')));
    const alone = await phase('normal traffic alone', urls, null, seconds);
    const beside = await phase('beside a tenant running heavy queries back to back', urls, `${base}/db/heavy`, seconds);
    return [alone, beside];
  } finally {
    await stopGroup(child, 'SIGTERM');
  }
}

export function neighbourTable(rows: NeighbourRow[]): string {
  const [alone, beside] = rows;
  const ratio = (a: number | undefined, b: number | undefined): string => (a && b ? `${(b / a).toFixed(1)}x` : '');
  return [
    '| phase | push p50 ms | push p99 ms | pull p50 ms | pull p99 ms | longest wait ms | heavy queries run / refused |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.phase} | ${r.pushP50Ms.toFixed(1)} | ${r.pushP99Ms.toFixed(1)} | ${r.pullP50Ms.toFixed(1)} | ${r.pullP99Ms.toFixed(1)} | ${r.maxMs.toFixed(0)} | ${r.heavyRun} / ${r.heavyRefused} |`),
    `| ratio (beside / alone) | ${ratio(alone?.pushP50Ms, beside?.pushP50Ms)} | ${ratio(alone?.pushP99Ms, beside?.pushP99Ms)} | ${ratio(alone?.pullP50Ms, beside?.pullP50Ms)} | ${ratio(alone?.pullP99Ms, beside?.pullP99Ms)} | ${ratio(alone?.maxMs, beside?.maxMs)} | |`,
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(neighbourTable(await runNeighbourBench(Number(process.argv[2] ?? 8))));
  process.exit(0);
}
