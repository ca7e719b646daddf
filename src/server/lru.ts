/**
 * Keys in least-recently-used order, for the open-database cache.
 *
 * Why not a Map re-inserted at each use (its iteration order is then the LRU order): V8's Map
 * keeps a deleted entry in its bucket's chain until the table is rebuilt, which happens only
 * once the table fills up. Re-inserting a key at each use lengthens that key's chain by one
 * entry per use, and iteration from the oldest walks every deleted entry at the table's front.
 * With 6,300 databases open, one hot database's requests each paid about 14 µs for the
 * re-insert (0.07 µs with 100 open). Here a use moves a list node (recency-list.ts, shared
 * with the Node backend's descriptor pool); the Map is written only when a key comes or goes.
 */
import { RecencyList } from '../opfs-vfs/storage/recency-list.js';

export class Lru<K, V> {
  private readonly nodes = new Map<K, LruNode<K, V>>();
  private readonly order = new RecencyList<LruNode<K, V>>();

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
    if (node) this.order.touch(node);
  }

  /** Sets the value and counts a use. */
  set(key: K, value: V): void {
    const node = this.nodes.get(key);
    if (node) {
      node.value = value;
      this.order.touch(node);
      return;
    }
    const added: LruNode<K, V> = { key, value, prev: null, next: null };
    this.nodes.set(key, added);
    this.order.append(added);
  }

  delete(key: K): boolean {
    const node = this.nodes.get(key);
    if (!node) return false;
    this.nodes.delete(key);
    this.order.remove(node);
    return true;
  }

  /** The least recently used entry whose value `pick` accepts, or null; walks past the refused ones only. */
  oldest(pick: (value: V) => boolean = () => true): [K, V] | null {
    for (let node = this.order.head; node; node = node.next) if (pick(node.value)) return [node.key, node.value];
    return null;
  }
}

interface LruNode<K, V> {
  readonly key: K;
  value: V;
  prev: LruNode<K, V> | null;
  next: LruNode<K, V> | null;
}
