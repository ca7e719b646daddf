/**
 * A row is bounded as a whole, not only cell by cell: the server sets SQLite's
 * SQLITE_LIMIT_LENGTH to the value limit (`valueBytesMax`, `--max-value`), and SQLite applies it
 * to each record it builds too. So a write whose row has many cells, each under the limit but
 * together over it, fails with a clear SQLITE_TOOBIG error, and nothing else changes: through
 * Hrana (SQL functions or arguments, INSERT or an UPDATE that widens a row) and through a push.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { open } from '../../src/node/index.js';
import { mintToken } from '../../src/server/auth.js';
import type { OutpostServer } from '../../src/server/server.js';
import { int, rng, testSeed } from '../support/generate.js';
import { SECRET, rawPipeline, runBatch, startServer, tempDir } from '../support/server.js';

const LIMIT = 64 * 1024;
const COLUMNS = 12;
const exec = (sql: string, args: unknown[] = []): unknown => ({ type: 'execute', stmt: { sql, args, want_rows: true } });

/** Cell sizes, each under the limit, together over it. */
function wideRow(random: () => number): number[] {
  for (;;) {
    const cells = Array.from({ length: int(random, 2, COLUMNS) }, () => int(random, 1024, LIMIT - 1024));
    if (cells.reduce((a, b) => a + b, 0) > LIMIT + 1024) return cells;
  }
}

describe('rows wider than the value limit', () => {
  let server: OutpostServer;
  let url = '';
  let token = '';
  const columns = Array.from({ length: COLUMNS }, (_, i) => `c${i}`);

  beforeAll(async () => {
    ({ server, url } = await startServer({ valueBytesMax: LIMIT }));
    token = await mintToken(SECRET, { db: '*', role: 'write' });
  });
  afterAll(async () => {
    await server.close();
  });

  /** The table's rows, as each cell's length and a digest of its bytes. */
  async function snapshot(db: string): Promise<unknown> {
    const outcome = await runBatch(db, token, `SELECT ${columns.map((c) => `length(${c}), hex(substr(${c}, 1, 16)), hex(substr(${c}, -16))`).join(', ')} FROM w ORDER BY rowid`);
    expect(outcome.errors).toEqual([null]);
    return outcome.rows;
  }

  test('generated: through Hrana, a too-wide INSERT (functions or arguments) or widening UPDATE fails with SQLITE_TOOBIG and changes nothing', async () => {
    const seed = testSeed();
    const random = rng(seed);
    const db = `${url}/db/wide-hrana`;
    expect((await runBatch(db, token, `CREATE TABLE w(${columns.join(', ')})`, "INSERT INTO w(c0, c1) VALUES (randomblob(1000), 'narrow')")).errors).toEqual([null, null]);
    const cases = 40;
    for (let i = 0; i < cases; i++) {
      const before = await snapshot(db);
      const cells = wideRow(random);
      const kind = int(random, 0, 2);
      let sql: string;
      let args: unknown[] = [];
      if (kind === 0) {
        sql = `INSERT INTO w(${columns.slice(0, cells.length).join(', ')}) VALUES (${cells.map((n) => `randomblob(${n})`).join(', ')})`;
      } else if (kind === 1) {
        sql = `INSERT INTO w(${columns.slice(0, cells.length).join(', ')}) VALUES (${cells.map(() => '?').join(', ')})`;
        args = cells.map((n) => ({ type: 'blob', base64: Buffer.alloc(n, i % 251).toString('base64') }));
      } else {
        sql = `UPDATE w SET ${cells.map((n, c) => `${columns[c]} = randomblob(${n})`).join(', ')} WHERE rowid = 1`;
      }
      const answer = await rawPipeline(db, { baton: null, requests: [exec(sql, args)] }, token);
      const what = `seed ${seed} case ${i}: ${cells.length} cells of ${cells.join(', ')} bytes (${['functions', 'arguments', 'update'][kind]})`;
      expect(answer.status, what).toBe(200);
      expect(answer.json.results[0].type, what).toBe('error');
      expect(answer.json.results[0].error.message, what).toMatch(/too big/i);
      expect(answer.json.results[0].error.code, what).toBe('SQLITE_TOOBIG');
      expect(await snapshot(db), what).toEqual(before);
    }
    // A row under the limit still goes in.
    expect((await runBatch(db, token, `INSERT INTO w(c0, c1) VALUES (randomblob(${LIMIT / 4}), randomblob(${LIMIT / 4}))`)).errors).toEqual([null]);
    console.log(`wide rows over Hrana: seed ${seed}, ${cases} too-wide writes refused`);
  });

  test('generated: a pushed too-wide row is refused by the server, which keeps everything else', async () => {
    const seed = testSeed();
    const random = rng(seed);
    const dir = tempDir('outpost-wide-push-');
    const client = await open(join(dir, 'c.db'), { engine: 'inline', sync: { url: `${url}/db/wide-push`, authToken: token, retries: 0 } });
    try {
      await client.exec(`CREATE TABLE w(${columns.join(', ')})`);
      await client.exec("INSERT INTO w(c0) VALUES ('kept')");
      await client.push();
      const before = await snapshot(`${url}/db/wide-push`);
      const cases = 5;
      for (let i = 0; i < cases; i++) {
        const cells = wideRow(random);
        await client.run(`INSERT INTO w(${columns.slice(0, cells.length).join(', ')}) VALUES (${cells.map((n) => `randomblob(${n})`).join(', ')})`);
        const what = `seed ${seed} case ${i}: ${cells.join(', ')}`;
        await expect(client.push(), what).rejects.toThrow(/the server refused change \d+: string or blob too big/);
        expect(await snapshot(`${url}/db/wide-push`), what).toEqual(before);
        // The client keeps the row and says why the server refused it.
        const refused = (await client.pendingChanges()).filter((c) => c.rejected !== null);
        expect(refused.length, what).toBe(i + 1);
        expect(refused.every((c) => /too big/i.test(c.rejected!)), `${what}: ${JSON.stringify(refused.map((c) => c.rejected))}`).toBe(true);
      }
      console.log(`wide rows over push: seed ${seed}, ${cases} too-wide rows refused`);
    } finally {
      await client.close();
    }
  });
});
