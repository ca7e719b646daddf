/**
 * The rejection log (src/sync/rejected-file.ts) on its own: generated sequences of marks set and
 * removed (long reasons, enough to compact many times), with a crash torn into a seeded write
 * of either file; reopening from the files always gives the marks before or after the
 * interrupted step, never a mix or nothing. And the old `rejected` map of the sync state moves
 * into the log on open.
 */
import { expect, test } from 'vitest';
import type { StorageBackend } from '../../src/opfs-vfs/storage/backend.js';
import { MemoryBackend } from '../../src/opfs-vfs/storage/memory.js';
import { RejectionLog } from '../../src/sync/rejected-file.js';
import { SyncStateFile } from '../../src/sync/state-file.js';
import { int, rng, testSeed } from '../support/generate.js';

class Torn extends Error {}

/** Memory files whose `writesLeft`-th next write (across both) stops half-way, like a killed process. */
class Disk {
  writesLeft: number | null = null;
  readonly state = new MemoryBackend();
  readonly log = new MemoryBackend();
  file(inner: MemoryBackend): StorageBackend {
    return {
      read: (dst, offset) => inner.read(dst, offset),
      size: () => inner.size(),
      write: (src, offset) => {
        if (this.writesLeft !== null && --this.writesLeft === 0) {
          this.writesLeft = null;
          inner.write(src.subarray(0, Math.floor(src.length / 2)), offset);
          throw new Torn('torn write');
        }
        inner.write(src, offset);
      },
      truncate: (n) => inner.truncate(n),
      flush: () => {},
      close: () => {},
    };
  }
  open(): { state: SyncStateFile; log: RejectionLog } {
    const state = SyncStateFile.load(this.file(this.state), 'http://x/db/a');
    return { state, log: new RejectionLog(this.file(this.log), state) };
  }
}

const asObject = (log: RejectionLog): Record<number, string> => Object.fromEntries(log.all().map((m) => [m.changeId, m.reason]));

test('generated marks with torn writes: reopening gives the marks before or after each step', () => {
  const seed = testSeed();
  console.log(`rejection log seed ${seed} (OUTPOST_SEED=${seed} replays it)`);
  const random = rng(seed);
  const disk = new Disk();
  let { log } = disk.open();
  let model: Record<number, string> = {};
  let tears = 0;
  for (let step = 0; step < 3000; step++) {
    const changes = new Map<number, string | null>();
    for (let i = int(random, 1, 20); i > 0; i--) {
      const id = int(random, 1, 400);
      changes.set(id, random() < 0.4 ? null : `refused ${id} at step ${step}: ${'why '.repeat(int(random, 0, 300))}`);
    }
    const after = { ...model };
    for (const [id, reason] of changes) {
      if (reason === null) delete after[id];
      else after[id] = reason;
    }
    if (random() < 0.05) {
      disk.writesLeft = int(random, 1, 2);
      try {
        log.record(changes, { lastPushAt: step });
      } catch (e) {
        if (!(e instanceof Torn)) throw e;
        tears++;
      }
      disk.writesLeft = null;
      ({ log } = disk.open());
      const now = asObject(log);
      expect([model, after], `step ${step} (seed ${seed})`).toContainEqual(now);
      model = now;
    } else {
      log.record(changes);
      model = after;
      expect(asObject(log), `step ${step} (seed ${seed})`).toEqual(model);
    }
  }
  expect(tears).toBeGreaterThan(0);
  expect(asObject(disk.open().log), `reopened at the end (seed ${seed})`).toEqual(model);
  // Compaction keeps the file near its live size, however many marks came and went.
  expect(disk.log.size()).toBeLessThan(4 * JSON.stringify(model).length + 1024 * 1024);
});

test('marks and the state step recorded alongside land together', () => {
  const disk = new Disk();
  const { log, state } = disk.open();
  log.record(new Map([[7, 'no']]), { lastPushAt: 1234 });
  const again = disk.open();
  expect(again.log.reason(7)).toBe('no');
  expect(again.state.value.lastPushAt).toBe(1234);
  expect(state.value.rejectedLog).toEqual(again.state.value.rejectedLog);
});

test("a sync state's old rejected map moves into the log on open", () => {
  const disk = new Disk();
  const state = SyncStateFile.load(disk.file(disk.state), 'http://x/db/a');
  const legacy = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [String(i + 1), `old reason ${i + 1} ${'x'.repeat(1000)}`]));
  state.update({ rejected: legacy, rejectedLog: undefined });
  const { log, state: reopened } = disk.open();
  expect(asObject(log)).toEqual(legacy);
  expect(reopened.value.rejected).toBeUndefined();
  expect(asObject(disk.open().log)).toEqual(legacy);
});
