/**
 * What only the Node backend can show: the files on disk, recovery after the process dies
 * without closing, and a full store.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { Connection } from '../src/engine/connection.js';
import { SqliteError } from '../src/errors.js';
import { MemoryDirectory } from '../src/opfs-vfs/storage/memory.js';
import { deleteDatabase, open } from '../src/node/index.js';

const dir = mkdtempSync(join(tmpdir(), 'outpost-node-'));

test('a write lands in the -wal file beside the database', async () => {
  const path = join(dir, 'wal.db');
  const db = await open(path);
  await db.exec('CREATE TABLE t(v); INSERT INTO t VALUES (1);');
  expect(existsSync(`${path}-wal`)).toBe(true);
  expect(statSync(`${path}-wal`).size).toBeGreaterThan(0);
  await db.close();
});

test('committed data survives a process that dies without closing', async () => {
  const path = join(dir, 'crash.db');
  // A child process commits, then exits abruptly without closing the database: the WAL is
  // left as it was at the last commit, as after a crash.
  const script = `
    import { open } from ${JSON.stringify(new URL('../src/node/index.ts', import.meta.url).pathname)};
    const db = await open(${JSON.stringify(path)});
    await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
    await db.transaction(async (tx) => {
      for (let i = 0; i < 500; i++) await tx.run('INSERT INTO t(v) VALUES (?)', ['row ' + i]);
    });
    await db.exec('BEGIN; INSERT INTO t(v) VALUES (\\'uncommitted\\');');
    process.kill(process.pid, 'SIGKILL');
  `;
  try {
    execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: 'pipe' });
  } catch (e) {
    expect((e as { signal?: string }).signal).toBe('SIGKILL');
  }
  expect(statSync(`${path}-wal`).size).toBeGreaterThan(0);
  const db = await open(path);
  expect(await db.get('SELECT count(*) AS n FROM t')).toEqual({ n: 500 });
  expect(await db.get("SELECT count(*) AS n FROM t WHERE v = 'uncommitted'")).toEqual({ n: 0 });
  expect(await db.get('PRAGMA integrity_check')).toEqual({ integrity_check: 'ok' });
  await db.close();
});

test('a full store gives SQLITE_FULL and the database stays intact', async () => {
  const conn = await Connection.open(new MemoryDirectory('memory:full', 256 * 1024), { durability: 'normal', intMode: 'number' });
  conn.exec('CREATE TABLE t(v BLOB)');
  conn.run('INSERT INTO t VALUES (?)', [new Uint8Array(10_000)]);
  let error: unknown = null;
  try {
    conn.run('INSERT INTO t VALUES (?)', [new Uint8Array(1_000_000)]);
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(SqliteError);
  expect((error as SqliteError).code).toBe('SQLITE_FULL');
  expect((error as SqliteError).message).toMatch(/full/);
  expect(conn.value('SELECT count(*) FROM t')).toBe(1);
  expect(conn.value('PRAGMA integrity_check')).toBe('ok');
  conn.run('INSERT INTO t VALUES (?)', [new Uint8Array(1000)]);
  expect(conn.value('SELECT count(*) FROM t')).toBe(2);
  await conn.close();
});

test('a second open of the same path waits, then fails with DatabaseLockedError', async () => {
  const path = join(dir, 'locked.db');
  const db = await open(path);
  await expect(open(path, { lockTimeoutMs: 100 })).rejects.toMatchObject({ name: 'DatabaseLockedError' });
  await db.close();
  const again = await open(path);
  await again.close();
});

test('deleteDatabase removes the files and refuses an open database', async () => {
  const path = join(dir, 'delete.db');
  const db = await open(path);
  await db.exec('CREATE TABLE t(v)');
  await expect(deleteDatabase(path)).rejects.toMatchObject({ name: 'DatabaseLockedError' });
  await db.close();
  await deleteDatabase(path);
  expect(existsSync(path)).toBe(false);
  expect(existsSync(`${path}-wal`)).toBe(false);
});

test('a file that is not SQLite fails to open with NOT_A_DATABASE', async () => {
  const path = join(dir, 'garbage.db');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(path, 'this is not a database'.repeat(400));
  await expect(open(path)).rejects.toMatchObject({ code: 'NOT_A_DATABASE' });
  // The lock was released: a later open fails the same way, not with DatabaseLockedError.
  await expect(open(path)).rejects.toMatchObject({ code: 'NOT_A_DATABASE' });
});

test('an idle connection checkpoints and shrinks the WAL', async () => {
  const path = join(dir, 'idle.db');
  const db = await open(path);
  await db.exec('CREATE TABLE t(v BLOB)');
  await db.transaction(async (tx) => {
    for (let i = 0; i < 40; i++) await tx.run('INSERT INTO t VALUES (randomblob(100000))');
  });
  expect(statSync(`${path}-wal`).size).toBeGreaterThan(1024 * 1024);
  await new Promise((r) => setTimeout(r, 1500));
  expect(statSync(`${path}-wal`).size).toBe(0);
  expect(await db.get('SELECT count(*) AS n FROM t')).toEqual({ n: 40 });
  await db.close();
});
