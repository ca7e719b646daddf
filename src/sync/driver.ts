/**
 * The sync operations as a `Driver` exposes them, over a `SyncEngine` in the same realm
 * (the worker, or Node). Downloaded pulls wait here as numbered tickets, so pages never cross
 * the worker boundary: the UI thread fetches (outside the database's queue), then applies
 * (inside it, when no transaction is open).
 */
import { SyncError } from '../errors.js';
import type { PendingChange, SyncStatus } from '../types.js';
import type { SyncEngine } from './engine.js';
import type { PulledUpdate } from './pull.js';

export interface SyncDriver {
  syncFetchPull(longPollTimeoutMs?: number): Promise<number | null>;
  syncApplyPull(ticket: number): Promise<void>;
  syncPush(): Promise<number>;
  syncStatus(): Promise<SyncStatus | null>;
  syncPending(): Promise<PendingChange[]>;
  syncDrop(changeId: number): Promise<void>;
  syncRetry(changeId: number): Promise<void>;
}

export function syncDriver(engine: SyncEngine | null): SyncDriver {
  const tickets = new Map<number, PulledUpdate>();
  let nextTicket = 1;
  const need = (): SyncEngine => {
    if (!engine) throw new SyncError('this database was opened without sync; pass { sync: { url } } to open()', 'NOT_CONFIGURED');
    return engine;
  };
  return {
    syncFetchPull: async (longPoll) => {
      const ticket = await need().fetchPull(longPoll);
      if (!ticket) return null;
      const id = nextTicket++;
      tickets.set(id, ticket);
      return id;
    },
    syncApplyPull: async (id) => {
      const ticket = tickets.get(id);
      tickets.delete(id);
      if (!ticket) throw new SyncError(`no downloaded pull numbered ${id}`, 'NOT_CONFIGURED');
      need().applyPull(ticket);
    },
    syncPush: async () => need().push(),
    syncStatus: async () => engine?.status() ?? null,
    syncPending: async () => need().pendingChanges(),
    syncDrop: async (id) => need().dropPendingChange(id),
    syncRetry: async (id) => need().retryRejected(id),
  };
}
