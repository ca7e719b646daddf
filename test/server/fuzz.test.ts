/**
 * Seeded fuzzing of the server's request decoders: random and mutated pull-updates bodies,
 * page selectors and Hrana pipelines. Every input either decodes or fails with a clear 4xx;
 * never a 5xx, never a crash, and the server keeps answering. A failure prints its seed.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { OutpostServer } from '../../src/server/server.js';
import { ProtocolError } from '../../src/errors.js';
import { decodePullRequest, encodePullRequest } from '../../src/protocol/pull-updates.js';
import { decodeRoaring, encodeRoaring } from '../../src/protocol/roaring.js';
import { rng } from '../support/generate.js';
import { batch, rawPipeline, startServer } from '../support/server.js';

const seed = Number(process.env.OUTPOST_SEED ?? Date.now() % 1_000_000);


function mutate(bytes: Uint8Array, random: () => number): Uint8Array {
  const out = Uint8Array.from(bytes);
  const kind = Math.floor(random() * 4);
  if (kind === 0 && out.length > 0) out[Math.floor(random() * out.length)] = Math.floor(random() * 256);
  if (kind === 1) return out.subarray(0, Math.floor(random() * out.length));
  if (kind === 2) {
    const extra = new Uint8Array(1 + Math.floor(random() * 16)).map(() => Math.floor(random() * 256));
    const joined = new Uint8Array(out.length + extra.length);
    joined.set(out);
    joined.set(extra, out.length);
    return joined;
  }
  return new Uint8Array(Math.floor(random() * 64)).map(() => Math.floor(random() * 256));
}

let server: OutpostServer;
let base: string;
beforeAll(async () => {
  ({ server, url: base } = await startServer({ auth: false }));
  await rawPipeline(`${base}/db/fuzz`, batch('CREATE TABLE t(a, b)', "INSERT INTO t VALUES (1, 'x')"));
});
afterAll(() => server.close());

test(`pull-updates decoding survives mutated bodies (seed ${seed})`, () => {
  const random = rng(seed);
  const valid = encodePullRequest({ clientRevision: 'abc.1', longPollTimeoutMs: 100, serverPagesSelector: encodeRoaring([0, 1, 5, 70000]) });
  for (let i = 0; i < 2000; i++) {
    const body = mutate(valid, random);
    try {
      decodePullRequest(body);
    } catch (e) {
      expect(e, `seed ${seed} case ${i}`).toBeInstanceOf(ProtocolError);
    }
  }
});

test(`page selector decoding survives mutated bitmaps (seed ${seed})`, () => {
  const random = rng(seed + 1);
  const values = [...new Set(Array.from({ length: 5000 }, () => Math.floor(random() * 200_000)))].sort((a, b) => a - b);
  const valid = encodeRoaring(values);
  expect(decodeRoaring(valid)).toEqual(values);
  for (let i = 0; i < 2000; i++) {
    try {
      const out = decodeRoaring(mutate(valid, random), 100_000);
      expect(out.length).toBeLessThanOrEqual(100_000);
    } catch (e) {
      expect(e, `seed ${seed} case ${i}`).toBeInstanceOf(ProtocolError);
    }
  }
});

test(`the server answers random bodies with 4xx, never 5xx (seed ${seed})`, async () => {
  const random = rng(seed + 2);
  const validPull = encodePullRequest({ clientRevision: '' });
  const validJson = new TextEncoder().encode(JSON.stringify(batch('SELECT * FROM t', { sql: 'INSERT INTO t VALUES (?, ?)', args: [{ type: 'integer', value: '2' }, { type: 'text', value: 'y' }] })));
  for (let i = 0; i < 150; i++) {
    const pull = i % 2 === 0;
    const body = mutate(pull ? validPull : validJson, random);
    const res = await fetch(`${base}/db/fuzz/${pull ? "pull-updates" : "v2/pipeline"}`, { method: "POST", body: body as BodyInit });
    expect(res.status, `seed ${seed} case ${i}`).toBeLessThan(500);
    await res.arrayBuffer();
  }
  expect((await fetch(`${base}/health`)).status).toBe(200);
  const check = await rawPipeline(`${base}/db/fuzz`, batch('PRAGMA integrity_check'));
  expect(check.json.results[0].response.result.step_results[0].rows[0][0].value).toBe('ok');
});
