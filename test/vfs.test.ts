/**
 * The VFS (src/opfs-vfs/vfs.ts, open-file.ts) seen from below: a recording backend logs every
 * call SQLite's I/O turns into, so the tests can check what the README and the VFS header
 * promise about backend writes, the commit frame, the WAL observer and the journal mode, and
 * that its reads and writes of the WASM heap follow the memory when it grows.
 */
import { afterEach, expect, test } from 'vitest';
import { Connection, type ConnectionOptions } from '../src/engine/connection.js';
import { loadRuntime } from '../src/engine/runtime.js';
import { SqliteError } from '../src/errors.js';
import type { WalObserver } from '../src/opfs-vfs/vfs.js';
import { type StorageBackend, type StorageDirectory, StorageFullError } from '../src/opfs-vfs/storage/backend.js';
import { WAL_FILE } from '../src/opfs-vfs/storage/files.js';
import { MemoryBackend } from '../src/opfs-vfs/storage/memory.js';
import { PAGE_BYTES, WAL_FRAME_DB_PAGES_AFTER_COMMIT_OFFSET, WAL_FRAME_HEADER_BYTES, readUint32, walFramePageNumbers } from '../src/sqlite/format.js';
import type { Sqlite3Runtime } from '../src/sqlite/wasm-api.js';
import { type Random, int, pick, rng, testSeed } from './support/generate.js';

interface WriteRecord {
  file: string;
  offset: number;
  length: number;
  bytes: Uint8Array;
}

/** Memory files that log every write, and fail the next write to a file when told to. */
class RecordingDirectory implements StorageDirectory {
  readonly label = 'memory:recording';
  readonly writes: WriteRecord[] = [];
  /** The next write to this file throws StorageFullError (once). */
  failNextWriteTo: string | null = null;
  private readonly files = new Map<string, MemoryBackend>();

  async fileSize(name: string): Promise<number | null> {
    return this.files.get(name)?.size() ?? null;
  }

  async open(name: string): Promise<StorageBackend> {
    let file = this.files.get(name);
    if (!file) {
      file = new MemoryBackend();
      this.files.set(name, file);
    }
    const inner = file;
    return {
      read: (dst, offset) => inner.read(dst, offset),
      write: (src, offset) => {
        if (this.failNextWriteTo === name) {
          this.failNextWriteTo = null;
          this.writes.push({ file: name, offset, length: src.length, bytes: src.slice() });
          throw new StorageFullError(`simulated full store writing ${name}`);
        }
        this.writes.push({ file: name, offset, length: src.length, bytes: src.slice() });
        inner.write(src, offset);
      },
      size: () => inner.size(),
      truncate: (n) => inner.truncate(n),
      flush: () => {},
      close: () => {},
    };
  }

  async release(): Promise<void> {}

  /** The writes logged since `from` (an index into `writes`). */
  since(from: number): WriteRecord[] {
    return this.writes.slice(from);
  }
}

const open: Connection[] = [];

async function connect(directory: StorageDirectory, options: Partial<ConnectionOptions> = {}): Promise<Connection> {
  // Manual checkpoints: nothing but the statements under test touches the files.
  const conn = await Connection.open(directory, { durability: 'normal', intMode: 'number', checkpoint: 'manual', ...options });
  open.push(conn);
  return conn;
}

afterEach(async () => {
  for (const conn of open.splice(0)) await conn.close();
});

/** Whether `write` ends with a WAL commit frame (a frame header with its commit field set, then a page). */
function endsWithCommitFrame(write: WriteRecord): boolean {
  const header = write.length - PAGE_BYTES - WAL_FRAME_HEADER_BYTES;
  return header >= 0 && readUint32(write.bytes, header + WAL_FRAME_DB_PAGES_AFTER_COMMIT_OFFSET) !== 0;
}

test('an autocommit write reaches the backend as exactly one write, ending with its commit frame', async () => {
  const dir = new RecordingDirectory();
  const conn = await connect(dir);
  conn.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
  for (let i = 0; i < 20; i++) {
    const before = dir.writes.length;
    conn.run('INSERT INTO t(v) VALUES (?)', [`row ${i}`]);
    const writes = dir.since(before);
    expect(writes).toHaveLength(1);
    expect(writes[0]!.file).toBe(WAL_FILE);
    expect(endsWithCommitFrame(writes[0]!)).toBe(true);
  }
  expect(conn.value('SELECT count(*) FROM t')).toBe(20);
});

test('a transaction of several statements is one backend write at its COMMIT', async () => {
  const dir = new RecordingDirectory();
  const conn = await connect(dir);
  conn.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)');
  const before = dir.writes.length;
  conn.exec('BEGIN');
  for (let i = 0; i < 10; i++) conn.run('INSERT INTO t(v) VALUES (randomblob(3000))', undefined);
  expect(dir.since(before)).toHaveLength(0);
  conn.exec('COMMIT');
  const writes = dir.since(before);
  expect(writes).toHaveLength(1);
  expect(endsWithCommitFrame(writes[0]!)).toBe(true);
});

test('a failing write at the commit frame fails the COMMIT with SQLITE_FULL and the database stays intact', async () => {
  const dir = new RecordingDirectory();
  const conn = await connect(dir);
  conn.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
  conn.run("INSERT INTO t(v) VALUES ('kept')", undefined);
  conn.exec('BEGIN');
  conn.run("INSERT INTO t(v) VALUES ('lost')", undefined);
  dir.failNextWriteTo = WAL_FILE;
  const before = dir.writes.length;
  const error = (() => {
    try {
      conn.exec('COMMIT');
      return null;
    } catch (e) {
      return e;
    }
  })();
  expect(error).toBeInstanceOf(SqliteError);
  expect((error as SqliteError).code).toBe('SQLITE_FULL');
  expect((error as SqliteError).message).toContain('simulated full store');
  // The write that failed was the transaction's only one: its frames up to the commit frame.
  const failed = dir.since(before);
  expect(failed).toHaveLength(1);
  expect(endsWithCommitFrame(failed[0]!)).toBe(true);

  conn.rollbackQuietly();
  expect(conn.inTransaction).toBe(false);
  expect(conn.execute('SELECT v FROM t ORDER BY id', undefined).rows).toEqual([['kept']]);
  expect(conn.value('PRAGMA integrity_check')).toBe('ok');
  conn.run("INSERT INTO t(v) VALUES ('after')", undefined);
  expect(conn.execute('SELECT v FROM t ORDER BY id', undefined).rows).toEqual([['kept'], ['after']]);
});

test('the committed data survives a failed commit across a reopen', async () => {
  const dir = new RecordingDirectory();
  const conn = await connect(dir);
  conn.exec('CREATE TABLE t(v)');
  conn.run('INSERT INTO t VALUES (1)', undefined);
  dir.failNextWriteTo = WAL_FILE;
  expect(() => conn.run('INSERT INTO t VALUES (2)', undefined)).toThrow(SqliteError);
  await conn.close();
  open.splice(open.indexOf(conn), 1);
  const again = await connect(dir);
  expect(again.execute('SELECT v FROM t', undefined).rows).toEqual([[1]]);
  expect(again.value('PRAGMA integrity_check')).toBe('ok');
});

test('the WAL observer sees each frame once, in the order the WAL holds them', async () => {
  const dir = new RecordingDirectory();
  const seen: { page: number; commit: number }[] = [];
  const walObserver: WalObserver = { onWalFrame: (page, commit) => void seen.push({ page, commit }) };
  const conn = await connect(dir, { walObserver });
  conn.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)');
  conn.run('INSERT INTO t(v) VALUES (randomblob(20000))', undefined);
  conn.exec('BEGIN');
  for (let i = 0; i < 5; i++) conn.run('INSERT INTO t(v) VALUES (randomblob(5000))', undefined);
  conn.exec('COMMIT');
  conn.run('UPDATE t SET v = zeroblob(10) WHERE id = 1', undefined);

  const inWal = [...walFramePageNumbers(conn.rawFiles().wal)];
  expect(inWal.length).toBeGreaterThan(5);
  expect(seen.map((f) => f.page)).toEqual(inWal);
  // One commit frame per transaction (CREATE, INSERT, the explicit one, UPDATE), each last.
  const commits = seen.flatMap((f, i) => (f.commit !== 0 ? [i] : []));
  expect(commits).toHaveLength(4);
  expect(commits.at(-1)).toBe(seen.length - 1);
  expect(seen.at(-1)!.commit).toBe(conn.pageCount());
});

test('PRAGMA journal_mode=DELETE is refused and the database stays in WAL mode', async () => {
  const conn = await connect(new RecordingDirectory());
  expect(() => conn.exec('PRAGMA journal_mode=DELETE')).toThrow(/stay in WAL mode/);
  expect(() => conn.exec("PRAGMA journal_mode='truncate'")).toThrow(SqliteError);
  expect(() => conn.exec('PRAGMA locking_mode=NORMAL')).toThrow(/locking_mode=EXCLUSIVE/);
  expect(conn.value('PRAGMA journal_mode')).toBe('wal');
  expect(conn.value('PRAGMA journal_mode=WAL')).toBe('wal');
});

test('the WAL and locking modes are refused however their PRAGMA is spelled, and other PRAGMAs with a value pass', async () => {
  const seed = testSeed();
  console.log(`vfs pragma spelling seed ${seed} (OUTPOST_SEED replays it)`);
  const random = rng(seed);
  const conn = await connect(new RecordingDirectory());
  const anyCase = (text: string): string => [...text].map((c) => (random() < 0.5 ? c.toUpperCase() : c)).join('');
  const quoted = (value: string): string => pick(random, [value, `'${value}'`, `"${value}"`]);
  const schema = (): string => pick(random, ['', 'main.', 'MAIN.']);
  for (let i = 0; i < 60; i++) {
    const refused = pick(random, [
      () => `PRAGMA ${schema()}${anyCase('journal_mode')} = ${quoted(anyCase(pick(random, ['delete', 'truncate', 'persist', 'memory', 'off'])))}`,
      () => `PRAGMA ${schema()}${anyCase('locking_mode')} = ${quoted(anyCase('normal'))}`,
    ])();
    expect(() => conn.exec(refused), refused).toThrow(SqliteError);
    // Names that share the checked ones' first letters, or not: SQLite answers them as usual.
    const passes = pick(random, [
      `PRAGMA ${anyCase('journal_size_limit')} = ${int(random, -1, 1 << 20)}`,
      `PRAGMA ${anyCase('legacy_alter_table')} = ${pick(random, ['ON', 'off', '0'])}`,
      `PRAGMA ${anyCase('cache_size')} = ${int(random, -4000, 4000)}`,
      `PRAGMA ${schema()}${anyCase('journal_mode')} = ${quoted(anyCase('wal'))}`,
      `PRAGMA ${schema()}${anyCase('locking_mode')} = ${quoted(anyCase('exclusive'))}`,
    ]);
    expect(() => conn.exec(passes), passes).not.toThrow();
  }
  expect(conn.value('PRAGMA journal_mode')).toBe('wal');
  expect(conn.value('PRAGMA locking_mode')).toBe('exclusive');
});

test('a file that is not mounted cannot be opened: ATTACH fails with SQLITE_CANTOPEN and says why', async () => {
  const conn = await connect(new RecordingDirectory());
  let error: unknown = null;
  try {
    conn.exec("ATTACH 'other.db' AS other");
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(SqliteError);
  expect((error as SqliteError).code).toBe('SQLITE_CANTOPEN');
  expect((error as SqliteError).message).toMatch(/ATTACH of other files is not supported/);
});

test("another open database's files cannot be attached by their mount names, whatever the id", async () => {
  const victim = await connect(new RecordingDirectory());
  victim.exec("CREATE TABLE secrets(s); INSERT INTO secrets VALUES ('mine')");
  const attacker = await connect(new RecordingDirectory());
  // Mount ids are small integers; try every one a process of this size could have used.
  for (let id = 0; id < 200; id++) {
    for (const name of [`/${id}/db`, `/${id}/db-wal`, `file:/${id}/db`]) {
      expect(() => attacker.exec(`ATTACH '${name}' AS other`), name).toThrow(SqliteError);
    }
  }
  expect(victim.value('SELECT s FROM secrets')).toBe('mine');
  expect(victim.value('PRAGMA integrity_check')).toBe('ok');
});

/** A string of `units` UTF-16 units or a few more: ASCII, two- and three-byte characters, and pairs. */
function mixedText(random: Random, units: number): string {
  let s = '';
  while (s.length < units) s += pick(random, ['a', 'Z', ' ', '0', 'é', 'ß', 'Ж', '語', '€', '🎉', '\u0000']);
  return s;
}

/** Allocates in the WASM heap until its memory grows (SQLite's allocator grows it); returns the allocations. */
function growWasmMemory(wasm: Sqlite3Runtime['wasm']): number[] {
  const before = wasm.memory.buffer;
  const held: number[] = [];
  while (wasm.memory.buffer === before) held.push(wasm.alloc(1024 * 1024));
  // Growth detached the old buffer: a view kept from before it now reads as empty.
  expect(before.byteLength).toBe(0);
  return held;
}

test('generated: values bound and written through the VFS after the WASM memory grew read back as bound', async () => {
  const seed = testSeed();
  console.log(`heap growth seed=${seed}`);
  const random = rng(seed);
  const { wasm } = (await loadRuntime()).sqlite3;
  const held: number[] = [];
  const dir = new RecordingDirectory();
  const conn = await connect(dir);
  conn.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, s TEXT, b BLOB)');
  const rows: [number, string, Uint8Array][] = [];
  try {
    for (let round = 0; round < 6; round++) {
      held.push(...growWasmMemory(wasm));
      conn.exec('BEGIN');
      for (let i = int(random, 1, 12); i > 0; i--) {
        // Past 4,096 units a string is encoded before it is copied in (binding.ts): both ways.
        const b = Uint8Array.from({ length: int(random, 0, 9000) }, () => int(random, 0, 255));
        const row: [number, string, Uint8Array] = [rows.length + 1, mixedText(random, int(random, 0, 6000)), b];
        conn.run('INSERT INTO t VALUES (?, ?, ?)', row);
        rows.push(row);
      }
      conn.exec('COMMIT');
      // Half the rounds also copy the WAL into the main file (reads and writes of both files).
      if (random() < 0.5) conn.exec('PRAGMA wal_checkpoint(TRUNCATE)');
    }
  } finally {
    for (const p of held.splice(0)) wasm.dealloc(p);
  }
  await conn.close();
  open.splice(open.indexOf(conn), 1);
  held.push(...growWasmMemory(wasm));
  try {
    // A new connection has nothing cached: every page comes back through xRead.
    const again = await connect(dir);
    expect(again.execute('SELECT id, s, b FROM t ORDER BY id', undefined).rows, `seed ${seed}`).toEqual(rows);
    expect(again.value('PRAGMA integrity_check')).toBe('ok');
  } finally {
    for (const p of held) wasm.dealloc(p);
  }
});
