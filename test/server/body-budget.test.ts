/**
 * The request bodies one holder (a token's subject, or here, with authentication off, the
 * database) holds at once are bounded (http.ts `BodyBudget`): a body is held from its first byte
 * until its request is answered, and requests waiting their turn hold theirs, so one token sending
 * many large requests at once used to grow the process without bound (30 pipelines of 30 MB
 * each: 1.9 GiB of RSS). Past four times the body limit, its next request gets 503 BUSY with
 * Retry-After, what that one held is let go, and other holders' requests are taken as before.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { OutpostServer } from '../../src/server/index.js';
import { int, rng, testSeed } from '../support/generate.js';
import { rawPipeline, startServer } from '../support/server.js';

const BODY_MAX = 64 * 1024;
const IN_FLIGHT_MAX = 4 * BODY_MAX;

let server: OutpostServer;
let base: string;

beforeAll(async () => {
  ({ server, url: base } = await startServer({ auth: false, maxBodyBytes: BODY_MAX }));
});
afterAll(async () => {
  await server.close();
});

/** A pipeline of about `bytes` bytes that inserts `value`. */
function insertOf(value: number, bytes: number): string {
  const pad = 'x'.repeat(Math.max(0, bytes - 200));
  return JSON.stringify({ baton: null, requests: [{ type: 'execute', stmt: { sql: `INSERT INTO t VALUES (${value}) /* ${pad} */` } }] });
}

test('generated: requests held waiting (behind a stream) hold their bodies; past four body limits the rest get 503 BUSY, and once answered their bytes are let go', async () => {
  const seed = testSeed();
  console.log(`body budget seed=${seed}`);
  const random = rng(seed);
  const db = `${base}/db/held-${seed}`;
  expect((await rawPipeline(db, { baton: null, requests: [{ type: 'execute', stmt: { sql: 'CREATE TABLE t(v)' } }] })).status).toBe(200);
  for (let round = 0; round < 3; round++) {
    // A stream holds the database: every other request to it waits, body and all.
    const begin = await rawPipeline(db, { baton: null, requests: [{ type: 'execute', stmt: { sql: 'BEGIN' } }] });
    const baton = begin.json.baton as string;
    expect(typeof baton).toBe('string');
    const sizes = Array.from({ length: int(random, 8, 16) }, () => int(random, BODY_MAX / 4, BODY_MAX - 1024));
    const sent: Promise<{ status: number; json: any; headers: Headers }>[] = [];
    // One at a time until each is read (its answer waits): the order the bytes are held in is known.
    let held = 0;
    const expected: number[] = [];
    for (const [i, size] of sizes.entries()) {
      const body = insertOf(round * 100 + i, size);
      const fits = held + body.length <= IN_FLIGHT_MAX;
      if (fits) held += body.length;
      expected.push(fits ? 200 : 503);
      const answer = rawPipeline(db, body);
      sent.push(answer);
      // A refused one answers now; an accepted one waits for the stream, once its body is read.
      if (!fits) await answer;
      else await waitUntilHeld(held);
    }
    // Another database's requests are not counted against this one's bodies: one of the largest size is taken.
    const other = await rawPipeline(`${base}/db/other-${seed}`, JSON.stringify({ baton: null, requests: [{ type: 'execute', stmt: { sql: `SELECT 1 /* ${'y'.repeat(BODY_MAX - 1024)} */` } }] }));
    expect(other.status, JSON.stringify(other.json).slice(0, 300)).toBe(200);
    // The stream ends: every request that waited runs.
    const end = await rawPipeline(db, { baton, requests: [{ type: 'execute', stmt: { sql: 'COMMIT' } }, { type: 'close' }] });
    expect(end.status, JSON.stringify(end.json)).toBe(200);
    const answers = await Promise.all(sent);
    const context = JSON.stringify({ seed, round, sizes, expected, got: answers.map((a) => a.status) });
    expect(answers.map((a) => a.status), context).toEqual(expected);
    for (const refused of answers.filter((a) => a.status === 503)) {
      expect(refused.json.code, context).toBe('BUSY');
      expect(refused.headers.get('retry-after'), context).not.toBeNull();
    }
    const rows = await rawPipeline(db, { baton: null, requests: [{ type: 'execute', stmt: { sql: `SELECT count(*) FROM t WHERE v >= ${round * 100} AND v < ${round * 100 + 100}` } }] });
    expect(rows.json.results[0].response.result.rows, context).toEqual([[{ type: 'integer', value: String(expected.filter((s) => s === 200).length) }]]);
  }
  // Everything answered let its bytes go: one more request of the largest size is taken.
  expect((await rawPipeline(db, insertOf(-1, BODY_MAX - 1024))).status).toBe(200);
});

/** Waits until the server holds `bytes` of request bodies, as its metrics say (a server without that gauge holds no count: no wait). */
async function waitUntilHeld(bytes: number): Promise<void> {
  for (;;) {
    const m = /^outpost_request_body_bytes_held (\d+)/m.exec(await (await fetch(`${base}/metrics`)).text());
    if (!m || Number(m[1]) >= bytes) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

test('generated: a client that goes away after sending its body does not take its bytes out of the count while its request still waits to run', async () => {
  const seed = testSeed();
  console.log(`body budget gone seed=${seed}`);
  const random = rng(seed);
  const db = `${base}/db/gone-${seed}`;
  expect((await rawPipeline(db, { baton: null, requests: [{ type: 'execute', stmt: { sql: 'CREATE TABLE t(v)' } }] })).status).toBe(200);
  const begin = await rawPipeline(db, { baton: null, requests: [{ type: 'execute', stmt: { sql: 'BEGIN' } }] });
  const count = int(random, 2, 4);
  let held = 0;
  const aborts: AbortController[] = [];
  const sent: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    const body = insertOf(i, int(random, BODY_MAX / 2, BODY_MAX - 1024));
    held += body.length;
    const abort = new AbortController();
    aborts.push(abort);
    sent.push(fetch(`${db}/v2/pipeline`, { method: 'POST', body, signal: abort.signal }).catch(() => null));
    await waitUntilHeld(held);
  }
  // Every client goes away; their requests still wait behind the stream, bodies and all.
  for (const abort of aborts) abort.abort();
  await Promise.all(sent);
  await waitForGauge('outpost_http_requests_in_flight', (n) => n <= 1);
  expect(await gauge('outpost_request_body_bytes_held'), JSON.stringify({ seed, count, held })).toBeGreaterThanOrEqual(held);
  // The stream ends, the waiting requests run (their writes commit), and their bytes are let go.
  expect((await rawPipeline(db, { baton: begin.json.baton, requests: [{ type: 'execute', stmt: { sql: 'COMMIT' } }, { type: 'close' }] })).status).toBe(200);
  await waitForGauge('outpost_request_body_bytes_held', (n) => n === 0);
  const rows = await rawPipeline(db, { baton: null, requests: [{ type: 'execute', stmt: { sql: 'SELECT count(*) FROM t' } }] });
  expect(rows.json.results[0].response.result.rows).toEqual([[{ type: 'integer', value: String(count) }]]);
});

async function gauge(name: string): Promise<number> {
  const m = new RegExp(`^${name} (\\d+)`, 'm').exec(await (await fetch(`${base}/metrics`)).text());
  return m ? Number(m[1]) : Number.NaN;
}

async function waitForGauge(name: string, ok: (value: number) => boolean): Promise<void> {
  while (!ok(await gauge(name))) await new Promise((resolve) => setImmediate(resolve));
}
