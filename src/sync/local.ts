/**
 * The local side of one synced database: its connection, its change log, its four sync
 * files and its staging files. Opened together by open.ts and closed together by the engine.
 */
import type { Connection } from '../engine/connection.js';
import type { ChangeLog } from './change-log.js';
import type { RejectionLog } from './rejected-file.js';
import type { ReplayFile } from './replay-file.js';
import type { RevertFile } from './revert-file.js';
import type { PullStaging } from './staging.js';
import type { SyncStateFile } from './state-file.js';

export interface LocalDatabase {
  conn: Connection;
  /** `_outpost_changes`: the pending change records. */
  changes: ChangeLog;
  /** `db-sync`: revision, synced size, watermark, phase, ... */
  state: SyncStateFile;
  /** `db-revert`: pre-images of synced pages a local checkpoint overwrote. */
  revert: RevertFile;
  /** `db-replay`: the pending change records during an apply. */
  replay: ReplayFile;
  /** `db-rejected`: the change records refused, and why. */
  rejected: RejectionLog;
  /** `db-pull-N`: the pages of pulls downloading or waiting to be applied. */
  staging: PullStaging;
}
