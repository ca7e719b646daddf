/**
 * A pull's `db_size` comes from the revision log's last commit frame, not from SQLite
 * (hosted-database.ts `committedPages`). After every step of a seeded sequence of requests
 * that grow, shrink (VACUUM), fail (a constraint, a failing batch) or roll back, the size a pull
 * reports must be the one SQLite counts, and an incremental pull from the previous revision
 * must say the same.
 */
import { afterAll, describe, expect, test } from 'vitest';
import type { Connection } from '../../src/engine/connection.js';
import { PullStreamReader, type PullRequest } from '../../src/protocol/pull-updates.js';
import { HostedDatabase } from '../../src/server/hosted-database.js';
import { int, rng, testSeed } from '../support/generate.js';
import { tempDir } from '../support/server.js';

const seed = testSeed();
console.log(`pull-size seed ${seed} (replay with OUTPOST_SEED=${seed})`);
const STEPS = 60;

const request = (clientRevision: string): PullRequest => ({ encoding: 0, serverRevision: '', clientRevision, longPollTimeoutMs: 0, serverPagesSelector: new Uint8Array(0), streamKind: 0 });

/** The pull's header: its revision and `db_size`. */
async function pulled(db: HostedDatabase, from: string): Promise<{ revision: string; dbSize: number }> {
  const reader = new PullStreamReader();
  await db.pull(request(from), (chunk) => void reader.push(chunk));
  const header = reader.finish();
  return { revision: header.serverRevision, dbSize: header.dbSize };
}

/** One batch, each step run only if the one before succeeded, then `close`: a transaction a failed step left open is rolled back, not kept for a stream. */
const batch = (...sql: string[]): unknown => ({
  baton: null,
  requests: [{ type: 'batch', batch: { steps: sql.map((s, i) => ({ stmt: { sql: s }, ...(i > 0 ? { condition: { type: 'ok', step: i - 1 } } : {}) })) } }, { type: 'close' }],
});

describe('pull size', () => {
  const dir = tempDir('outpost-pull-size-');
  let db: HostedDatabase | null = null;
  afterAll(async () => {
    await db?.close();
  });

  test(`the size a pull reports is SQLite's after every step (${STEPS} steps, seed ${seed})`, async () => {
    const random = rng(seed);
    db = await HostedDatabase.open(dir, 'sized', { durability: 'normal', cacheKiB: 256, limits: { statementTimeoutMs: 2000, valueBytesMax: 1 << 22, shareOfServer: 1 } });
    // The connection is private to the hosted database; SQLite's own count is the reference here.
    const conn = (db as unknown as { conn: Connection }).conn;
    db.pipeline(batch('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)'));
    let previous = await pulled(db, '');
    let nextId = 1;
    for (let step = 0; step < STEPS; step++) {
      const kind = int(random, 0, 5);
      const what = ['grow', 'delete', 'vacuum', 'constraint', 'failed batch', 'rolled back'][kind]!;
      if (kind === 0) {
        const rows = int(random, 1, 20);
        const values = Array.from({ length: rows }, () => `(${nextId++}, randomblob(${int(random, 10, 6000)}))`).join(', ');
        db.pipeline(batch(`INSERT INTO t VALUES ${values}`));
      } else if (kind === 1) {
        db.pipeline(batch(`DELETE FROM t WHERE id % ${int(random, 2, 4)} = 0`));
      } else if (kind === 2) {
        db.execTrusted('VACUUM');
      } else if (kind === 3) {
        db.pipeline(batch('INSERT INTO t VALUES (1, 1), (1, 2)'));
      } else if (kind === 4) {
        db.pipeline(batch('BEGIN', `INSERT INTO t VALUES (${nextId++}, randomblob(9000))`, 'INSERT INTO t VALUES (1, 1)', 'COMMIT'));
      } else {
        db.pipeline(batch('BEGIN', `INSERT INTO t VALUES (${nextId}, randomblob(50000))`, 'ROLLBACK'));
      }
      const whole = await pulled(db, '');
      expect(whole.dbSize, `step ${step} (${what})`).toBe(conn.pageCount());
      const since = await pulled(db, previous.revision);
      expect(since.dbSize, `step ${step} (${what}), incremental`).toBe(whole.dbSize);
      previous = whole;
    }
  });
});
