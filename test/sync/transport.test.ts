/**
 * The sync engine talks to its server only through the `SyncTransport` it is given
 * (src/protocol/transport.ts): open.ts builds the HTTP one from the options, and a test may
 * inject its own. Here a recording transport stands between a client and a real Outpost
 * server: every request goes through it, and the status counts its traffic. The HTTP
 * transport's own behaviour follows: Retry-After, and a request whose kept-alive connection
 * dies under it, each through both senders (fetch, and outpost/node's node:http).
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
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
import { buildPushBatch } from '../../src/sync/push-batch.js';
import { APPLY_INCREMENTAL, encodePage, encodePullHeader } from '../../src/protocol/pull-updates.js';
import { int, rng, testSeed } from '../support/generate.js';
import { SENDERS } from '../support/senders.js';
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

describe.each(SENDERS)('sent through $name', ({ send }) => {
  test("a 429's Retry-After reaches the SyncError, so the retry waits as long as the server asked", async () => {
    const busy = http.createServer((_req, res) => {
      res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '7' });
      res.end(JSON.stringify({ error: 'busy', code: 'BUSY' }));
    });
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = busy.address() as AddressInfo;
      const error = await new HttpTransport({ url: `http://127.0.0.1:${port}/db/x`, send }).pipeline({ baton: null, requests: [] }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SyncError);
      expect([(error as SyncError).code, (error as SyncError).status, (error as SyncError).retryAfterMs]).toEqual(['HTTP', 429, 7000]);
    } finally {
      await new Promise((resolve) => busy.close(resolve));
    }
  });

  test('generated: a request whose kept-alive connection dies before any answer is sent again on a new one when the server may take it twice (a pull, a read, a gated push); other pipelines fail with NETWORK', async () => {
    const seed = testSeed();
    const random = rng(seed);
    // Each connection answers its first request; on a later one it dies before answering, as a
    // kept-alive connection the server or a proxy has closed does.
    const served = new WeakMap<object, number>();
    let received = 0;
    let killed = 0;
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received++;
        const n = (served.get(req.socket) ?? 0) + 1;
        served.set(req.socket, n);
        if (n > 1) {
          killed++;
          req.socket.destroy();
          return;
        }
        if (req.url!.endsWith('/pull-updates')) {
          const body = Buffer.concat([encodePullHeader({ serverRevision: 'g.1', dbSize: 1, applyMode: APPLY_INCREMENTAL }), encodePage(0, new Uint8Array(4096))]);
          res.writeHead(200, { 'content-type': 'application/protobuf', 'content-length': body.length });
          res.end(body);
          return;
        }
        const request = JSON.parse(Buffer.concat(chunks).toString()) as PipelineRequest;
        const body = JSON.stringify({ baton: null, base_url: null, results: request.requests.map(() => ({ type: 'ok', response: { type: 'close' } })) });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const transport = new HttpTransport({ url: `http://127.0.0.1:${port}/db/x`, send });
      const outcomes: Record<string, number> = {};
      const steps = int(random, 20, 40);
      for (let i = 0; i < steps; i++) {
        const kind = (['pull', 'push', 'read', 'other'] as const)[int(random, 0, 3)]!;
        const before = received;
        const sent =
          kind === 'pull'
            ? transport.pull({ clientRevision: 'g.0' })
            : transport.pipeline(
                kind === 'push'
                  ? buildPushBatch('client-a', i + 1, i + 1, [{ sql: 'INSERT INTO t VALUES (?)', args: [{ type: 'integer', value: String(i) }], changeId: i + 1, table: 't', ignorable: false }]).request
                  : { baton: null, requests: [{ type: 'execute', stmt: { sql: kind === 'read' ? 'SELECT 1' : `INSERT INTO t VALUES (${i})`, args: [], want_rows: true } }] },
              );
        const error = await sent.then(
          () => null,
          (e: unknown) => e,
        );
        const tries = received - before;
        const key = `${kind} ${error === null ? 'ok' : (error as SyncError).code} after ${tries}`;
        outcomes[key] = (outcomes[key] ?? 0) + 1;
        if (kind === 'other') {
          // Never sent twice: it fails with NETWORK when its connection died.
          expect(tries, `seed ${seed} step ${i}`).toBe(1);
          if (error !== null) expect((error as SyncError).code, `seed ${seed} step ${i}`).toBe('NETWORK');
        } else {
          expect(error, `seed ${seed} step ${i}: ${kind}`).toBeNull();
          expect(tries, `seed ${seed} step ${i}: ${kind}`).toBeLessThanOrEqual(4);
        }
      }
      console.log(`dead connections seed ${seed}: ${steps} requests, ${killed} connections died under one; ${JSON.stringify(outcomes)}`);
      expect(killed, `seed ${seed}`).toBeGreaterThan(0);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
