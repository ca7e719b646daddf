/**
 * Downloading a pull: nothing local changes here. Pages go to a staging file in the database's
 * folder as they arrive (staging.ts; in memory when no slot is free), and the whole update is
 * there and well-formed before `apply.ts` touches a database file. (A fresh database's first bootstrap does
 * not come here: bootstrap.ts streams it into the main file.)
 *
 * A database that has never synced bootstraps: the whole image, in chunks of
 * `BOOTSTRAP_CHUNK_PAGES` selected by page number, each from the revision of the first chunk;
 * then, when there was more than one chunk, a pull from that revision brings every page up to
 * one revision (a chunk may come from a newer revision than the first).
 */
import { SyncError } from '../errors.js';
import { encodeRoaring } from '../protocol/roaring.js';
import { PAGE_BYTES, type PageData, type PullHeader, type PullRequest } from '../protocol/pull-updates.js';
import type { SyncTransport } from '../protocol/transport.js';
import type { SyncProgress } from '../types.js';
import { type CollectorSource, type PageCollector, type PageSet, inMemory } from './staging.js';

/** Told after each response of a download. */
export type ProgressListener = (progress: SyncProgress) => void;

/** Pages per bootstrap request (8 MiB of 4 KiB pages), so that no one response grows with the database. */
export const BOOTSTRAP_CHUNK_PAGES = 2048;

/** The page selector of the bootstrap chunk that starts at zero-based page `from`. */
export function chunkSelector(from: number): Uint8Array {
  return encodeRoaring(Array.from({ length: BOOTSTRAP_CHUNK_PAGES }, (_, i) => from + i));
}

/**
 * One pull-updates request, its pages handed to `onPage` as they arrive when the transport can
 * stream them (after the whole answer arrived otherwise). Resolves with the header once the
 * answer was complete; pages handed over by a request that then failed must be thrown away.
 */
export async function pullPages(transport: SyncTransport, request: Partial<PullRequest>, onPage: (page: PageData, header: PullHeader) => void): Promise<PullHeader> {
  if (transport.pullStream) return transport.pullStream(request, onPage);
  const res = await transport.pull(request);
  for (const page of res.pages) onPage(page, res.header);
  return res.header;
}

/** A downloaded update, waiting to be applied. */
export interface PulledUpdate {
  revision: string;
  /**
   * The local revision it was downloaded for (null: a bootstrap). An update whose base is no
   * longer the local revision (another pull applied first: live sync and a manual pull, or two
   * tabs) is stale and is not applied. Not set: not checked.
   */
  baseRevision?: string | null;
  /** The database's size in pages at that revision. */
  dbPages: number;
  /** Page images by 1-based page number: in a staging file (staging.ts) or in memory. */
  pages: PageSet;
}

/**
 * What changed since `revision` (a bootstrap when null); null when nothing did. The pages go
 * to a collector from `collect` as they arrive (a staging file in the database's folder), which
 * is released when the download fails or brings nothing; otherwise the apply releases it.
 */
export async function fetchPull(
  transport: SyncTransport,
  revision: string | null,
  longPollTimeoutMs: number,
  progress: ProgressListener = () => {},
  collect: CollectorSource = inMemory,
): Promise<PulledUpdate | null> {
  const pages = await collect();
  try {
    const update = revision === null ? { ...(await fetchBootstrap(transport, pages, progress)), baseRevision: null } : await fetchChanges(transport, revision, longPollTimeoutMs, pages, progress);
    if (update === null) pages.release();
    else pages.finish();
    return update;
  } catch (e) {
    pages.release();
    throw e;
  }
}

/** The pages that changed since `revision`, streamed into `pages`. */
async function fetchChanges(transport: SyncTransport, revision: string, longPollTimeoutMs: number, pages: PageCollector, progress: ProgressListener): Promise<PulledUpdate | null> {
  const header = await pullPages(transport, { clientRevision: revision, longPollTimeoutMs }, (p) => pages.add(p.pageId + 1, p.page));
  if (header.serverRevision === revision && pages.size === 0) return null;
  progress({ phase: 'pull', pagesDone: pages.size, pagesTotal: pages.size, bytes: pages.size * PAGE_BYTES });
  return { revision: header.serverRevision, dbPages: header.dbSize, pages, baseRevision: revision };
}

/**
 * A whole image in chunks of pages, then the pages that changed while it downloaded. Each chunk
 * must bring every page of its range its own header's size covers: one that leaves pages out
 * fails at once (PROTOCOL), rather than after as many requests as a garbage size implies.
 */
async function fetchBootstrap(transport: SyncTransport, pages: PageCollector, progress: ProgressListener): Promise<PulledUpdate> {
  const add = (p: PageData): void => pages.add(p.pageId + 1, p.page);
  const chunk = async (from: number, request: Partial<PullRequest>): Promise<PullHeader> => {
    const came = new Set<number>();
    const to = from + BOOTSTRAP_CHUNK_PAGES;
    const header = await pullPages(transport, { ...request, serverPagesSelector: chunkSelector(from) }, (p) => {
      if (p.pageId >= from && p.pageId < to) came.add(p.pageId);
      add(p);
    });
    const due = Math.max(0, Math.min(to, header.dbSize) - from);
    if (came.size < due) throw new SyncError(`bootstrap: the server sent ${came.size} of the ${due} pages of the chunk from page ${from + 1} of a ${header.dbSize}-page database`, 'PROTOCOL');
    return header;
  };
  const first = await chunk(0, { clientRevision: '' });
  const base = first.serverRevision;
  let dbPages = first.dbSize;
  let revision = base;
  const told = (): void => progress({ phase: 'bootstrap', pagesDone: Math.min(pages.size, dbPages), pagesTotal: dbPages, bytes: pages.size * PAGE_BYTES });
  told();
  if (dbPages > BOOTSTRAP_CHUNK_PAGES) {
    for (let from = BOOTSTRAP_CHUNK_PAGES; from < dbPages; from += BOOTSTRAP_CHUNK_PAGES) {
      await chunk(from, { clientRevision: '', serverRevision: base });
      told();
    }
    const rest = await pullPages(transport, { clientRevision: base }, add);
    dbPages = rest.dbSize;
    revision = rest.serverRevision;
  }
  pages.dropPast(dbPages);
  if (pages.size < dbPages) throw new SyncError(`bootstrap: the server sent ${pages.size} of ${dbPages} pages`, 'PROTOCOL');
  return { revision, dbPages, pages };
}
