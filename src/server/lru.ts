/**
 * Keys in least-recently-used order, for the open-database cache.
 *
 * Why not a Map re-inserted at each use (its iteration order is then the LRU order): V8's Map
 * keeps a deleted entry in its bucket's chain until the table is rebuilt, which happens only
 * once the table fills up. Re-inserting a key at each use lengthens that key's chain by one
 * entry per use, and iteration from the oldest walks every deleted entry at the table's front.
 * With 6,300 databases open, one hot database's requests each paid about 14 µs for the
 * re-insert (0.07 µs with 100 open). Here a use moves a list node; the Map is written only when
 * a key comes or goes.
 */
export class Lru<K, V> {
  private readonly nodes = new Map<K, LruNode<K, V>>();
  /** Least recently used. */
  private head: LruNode<K, V> | null = null;
  private tail: LruNode<K, V> | null = null;

  get size(): number {
    return this.nodes.size;
  }

  /** The value, without counting a use. */
  get(key: K): V | undefined {
    return this.nodes.get(key)?.value;
  }

  has(key: K): boolean {
    return this.nodes.has(key);
  }

  /** Counts a use: the key becomes the most recently used. */
  touch(key: K): void {
    const node = this.nodes.get(key);
    if (!node || node === this.tail) return;
    this.unlink(node);
    this.append(node);
  }

  /** Sets the value and counts a use. */
  set(key: K, value: V): void {
    const node = this.nodes.get(key);
    if (node) {
      node.value = value;
      this.touch(key);
      return;
    }
    const added: LruNode<K, V> = { key, value, prev: null, next: null };
    this.nodes.set(key, added);
    this.append(added);
  }

  delete(key: K): boolean {
    const node = this.nodes.get(key);
    if (!node) return false;
    this.nodes.delete(key);
    this.unlink(node);
    return true;
  }

  /** The least recently used entry whose value `pick` accepts, or null; walks past the refused ones only. */
  oldest(pick: (value: V) => boolean = () => true): [K, V] | null {
    for (let node = this.head; node; node = node.next) if (pick(node.value)) return [node.key, node.value];
    return null;
  }

  private append(node: LruNode<K, V>): void {
    node.prev = this.tail;
    node.next = null;
    if (this.tail) this.tail.next = node;
    else this.head = node;
    this.tail = node;
  }

  private unlink(node: LruNode<K, V>): void {
    if (node.prev) node.prev.next = node.next;
    else this.head = node.next;
    if (node.next) node.next.prev = node.prev;
    else this.tail = node.prev;
    node.prev = null;
    node.next = null;
  }
}

interface LruNode<K, V> {
  readonly key: K;
  value: V;
  prev: LruNode<K, V> | null;
  next: LruNode<K, V> | null;
}
