/**
 * Sync figures (part of `npm run bench`): a 20 MB bootstrap and a one-row incremental pull,
 * Outpost's client against the official @tursodatabase/sync client, both on the same server,
 * for each server (turso --sync-server and the Outpost server). Bytes are what each client
 * reports receiving.
 */
import { join } from 'node:path';
import { connect } from '@tursodatabase/sync';
import { open } from '../src/node/index.js';
import { batch, rawPipeline, startServer, startTursoServer, tempDir } from '../test/support/server.js';

export interface SyncBenchRow {
  server: string;
  client: string;
  bootstrapMs: number;
  bootstrapBytes: number;
  incrementalMs: number;
  incrementalBytes: number;
}

async function fill(url: string, megabytes: number): Promise<void> {
  const check = (res: { status: number; json: any }): void => {
    const errors = res.json?.results?.[0]?.response?.result?.step_errors ?? [];
    const bad = errors.find((e: unknown) => e !== null);
    if (res.status !== 200 || bad) throw new Error(`filling the bench database failed: ${JSON.stringify(bad ?? res.json)}`);
  };
  check(await rawPipeline(url, batch('CREATE TABLE big(id INTEGER PRIMARY KEY, payload BLOB)')));
  const payload = Buffer.alloc(1000);
  for (let i = 0; i < megabytes; i++) {
    const steps = Array.from({ length: 1000 }, (_, j) => {
      payload.writeUInt32LE(i * 1000 + j, 0);
      for (let k = 4; k < 1000; k += 4) payload.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, k);
      return { sql: 'INSERT INTO big(payload) VALUES (?)', args: [{ type: 'blob', base64: payload.toString('base64') }] };
    });
    check(await rawPipeline(url, batch(...steps)));
  }
}

export async function runSyncBench(megabytes = 20): Promise<SyncBenchRow[]> {
  const rows: SyncBenchRow[] = [];
  const servers = [
    { name: 'turso --sync-server', start: async () => { const t = await startTursoServer(); return { url: t.url, stop: t.stop }; } },
    { name: 'Outpost server', start: async () => { const s = await startServer({ auth: false }); return { url: `${s.url}/db/bench`, stop: () => s.server.close() }; } },
  ];
  for (const server of servers) {
    const { url, stop } = await server.start();
    try {
      await fill(url, megabytes);
      const dir = tempDir('outpost-syncbench-');
      // Outpost
      let t0 = performance.now();
      const db = await open(join(dir, 'outpost.db'), { sync: { url } });
      const bootstrapMs = performance.now() - t0;
      const s0 = (await db.syncStatus())!;
      // Official
      t0 = performance.now();
      const official = await connect({ path: join(dir, 'official.db'), url, clientName: 'bench' });
      const officialBootstrapMs = performance.now() - t0;
      const o0 = await official.stats();
      // One row changes on the server; both pull it.
      await rawPipeline(url, batch("UPDATE big SET payload = x'00' WHERE id = 12345"));
      t0 = performance.now();
      await db.pull();
      const incrementalMs = performance.now() - t0;
      const s1 = (await db.syncStatus())!;
      t0 = performance.now();
      await official.pull();
      const officialIncrementalMs = performance.now() - t0;
      const o1 = await official.stats();
      rows.push({ server: server.name, client: 'outpost', bootstrapMs, bootstrapBytes: s0.bytesReceived, incrementalMs, incrementalBytes: s1.bytesReceived - s0.bytesReceived });
      rows.push({
        server: server.name,
        client: '@tursodatabase/sync',
        bootstrapMs: officialBootstrapMs,
        bootstrapBytes: o0.networkReceivedBytes,
        incrementalMs: officialIncrementalMs,
        incrementalBytes: o1.networkReceivedBytes - o0.networkReceivedBytes,
      });
      await db.close();
      await official.close();
    } finally {
      await stop();
    }
  }
  return rows;
}

export function syncTable(rows: SyncBenchRow[]): string {
  const mb = (b: number): string => (b / 1e6).toFixed(2);
  return [
    '| server | client | 20 MB bootstrap ms | bootstrap MB received | one-row pull ms | one-row pull KB received |',
    '| --- | --- | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.server} | ${r.client} | ${r.bootstrapMs.toFixed(0)} | ${mb(r.bootstrapBytes)} | ${r.incrementalMs.toFixed(1)} | ${(r.incrementalBytes / 1e3).toFixed(1)} |`),
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(syncTable(await runSyncBench(Number(process.argv[2] ?? 20))));
}
