/**
 * A client's pages as its pulls left them, without a client: each pull applies its answer's
 * pages (all of them after a ReplaceBase), so a test can compare what a client would hold with
 * the server's whole image at any time.
 */
import { APPLY_REPLACE_BASE, type PageData } from '../../src/protocol/pull-updates.js';
import type { HostedDatabase } from '../../src/server/hosted-database.js';
import { InProcessTransport } from '../../src/server/in-process-transport.js';
import type { SyncTransport } from '../../src/protocol/transport.js';

/** The pages a client would hold, kept from the pulls it made. */
export class PageReplica {
  revision = '';
  private pages = new Map<number, Uint8Array>();
  private size = 0;

  async pull(db: HostedDatabase): Promise<void> {
    const t = new InProcessTransport(db);
    try {
      await this.pullFrom(t);
    } finally {
      t.close();
    }
  }

  async pullFrom(transport: Pick<SyncTransport, 'pull'>): Promise<void> {
    const { header, pages } = await transport.pull({ clientRevision: this.revision });
    if (header.applyMode === APPLY_REPLACE_BASE) this.pages.clear();
    for (const p of pages) this.pages.set(p.pageId, p.page);
    this.size = header.dbSize;
    this.revision = header.serverRevision;
  }

  /** Pages that differ from the server's whole image (`whole`), by page number. */
  differences(whole: PageData[]): number[] {
    const differ = whole.filter((p) => Buffer.compare(this.pages.get(p.pageId) ?? new Uint8Array(0), p.page) !== 0).map((p) => p.pageId);
    return whole.length === this.size ? differ : [...differ, -1];
  }
}

/** The server's whole image now. */
export async function wholeImage(db: HostedDatabase): Promise<PageData[]> {
  const t = new InProcessTransport(db);
  const { pages } = await t.pull({});
  t.close();
  return pages;
}

