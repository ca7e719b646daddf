/**
 * Opens a synced database: the sync files, the engine connection with change capture feeding
 * the change log and manual checkpoints, crash recovery, and the first bootstrap when the
 * server is reachable (a fresh database's streamed into its main file before SQLite opens it,
 * bootstrap.ts). Loaded only when a database syncs (open.ts imports it dynamically): with it
 * come the sync engine, the transport and protobufjs.
 */
import { Connection, type ConnectionOptions } from '../engine/connection.js';
import { OutpostError } from '../errors.js';
import type { StorageDirectory } from '../opfs-vfs/storage/backend.js';
import type { SyncTransport } from '../protocol/transport.js';
import type { SyncOptions } from '../types.js';
import { ChangeLog } from './change-log.js';
import { canBootstrapInPlace, bootstrapInPlace, discardBootstrap } from './bootstrap.js';
import { SyncEngine, retrying } from './engine.js';
import { RejectionLog } from './rejected-file.js';
import { ReplayFile } from './replay-file.js';
import { RevertFile } from './revert-file.js';
import { PullStaging } from './staging.js';
import { SyncStateFile, rotateClientId } from './state-file.js';
import type { HttpSend } from './http-send.js';
import { HttpTransport } from './transport.js';
import { DB_FILE, REJECTED_FILE, REPLAY_FILE, REVERT_FILE, SYNC_STATE_FILE, WAL_FILE } from '../opfs-vfs/storage/files.js';

/** What openSynced opens with: the engine's options but those sync sets itself. */
export type SyncedOpenOptions = Omit<ConnectionOptions, 'checkpoint' | 'capture' | 'afterWrite'>;

export async function openSynced(
  directory: StorageDirectory,
  options: SyncedOpenOptions,
  sync: SyncOptions,
  /** The server connection; HTTP to `sync.url` when not given (tests pass their own). */
  transport?: SyncTransport,
  /** `bootstrap: false`: a never-synced database waits for the first pull instead of fetching at open. */
  behaviour: { bootstrap: boolean } = { bootstrap: true },
  /** How the HTTP transport sends when `sync.fetch` is not given (Node's entry passes node:http's); `fetch()` by default. */
  send?: HttpSend,
): Promise<{ conn: Connection; engine: SyncEngine }> {
  if (typeof sync.url !== 'string' || !/^https?:\/\//.test(sync.url)) {
    throw new OutpostError(`sync.url must be an http(s) URL, got ${JSON.stringify(sync.url)}`, 'INVALID_ARGUMENT');
  }
  const files = {
    state: await directory.open(SYNC_STATE_FILE),
    revert: await directory.open(REVERT_FILE),
    replay: await directory.open(REPLAY_FILE),
    rejected: await directory.open(REJECTED_FILE),
  };
  const closeFiles = (): void => {
    for (const f of Object.values(files)) f.close();
  };
  let state: SyncStateFile;
  let rejected: RejectionLog;
  try {
    state = SyncStateFile.load(files.state, sync.url, sync.clientName);
    rejected = new RejectionLog(files.rejected, state);
  } catch (e) {
    closeFiles();
    throw e;
  }
  if (state.value.url !== sync.url) {
    closeFiles();
    throw new OutpostError(
      `${directory.label} syncs with ${state.value.url}, not ${sync.url}; open it with that URL, or delete it to sync with another`,
      'INVALID_ARGUMENT',
    );
  }
  if (state.value.home === undefined) state.update({ home: directory.label });
  else if (state.value.home !== directory.label) {
    // The files were copied or moved here: the replica at the old place may still push under
    // the old client id, and the server would then take this one's changes as already applied.
    rotateClientId(state, directory.label);
  }
  if (state.value.revision !== null && !((await directory.fileSize(DB_FILE)) ?? 0) && !((await directory.fileSize(WAL_FILE)) ?? 0)) {
    // The database file is gone but its sync state survived (a user deleted one file, or a
    // browser evicted part of the storage). The synced image is lost: start over from the
    // server, keeping the client id and the change-id floor so no id the server acknowledged
    // is used again.
    state.update({ revision: null, syncedDbPages: 0, walWatermarkBytes: 0, revertEntries: 0, phase: 'idle', replayEntries: 0 });
  }
  // A bootstrap into the main file that a crash interrupted: its partial image is never opened.
  if (state.value.phase === 'bootstrapping') await discardBootstrap(directory, state);
  // Pages a crash left staged belong to a pull that never applied (staging.ts): thrown away.
  const staging = new PullStaging(directory);
  try {
    await staging.discardLeftovers();
  } catch (e) {
    staging.close();
    closeFiles();
    throw e;
  }
  transport ??= new HttpTransport({ url: sync.url, authToken: sync.authToken, timeoutMs: sync.timeoutMs, fetch: sync.fetch, send });
  const inPlace = behaviour.bootstrap && !sync.live && (await canBootstrapInPlace(directory, state));
  let bootstrapError: unknown = null;
  if (inPlace) {
    // A fresh database streams its first image straight into its main file (bootstrap.ts),
    // before SQLite opens it.
    const stream = transport;
    try {
      await retrying(() => bootstrapInPlace(directory, state, stream), sync.retries ?? 2);
    } catch (e) {
      bootstrapError = e;
      // Offline (or refused): the database opens empty, as below; a dead store is left for the next open.
      await discardBootstrap(directory, state).catch(() => {});
    }
  }
  let engine: SyncEngine | null = null;
  let conn: Connection;
  let changes: ChangeLog;
  try {
    ({ conn, changes } = await ChangeLog.capturing(
      (capture) => Connection.open(directory, { ...options, checkpoint: 'manual', capture, afterWrite: () => engine?.afterWrite() }),
      () => state.value.changeIdFloor,
    ));
  } catch (e) {
    staging.close();
    closeFiles();
    throw e;
  }
  try {
    // An apply the last process left part-way (its phase says so) may have replaced the pages
    // already, the change log with them: the recovery below restores both, so only an idle
    // database can tell that it holds local data that never synced.
    const neverSynced = state.value.revision === null && state.value.phase === 'idle';
    if (neverSynced && !changes.exists() && conn.pageCount() > 0 && Number(conn.value("SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'")) > 0) {
      throw new OutpostError(
        `${directory.label} has local data that was never synced; open it without sync, or export it and start a synced database from the server`,
        'INVALID_ARGUMENT',
      );
    }
    const local = { conn, changes, state, revert: new RevertFile(files.revert, state.value.revertEntries), replay: new ReplayFile(files.replay), rejected, staging };
    engine = new SyncEngine(local, sync, transport);
    engine.recover();
    if (bootstrapError !== null) engine.recordError(bootstrapError);
  } catch (e) {
    await conn.close();
    staging.close();
    closeFiles();
    throw e;
  }
  // Live sync bootstraps in its own loop, so the app can open at once and show the progress.
  if (state.value.revision === null && behaviour.bootstrap && !sync.live && !inPlace) {
    // Bootstrap now when the server answers; offline, the database opens empty (writes are
    // captured as usual) and the next pull bootstraps and rebases them.
    try {
      const update = await engine.fetchPull(0);
      if (update) engine.applyPull(update);
    } catch {
      // Kept in the engine's status as lastError.
    }
  }
  return { conn, engine };
}
