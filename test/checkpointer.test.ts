import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { IDLE_CHECKPOINT_MIN_WAL_BYTES, IDLE_CHECKPOINT_MS, IdleCheckpointer, WalWriteCounter } from '../src/engine/checkpointer.js';
import type { StorageBackend } from '../src/opfs-vfs/storage/backend.js';
import { MemoryBackend } from '../src/opfs-vfs/storage/memory.js';
import { int, rng, testSeed } from './support/generate.js';

// A fake clock: the checkpointer's timer and its call times move only when the test says.
function checkpointer(): { cp: IdleCheckpointer; checkpoints: () => number } {
  let count = 0;
  const cp = new IdleCheckpointer({ idle: () => true, walBytes: () => IDLE_CHECKPOINT_MIN_WAL_BYTES, checkpoint: () => void count++ });
  return { cp, checkpoints: () => count };
}

describe('idle checkpoint', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('runs once a quiet period follows a write', () => {
    const { cp, checkpoints } = checkpointer();
    cp.schedule();
    vi.advanceTimersByTime(IDLE_CHECKPOINT_MS + 1);
    expect(checkpoints()).toBe(1);
  });

  it('waits while reads keep arriving, then runs after a full quiet period', () => {
    const { cp, checkpoints } = checkpointer();
    cp.schedule();
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(IDLE_CHECKPOINT_MS / 2);
      cp.postpone();
    }
    expect(checkpoints()).toBe(0);
    vi.advanceTimersByTime(IDLE_CHECKPOINT_MS + 1);
    expect(checkpoints()).toBe(1);
  });

  it('does not run for reads alone', () => {
    const { cp, checkpoints } = checkpointer();
    cp.postpone();
    vi.advanceTimersByTime(10 * IDLE_CHECKPOINT_MS);
    expect(checkpoints()).toBe(0);
  });

  it('does not run after cancel', () => {
    const { cp, checkpoints } = checkpointer();
    cp.schedule();
    cp.cancel();
    vi.advanceTimersByTime(10 * IDLE_CHECKPOINT_MS);
    expect(checkpoints()).toBe(0);
  });
});

describe('the WAL write counter', () => {
  // One behaviour: the size it keeps from its own writes and truncates is the backend's size,
  // whatever mix of writes (inside, at and past the end), truncates (shorter and longer),
  // failed writes (part written) and reads comes, and whenever the first size() is asked.
  it('answers size() as the backend does through generated writes, truncates and failures', () => {
    const seed = testSeed();
    const random = rng(seed);
    const inner = new MemoryBackend();
    inner.write(new Uint8Array(int(random, 0, 5000)), 0);
    let failNext = false;
    // A backend whose write may fail after writing part of its bytes (a full disk).
    const flaky: StorageBackend = {
      read: (dst, offset) => inner.read(dst, offset),
      write: (src, offset) => {
        if (!failNext) return inner.write(src, offset);
        failNext = false;
        inner.write(src.subarray(0, int(random, 0, src.length)), offset);
        throw new Error('disk full');
      },
      size: () => inner.size(),
      truncate: (n) => inner.truncate(n),
      flush: () => inner.flush(),
      close: () => inner.close(),
    };
    const counter = new WalWriteCounter(flaky);
    for (let step = 0; step < 3000; step++) {
      const at = `seed ${seed} (OUTPOST_SEED=${seed} replays it) step ${step}`;
      const roll = random();
      const size = inner.size();
      if (roll < 0.5) {
        failNext = random() < 0.1;
        const offset = int(random, 0, size + 100);
        try {
          counter.write(new Uint8Array(int(random, 1, 300)), offset);
        } catch {
          // The failure itself is the flaky backend's; what it left is checked below.
        }
      } else if (roll < 0.6) {
        counter.truncate(int(random, 0, size + 200));
      } else if (roll < 0.7) {
        counter.read(new Uint8Array(16), int(random, 0, size));
      }
      if (random() < 0.7) expect(counter.size(), at).toBe(inner.size());
    }
  });
});
