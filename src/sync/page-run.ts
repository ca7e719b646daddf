/**
 * Pages gathered for one write (bootstrap.ts into the main file, staging.ts into a staging
 * file): consecutive pages arrive together, and one write of up to 1 MiB is cheaper than 256
 * (the Node backend passes it to the kernel in 64 KiB pieces, storage/node.ts says why).
 * The buffer grows by doubling as pages come, so a pull of a few pages never pays for zeroing
 * 1 MiB (that zeroing was 2% of the sync simulation's CPU). Imports only the page size.
 */
import { PAGE_BYTES } from '../protocol/pull-updates.js';

/** Pages gathered before one write (1 MiB). */
export const RUN_PAGES = 256;

export class PageRun {
  private buffer = new Uint8Array(PAGE_BYTES);
  /** How many pages the run holds. */
  count = 0;

  get full(): boolean {
    return this.count === RUN_PAGES;
  }

  /** Adds a copy of `page` (which may be a view into a network buffer) at the end of the run. */
  add(page: Uint8Array): void {
    if ((this.count + 1) * PAGE_BYTES > this.buffer.length) {
      const grown = new Uint8Array(Math.min(RUN_PAGES, (this.buffer.length / PAGE_BYTES) * 2) * PAGE_BYTES);
      grown.set(this.buffer.subarray(0, this.count * PAGE_BYTES));
      this.buffer = grown;
    }
    this.buffer.set(page, this.count * PAGE_BYTES);
    this.count++;
  }

  /** The run's bytes, a view valid until the next `add` or `clear`. */
  bytes(): Uint8Array {
    return this.buffer.subarray(0, this.count * PAGE_BYTES);
  }

  /** A copy of the run's `i`th page. */
  page(i: number): Uint8Array {
    return this.buffer.slice(i * PAGE_BYTES, (i + 1) * PAGE_BYTES);
  }

  /** Empties the run, keeping its buffer for the next one. */
  clear(): void {
    this.count = 0;
  }
}
