/**
 * The revert file (`db-revert`): pre-images, the synced image of pages that a local checkpoint
 * is about to overwrite in the main file. Reverting writes them back (engine.ts, invariant 1).
 *
 * Layout: entries of `REVERT_ENTRY_BYTES` from offset 0, back to back:
 *
 *   offset 0  u32 page number (1-based), little endian
 *   offset 4  the page's synced image, PAGE_BYTES (4096) bytes
 *
 * The number of valid entries is the sync state's `revertEntries`, recorded only after the
 * entries are flushed, so a torn append is never read: bytes past the count are left over from
 * a cleared or interrupted run. Clearing sets the count to 0 and does not shrink the file.
 */
import type { StorageBackend } from '../opfs-vfs/storage/backend.js';
import { PAGE_BYTES } from '../protocol/pull-updates.js';
import { invariant } from './invariant.js';

const PAGE_NUMBER_BYTES = 4;
export const REVERT_ENTRY_BYTES = PAGE_NUMBER_BYTES + PAGE_BYTES;

export class RevertFile {
  /** The page numbers of the valid entries, so a page is saved once. */
  private readonly saved = new Set<number>();
  private entries = 0;

  /** Opens the file holding `entries` valid entries (the sync state's count). */
  constructor(
    private readonly file: StorageBackend,
    entries: number,
  ) {
    const head = new Uint8Array(PAGE_NUMBER_BYTES);
    for (let i = 0; i < entries; i++) {
      file.read(head, i * REVERT_ENTRY_BYTES);
      this.saved.add(new DataView(head.buffer).getUint32(0, true));
    }
    this.entries = entries;
  }

  /** Valid entries, appended ones included (flush, then record this count). */
  get count(): number {
    return this.entries;
  }

  has(pageNumber: number): boolean {
    return this.saved.has(pageNumber);
  }

  /** Appends a page's pre-image. Not durable until `flush()`, and not valid until its count is recorded. */
  append(pageNumber: number, page: Uint8Array): void {
    invariant(page.length === PAGE_BYTES, `a pre-image is ${PAGE_BYTES} bytes, not ${page.length}`);
    invariant(!this.saved.has(pageNumber), `page ${pageNumber} already has a pre-image`);
    const entry = new Uint8Array(REVERT_ENTRY_BYTES);
    new DataView(entry.buffer).setUint32(0, pageNumber, true);
    entry.set(page, PAGE_NUMBER_BYTES);
    this.file.write(entry, this.entries * REVERT_ENTRY_BYTES);
    this.saved.add(pageNumber);
    this.entries++;
  }

  flush(): void {
    this.file.flush();
  }

  /** Every valid entry, in the order appended. */
  *pages(): Generator<{ pageNumber: number; page: Uint8Array }> {
    for (let i = 0; i < this.entries; i++) {
      const entry = new Uint8Array(REVERT_ENTRY_BYTES);
      const n = this.file.read(entry, i * REVERT_ENTRY_BYTES);
      invariant(n === REVERT_ENTRY_BYTES, `revert entry ${i} of ${this.entries} is incomplete (${n} bytes)`);
      yield { pageNumber: new DataView(entry.buffer).getUint32(0, true), page: entry.subarray(PAGE_NUMBER_BYTES) };
    }
  }

  /**
   * Forgets the entries appended after the first `count`, the count the sync state records:
   * appends whose count was never recorded (a local checkpoint that met a full disk) are not
   * valid, and the next checkpoint saves those pages again.
   */
  forgetAfter(count: number): void {
    const head = new Uint8Array(PAGE_NUMBER_BYTES);
    for (let i = count; i < this.entries; i++) {
      this.file.read(head, i * REVERT_ENTRY_BYTES);
      this.saved.delete(new DataView(head.buffer).getUint32(0, true));
    }
    this.entries = Math.min(this.entries, count);
  }

  /** Forgets every entry (record a count of 0 with it). */
  clear(): void {
    this.saved.clear();
    this.entries = 0;
  }

  close(): void {
    this.file.close();
  }
}
