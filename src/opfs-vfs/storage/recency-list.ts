/**
 * Items in least-recently-used order, linked through their own `prev`/`next` fields: a use
 * moves an item to the end, and nothing is looked up or allocated. The Node backend's
 * descriptor pool (descriptors.ts) and the server's open-database LRU (server/lru.ts) both
 * keep their order here; it sits in `storage/`, the lowest folder both may import.
 *
 * Why not a Map re-inserted at each use (its iteration order is then the LRU order): V8's Map
 * keeps a deleted entry in its bucket's chain until the table is rebuilt, so a key deleted and
 * added again at each use lengthens its own chain every time (server/lru.ts has the figures).
 *
 * Contract / may import: nothing (part of `storage/`).
 */
export interface Linked<T> {
  prev: T | null;
  next: T | null;
}

export class RecencyList<T extends Linked<T>> {
  /** Least recently used. */
  head: T | null = null;
  private tail: T | null = null;
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Adds `item` (not in the list) as the most recently used. */
  append(item: T): void {
    item.prev = this.tail;
    item.next = null;
    if (this.tail) this.tail.next = item;
    else this.head = item;
    this.tail = item;
    this.count++;
  }

  /** Makes `item` (in the list) the most recently used. */
  touch(item: T): void {
    if (item === this.tail) return;
    this.remove(item);
    this.append(item);
  }

  /** Takes `item` (in the list) out of it. */
  remove(item: T): void {
    if (item.prev) item.prev.next = item.next;
    else this.head = item.next;
    if (item.next) item.next.prev = item.prev;
    else this.tail = item.prev;
    item.prev = null;
    item.next = null;
    this.count--;
  }
}
