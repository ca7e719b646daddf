/**
 * An in-memory `PushStore` (outpost/sw's queue store) that can be killed: after `killAfter`
 * more writes, the next write throws `Killed` without happening, as a service worker stopped
 * between two IndexedDB transactions would leave it. What was written stays.
 */
import type { PushStore, StoredPush } from '../../src/sw/queue.js';

export class Killed extends Error {
  constructor() {
    super('killed between two writes');
  }
}

export class MemoryStore implements PushStore {
  entries: StoredPush[] = [];
  /** Writes left before the kill; Infinity for none. */
  killAfter = Infinity;
  writes = 0;
  private nextId = 1;

  async add(entry: { request: Request; metadata: object }): Promise<void> {
    this.write();
    this.entries.push({ id: this.nextId++, request: entry.request, metadata: entry.metadata });
  }
  async all(): Promise<StoredPush[]> {
    return [...this.entries];
  }
  async remove(id: number): Promise<void> {
    this.write();
    this.entries = this.entries.filter((e) => e.id !== id);
  }

  private write(): void {
    if (this.killAfter <= 0) throw new Killed();
    this.killAfter--;
    this.writes++;
  }
}
