/** What only a real browser shows: OPFS files, exclusive access between tabs, quota, isolation. */
import { expect, test } from 'vitest';
import { DatabaseLockedError, SqliteError, deleteDatabase, listDatabases, open } from '../src/index.js';

const unique = (prefix: string): string => `${prefix}-${crypto.randomUUID()}`;

async function opfsFileSizes(name: string): Promise<Record<string, number>> {
  const root = await navigator.storage.getDirectory();
  const dir = await (await root.getDirectoryHandle('outpost')).getDirectoryHandle(name);
  const sizes: Record<string, number> = {};
  for await (const [fileName, handle] of (dir as unknown as { entries(): AsyncIterable<[string, FileSystemFileHandle]> }).entries()) {
    sizes[fileName] = (await handle.getFile()).size;
  }
  return sizes;
}

test('runs without cross-origin isolation', async () => {
  expect(globalThis.crossOriginIsolated).toBe(false);
  const db = await open(unique('coi'));
  expect(await db.get('PRAGMA journal_mode')).toEqual({ journal_mode: 'wal' });
  await db.close();
});

test('keeps one OPFS directory per database with real file names', async () => {
  const name = unique('files');
  const db = await open(name);
  await db.exec('CREATE TABLE t(v); INSERT INTO t VALUES (1);');
  const sizes = await opfsFileSizes(name);
  expect(Object.keys(sizes).sort()).toEqual(['db', 'db-wal']);
  expect(sizes['db-wal']).toBeGreaterThan(0);
  await db.close();
  expect(await listDatabases()).toContain(name);
});

test('data survives closing and reopening', async () => {
  const name = unique('reopen');
  const db = await open(name);
  await db.exec("CREATE TABLE t(v); INSERT INTO t VALUES ('kept');");
  await db.close();
  const again = await open(name);
  expect(await again.query('SELECT v FROM t')).toEqual([{ v: 'kept' }]);
  await again.close();
});

test('a second open of a held database waits, then fails with DatabaseLockedError', async () => {
  const name = unique('locked');
  const first = await open(name);
  const started = performance.now();
  const error = await open(name, { lockTimeoutMs: 300 }).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DatabaseLockedError);
  expect((error as DatabaseLockedError).database).toBe(name);
  expect((error as Error).message).toContain(name);
  expect(performance.now() - started).toBeGreaterThanOrEqual(250);
  await first.close();
  const second = await open(name, { lockTimeoutMs: 2000 });
  await second.close();
});

test('a waiting open succeeds when the holder closes in time', async () => {
  const name = unique('handover');
  const first = await open(name);
  await first.exec("CREATE TABLE t(v); INSERT INTO t VALUES ('from first');");
  const waiting = open(name, { lockTimeoutMs: 5000 });
  await new Promise((r) => setTimeout(r, 100));
  await first.close();
  const second = await waiting;
  expect(await second.query('SELECT v FROM t')).toEqual([{ v: 'from first' }]);
  await second.close();
});

test('deleteDatabase removes a closed database and refuses an open one', async () => {
  const name = unique('delete');
  const db = await open(name);
  await db.exec('CREATE TABLE t(v)');
  await expect(deleteDatabase(name, { lockTimeoutMs: 200 })).rejects.toBeInstanceOf(DatabaseLockedError);
  await db.close();
  await deleteDatabase(name);
  expect(await listDatabases()).not.toContain(name);
});

for (const style of ['throw', 'short', 'bogus'] as const) {
  test(`quota exhaustion reported as '${style}' gives SQLITE_FULL and leaves the database intact`, async () => {
    const db = await open(unique(`quota-${style}`), { simulatedQuota: { bytes: 512 * 1024, style } });
    await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)');
    await db.run('INSERT INTO t(v) VALUES (?)', [new Uint8Array(50_000)]);
    const error = await db.run('INSERT INTO t(v) VALUES (?)', [new Uint8Array(2_000_000)]).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SqliteError);
    expect((error as SqliteError).code).toBe('SQLITE_FULL');
    expect((error as SqliteError).message).toMatch(/quota/);
    expect(await db.get('SELECT count(*) AS n FROM t')).toEqual({ n: 1 });
    expect(await db.get('PRAGMA integrity_check')).toEqual({ integrity_check: 'ok' });
    await db.run('INSERT INTO t(v) VALUES (?)', [new Uint8Array(100)]);
    expect(await db.get('SELECT count(*) AS n FROM t')).toEqual({ n: 2 });
    await db.close();
  });
}

test('an invalid name is refused before any worker starts', async () => {
  await expect(open('../escape')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  await expect(open('')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
});
