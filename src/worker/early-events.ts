/**
 * What engines announce on the channel before a follower can call them (tabs.ts): the tables
 * changed and the sync progress. A follower's port from the broker comes by another road than
 * the channel and may come later, and a new engine's first announcement (every table: the
 * previous engine may have committed writes it never announced) must not be lost, or a live
 * query misses them; nor the first progress of the live sync it starts. Kept per engine, and
 * heard when that engine becomes current.
 */
import type { SyncProgress } from '../types.js';

interface Held {
  tables: Set<string>;
  progress: SyncProgress[];
}

/** Engines come one at a time: more than a few waiting means the oldest will never be current. */
const ENGINES_KEPT = 4;

export class EarlyEvents {
  private readonly held = new Map<string, Held>();

  constructor(private readonly progressKept: number) {}

  private of(engineId: string): Held {
    let held = this.held.get(engineId);
    if (!held) {
      if (this.held.size >= ENGINES_KEPT) this.held.delete(this.held.keys().next().value as string);
      held = { tables: new Set(), progress: [] };
      this.held.set(engineId, held);
    }
    return held;
  }

  tables(engineId: string, tables: readonly string[]): void {
    const held = this.of(engineId).tables;
    for (const t of tables) held.add(t);
  }

  progress(engineId: string, progress: SyncProgress): void {
    const held = this.of(engineId).progress;
    if (held.push(progress) > this.progressKept) held.shift();
  }

  /** What `engineId` announced (now current), and forgets every engine's. */
  take(engineId: string): { tables: string[]; progress: SyncProgress[] } {
    const held = this.held.get(engineId);
    this.held.clear();
    return { tables: [...(held?.tables ?? [])], progress: held?.progress ?? [] };
  }
}
