/**
 * The server killed in the middle of a checkpoint: a hosted database whose WAL holds many
 * acknowledged pushes is checkpointed over a directory that dies at its k-th write, truncate
 * or flush, for every k through the checkpoint. Reopened from its files, it passes
 * integrity_check, holds every acknowledged row, and takes and serves pushes and pulls.
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { NodeDirectory } from '../../src/opfs-vfs/storage/node.js';
import { decodePullRequest, encodePullRequest } from '../../src/protocol/pull-updates.js';
import { HostedDatabase, type HostedDatabaseOptions } from '../../src/server/hosted-database.js';
import { CrashingDirectory } from '../support/crashing-directory.js';
import { scratchDataDir } from '../support/networks.js';
import { batch } from '../support/server.js';

const OPTIONS: HostedDatabaseOptions = { durability: 'normal', cacheKiB: 256, limits: { statementTimeoutMs: 2000, valueBytesMax: 1 << 24, shareOfServer: 1 } };
const ROWS = 400;
const SUFFIXES = ['.db', '.db-wal', '.db-revlog', '.db-owners'];

function rows(db: HostedDatabase, sql: string): unknown[][] {
  const r = db.pipeline({ baton: null, requests: [{ type: 'execute', stmt: { sql, want_rows: true } }] }).results[0];
  if (r?.type !== 'ok' || r.response.type !== 'execute') throw new Error(`${sql} failed: ${JSON.stringify(r)}`);
  return r.response.result.rows.map((row) => row.map((v) => ('value' in v ? v.value : null)));
}

test('a crash at any write of a checkpoint loses no acknowledged push and leaves a consistent database', async () => {
  const template = scratchDataDir('outpost-cp-template-');
  const db = await HostedDatabase.open(template, 'cp', OPTIONS);
  db.pipeline(batch('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)'));
  for (let i = 1; i <= ROWS; i++) db.pipeline(batch({ sql: 'INSERT INTO t VALUES (?, randomblob(3000))', args: [{ type: 'integer', value: String(i) }] }));
  db.execTrusted('PRAGMA wal_checkpoint(TRUNCATE)');
  // Acknowledged pushes to scattered rows, each its own transaction: the WAL holds them all, and
  // the checkpoint writes them to pages far apart (many separate writes, many crash points).
  for (let i = 1; i <= ROWS; i += 7) db.pipeline(batch({ sql: 'UPDATE t SET v = randomblob(3000) WHERE id = ?', args: [{ type: 'integer', value: String(i) }] }));
  const expected = rows(db, 'SELECT count(*), sum(id), sum(length(v)) FROM t');
  await db.close();
  expect(existsSync(join(template, 'cp.db-wal'))).toBe(true);

  let crashes = 0;
  for (let k = 1; k < 5000; k++) {
    const dir = scratchDataDir('outpost-cp-run-');
    mkdirSync(dir, { recursive: true });
    for (const s of SUFFIXES) if (existsSync(join(template, `cp${s}`))) copyFileSync(join(template, `cp${s}`), join(dir, `cp${s}`));
    let crashing: CrashingDirectory | null = null;
    let finished = false;
    try {
      const hosted = await HostedDatabase.open(dir, 'cp', {
        ...OPTIONS,
        directory: (file) => (crashing = new CrashingDirectory(new NodeDirectory(file), k)),
      });
      hosted.execTrusted('PRAGMA wal_checkpoint(TRUNCATE)');
      finished = true;
      await hosted.close();
    } catch (e) {
      if (!(crashing as CrashingDirectory | null)?.crashed) throw e;
    }
    if (finished) break;
    crashes++;
    // The process is gone; a new one opens the same files.
    const reopened = await HostedDatabase.open(dir, 'cp', OPTIONS);
    expect(rows(reopened, 'PRAGMA integrity_check'), `crash at ${k}`).toEqual([['ok']]);
    expect(rows(reopened, 'SELECT count(*), sum(id), sum(length(v)) FROM t'), `crash at ${k}`).toEqual(expected);
    reopened.pipeline(batch({ sql: 'INSERT INTO t VALUES (?, x\'00\')', args: [{ type: 'integer', value: String(ROWS + 1) }] }));
    const chunks: Uint8Array[] = [];
    await reopened.pull(decodePullRequest(encodePullRequest({ clientRevision: '' })), (c) => chunks.push(c));
    expect(chunks.length, `crash at ${k}: a full pull`).toBeGreaterThan(0);
    await reopened.close();
  }
  console.log(`checkpoint crash: ${crashes} crash points, each reopened and checked`);
  expect(crashes).toBeGreaterThan(5);
}, 300_000);
