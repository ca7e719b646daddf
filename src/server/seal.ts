/**
 * The seal of a closed database under durability 'normal': its files are made durable, then
 * its revision log is marked clean (revlog.ts `RevisionLog.seal`).
 *
 * A clean-close marker vouches for data: a log that reads clean after a power loss keeps its
 * generation, so every commit it lists must be in the database the next process opens.
 * Under 'normal' a commit is not flushed (SQLite's synchronous=NORMAL) and closing the
 * database flushes nothing, so the log of an evicted database is left unclean (trusted by this
 * process, and on this boot) and marked only here, in this order:
 *   1. fsync the WAL, then its folder (a new database's names, and a rewritten log's rename,
 *      are not flushed under 'normal'), unless an fsync of the folder that began after the
 *      database closed has ended (seals made a minute after their close mostly share one).
 *      Not the main file: only checkpoints write it, and under 'normal' SQLite fsyncs the WAL
 *      before a checkpoint copies frames and the main file once a checkpoint has copied them
 *      all; until then the WAL, durable, still holds them (an fsync of the main file was
 *      0.06 ms of CPU a seal here);
 *   2. unless the database was opened again meanwhile (`stillClosed`, asked right before),
 *      append the marker, in the same event-loop turn;
 *   3. fsync the log.
 * A power loss before 3 keeps any subset of the marker: either way the log is right. Every
 * fsync runs on libuv's thread pool, never on the event loop. Under 'full' every commit is on
 * the device when it is acknowledged, so the log's `close` writes the marker itself and the
 * only step left is 3.
 */
import * as path from 'node:path';
import { WAL_FILE } from '../opfs-vfs/storage/files.js';
import type { HostedDatabaseOptions } from './hosted-database.js';
import { type LogFiles, NODE_FILES, RevisionLog } from './revlog.js';

/** When (`performance.now()`) the last folder fsync that has ended began, by folder, per process (its file calls). */
const folderSyncedMs = new WeakMap<LogFiles, Map<string, number>>();

/**
 * Seals database `name` of `dataDir`, closed at `closedAtMs` (`performance.now()`); resolves
 * once its marker is on the device, or once `stillClosed` said no.
 */
export async function sealClosed(dataDir: string, name: string, options: HostedDatabaseOptions, closedAtMs: number, stillClosed: () => boolean): Promise<void> {
  const file = path.join(dataDir, `${name}.db`);
  const files = options.revlogFiles ?? NODE_FILES;
  if (options.durability === 'normal') {
    if (options.directory) {
      // Tests' storage (memory, simulated power loss): its flush is synchronous and cheap.
      const directory = options.directory(file);
      if ((await directory.fileSize(WAL_FILE)) !== null) {
        const backend = await directory.open(WAL_FILE);
        backend.flush();
        backend.close();
      }
      await directory.release();
    } else await fsyncPath(`${file}-wal`, files);
    let synced = folderSyncedMs.get(files);
    if (!synced) folderSyncedMs.set(files, (synced = new Map()));
    if ((synced.get(dataDir) ?? -Infinity) <= closedAtMs) {
      const beganMs = performance.now();
      await fsyncPath(dataDir, files);
      synced.set(dataDir, Math.max(beganMs, synced.get(dataDir) ?? -Infinity));
    }
  }
  if (!stillClosed()) return;
  await RevisionLog.seal(`${file}-revlog`, files);
}

/** fsyncs a file or a folder off the event loop; a missing one is skipped. */
async function fsyncPath(p: string, files: LogFiles): Promise<void> {
  let fd: number;
  try {
    fd = files.openSync(p, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  try {
    await files.fsync(fd);
  } finally {
    files.closeSync(fd);
  }
}
