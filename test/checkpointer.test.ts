import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { IDLE_CHECKPOINT_MIN_WAL_BYTES, IDLE_CHECKPOINT_MS, IdleCheckpointer } from '../src/engine/checkpointer.js';

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
