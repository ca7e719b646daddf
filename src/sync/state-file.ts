/**
 * The sync state of one database, in its own file (`db-sync`), written atomically.
 *
 * Layout: two slots of `SLOT_BYTES` (64 KiB), at offsets 0 and SLOT_BYTES, each
 *
 *   offset 0  u32 length of the body, little endian (0: the slot was never written)
 *   offset 4  u32 FNV-1a checksum of the body, little endian
 *   offset 8  body: the state as UTF-8 JSON (`SyncState`), `length` bytes
 *
 * A write goes to the slot not holding the current record, with `seq` one higher, and is
 * flushed before it counts; a read takes the valid slot (length in range, checksum matching,
 * JSON parsing) with the higher `seq`. A torn write leaves the other slot, the previous state,
 * intact.
 */
import type { StorageBackend } from '../opfs-vfs/storage/backend.js';
import { fnv1a } from '../protocol/checksum.js';
import { randomHex } from '../protocol/ids.js';

const SLOT_BYTES = 64 * 1024;
const SLOT_HEADER_BYTES = 8;

/**
 * What an interrupted pull left to finish (see engine.ts): nothing, or its apply or its replay;
 * or a fresh database's bootstrap into its main file (bootstrap.ts), whose pages are discarded.
 */
export type SyncPhase = 'idle' | 'applying' | 'replaying' | 'bootstrapping';

export interface SyncState {
  seq: number;
  clientId: string;
  /** The remote URL this database syncs with (a different URL means a different database). */
  url: string;
  /** The server revision the synced image corresponds to; null before the bootstrap finished. */
  revision: string | null;
  /** Pages of the synced image (what revert truncates the main file to). */
  syncedDbPages: number;
  /** WAL bytes that belong to the synced image (frames after them are local). */
  walWatermarkBytes: number;
  /** Pre-images saved in the revert file (revert-file.ts). */
  revertEntries: number;
  /** Change ids at or below this are never reused. */
  changeIdFloor: number;
  phase: SyncPhase;
  /** Change records saved in the replay file during an apply (replay-file.ts). */
  replayEntries: number;
  /**
   * The server's page 1 of the update being applied (base64), from step d until the apply ends:
   * SQLite stamps its own change counter into page 1 when it commits it, and recovery must put
   * the server's bytes back if a crash comes before step e did. Null otherwise.
   */
  pageOne?: string | null;
  /**
   * The valid byte range of the rejection log (rejected-file.ts), which holds the change ids
   * refused and why; absent in states written before it existed.
   */
  rejectedLog?: { start: number; end: number };
  /**
   * Refused change ids, as states written before the rejection log kept them (a map that a few
   * dozen long reasons made overflow the slot). Moved into the log on open; never written now.
   */
  rejected?: Record<string, string>;
  /**
   * Where this replica lives (its storage directory's label: a Node path, an OPFS directory).
   * Opened somewhere else, its files were copied or moved: it gets a new client id (`rotate`).
   */
  home?: string;
  /** The highest change id sent under `clientId` (in flight or acknowledged); the floor when absent. */
  pushedUpTo?: number;
  /**
   * After a client id rotation: the previous id and the highest change id sent under it. Pending
   * records up to `upTo` that the server acknowledged for that id are done; the rest go under
   * the new id. Cleared once no such record is pending.
   */
  inherited?: { clientId: string; upTo: number } | null;
  /** When the last pull was applied, in milliseconds since the epoch. */
  lastPullAt: number | null;
  /** When the last push finished, in milliseconds since the epoch. */
  lastPushAt: number | null;
  bytesSent: number;
  bytesReceived: number;
}

/** A client id as the official client makes them: a readable name, then a random part. */
export function newClientId(clientName = 'outpost'): string {
  return `${clientName.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64) || 'outpost'}-${randomHex(16)}`;
}

/** The highest change id this replica sent under its client id. */
export function pushedUpTo(state: Readonly<SyncState>): number {
  return state.pushedUpTo ?? state.changeIdFloor;
}

/**
 * Gives the replica a new client id, because another replica uses the old one (its files were
 * copied): the server's acknowledgement for the old id would swallow this replica's changes.
 * Records up to what this replica sent under the old id stay covered by its acknowledgement.
 */
export function rotateClientId(state: SyncStateFile, home: string): void {
  const old = state.value;
  const prefix = old.clientId.replace(/-[0-9a-f]{32}$/, '');
  state.update({ clientId: newClientId(prefix), home, pushedUpTo: 0, inherited: { clientId: old.clientId, upTo: pushedUpTo(old) } });
}

export class SyncStateFile {
  private current: SyncState;
  private slot: 0 | 1;

  private constructor(
    private readonly file: StorageBackend,
    current: SyncState,
    slot: 0 | 1,
  ) {
    this.current = current;
    this.slot = slot;
  }

  /** The URL a database syncs with, from its state file; null when it has no valid state. */
  static storedUrl(file: StorageBackend): string | null {
    const states = [0, 1].map((i) => readSlot(file, i)).filter((x): x is SyncState => x !== null);
    if (states.length === 0) return null;
    return states.reduce((a, b) => (b.seq > a.seq ? b : a)).url;
  }

  /** Reads the state, or creates it for `url` when there is none. */
  static load(file: StorageBackend, url: string, clientName?: string): SyncStateFile {
    const slots = [0, 1].map((i) => readSlot(file, i));
    const best = slots.reduce<{ state: SyncState; slot: 0 | 1 } | null>((acc, state, i) => {
      if (!state) return acc;
      return !acc || state.seq > acc.state.seq ? { state, slot: i as 0 | 1 } : acc;
    }, null);
    if (best) return new SyncStateFile(file, best.state, best.slot);
    const fresh: SyncState = {
      seq: 0,
      clientId: newClientId(clientName),
      url,
      revision: null,
      syncedDbPages: 0,
      walWatermarkBytes: 0,
      revertEntries: 0,
      changeIdFloor: 0,
      phase: 'idle',
      replayEntries: 0,
      rejectedLog: { start: 0, end: 0 },
      lastPullAt: null,
      lastPushAt: null,
      bytesSent: 0,
      bytesReceived: 0,
    };
    const store = new SyncStateFile(file, fresh, 1);
    store.update({});
    return store;
  }

  get value(): Readonly<SyncState> {
    return this.current;
  }

  close(): void {
    this.file.close();
  }

  /** Writes `changes` durably (flushed) before returning. */
  update(changes: Partial<Omit<SyncState, 'seq'>>): void {
    const next: SyncState = { ...this.current, ...changes, seq: this.current.seq + 1 };
    const slot = this.slot === 0 ? 1 : 0;
    this.file.write(encodeSlot(next), slot * SLOT_BYTES);
    this.file.flush();
    this.current = next;
    this.slot = slot;
  }
}

/** One slot's bytes: header and body. */
function encodeSlot(state: SyncState): Uint8Array {
  const body = new TextEncoder().encode(JSON.stringify(state));
  if (body.length > SLOT_BYTES - SLOT_HEADER_BYTES) throw new Error(`the sync state is too large for its slot (${body.length} bytes)`);
  const record = new Uint8Array(SLOT_HEADER_BYTES + body.length);
  const view = new DataView(record.buffer);
  view.setUint32(0, body.length, true);
  view.setUint32(4, fnv1a(body), true);
  record.set(body, SLOT_HEADER_BYTES);
  return record;
}

/** The state in slot `i`, or null when the slot is empty, torn or corrupt. */
function readSlot(file: StorageBackend, i: number): SyncState | null {
  const head = new Uint8Array(SLOT_HEADER_BYTES);
  if (file.read(head, i * SLOT_BYTES) < SLOT_HEADER_BYTES) return null;
  const view = new DataView(head.buffer);
  const length = view.getUint32(0, true);
  if (length === 0 || length > SLOT_BYTES - SLOT_HEADER_BYTES) return null;
  const body = new Uint8Array(length);
  if (file.read(body, i * SLOT_BYTES + SLOT_HEADER_BYTES) < length) return null;
  if (fnv1a(body) !== view.getUint32(4, true)) return null;
  try {
    return withCurrentNames(JSON.parse(new TextDecoder().decode(body)) as StoredState);
  } catch {
    return null;
  }
}

/** A state as files may hold it: written before the times were renamed, they carry `lastPullMs`/`lastPushMs`. */
type StoredState = SyncState & { lastPullMs?: number | null; lastPushMs?: number | null };

function withCurrentNames(stored: StoredState): SyncState {
  const { lastPullMs, lastPushMs, ...state } = stored;
  return { ...state, lastPullAt: state.lastPullAt ?? lastPullMs ?? null, lastPushAt: state.lastPushAt ?? lastPushMs ?? null };
}
