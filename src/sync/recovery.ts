/**
 * Pure: what to do with the local files after a crash, and what a revert keeps, from the sync
 * state and the WAL's length alone (engine.ts has the steps these refer to).
 *
 * The rule that needs the WAL's length: apply step d records the WAL's length as the
 * watermark, and step e checkpoints (folding those synced frames into the main file and
 * truncating the WAL) before it records watermark 0. A WAL shorter than the recorded watermark
 * therefore means step e's checkpoint ran: the main file already is the synced image, and no
 * WAL frame is synced.
 */
import { invariant } from './invariant.js';
import type { SyncState } from './state-file.js';

/** How to go back to the synced image (apply step b, and recovery). */
export interface RevertPlan {
  /** WAL bytes to keep: the synced frames, after which everything is local. */
  keepWalBytes: number;
  /**
   * Whether the main file is the synced image only once the pre-images are written back and it
   * is truncated to the synced size: when no synced frame remains in the WAL. (With synced
   * frames in the WAL, the last local checkpoint ran before the last apply, whose step d
   * cleared the pre-images: the main file holds nothing local.)
   */
  restoreMainFile: boolean;
}

export type RecoveryPlan =
  /** Phase idle: nothing was interrupted. */
  | { action: 'none' }
  /**
   * An apply was interrupted: revert, replay the saved records (from the replay file when it
   * holds any), then record `nextPhase`. From phase applying the revert goes back to the old
   * revision (step c's pages are local frames past the old watermark); from phase replaying to
   * the new one (step d recorded it).
   */
  | { action: 'finish-apply'; revert: RevertPlan; replayFrom: 'file' | 'none'; nextPhase: 'idle' };

type RecoveryInput = Pick<SyncState, 'phase' | 'walWatermarkBytes' | 'revertEntries' | 'replayEntries'>;

/** What a revert does, given the recorded watermark and the WAL's length now. */
export function revertPlan(state: Pick<SyncState, 'walWatermarkBytes' | 'revertEntries'>, walBytes: number): RevertPlan {
  invariant(state.walWatermarkBytes >= 0 && walBytes >= 0, 'byte counts are never negative');
  // Pre-images are cleared by step d, the only step that records a non-zero watermark; a
  // local checkpoint runs only at watermark 0.
  invariant(state.walWatermarkBytes === 0 || state.revertEntries === 0, 'pre-images exist only while no WAL frame is synced');
  const keepWalBytes = walBytes < state.walWatermarkBytes ? 0 : state.walWatermarkBytes;
  return { keepWalBytes, restoreMainFile: keepWalBytes === 0 };
}

/** What to finish when a database opens (see the header for the WAL rule). */
export function recoveryPlan(state: RecoveryInput, walBytes: number): RecoveryPlan {
  // Idle may still have synced WAL frames (a recovery from phase replaying keeps them): they
  // are part of the synced image, and the next apply's revert keeps them too.
  if (state.phase === 'idle') return { action: 'none' };
  return {
    action: 'finish-apply',
    revert: revertPlan(state, walBytes),
    replayFrom: state.replayEntries > 0 ? 'file' : 'none',
    nextPhase: 'idle',
  };
}
