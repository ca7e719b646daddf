/**
 * Which commit last wrote each page of a database (revlog.ts keeps one per hosted database):
 * the pages changed after a seq are those whose last write came after it, so one number per
 * page answers every incremental pull however old its revision, in memory that follows the
 * database's size and not its history.
 *
 * It replaced a list of every commit's pages (2,048 to 4,096 commits kept, about 300 bytes of
 * heap each): a database that had taken a few thousand commits held about a megabyte, so a
 * server with 10,000 busy databases grew by gigabytes over a day, and a client more than 4,096
 * commits behind got the whole database. Here a small database (3 pages) holds a few dozen
 * bytes, and a database of N pages 8N.
 *
 * Pure logic; may import nothing.
 */
export class PageWrites {
  /** `last[p]`: the seq of the last commit that wrote page p (1-based), 0 for none. */
  private last = new Float64Array(8);
  /** The highest page written (the scan's end). */
  private top = 0;

  /** Commit `seq` wrote `pages`; seqs come in increasing order. */
  record(seq: number, pages: Iterable<number>): void {
    for (const p of pages) {
      if (!Number.isSafeInteger(p) || p < 1) throw new RangeError(`page numbers start at 1, got ${p}`);
      if (p >= this.last.length) {
        const grown = new Float64Array(Math.max(p + 1, this.last.length * 2));
        grown.set(this.last);
        this.last = grown;
      }
      this.last[p] = seq;
      if (p > this.top) this.top = p;
    }
  }

  /** The pages written by a commit after `seq`. */
  since(seq: number): Set<number> {
    const pages = new Set<number>();
    for (let p = 1; p <= this.top; p++) if (this.last[p]! > seq) pages.add(p);
    return pages;
  }

  /** Whether a commit after `seq` wrote page `page`. */
  wroteSince(seq: number, page: number): boolean {
    return page >= 1 && page <= this.top && this.last[page]! > seq;
  }

  /**
   * The same knowledge as commits, oldest first: for each seq that is some page's last write,
   * the pages it was last for. Replayed through `record` in order, they give back this map
   * (the revision log rewrites itself as these).
   */
  groups(): { seq: number; pages: Uint32Array }[] {
    const bySeq = new Map<number, number[]>();
    for (let p = 1; p <= this.top; p++) {
      const seq = this.last[p]!;
      if (seq === 0) continue;
      const list = bySeq.get(seq);
      if (list) list.push(p);
      else bySeq.set(seq, [p]);
    }
    return [...bySeq].sort((a, b) => a[0] - b[0]).map(([seq, pages]) => ({ seq, pages: Uint32Array.from(pages) }));
  }

  /** The highest page written so far (what a rewrite of the log may list). */
  get highestPage(): number {
    return this.top;
  }
}
