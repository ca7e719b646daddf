/**
 * The first bootstrap of a fresh database, streamed straight into its main file: each page is
 * written once, where it belongs, as it arrives, and memory holds one run of pages at a time
 * however large the database. Only a database that has nothing yet takes this path (no main
 * file, no WAL, never synced, no change id ever used): with nothing local there is nothing to
 * revert or replay, so steps a–f of engine.ts reduce to "write the image, record the revision".
 *
 * It runs before SQLite opens the files, and the sync state's phase `bootstrapping`, recorded
 * before the first page is written, is the marker: a database that opens in that phase holds a
 * partial image, which `discardBootstrap` empties (the bootstrap then starts over), so a half
 * file is never opened. The revision is recorded, with phase idle, only once every page is
 * flushed.
 */
import { SyncError } from '../errors.js';
import type { StorageBackend, StorageDirectory } from '../opfs-vfs/storage/backend.js';
import { DB_FILE, WAL_FILE } from '../opfs-vfs/storage/files.js';
import { PAGE_BYTES, type PageData, type PullHeader } from '../protocol/pull-updates.js';
import type { SyncTransport } from '../protocol/transport.js';
import { PageRun } from './page-run.js';
import { type ProgressListener, pullPages } from './pull.js';
import type { SyncStateFile } from './state-file.js';

/** Progress is told every this many pages (8 MiB). */
const PROGRESS_PAGES = 2048;

/** Whether `directory` can take its bootstrap straight into its main file (see the header). */
export async function canBootstrapInPlace(directory: StorageDirectory, state: SyncStateFile): Promise<boolean> {
  const s = state.value;
  if (s.revision !== null || s.phase !== 'idle' || s.changeIdFloor !== 0 || s.inherited) return false;
  return !((await directory.fileSize(DB_FILE)) ?? 0) && !((await directory.fileSize(WAL_FILE)) ?? 0);
}

/** Empties what an interrupted bootstrap wrote and records phase idle, so that it starts over. */
export async function discardBootstrap(directory: StorageDirectory, state: SyncStateFile): Promise<void> {
  for (const name of [DB_FILE, WAL_FILE]) {
    if (((await directory.fileSize(name)) ?? 0) === 0) continue;
    const file = await directory.open(name);
    try {
      file.truncate(0);
      file.flush();
    } finally {
      file.close();
    }
  }
  state.update({ phase: 'idle', revision: null, syncedDbPages: 0, walWatermarkBytes: 0 });
}

/**
 * Downloads the server's image into the empty main file and records its revision. On failure
 * the state stays in phase `bootstrapping`: the caller (or the next open) discards the pages.
 */
export async function bootstrapInPlace(directory: StorageDirectory, state: SyncStateFile, transport: SyncTransport, progress: ProgressListener = () => {}): Promise<void> {
  state.update({ phase: 'bootstrapping' });
  const db = await directory.open(DB_FILE);
  try {
    const { revision, dbPages } = await streamImage(transport, new PageRuns(db), progress);
    db.truncate(dbPages * PAGE_BYTES);
    db.flush();
    state.update({ revision, syncedDbPages: dbPages, walWatermarkBytes: 0, revertEntries: 0, phase: 'idle', replayEntries: 0, pageOne: null, lastPullAt: Date.now() });
  } finally {
    db.close();
  }
}

/**
 * The whole image in one request, as the official client asks for it: streamed, it needs no
 * chunks to bound memory (pull.ts's in-memory bootstrap does), and one answer is one revision.
 */
async function streamImage(transport: SyncTransport, runs: PageRuns, progress: ProgressListener): Promise<{ revision: string; dbPages: number }> {
  // One byte per page of the image the header announces: memory grows by 1 byte per 4 KiB page.
  let seen = new Uint8Array(0);
  let present = 0;
  let bytes = 0;
  let dbPages = 0;
  const told = (): void => progress({ phase: 'bootstrap', pagesDone: Math.min(present, dbPages), pagesTotal: dbPages, bytes });
  const onPage = (p: PageData, header: PullHeader): void => {
    dbPages = header.dbSize;
    // A page past the announced size would be written far beyond the file (a sparse file, or a quota error).
    if (!Number.isInteger(p.pageId) || p.pageId < 0 || p.pageId >= dbPages) throw new SyncError(`bootstrap: the server sent page ${p.pageId + 1} of a ${dbPages}-page database`, 'PROTOCOL');
    if (seen.length !== dbPages) {
      seen = new Uint8Array(dbPages);
      runs.reserve(dbPages * PAGE_BYTES);
    }
    runs.write(p.pageId + 1, p.page);
    if (seen[p.pageId] === 0) {
      seen[p.pageId] = 1;
      present++;
    }
    bytes += p.page.length;
    if (present % PROGRESS_PAGES === 0) told();
  };
  const header = await pullPages(transport, { clientRevision: '' }, onPage);
  runs.end();
  dbPages = header.dbSize;
  told();
  if (present < dbPages) throw new SyncError(`bootstrap: the server sent ${present} of ${dbPages} pages`, 'PROTOCOL');
  return { revision: header.serverRevision, dbPages };
}

/** Writes pages to a file, gathering consecutive ones into runs (page-run.ts). */
class PageRuns {
  private readonly run = new PageRun();
  /** The page number of the run's first page. */
  private first = 0;

  constructor(private readonly file: StorageBackend) {}

  /**
   * Grows the empty file to the image's size before the first write, so that no write extends
   * it: in Chromium, OPFS writes that extend a file cost about 1.6x those inside it (a 200 MB
   * bootstrap's writes, measured in a worker), and an exhausted OPFS quota fails here, at the
   * first page, not part-way.
   */
  reserve(bytes: number): void {
    if (this.file.size() < bytes) this.file.truncate(bytes);
  }

  write(pgno: number, page: Uint8Array): void {
    if (this.run.count > 0 && (pgno !== this.first + this.run.count || this.run.full)) this.end();
    if (this.run.count === 0) this.first = pgno;
    this.run.add(page);
  }

  /** Writes the run gathered so far. */
  end(): void {
    if (this.run.count === 0) return;
    this.file.write(this.run.bytes(), (this.first - 1) * PAGE_BYTES);
    this.run.clear();
  }
}
