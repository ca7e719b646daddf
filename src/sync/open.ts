/**
 * Opens a database, synced or not: the one entry the worker and Node use. A database that
 * does not sync opens here without loading the sync client; in the browser worker one that
 * does loads open-synced.ts (with the sync engine, the transport and protobufjs) on its first
 * open, by a dynamic import, so a page that never syncs never fetches or parses that code.
 * Node passes open-synced.ts's `openSynced` itself (node/): it has no bundle to keep small,
 * and its engine thread, run from source, loads TypeScript through CommonJS hooks that a
 * dynamic import would bypass.
 */
import { Connection } from '../engine/connection.js';
import type { StorageDirectory } from '../opfs-vfs/storage/backend.js';
import { SYNC_STATE_FILE } from '../opfs-vfs/storage/files.js';
import type { SyncTransport } from '../protocol/transport.js';
import type { SyncOptions } from '../types.js';
import type { SyncEngine } from './engine.js';
import type { openSynced as OpenSynced, SyncedOpenOptions } from './open-synced.js';
import { SyncStateFile } from './state-file.js';

/**
 * Opens a database, with sync when `sync` is given, and also when it is not but the database
 * already syncs (its sync state names a URL): a synced database stays synced. Opened without
 * change capture, its writes would never be pushed, and a checkpoint would fold them into the
 * main file, which must hold the server's image (the next pull would find it malformed). Such
 * an open makes no network request by itself; `pull`/`push` use the stored URL (pass the sync
 * options to give them a token).
 */
export async function openDatabase(
  directory: StorageDirectory,
  options: SyncedOpenOptions,
  sync?: SyncOptions,
  /** How a synced database opens: open-synced.ts, loaded on first use unless given. */
  synced: typeof OpenSynced = openSynced,
): Promise<{ conn: Connection; engine: SyncEngine | null }> {
  if (sync) return synced(directory, options, sync);
  if (((await directory.fileSize(SYNC_STATE_FILE)) ?? 0) > 0) {
    const file = await directory.open(SYNC_STATE_FILE);
    let url: string | null;
    try {
      url = SyncStateFile.storedUrl(file);
    } finally {
      file.close();
    }
    if (url !== null) return synced(directory, options, { url }, undefined, { bootstrap: false });
  }
  return { conn: await Connection.open(directory, options), engine: null };
}

/** open-synced.ts `openSynced`, loaded on first use. */
export async function openSynced(
  directory: StorageDirectory,
  options: SyncedOpenOptions,
  sync: SyncOptions,
  /** The server connection; HTTP to `sync.url` when not given (tests pass their own). */
  transport?: SyncTransport,
  /** `bootstrap: false`: a never-synced database waits for the first pull instead of fetching at open. */
  behaviour?: { bootstrap: boolean },
): Promise<{ conn: Connection; engine: SyncEngine }> {
  const synced = await import('./open-synced.js');
  return synced.openSynced(directory, options, sync, transport, behaviour);
}
