/**
 * The local checkpoint: keeps the WAL bounded during a long offline session. A synced database
 * never checkpoints on its own (its WAL's local frames must stay separable from the synced
 * image), so once the WAL passes `maxLocalWalBytes` this saves the main file's image of every
 * synced page the WAL's frames touch (pre-images) into the revert file, flushes it, records
 * the count, and only then checkpoints. Reverting writes the pre-images back (apply.ts).
 */
import { PAGE_BYTES } from '../protocol/pull-updates.js';
import { WAL_FRAME_HEADER_BYTES, WAL_HEADER_BYTES } from '../sqlite/format.js';
import { invariant } from './invariant.js';
import type { LocalDatabase } from './local.js';

/** Checkpoints the local WAL when it is past `maxLocalWalBytes` (and nothing else is going on). */
export function maybeCheckpointLocal(local: LocalDatabase, maxLocalWalBytes: number): void {
  const { conn, state } = local;
  const synced = state.value;
  // While synced frames sit in the WAL (watermark > 0), the main file is not the synced image,
  // so its pages are no pre-images; the next apply folds those frames in.
  if (synced.phase !== 'idle' || synced.walWatermarkBytes !== 0 || conn.inTransaction) return;
  invariant(local.revert.count === synced.revertEntries, `the revert file has ${local.revert.count} entries, the sync state ${synced.revertEntries}`);
  const { db, wal } = conn.rawFiles();
  if (wal.size() < maxLocalWalBytes) return;
  const page = new Uint8Array(PAGE_BYTES);
  let added = 0;
  try {
    for (const pgno of walPageNumbers(wal)) {
      // Pages past the synced size need no pre-image: revert truncates them away.
      if (pgno > synced.syncedDbPages || local.revert.has(pgno)) continue;
      db.read(page, (pgno - 1) * PAGE_BYTES);
      local.revert.append(pgno, page);
      added++;
    }
    local.revert.flush();
    if (added > 0) state.update({ revertEntries: local.revert.count });
  } catch (e) {
    // A full disk: the pre-images whose count was not recorded are not valid. Nothing was
    // checkpointed, so the files are as before.
    local.revert.forgetAfter(state.value.revertEntries);
    throw e;
  }
  // A checkpoint that fails (the main file cannot grow) leaves the WAL whole: the saved
  // pre-images equal the main file's pages then, and writing them back changes nothing.
  conn.exec('PRAGMA wal_checkpoint(TRUNCATE)');
}

/**
 * The page numbers the WAL's frames write, ascending, each once. SQLite's WAL format
 * (sqlite/format.ts): a 32-byte file header, then frames of a 24-byte header and a page.
 */
function walPageNumbers(wal: { size(): number; read(dst: Uint8Array, offset: number): number }): number[] {
  const frameBytes = WAL_FRAME_HEADER_BYTES + PAGE_BYTES;
  const pages = new Set<number>();
  const header = new Uint8Array(4);
  for (let at = WAL_HEADER_BYTES; at + frameBytes <= wal.size(); at += frameBytes) {
    wal.read(header, at);
    // A frame header starts with its page number, big endian.
    pages.add(new DataView(header.buffer).getUint32(0, false));
  }
  return [...pages].sort((a, b) => a - b);
}
