/**
 * The three sync files, each on its own (src/sync/state-file.ts, revert-file.ts,
 * replay-file.ts): round trips, and what a torn write (a crash in the middle of one) leaves
 * readable. Over the memory backend; no SQLite.
 */
import { describe, expect, test } from 'vitest';
import type { StorageBackend } from '../../src/opfs-vfs/storage/backend.js';
import { MemoryBackend } from '../../src/opfs-vfs/storage/memory.js';
import { fnv1a } from '../../src/protocol/checksum.js';
import type { ChangeRecord } from '../../src/sync/change-log.js';
import { InvariantError } from '../../src/sync/invariant.js';
import { ReplayFile } from '../../src/sync/replay-file.js';
import { REVERT_ENTRY_BYTES, RevertFile } from '../../src/sync/revert-file.js';
import { SyncStateFile } from '../../src/sync/state-file.js';

class Torn extends Error {}

/** A file whose next write stops after `keepBytes` bytes, like a process killed in mid-write. */
class TearingFile implements StorageBackend {
  tearAt: number | null = null;
  constructor(readonly inner = new MemoryBackend()) {}
  read(dst: Uint8Array, offset: number): number {
    return this.inner.read(dst, offset);
  }
  write(src: Uint8Array, offset: number): void {
    if (this.tearAt === null) return this.inner.write(src, offset);
    this.inner.write(src.subarray(0, this.tearAt), offset);
    this.tearAt = null;
    throw new Torn('torn write');
  }
  size(): number {
    return this.inner.size();
  }
  truncate(sizeBytes: number): void {
    this.inner.truncate(sizeBytes);
  }
  flush(): void {}
  close(): void {}
}

const page = (fill: number): Uint8Array => new Uint8Array(4096).fill(fill);

describe('SyncStateFile', () => {
  test('a new file gets a fresh state for its URL, and reading it back gives the same state', () => {
    const file = new TearingFile();
    const state = SyncStateFile.load(file, 'http://x/db/a', 'my app');
    expect(state.value).toMatchObject({ url: 'http://x/db/a', revision: null, phase: 'idle', changeIdFloor: 0, lastPullAt: null });
    expect(state.value.clientId).toMatch(/^my_app-[0-9a-f]{32}$/);
    state.update({ revision: 'g.3', syncedDbPages: 12, rejected: { 4: 'no' } });
    expect(SyncStateFile.load(file, 'ignored', undefined).value).toEqual(state.value);
  });

  test('a torn update leaves the previous state, whatever the point it tore at', () => {
    for (const keepBytes of [0, 1, 4, 8, 9, 40, 200]) {
      const file = new TearingFile();
      const state = SyncStateFile.load(file, 'http://x/db/a');
      state.update({ revision: 'g.1', walWatermarkBytes: 100 });
      const before = state.value;
      file.tearAt = keepBytes;
      expect(() => state.update({ revision: 'g.2', walWatermarkBytes: 0, phase: 'replaying' })).toThrow(Torn);
      expect(SyncStateFile.load(file, 'http://x/db/a').value, `torn after ${keepBytes} bytes`).toEqual(before);
    }
  });

  test('updates alternate slots, so the newest whole one wins', () => {
    const file = new TearingFile();
    const state = SyncStateFile.load(file, 'http://x/db/a');
    for (let i = 1; i <= 5; i++) state.update({ changeIdFloor: i });
    expect(SyncStateFile.load(file, 'http://x/db/a').value.changeIdFloor).toBe(5);
  });

  test('a slot in the documented layout is read, with the old lastPullMs/lastPushMs names', () => {
    const file = new MemoryBackend();
    const legacy = { seq: 3, clientId: 'c-1', url: 'http://x/db/a', revision: 'g.1', syncedDbPages: 2, walWatermarkBytes: 0, revertEntries: 0, changeIdFloor: 4, phase: 'idle', replayEntries: 0, rejected: {}, lastPullMs: 1000, lastPushMs: 2000, bytesSent: 1, bytesReceived: 2 };
    const body = new TextEncoder().encode(JSON.stringify(legacy));
    const head = new Uint8Array(8);
    new DataView(head.buffer).setUint32(0, body.length, true);
    new DataView(head.buffer).setUint32(4, fnv1a(body), true);
    file.write(head, 64 * 1024);
    file.write(body, 64 * 1024 + 8);
    const state = SyncStateFile.load(file, 'http://x/db/a').value;
    expect(state).toMatchObject({ seq: 3, clientId: 'c-1', revision: 'g.1', changeIdFloor: 4, lastPullAt: 1000, lastPushAt: 2000 });
    expect(state).not.toHaveProperty('lastPullMs');
  });

  test('a slot whose checksum does not match is ignored', () => {
    const file = new TearingFile();
    const state = SyncStateFile.load(file, 'http://x/db/a');
    state.update({ revision: 'g.1' });
    state.update({ revision: 'g.2' });
    // Flip one byte of the newer slot's body.
    const at = 8 + 10;
    const byte = new Uint8Array(1);
    file.read(byte, at);
    file.inner.write(new Uint8Array([byte[0]! ^ 0xff]), at);
    expect(SyncStateFile.load(file, 'http://x/db/a').value.revision).toBe('g.1');
  });
});

describe('RevertFile', () => {
  test('entries round trip, and the count in the sync state says which are valid', () => {
    const backend = new TearingFile();
    const revert = new RevertFile(backend, 0);
    revert.append(3, page(3));
    revert.append(1, page(1));
    revert.flush();
    expect(revert.count).toBe(2);
    const reopened = new RevertFile(backend, 2);
    expect([reopened.has(1), reopened.has(2), reopened.has(3)]).toEqual([true, false, true]);
    expect([...reopened.pages()].map((e) => [e.pageNumber, e.page[0], e.page.length])).toEqual([[3, 3, 4096], [1, 1, 4096]]);
  });

  test('a torn append past the recorded count is never read', () => {
    const backend = new TearingFile();
    const revert = new RevertFile(backend, 0);
    revert.append(5, page(5));
    revert.flush();
    backend.tearAt = 100;
    expect(() => revert.append(6, page(6))).toThrow(Torn);
    // The state still says 1 entry: the torn one is not there.
    const reopened = new RevertFile(backend, 1);
    expect([...reopened.pages()].map((e) => e.pageNumber)).toEqual([5]);
    expect(reopened.has(6)).toBe(false);
    expect(backend.size()).toBe(REVERT_ENTRY_BYTES + 100);
  });

  test('clearing forgets the entries; new ones overwrite from the start', () => {
    const backend = new TearingFile();
    const revert = new RevertFile(backend, 0);
    revert.append(2, page(2));
    revert.clear();
    expect(revert.count).toBe(0);
    expect(revert.has(2)).toBe(false);
    revert.append(9, page(9));
    expect([...new RevertFile(backend, 1).pages()].map((e) => e.pageNumber)).toEqual([9]);
  });

  test('a count past the end of the file, a second pre-image of a page, a short page: refused', () => {
    const backend = new TearingFile();
    const revert = new RevertFile(backend, 0);
    revert.append(2, page(2));
    expect(() => [...new RevertFile(backend, 2).pages()]).toThrow(InvariantError);
    expect(() => revert.append(2, page(2))).toThrow(InvariantError);
    expect(() => revert.append(4, new Uint8Array(100))).toThrow(InvariantError);
  });
});

describe('ReplayFile', () => {
  const records: ChangeRecord[] = [
    {
      id: 4,
      segments: [
        { changeset: new Uint8Array([7, 8]), columns: { t: ['a'] } },
        { ddl: 'CREATE TABLE u(a)' },
        { changeset: new Uint8Array([1, 2, 3, 255]), columns: { t: ['a'], u: ['a'] } },
      ],
    },
    { id: 6, segments: [] },
  ];

  test('records round trip, ids, segments in order, recorded columns and changeset bytes intact', () => {
    const replay = new ReplayFile(new TearingFile());
    replay.write(records);
    expect(replay.read(2)).toEqual(records);
  });

  test('a file written before records had segments still reads: its DDL first, then its changeset', () => {
    const backend = new TearingFile();
    const body = new TextEncoder().encode(JSON.stringify([{ id: 4, ddl: ['CREATE TABLE t(a)'], changeset: [1, 2, 3, 255] }, { id: 6, ddl: [], changeset: [] }]));
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, body.length, true);
    backend.write(header, 0);
    backend.write(body, 4);
    expect(new ReplayFile(backend).read(2)).toEqual([
      { id: 4, segments: [{ ddl: 'CREATE TABLE t(a)' }, { changeset: new Uint8Array([1, 2, 3, 255]), columns: null }] },
      { id: 6, segments: [] },
    ]);
  });

  test('a count of 0 reads nothing, whatever the file holds', () => {
    const backend = new TearingFile();
    backend.write(new Uint8Array([9, 9, 9]), 0);
    expect(new ReplayFile(backend).read(0)).toEqual([]);
  });

  test('a later write replaces the earlier one', () => {
    const replay = new ReplayFile(new TearingFile());
    replay.write(records);
    replay.write(records.slice(1));
    expect(replay.read(1)).toEqual(records.slice(1));
  });

  test('a torn write is refused, not replayed as fewer records', () => {
    const backend = new TearingFile();
    const replay = new ReplayFile(backend);
    replay.write(records);
    // The write of the header succeeds, the body's tears.
    let writes = 0;
    const inner = backend.write.bind(backend);
    backend.write = (src, offset) => {
      if (++writes === 2) backend.tearAt = 10;
      inner(src, offset);
    };
    expect(() => replay.write(records)).toThrow(Torn);
    expect(() => replay.read(2)).toThrow(InvariantError);
  });

  test('a missing file, or a count that does not match, is refused', () => {
    expect(() => new ReplayFile(new TearingFile()).read(1)).toThrow(/missing/);
    const replay = new ReplayFile(new TearingFile());
    replay.write(records);
    expect(() => replay.read(3)).toThrow(InvariantError);
  });
});
