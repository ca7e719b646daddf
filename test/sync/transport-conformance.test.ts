/**
 * The `SyncTransport` contract (src/protocol/transport.ts), checked the same way against every
 * implementation: the HTTP transport with a real server on loopback, and the in-process
 * transport over a hosted database (src/server/in-process-transport.ts). One suite, every
 * implementation, so the simulation's thousands of in-process seeds say something about HTTP.
 * Both take the same fault decisions (test/support/networks.ts): 'offline' and 'lose-answer'.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { SyncError } from '../../src/errors.js';
import type { HranaStreamResult, PipelineRequest } from '../../src/protocol/hrana.js';
import { APPLY_INCREMENTAL, APPLY_REPLACE_BASE, ENCODING_RAW, PAGE_BYTES } from '../../src/protocol/pull-updates.js';
import { encodeRoaring } from '../../src/protocol/roaring.js';
import type { SyncTransport } from '../../src/protocol/transport.js';
import { SeededFaults } from '../../src/server/in-process-transport.js';
import { type Endpoint, type Network, httpNetwork, inProcessNetwork, scratchDataDir } from '../support/networks.js';
import { startServer } from '../support/server.js';

/** Small limits, so that the checks reach them quickly; both implementations get the same. */
const BODY_BYTES_MAX = 64 * 1024;
const LONG_POLL_MS_MAX = 5_000;

interface Implementation {
  name: string;
  start(): Promise<{ network: Network; stop(): Promise<void> }>;
}

const implementations: Implementation[] = [
  {
    name: 'HttpTransport (server on loopback)',
    async start() {
      const { server, url } = await startServer({ auth: false, maxBodyBytes: BODY_BYTES_MAX, maxLongPollMs: LONG_POLL_MS_MAX });
      return { network: httpNetwork(url, server), stop: () => server.close() };
    },
  },
  {
    name: 'InProcessTransport',
    async start() {
      const dataDir = scratchDataDir('outpost-conformance-');
      const network = inProcessNetwork(dataDir, { maxBodyBytes: BODY_BYTES_MAX, maxLongPollMs: LONG_POLL_MS_MAX });
      return { network, stop: async () => rmSync(dataDir, { recursive: true, force: true }) };
    },
  },
];

function batch(...sql: string[]): PipelineRequest {
  return { baton: null, requests: [{ type: 'batch', batch: { steps: sql.map((s) => ({ stmt: { sql: s, want_rows: true } })) } }] };
}

function execute(sql: string): PipelineRequest {
  return { baton: null, requests: [{ type: 'execute', stmt: { sql, want_rows: true } }] };
}

/** The rows of a one-statement execute answer. */
function rowsOf(result: HranaStreamResult | undefined): unknown[][] {
  if (result?.type !== 'ok' || result.response.type !== 'execute') throw new Error(`not an execute result: ${JSON.stringify(result)}`);
  return result.response.result.rows;
}

async function count(t: SyncTransport): Promise<number> {
  const [row] = rowsOf((await t.pipeline(execute('SELECT count(*) FROM t'))).results[0]);
  return Number((row![0] as { value: string }).value);
}

/** The SyncError a promise rejects with (fails the test when it resolves or throws anything else). */
async function syncError(p: Promise<unknown>): Promise<SyncError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  if (!(e instanceof SyncError)) throw new Error(`expected a SyncError, got ${String(e)}`);
  return e;
}

describe.each(implementations)('$name', (impl) => {
  let network: Network;
  let stop: () => Promise<void>;
  const endpoints: Endpoint[] = [];
  let n = 0;
  beforeAll(async () => {
    ({ network, stop } = await impl.start());
  });
  afterAll(async () => {
    for (const e of endpoints) await e.close();
    await stop();
  });
  /** A fresh database with table t(id, v) and one row. */
  const fresh = async (): Promise<Endpoint> => {
    const endpoint = await network.open(`conformance-${n++}`);
    endpoints.push(endpoint);
    await endpoint.admin.pipeline(batch('CREATE TABLE t(id INTEGER PRIMARY KEY, v)', "INSERT INTO t VALUES (1, 'one')"));
    return endpoint;
  };

  test('a pull from no revision is the whole database: a header and every page, whole', async () => {
    const { admin } = await fresh();
    const { header, pages } = await admin.pull({});
    expect(header.serverRevision).toMatch(/\.\d+$/);
    expect(header.applyMode).toBe(APPLY_INCREMENTAL);
    expect(header.encoding).toBe('raw');
    expect(pages.map((p) => p.pageId)).toEqual(Array.from({ length: header.dbSize }, (_, i) => i));
    for (const p of pages) expect(p.page.length).toBe(PAGE_BYTES);
  });

  test('a pull from a revision brings only what changed since; at the current one, nothing', async () => {
    const { admin } = await fresh();
    const before = (await admin.pull({})).header;
    expect(await admin.pull({ clientRevision: before.serverRevision })).toMatchObject({ header: { serverRevision: before.serverRevision }, pages: [] });
    await admin.pipeline(execute("INSERT INTO t VALUES (2, 'two')"));
    const after = await admin.pull({ clientRevision: before.serverRevision });
    expect(after.header.serverRevision).not.toBe(before.serverRevision);
    expect(after.pages.length).toBeGreaterThan(0);
    expect(after.pages.length).toBeLessThan(after.header.dbSize + 1);
  });

  test('a revision the server does not know gets the whole image with ReplaceBase', async () => {
    const { admin } = await fresh();
    const { header, pages } = await admin.pull({ clientRevision: 'unknown-generation.7' });
    expect(header.applyMode).toBe(APPLY_REPLACE_BASE);
    expect(pages.length).toBe(header.dbSize);
  });

  test('a page selector brings the pages asked for, and only those', async () => {
    const { admin } = await fresh();
    const { pages } = await admin.pull({ clientRevision: '', serverPagesSelector: encodeRoaring([0]) });
    expect(pages.map((p) => p.pageId)).toEqual([0]);
  });

  test('a pipeline has one result per request, and values keep their type and bytes', async () => {
    const { admin } = await fresh();
    const answer = await admin.pipeline({
      baton: null,
      requests: [
        // Whole REALs (3.0, 1e300) are left out: the server answers them as INTEGER today (issue 10).
        { type: 'execute', stmt: { sql: "SELECT 1, 2.5, 'é', x'00ff', x'', NULL, 9007199254740993", want_rows: true } },
        { type: 'execute', stmt: { sql: 'SELECT ?', args: [{ type: 'float', value: 0.1 }], want_rows: true } },
      ],
    });
    expect(answer.results).toHaveLength(2);
    expect(rowsOf(answer.results[0])).toEqual([
      [
        { type: 'integer', value: '1' },
        { type: 'float', value: 2.5 },
        { type: 'text', value: 'é' },
        { type: 'blob', base64: 'AP8=' },
        { type: 'blob', base64: '' },
        { type: 'null' },
        { type: 'integer', value: '9007199254740993' },
      ],
    ]);
    expect(rowsOf(answer.results[1])).toEqual([[{ type: 'float', value: 0.1 }]]);
  });

  test("a statement's SQL error is a result, not a rejection", async () => {
    const { admin } = await fresh();
    const answer = await admin.pipeline({ baton: null, requests: [...batch('SELECT 1', 'SELECT * FROM missing').requests, ...execute('SELECT * FROM missing').requests] });
    const [first, second] = answer.results;
    if (first?.type !== 'ok' || first.response.type !== 'batch') throw new Error(JSON.stringify(first));
    expect(first.response.result.step_errors[0]).toBeNull();
    expect(first.response.result.step_errors[1]?.message).toMatch(/no such table/);
    expect(second).toMatchObject({ type: 'error', error: { message: expect.stringMatching(/no such table/) } });
  });

  test('a request the server refuses rejects with HTTP and the status: malformed (400), too large (413)', async () => {
    const { admin } = await fresh();
    expect(await syncError(admin.pipeline({ baton: 'a-baton', requests: [] }))).toMatchObject({ code: 'HTTP', status: 400 });
    expect(await syncError(admin.pull({ encoding: ENCODING_RAW + 1 }))).toMatchObject({ code: 'HTTP', status: 400 });
    const big = execute(`SELECT '${'x'.repeat(BODY_BYTES_MAX)}'`);
    expect(await syncError(admin.pipeline(big))).toMatchObject({ code: 'HTTP', status: 413 });
    // Nothing was left half done: the transport and the database work on.
    expect(await count(admin)).toBe(1);
  });

  test('traffic counts the bytes of requests and answers, refusals included; it only grows', async () => {
    const endpoint = await fresh();
    const t = endpoint.client();
    const request = execute('SELECT v FROM t');
    await t.pipeline(request);
    expect(t.traffic.sentBytes).toBe(new TextEncoder().encode(JSON.stringify(request)).length);
    expect(t.traffic.receivedBytes).toBeGreaterThan(50);
    const { sentBytes, receivedBytes } = t.traffic;
    await syncError(t.pipeline({ baton: 'a-baton', requests: [] }));
    expect(t.traffic.sentBytes).toBeGreaterThan(sentBytes);
    expect(t.traffic.receivedBytes).toBeGreaterThan(receivedBytes);
    const pulled = await t.pull({});
    expect(t.traffic.receivedBytes).toBeGreaterThan(receivedBytes + pulled.pages.length * PAGE_BYTES);
  });

  test('a long poll at the current revision waits for the next commit', async () => {
    const { admin, client } = await fresh();
    const { serverRevision } = (await admin.pull({})).header;
    const started = performance.now();
    const poll = client().pull({ clientRevision: serverRevision, longPollTimeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 100));
    await admin.pipeline(execute("INSERT INTO t VALUES (2, 'two')"));
    const answer = await poll;
    expect(answer.header.serverRevision).not.toBe(serverRevision);
    expect(answer.pages.length).toBeGreaterThan(0);
    expect(performance.now() - started).toBeLessThan(LONG_POLL_MS_MAX);
  });

  test('a long poll with nothing new answers after its time, with no pages', async () => {
    const { admin } = await fresh();
    const { serverRevision } = (await admin.pull({})).header;
    const started = performance.now();
    const answer = await admin.pull({ clientRevision: serverRevision, longPollTimeoutMs: 300 });
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    expect(answer).toMatchObject({ header: { serverRevision }, pages: [] });
  });

  test('offline: NETWORK, and the server never saw the request', async () => {
    const { admin, client } = await fresh();
    const t = client(() => 'offline');
    expect(await syncError(t.pipeline(execute("INSERT INTO t VALUES (2, 'two')")))).toMatchObject({ code: 'NETWORK' });
    expect(await syncError(t.pull({}))).toMatchObject({ code: 'NETWORK' });
    expect(t.traffic).toEqual({ sentBytes: 0, receivedBytes: 0 });
    expect(await count(admin)).toBe(1);
  });

  test('a lost answer: NETWORK, but the server ran the request', async () => {
    const { admin, client } = await fresh();
    const t = client(() => 'lose-answer');
    expect(await syncError(t.pipeline(execute("INSERT INTO t VALUES (2, 'two')")))).toMatchObject({ code: 'NETWORK' });
    expect(await syncError(t.pull({}))).toMatchObject({ code: 'NETWORK' });
    expect(await count(admin)).toBe(2);
  });
});

test('the same requests cost the same bytes through either transport', async () => {
  const traffic: SyncTransport['traffic'][] = [];
  for (const impl of implementations) {
    const { network, stop } = await impl.start();
    const endpoint = await network.open('same-bytes');
    const t = endpoint.client();
    await t.pipeline(batch('CREATE TABLE t(id INTEGER PRIMARY KEY, v)', "INSERT INTO t VALUES (1, 'one')"));
    const { serverRevision } = (await t.pull({})).header;
    await t.pipeline(execute("INSERT INTO t VALUES (2, 'two')"));
    await t.pull({ clientRevision: serverRevision });
    await syncError(t.pipeline({ baton: 'a-baton', requests: [] }));
    traffic.push({ ...t.traffic });
    await endpoint.close();
    await stop();
  }
  expect(traffic[1]).toEqual(traffic[0]);
});

test('seeded faults: the same seed decides the same, offline refuses all, lossRate loses about that share', () => {
  const decisions = (seed: number): string[] => {
    const faults = new SeededFaults(seed);
    faults.lossRate = 0.3;
    return Array.from({ length: 1000 }, () => faults.decide('v2/pipeline'));
  };
  expect(decisions(42)).toEqual(decisions(42));
  expect(decisions(42)).not.toEqual(decisions(43));
  const lost = decisions(42).filter((d) => d === 'lose-answer').length;
  expect(lost).toBeGreaterThan(230);
  expect(lost).toBeLessThan(370);
  const offline = new SeededFaults(1);
  offline.offline = true;
  expect(offline.decide('pull-updates')).toBe('offline');
});
