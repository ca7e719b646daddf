/**
 * A server (or a proxy before it) that answers a push with garbage: JSON of the right outline
 * but cut short, of another shape, with steps missing or skipped, a stream error, a wrong
 * baton, an empty body, HTML. Generated: each case mangles a real answer (or replaces it) for
 * one push() call, then the server behaves. Whatever the answer, push() never reports a change pushed
 * that the server does not have, no change is recorded refused, and after the server behaves
 * again every write arrives exactly once.
 *
 * Each run prints its seed; OUTPOST_SEED=<seed> replays one, OUTPOST_GARBAGE_CASES sets how
 * many cases run (default 24).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { SyncError } from '../../src/errors.js';
import { open } from '../../src/node/index.js';
import type { OutpostServer } from '../../src/server/server.js';
import { type Random, int, pick, rng, testSeed } from '../support/generate.js';
import { batch, rawPipeline, startServer, tempDir } from '../support/server.js';

const CASES = Number(process.env.OUTPOST_GARBAGE_CASES ?? 24);

let server: OutpostServer;
let base: string;
const dir = tempDir('outpost-garbage-');
let n = 0;
beforeAll(async () => {
  ({ server, url: base } = await startServer({ auth: false }));
});
afterAll(() => server.close());

type Json = Record<string, unknown>;

/**
 * Ways to mangle the JSON answer to a push. With `apply` the server may have applied the push
 * (or not, at random); with `always` it did: a well-formed success with only its baton changed
 * is a lie no client can see through, so it only wraps a push that happened.
 */
const MANGLERS: { name: string; apply: boolean; always?: boolean; mangle: (answer: Json, random: Random) => string }[] = [
  { name: 'empty step lists', apply: false, mangle: (a) => JSON.stringify(withResult(a, { step_results: [], step_errors: [] })) },
  { name: 'no step lists', apply: false, mangle: (a) => JSON.stringify(withResult(a, {})) },
  { name: 'result null', apply: false, mangle: (a) => JSON.stringify(withResult(a, null)) },
  { name: 'every step skipped', apply: false, mangle: (a) => JSON.stringify(withResult(a, mapSteps(a, () => [null, null]))) },
  { name: 'steps cut short', apply: true, mangle: (a, r) => JSON.stringify(withResult(a, cutSteps(a, r))) },
  { name: 'an error that is not an object', apply: false, mangle: (a) => JSON.stringify(withResult(a, mapSteps(a, (i) => (i === 1 ? [null, 'boom'] : [null, null])))) },
  { name: 'an execute answer', apply: false, mangle: () => JSON.stringify({ baton: null, results: [{ type: 'ok', response: { type: 'execute', result: { cols: [], rows: [], affected_row_count: 0 } } }] }) },
  { name: 'a stream error', apply: false, mangle: () => JSON.stringify({ baton: null, results: [{ type: 'error', error: { message: 'stream expired' } }] }) },
  { name: 'no results', apply: false, mangle: () => JSON.stringify({ baton: null, results: [] }) },
  { name: 'truncated JSON', apply: true, mangle: (a, r) => JSON.stringify(a).slice(0, int(r, 1, JSON.stringify(a).length - 1)) },
  { name: 'a wrong baton', apply: true, always: true, mangle: (a) => JSON.stringify({ ...a, baton: 'not-a-baton-of-this-server' }) },
  { name: 'an empty body', apply: true, mangle: () => '' },
  { name: 'null', apply: false, mangle: () => 'null' },
];

function withResult(answer: Json, result: unknown): Json {
  const results = answer.results as Json[];
  return { ...answer, results: [{ type: 'ok', response: { type: 'batch', result } }, ...results.slice(1)] };
}
function stepsOf(answer: Json): { step_results: unknown[]; step_errors: unknown[] } {
  // The answer of the server under test, a batch result.
  return ((answer.results as Json[])[0]!.response as Json).result as { step_results: unknown[]; step_errors: unknown[] };
}
function mapSteps(answer: Json, f: (i: number) => [unknown, unknown]): Json {
  const steps = stepsOf(answer).step_results.map((_, i) => f(i));
  return { step_results: steps.map((s) => s[0]), step_errors: steps.map((s) => s[1]), replication_index: null };
}
function cutSteps(answer: Json, random: Random): Json {
  const s = stepsOf(answer);
  const keep = int(random, 0, s.step_results.length - 1);
  return { step_results: s.step_results.slice(0, keep), step_errors: s.step_errors.slice(0, keep), replication_index: null };
}

test('generated garbage answers to a push: nothing claimed pushed that is not, nothing refused, every write arrives once', async () => {
  const seed = testSeed();
  console.log(`garbage answers: seed ${seed}, ${CASES} cases (replay with OUTPOST_SEED=${seed})`);
  const random = rng(seed);
  const seen = new Map<string, number>();
  for (let c = 0; c < CASES; c++) {
    const mangler = pick(random, MANGLERS);
    seen.set(mangler.name, (seen.get(mangler.name) ?? 0) + 1);
    const context = `seed ${seed} (OUTPOST_SEED=${seed}) case ${c}: ${mangler.name}`;
    const url = `${base}/db/garbage-${seed}-${c}`;
    const template = `${base}/db/garbage-template-${seed}-${c}`;
    for (const db of [url, template]) await rawPipeline(db, batch('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)'));
    let armed = false;
    const faulty = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const push = !String(input).endsWith('/pull-updates') && new TextDecoder().decode(init?.body as Uint8Array).includes('BEGIN IMMEDIATE');
      if (!armed || !push) return fetch(input, init);
      // The server applies the push or never sees it; either way the answer is garbage.
      const real = mangler.always || (mangler.apply && random() < 0.5) ? await fetch(input, init) : null;
      const answer = real ? ((await real.json()) as Json) : ((await (await fetch(`${template}/v2/pipeline`, { method: 'POST', body: templateBody(init) })).json()) as Json);
      return new Response(mangler.mangle(answer, random), { status: 200, headers: { 'content-type': 'application/json' } });
    }) as typeof fetch;
    const client = await open(join(dir, `c${++n}.db`), { sync: { url, fetch: faulty, retries: 0 } });
    await client.pull();
    const writes = int(random, 1, 4);
    for (let i = 0; i < writes; i++) await client.run('INSERT INTO t(id, v) VALUES (?, ?)', [c * 10 + i, `w${i}`]);
    // Every push request of this push() gets garbage (its retries of smaller batches too).
    armed = true;
    const pushed = await client.push().then(
      (count) => count,
      (e: unknown) => e,
    );
    armed = false;
    const onServer = async (): Promise<number> => Number((await rawPipeline(url, batch('SELECT count(*) FROM t'))).json.results[0].response.result.step_results[0].rows[0][0].value);
    if (typeof pushed === 'number') expect(await onServer(), `${context}: push() said ${pushed}`).toBe(pushed === 0 ? 0 : writes);
    else expect(pushed, context).toBeInstanceOf(SyncError);
    expect((await client.pendingChanges()).filter((p) => p.rejected !== null), context).toEqual([]);
    await client.sync();
    await client.sync();
    expect(await onServer(), context).toBe(writes);
    expect(await client.query('SELECT id FROM t ORDER BY id'), context).toEqual(Array.from({ length: writes }, (_, i) => ({ id: c * 10 + i })));
    expect((await client.syncStatus())?.rejectedChanges, context).toEqual([]);
    await client.close();
  }
  console.log(`garbage answers: ${[...seen].map(([k, v]) => `${k} ${v}`).join(', ')}`);
}, 300_000);

/**
 * The body of a push run against a scratch database of the same schema instead, for an answer
 * of the right outline (a success) when the real server must not apply the push.
 */
function templateBody(init: RequestInit | undefined): string {
  return new TextDecoder().decode(init?.body as Uint8Array);
}
