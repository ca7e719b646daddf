/**
 * What one open database costs the sync server (issue 14): N hosted databases are created,
 * closed, then opened again one after another and kept open. Prints CPU ms per open
 * (`process.cpuUsage`, robust on a busy machine), CPU ms per push on an open database, and the
 * WASM memory and RSS each open database adds. Run it from two checkouts in turn to compare.
 *
 * Usage: node --expose-gc --import tsx bench/open-cost.ts [N=1000]
 * With PROF=FILE, a CPU profile of the opens is summarised into FILE.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadRuntime } from '../src/engine/runtime.js';
import { HostedDatabase, type HostedDatabaseOptions } from '../src/server/hosted-database.js';
import { type CpuProfile, summarise } from './profile.js';

const n = Number(process.argv[2] ?? 1000);
const dir = mkdtempSync(join(tmpdir(), 'open-cost-'));
const options: HostedDatabaseOptions = { durability: 'normal', cacheKiB: 256, limits: { statementTimeoutMs: 2000, valueBytesMax: 1 << 25, shareOfServer: 0.25 } };
const { sqlite3 } = await loadRuntime();
const wasmBytes = (): number => sqlite3.wasm.heap8u().length;
const cpuMs = (since: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
};
const collect = (): void => (globalThis as { gc?: () => void }).gc?.();

const seed = { baton: null, requests: [{ type: 'execute', stmt: { sql: 'CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)' } }, { type: 'execute', stmt: { sql: "INSERT INTO t(v) VALUES ('seed')" } }] };
const push = { baton: null, requests: [{ type: 'batch', batch: { steps: [{ stmt: { sql: 'BEGIN IMMEDIATE' } }, { stmt: { sql: "INSERT INTO t(v) VALUES ('x')" } }, { stmt: { sql: 'COMMIT' } }] } }] };
try {
  for (let i = 0; i < n; i++) {
    const db = await HostedDatabase.open(dir, `d${i}`, options);
    db.pipeline(seed);
    await db.close();
  }
  collect();
  const rssBefore = process.memoryUsage().rss;
  const wasmBefore = wasmBytes();
  const session = new Session();
  if (process.env.PROF) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const openStart = process.cpuUsage();
  const open: HostedDatabase[] = [];
  for (let i = 0; i < n; i++) open.push(await HostedDatabase.open(dir, `d${i}`, options));
  const openMs = cpuMs(openStart);
  if (process.env.PROF) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(process.env.PROF, summarise(profile as unknown as CpuProfile, 60));
  }
  const pushStart = process.cpuUsage();
  for (const db of open) db.pipeline(push);
  const pushMs = cpuMs(pushStart);
  collect();
  console.log(
    JSON.stringify({
      databases: n,
      cpuMsPerOpen: +(openMs / n).toFixed(3),
      cpuMsPerPush: +(pushMs / n).toFixed(3),
      wasmKiBPerDb: +((wasmBytes() - wasmBefore) / 1024 / n).toFixed(1),
      rssKiBPerDb: +((process.memoryUsage().rss - rssBefore) / 1024 / n).toFixed(1),
    }),
  );
  for (const db of open) await db.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
