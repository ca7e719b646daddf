/**
 * The sync metadata of one database, in its own file (`db-sync`), written atomically.
 *
 * Layout: two slots of `SLOT_BYTES` at offsets 0 and SLOT_BYTES, each
 * `u32 length | u32 checksum | JSON`. A write goes to the slot not holding the current
 * record, with `seq` one higher, and is flushed before it counts; a read takes the valid slot
 * with the higher `seq`. A torn write leaves the other slot, the previous state, intact.
 */
import type { StorageBackend } from '../opfs-vfs/backend.js';
import { fnv1a } from '../protocol/checksum.js';
import { randomHex } from '../protocol/ids.js';

const SLOT_BYTES = 64 * 1024;

export type SyncPhase = 'idle' | 'applying' | 'replaying';

export interface SyncMeta {
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
  /** Pre-images saved in the revert file (entries of 4 + 4096 bytes). */
  revertEntries: number;
  /** Change ids at or below this are never reused. */
  changeIdFloor: number;
  phase: SyncPhase;
  /** Change records saved in the replay file during an apply. */
  replayEntries: number;
  /** Change ids the server refused, with why: kept locally, skipped by push until resolved. */
  rejected: Record<string, string>;
  lastPullMs: number | null;
  lastPushMs: number | null;
  bytesSent: number;
  bytesReceived: number;
}

/** A client id as the official client makes them: a readable name, then a random part. */
export function newClientId(clientName = 'outpost'): string {
  return `${clientName.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64) || 'outpost'}-${randomHex(16)}`;
}

export class MetaStore {
  private current: SyncMeta;
  private slot: 0 | 1;

  private constructor(
    private readonly file: StorageBackend,
    current: SyncMeta,
    slot: 0 | 1,
  ) {
    this.current = current;
    this.slot = slot;
  }

  /** Reads the metadata, or creates it for `url` when there is none. */
  static load(file: StorageBackend, url: string, clientName?: string): MetaStore {
    const slots = [0, 1].map((i) => MetaStore.readSlot(file, i));
    const best = slots.reduce<{ meta: SyncMeta; slot: 0 | 1 } | null>((acc, meta, i) => {
      if (!meta) return acc;
      return !acc || meta.seq > acc.meta.seq ? { meta, slot: i as 0 | 1 } : acc;
    }, null);
    if (best) return new MetaStore(file, best.meta, best.slot);
    const fresh: SyncMeta = {
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
      rejected: {},
      lastPullMs: null,
      lastPushMs: null,
      bytesSent: 0,
      bytesReceived: 0,
    };
    const store = new MetaStore(file, fresh, 1);
    store.update({});
    return store;
  }

  private static readSlot(file: StorageBackend, i: number): SyncMeta | null {
    const head = new Uint8Array(8);
    if (file.read(head, i * SLOT_BYTES) < 8) return null;
    const view = new DataView(head.buffer);
    const length = view.getUint32(0, true);
    if (length === 0 || length > SLOT_BYTES - 8) return null;
    const body = new Uint8Array(length);
    if (file.read(body, i * SLOT_BYTES + 8) < length) return null;
    if (fnv1a(body) !== view.getUint32(4, true)) return null;
    try {
      return JSON.parse(new TextDecoder().decode(body)) as SyncMeta;
    } catch {
      return null;
    }
  }

  get value(): Readonly<SyncMeta> {
    return this.current;
  }

  /** Writes `changes` durably (flushed) before returning. */
  update(changes: Partial<Omit<SyncMeta, 'seq'>>): void {
    const next: SyncMeta = { ...this.current, ...changes, seq: this.current.seq + 1 };
    const body = new TextEncoder().encode(JSON.stringify(next));
    if (body.length > SLOT_BYTES - 8) throw new Error('sync metadata is too large (too many rejected changes?)');
    const record = new Uint8Array(8 + body.length);
    const view = new DataView(record.buffer);
    view.setUint32(0, body.length, true);
    view.setUint32(4, fnv1a(body), true);
    record.set(body, 8);
    const slot = this.slot === 0 ? 1 : 0;
    this.file.write(record, slot * SLOT_BYTES);
    this.file.flush();
    this.current = next;
    this.slot = slot;
  }
}
