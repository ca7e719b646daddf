/**
 * The sync engine talks to its server only through the `SyncTransport` it is given
 * (src/protocol/transport.ts): open.ts builds the HTTP one from the options, and a test may
 * inject its own. Here a recording transport stands between a client and a real Outpost
 * server: every request goes through it, and the status counts its traffic.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Database } from '../../src/database.js';
import { SyncError } from '../../src/errors.js';
import { connectionDriver } from '../../src/driver.js';
import { NodeDirectory } from '../../src/opfs-vfs/storage/node.js';
import type { PipelineRequest, PipelineResponse } from '../../src/protocol/hrana.js';
import type { PullRequest } from '../../src/protocol/pull-updates.js';
import type { PullResponse, SyncTransport } from '../../src/protocol/transport.js';
import type { OutpostServer } from '../../src/server/server.js';
import { openSynced } from '../../src/sync/open.js';
import { HttpTransport } from '../../src/sync/transport.js';
import { batch, rawPipeline, startServer, tempDir } from '../support/server.js';

class RecordingTransport implements SyncTransport {
  calls: string[] = [];
  offline = false;
  constructor(private readonly inner: SyncTransport) {}
  get traffic(): SyncTransport['traffic'] {
    return this.inner.traffic;
  }
  async pull(request: Partial<PullRequest>): Promise<PullResponse> {
    this.calls.push('pull');
    if (this.offline) throw new SyncError('pull-updates: offline', 'NETWORK');
    return this.inner.pull(request);
  }
  async pipeline(request: PipelineRequest): Promise<PipelineResponse> {
    this.calls.push('pipeline');
    if (this.offline) throw new SyncError('v2/pipeline: offline', 'NETWORK');
    return this.inner.pipeline(request);
  }
}

let server: OutpostServer;
let base: string;
const dir = tempDir('outpost-transport-');
beforeAll(async () => {
  ({ server, url: base } = await startServer({ auth: false }));
});
afterAll(() => server.close());

test('an injected transport carries every request, and its traffic is what the status reports', async () => {
  const url = `${base}/db/injected`;
  await rawPipeline(url, batch('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)', "INSERT INTO t VALUES (1, 'server')"));
  const transport = new RecordingTransport(new HttpTransport({ url }));
  const path = join(dir, 'a.db');
  const { conn, engine } = await openSynced(new NodeDirectory(path), { durability: 'normal', intMode: 'number' }, { url, retries: 0 }, transport);
  const db = new Database(path, connectionDriver(conn, engine));
  expect(transport.calls).toEqual(['pull']);
  expect(await db.query('SELECT v FROM t')).toEqual([{ v: 'server' }]);

  await db.run("INSERT INTO t VALUES (2, 'local')");
  expect(await db.push()).toBe(1);
  // The acknowledgement first, then the batch.
  expect(transport.calls.slice(1)).toEqual(['pipeline', 'pipeline']);

  transport.offline = true;
  await expect(db.pull()).rejects.toMatchObject({ code: 'NETWORK' });
  const status = await db.syncStatus();
  expect(status?.lastError?.code).toBe('NETWORK');
  expect(status?.bytesSent).toBe(transport.traffic.sentBytes);
  expect(status?.bytesReceived).toBe(transport.traffic.receivedBytes);
  expect(transport.traffic.receivedBytes).toBeGreaterThan(4096);
  await db.close();
});

test("a 429's Retry-After reaches the SyncError, so the retry waits as long as the server asked", async () => {
  const busy = http.createServer((_req, res) => {
    res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '7' });
    res.end(JSON.stringify({ error: 'busy', code: 'BUSY' }));
  });
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = busy.address() as AddressInfo;
    const error = await new HttpTransport({ url: `http://127.0.0.1:${port}/db/x` }).pipeline({ baton: null, requests: [] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SyncError);
    expect([(error as SyncError).code, (error as SyncError).status, (error as SyncError).retryAfterMs]).toEqual(['HTTP', 429, 7000]);
  } finally {
    await new Promise((resolve) => busy.close(resolve));
  }
});
