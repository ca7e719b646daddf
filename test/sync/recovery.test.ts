/**
 * The recovery plan (src/sync/recovery.ts) as a table: every phase against every WAL length
 * that matters (empty, shorter than the watermark, at it, past it), with and without synced
 * frames. Pure: no files, no SQLite.
 */
import { describe, expect, test } from 'vitest';
import { InvariantError } from '../../src/sync/invariant.js';
import { type RecoveryPlan, recoveryPlan, revertPlan } from '../../src/sync/recovery.js';
import type { SyncPhase } from '../../src/sync/state-file.js';

const FRAME = 24 + 4096;
/** A watermark three frames into the WAL (past its 32-byte header). */
const W = 32 + 3 * FRAME;

const restoreAll = { keepWalBytes: 0, restoreMainFile: true };
const keepSynced = { keepWalBytes: W, restoreMainFile: false };

// [phase, watermark, WAL bytes, the revert a recovery does (null: nothing to recover)]
const table: [SyncPhase, number, number, typeof restoreAll | typeof keepSynced | null][] = [
  ['idle', 0, 0, null],
  ['idle', 0, W, null],
  ['idle', W, W, null],
  ['idle', W, W + 2 * FRAME, null],
  // Crash in step a or b (before, or during, the revert of an apply from watermark 0).
  ['applying', 0, 0, restoreAll],
  ['applying', 0, W, restoreAll],
  // An apply that started with synced frames still in the WAL (recovered from replaying).
  ['applying', W, 0, restoreAll],
  ['applying', W, W - FRAME, restoreAll],
  ['applying', W, W, keepSynced],
  ['applying', W, W + 2 * FRAME, keepSynced],
  // Crash after step d: the watermark covers step c's frames.
  ['replaying', W, W, keepSynced],
  ['replaying', W, W + 2 * FRAME, keepSynced],
  // Step e's checkpoint ran (the WAL is truncated) but watermark 0 was not recorded yet.
  ['replaying', W, 0, restoreAll],
  ['replaying', W, W - FRAME, restoreAll],
  // Crash after step e recorded watermark 0 (during the replay of step f).
  ['replaying', 0, 0, restoreAll],
  ['replaying', 0, 2 * FRAME, restoreAll],
];

describe('recoveryPlan', () => {
  for (const [phase, watermark, wal, revert] of table) {
    for (const replayEntries of [0, 3]) {
      test(`${phase}, watermark ${watermark}, WAL ${wal} bytes, ${replayEntries} saved records`, () => {
        const plan = recoveryPlan({ phase, walWatermarkBytes: watermark, revertEntries: 0, replayEntries }, wal);
        const expected: RecoveryPlan = revert === null ? { action: 'none' } : { action: 'finish-apply', revert, replayFrom: replayEntries > 0 ? 'file' : 'none', nextPhase: 'idle' };
        expect(plan).toEqual(expected);
      });
    }
  }

  test('pre-images are restored only when no WAL frame is synced', () => {
    expect(recoveryPlan({ phase: 'applying', walWatermarkBytes: 0, revertEntries: 5, replayEntries: 1 }, 10 * FRAME)).toEqual({
      action: 'finish-apply',
      revert: restoreAll,
      replayFrom: 'file',
      nextPhase: 'idle',
    });
  });

  test('pre-images alongside synced WAL frames break the design, and are refused', () => {
    expect(() => recoveryPlan({ phase: 'replaying', walWatermarkBytes: W, revertEntries: 2, replayEntries: 0 }, W)).toThrow(InvariantError);
    expect(() => revertPlan({ walWatermarkBytes: W, revertEntries: 1 }, W)).toThrow(InvariantError);
  });
});

describe('revertPlan', () => {
  test('a WAL shorter than the watermark means the checkpoint ran: nothing in the WAL is kept', () => {
    expect(revertPlan({ walWatermarkBytes: W, revertEntries: 0 }, W - 1)).toEqual(restoreAll);
  });
  test('a WAL at or past the watermark keeps exactly the synced frames', () => {
    expect(revertPlan({ walWatermarkBytes: W, revertEntries: 0 }, W)).toEqual(keepSynced);
    expect(revertPlan({ walWatermarkBytes: W, revertEntries: 0 }, W + FRAME)).toEqual(keepSynced);
  });
  test('watermark 0 drops the whole WAL and restores the main file', () => {
    expect(revertPlan({ walWatermarkBytes: 0, revertEntries: 4 }, 7 * FRAME)).toEqual(restoreAll);
  });
});
