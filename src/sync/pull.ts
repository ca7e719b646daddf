/**
 * Downloading a pull: network only, nothing local changes here. The whole update is in memory
 * and well-formed before `apply.ts` touches a file. (A fresh database's first bootstrap does
 * not come here: bootstrap.ts streams it into the main file.)
 *
 * A database that has never synced bootstraps: the whole image, in chunks of
 * `BOOTSTRAP_CHUNK_PAGES` selected by page number, each from the revision of the first chunk;
 * then, when there was more than one chunk, a pull from that revision brings every page up to
 * one revision (a chunk may come from a newer revision than the first).
 */
import { SyncError } from '../errors.js';
import { encodeRoaring } from '../protocol/roaring.js';
import type { PageData, PullHeader, PullRequest } from '../protocol/pull-updates.js';
import type { PullResponse, SyncTransport } from '../protocol/transport.js';
import type { SyncProgress } from '../types.js';

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
  /** Page images by 1-based page number. */
  pages: Map<number, Uint8Array>;
}

/** What changed since `revision` (a bootstrap when null); null when nothing did. */
export async function fetchPull(
  transport: SyncTransport,
  revision: string | null,
  longPollTimeoutMs: number,
  progress: ProgressListener = () => {},
): Promise<PulledUpdate | null> {
  if (revision === null) return { ...(await fetchBootstrap(transport, progress)), baseRevision: null };
  const res = await transport.pull({ clientRevision: revision, longPollTimeoutMs });
  if (res.header.serverRevision === revision && res.pages.length === 0) return null;
  const update: PulledUpdate = { revision: res.header.serverRevision, dbPages: res.header.dbSize, pages: new Map(), baseRevision: revision };
  addPages(update.pages, res);
  progress({ phase: 'pull', pagesDone: update.pages.size, pagesTotal: update.pages.size, bytes: pageBytes(update.pages) });
  return update;
}

function pageBytes(pages: Map<number, Uint8Array>): number {
  let bytes = 0;
  for (const page of pages.values()) bytes += page.length;
  return bytes;
}

/** A whole image in chunks of pages, then the pages that changed while it downloaded. */
async function fetchBootstrap(transport: SyncTransport, progress: ProgressListener): Promise<PulledUpdate> {
  const pages = new Map<number, Uint8Array>();
  const chunk = chunkSelector;
  const first = await transport.pull({ clientRevision: '', serverPagesSelector: chunk(0) });
  const base = first.header.serverRevision;
  addPages(pages, first);
  let dbPages = first.header.dbSize;
  let revision = base;
  const told = (): void => progress({ phase: 'bootstrap', pagesDone: Math.min(pages.size, dbPages), pagesTotal: dbPages, bytes: pageBytes(pages) });
  told();
  if (dbPages > BOOTSTRAP_CHUNK_PAGES) {
    for (let from = BOOTSTRAP_CHUNK_PAGES; from < dbPages; from += BOOTSTRAP_CHUNK_PAGES) {
      addPages(pages, await transport.pull({ clientRevision: '', serverRevision: base, serverPagesSelector: chunk(from) }));
      told();
    }
    const rest = await transport.pull({ clientRevision: base });
    addPages(pages, rest);
    dbPages = rest.header.dbSize;
    revision = rest.header.serverRevision;
  }
  for (const pgno of pages.keys()) if (pgno > dbPages) pages.delete(pgno);
  if (pages.size < dbPages) throw new SyncError(`bootstrap: the server sent ${pages.size} of ${dbPages} pages`, 'PROTOCOL');
  return { revision, dbPages, pages };
}

/** The wire's page ids are zero-based; pages are numbered from 1 everywhere else. */
function addPages(pages: Map<number, Uint8Array>, res: PullResponse): void {
  for (const p of res.pages) pages.set(p.pageId + 1, p.page);
}
