/**
 * A map keyed by SQLite pointers (a connection's `sqlite3*`, a file's `sqlite3_file*`), which
 * SQLite's allocator hands out again as soon as they are freed.
 *
 * Why not a plain `Map` with `delete`: V8's Map leaves a deleted entry in its bucket's chain
 * until the table is rebuilt, which happens only once the table fills up. Deleting a key and
 * adding the same key again therefore lengthens that one bucket's chain by one entry each time,
 * and every lookup of the key walks all of them. A server evicting one database and opening
 * another does exactly that: the freed connection's and files' addresses come back for the next
 * open. With about 6,300 databases open, `files.set` in the VFS's xOpen took 34 µs instead of
 * 0.3, and every lookup of the churned keys (each VFS read and write, each authorizer and
 * progress callback) paid a share of it.
 *
 * `HandleMap` never deletes: a removed key keeps its entry, holding `undefined`, and adding it
 * again writes into that entry. When vacant entries outnumber live ones (and there are more than
 * a few), the map is rebuilt from the live ones, so memory stays bounded by twice the live count.
 * Values are never `undefined`.
 */
export class HandleMap<V> {
  private entries = new Map<number, V | undefined>();
  private live = 0;

  get size(): number {
    return this.live;
  }

  get(key: number): V | undefined {
    return this.entries.get(key);
  }

  has(key: number): boolean {
    return this.entries.get(key) !== undefined;
  }

  set(key: number, value: V): void {
    if (this.entries.get(key) === undefined) this.live++;
    this.entries.set(key, value);
  }

  /** Removes `key`; returns whether it was there. */
  delete(key: number): boolean {
    if (this.entries.get(key) === undefined) return false;
    this.entries.set(key, undefined);
    this.live--;
    const vacant = this.entries.size - this.live;
    if (vacant > REBUILD_MIN_VACANT && vacant > this.live) this.rebuild();
    return true;
  }

  *values(): IterableIterator<V> {
    for (const value of this.entries.values()) if (value !== undefined) yield value;
  }

  private rebuild(): void {
    const kept = new Map<number, V | undefined>();
    for (const [key, value] of this.entries) if (value !== undefined) kept.set(key, value);
    this.entries = kept;
  }
}

/** Below this many vacant entries the map is never rebuilt: a few stale keys cost nothing. */
const REBUILD_MIN_VACANT = 64;
