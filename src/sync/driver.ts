/**
 * The sync half of the Driver (see `../driver.ts`), over a `SyncEngine` in the same realm (the
 * worker, or Node). Downloaded pulls wait here under numbered ids, so pages never cross the
 * worker boundary: the UI thread fetches (outside the database's queue), then applies (inside
 * it, when no transaction is open).
 */
import { OutpostError, SyncError } from '../errors.js';
import type { PendingChange, SyncStatus } from '../types.js';
import type { SyncEngine } from './engine.js';
import type { PulledUpdate } from './pull.js';

export interface SyncDriver {
  /**
   * Downloads what changed on the server and keeps it in the engine's realm; resolves to an id
   * for `applyPull`, or null when nothing changed. Touches no local state.
   */
  fetchPull(longPollTimeoutMs?: number): Promise<number | null>;
  /** Applies a downloaded update; must run when no transaction is open. */
  applyPull(updateId: number): Promise<void>;
  /** Sends pending local changes; resolves to how many transactions the server took. */
  push(): Promise<number>;
  /** Null on a database opened without sync. */
  syncStatus(): Promise<SyncStatus | null>;
  pendingChanges(): Promise<PendingChange[]>;
  dropPendingChange(changeId: number): Promise<void>;
  retryRejectedChange(changeId: number): Promise<void>;
}

export function syncDriver(engine: SyncEngine | null): SyncDriver {
  const downloaded = new Map<number, PulledUpdate>();
  let nextId = 1;
  const need = (): SyncEngine => {
    if (!engine) throw new SyncError('this database was opened without sync; pass { sync: { url } } to open()', 'NOT_CONFIGURED');
    return engine;
  };
  return {
    fetchPull: async (longPoll) => {
      const update = await need().fetchPull(longPoll);
      if (!update) return null;
      const id = nextId++;
      downloaded.set(id, update);
      return id;
    },
    applyPull: async (id) => {
      const update = downloaded.get(id);
      downloaded.delete(id);
      // Only a caller that misuses the driver can get here: Database applies each id once.
      if (!update) throw new OutpostError(`no downloaded pull numbered ${id} (applied already?)`, 'INVALID_ARGUMENT');
      need().applyPull(update);
    },
    push: async () => need().push(),
    syncStatus: async () => engine?.status() ?? null,
    pendingChanges: async () => need().pendingChanges(),
    dropPendingChange: async (id) => need().dropPendingChange(id),
    retryRejectedChange: async (id) => need().retryRejected(id),
  };
}
