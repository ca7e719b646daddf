/**
 * A database's file carries its name exactly (database-cache.ts, `refuseCaseAlias`). On a
 * case-insensitive file system `A.db` is `a.db`; this machine's is case-sensitive, so a link
 * from the other spelling plays the folding, as macOS or Windows would do it.
 */
import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { OutpostServer } from '../../src/server/index.js';
import { int, rng, testSeed } from '../support/generate.js';
import { batch, rawPipeline, startServer } from '../support/server.js';

let server: OutpostServer;
let base: string;
let dataDir: string;

beforeAll(async () => {
  ({ server, url: base, dataDir } = await startServer({ auth: false }));
});
afterAll(async () => {
  await server.close();
});

/** `name` with the case of at least one of its letters flipped. */
function otherCase(name: string, random: () => number): string {
  const letters = [...name].map((c, i) => (/[a-z]/.test(c) ? i : -1)).filter((i) => i >= 0);
  const flip = new Set([letters[int(random, 0, letters.length - 1)]!]);
  for (const i of letters) if (random() < 0.3) flip.add(i);
  return [...name].map((c, i) => (flip.has(i) ? c.toUpperCase() : c)).join('');
}

test('generated: a name that differs from an existing database only in case is refused with NAME_CONFLICT, and that database is untouched', async () => {
  const seed = testSeed();
  console.log(`name case seed=${seed}`);
  const random = rng(seed);
  for (let round = 0; round < 12; round++) {
    const name = `db${round}-${Array.from({ length: int(random, 1, 8) }, () => 'abcdefxyz_-'[int(random, 0, 10)]).join('')}`;
    const created = await rawPipeline(`${base}/db/${name}`, batch('CREATE TABLE t(v)', `INSERT INTO t VALUES (${round})`));
    expect(created.status).toBe(200);
    const alias = otherCase(name, random);
    symlinkSync(join(dataDir, `${name}.db`), join(dataDir, `${alias}.db`));
    const attempt = await rawPipeline(`${base}/db/${alias}`, batch('DELETE FROM t'));
    expect({ alias, status: attempt.status, code: attempt.json?.code }).toEqual({ alias, status: 409, code: 'NAME_CONFLICT' });
    const rows = await rawPipeline(`${base}/db/${name}`, batch('SELECT v FROM t'));
    expect(rows.json.results[0].response.result.step_results[0].rows).toEqual([[{ type: 'integer', value: String(round) }]]);
  }
});
