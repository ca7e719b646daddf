/**
 * Values bound from JavaScript, followed the whole way: bound on client A, read back with
 * query(), pushed, read on the server through its Hrana route, pulled by client B and read
 * there. Generated from the edges of each type: -0, NaN, ±Infinity, subnormals, 2^53 ± 1 as
 * numbers and bigints, ±2^63 edges, booleans, text with NUL, U+FFFD, astral characters and
 * lone surrogates, blobs of 0, 1 and page- and 64 KiB-boundary sizes, ArrayBuffers. A's reading
 * must be the documented mapping of what was bound (README, "Parameters"); B's, and the
 * server's storage class and bytes, must equal A's.
 *
 * Each run prints its seed; OUTPOST_SEED=<seed> replays one, OUTPOST_BOUND_VALUES sets how
 * many values run (default 300).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { open } from '../../src/node/index.js';
import type { OutpostServer } from '../../src/server/server.js';
import type { SqlValue } from '../../src/types.js';
import { type Random, int, pick, rng, testSeed } from '../support/generate.js';
import { batch, rawPipeline, startServer, tempDir } from '../support/server.js';

const COUNT = Number(process.env.OUTPOST_BOUND_VALUES ?? 300);

let server: OutpostServer;
let base: string;
const dir = tempDir('outpost-bound-');
beforeAll(async () => {
  ({ server, url: base } = await startServer({ auth: false }));
});
afterAll(() => server.close());

type Bound = SqlValue | boolean | ArrayBuffer;

const NUMBERS = [0, -0, 1, -1, NaN, Infinity, -Infinity, 5e-324, -5e-324, 2.2250738585072014e-308, 2.225073858507201e-308, 1.7976931348623157e308, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), -(2 ** 31) - 1, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, -(2 ** 53) + 1, -(2 ** 53), 0.1, 1e21, 1e-7, 123.456];
const BIGINTS = [0n, 1n, -1n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, -(2n ** 53n) - 1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 62n];
const TEXTS = ['', 'a\u0000b', '\u0000', '\ufffd', 'a\ud800b', '\udfff', '\ud83d\ude00', '\ud83d', 'é\u0301', '\u2028\u2029', 'x'.repeat(4097), '\ufeffbom'];
const BLOB_SIZES = [0, 1, 2, 4095, 4096, 4097, 65_535, 65_536, 65_537];

function bound(random: Random): Bound {
  switch (int(random, 0, 6)) {
    case 0:
    case 1:
      return pick(random, NUMBERS);
    case 2:
      return pick(random, BIGINTS);
    case 3:
      return pick(random, TEXTS);
    case 4: {
      const bytes = Uint8Array.from({ length: pick(random, BLOB_SIZES) }, (_, i) => (i * 7 + 3) & 0xff);
      return random() < 0.3 ? bytes.buffer : bytes;
    }
    case 5:
      return random() < 0.5;
    default:
      return null;
  }
}

/** What query() must give back for a bound value (README, "Parameters" and "Results"). */
function expected(v: Bound): SqlValue {
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'number') return Number.isNaN(v) ? null : v;
  if (typeof v === 'bigint') return v >= -(2n ** 53n) + 1n && v <= 2n ** 53n - 1n ? Number(v) : v;
  if (typeof v === 'string') return new TextDecoder().decode(new TextEncoder().encode(v));
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  return v;
}

const describe = (v: Bound): string => (typeof v === 'string' ? JSON.stringify(v.slice(0, 20)) : v instanceof ArrayBuffer || v instanceof Uint8Array ? `${v.constructor.name}(${v.byteLength})` : Object.is(v, -0) ? '-0' : String(v));

test('generated bound values: query() on the writer, the server and a puller agree with the documented mapping', async () => {
  const seed = testSeed();
  console.log(`bound values: seed ${seed}, ${COUNT} values (replay with OUTPOST_SEED=${seed})`);
  const random = rng(seed);
  const url = `${base}/db/bound-${seed}`;
  const a = await open(join(dir, `a-${seed}.db`), { sync: { url } });
  await a.exec('CREATE TABLE v(id INTEGER PRIMARY KEY, x)');
  const values = Array.from({ length: COUNT }, () => bound(random));
  for (let i = 0; i < values.length; i += 50) {
    await a.batch(values.slice(i, i + 50).map((x, j) => ({ sql: 'INSERT INTO v VALUES (?, ?)', params: [i + j, x as SqlValue] })));
  }
  const rowsA = await a.query<{ id: number; x: SqlValue }>('SELECT id, x FROM v ORDER BY id');
  for (const [i, v] of values.entries()) {
    const got = rowsA[i]!.x;
    const want = expected(v);
    const context = `seed ${seed} (OUTPOST_SEED=${seed}) value ${i}: bound ${describe(v)}`;
    if (typeof want === 'number') expect(Object.is(got, want) || (got === want && !Object.is(want, -0)), `${context}, got ${String(got)}`).toBe(true);
    else expect(got, context).toEqual(want);
  }
  await a.push();
  const classes = 'SELECT id, typeof(x) AS t, hex(x) AS h FROM v ORDER BY id';
  const wantClasses = await a.query(classes);
  const server = (await rawPipeline(url, batch(classes))).json.results[0].response.result.step_results[0].rows.map((r: { value?: unknown }[]) => ({ id: Number(r[0]!.value), t: r[1]!.value, h: r[2]!.value }));
  expect(server, `seed ${seed}: server`).toEqual(wantClasses);
  const b = await open(join(dir, `b-${seed}.db`), { sync: { url } });
  await b.pull();
  expect(await b.query(classes), `seed ${seed}: puller`).toEqual(wantClasses);
  const rowsB = await b.query<{ id: number; x: SqlValue }>('SELECT id, x FROM v ORDER BY id');
  for (const [i, row] of rowsB.entries()) expect(Object.is(row.x, -0), `seed ${seed} value ${i}`).toBe(Object.is(rowsA[i]!.x, -0));
  expect(rowsB).toEqual(rowsA);
  await a.close();
  await b.close();
}, 120_000);

test('-0 bound from JavaScript is stored as the REAL -0.0 and arrives so, not as the INTEGER 0', async () => {
  // Found by the outside adversary: -0 is a whole number to JavaScript and was bound as INTEGER 0.
  const url = `${base}/db/bound-minus-zero`;
  const a = await open(join(dir, 'minus-zero-a.db'), { sync: { url } });
  await a.exec('CREATE TABLE v(id INTEGER PRIMARY KEY, x)');
  await a.run('INSERT INTO v VALUES (1, ?)', [-0]);
  expect(await a.query('SELECT typeof(x) AS t, x FROM v')).toEqual([{ t: 'real', x: -0 }]);
  expect(Object.is((await a.get<{ x: number }>('SELECT x FROM v'))!.x, -0)).toBe(true);
  await a.push();
  const b = await open(join(dir, 'minus-zero-b.db'), { sync: { url } });
  await b.pull();
  expect(Object.is((await b.get<{ x: number }>('SELECT x FROM v'))!.x, -0)).toBe(true);
  await a.close();
  await b.close();
});
