/**
 * The rejection log (`db-rejected`): which pending change records were refused (by the server,
 * or by a replay onto pulled data) and why. A refused change stays in the change log, is
 * skipped by pushes and reported until the application retries or drops it, however many there
 * are and however long their reasons: the marks live here, not in the sync state's fixed slot.
 *
 * Layout: a sequence of entries, each
 *
 *   offset 0  u32 length of the body, little endian
 *   offset 4  body: UTF-8 JSON `[changeId, reason]`, or `[changeId, null]` (the mark removed)
 *
 * Only the byte range `[start, end)` that the sync state records (`rejectedLog`) is valid;
 * later entries overrule earlier ones for the same id. A write puts new entries past `end`
 * (where a crash's torn bytes may lie: nothing reads them), flushes, and then one sync-state
 * update moves `end`, together with whatever the caller's step records (a push's time, an
 * apply's phase): the marks and that step land atomically. A compaction writes the live marks
 * as a fresh range where it overlaps nothing valid (at offset 0 when they fit before `start`,
 * else at `end`), flushes, and moves `[start, end)` to it in one state update, so a crash keeps
 * either the old range or the new one.
 *
 * Sync states written before this file existed carry the marks as a `rejected` map; opening
 * moves them here (one write, then one state update that records the range and drops the map).
 */
import type { StorageBackend } from '../opfs-vfs/storage/backend.js';
import { invariant } from './invariant.js';
import type { SyncState, SyncStateFile } from './state-file.js';

const LENGTH_BYTES = 4;
/** Entries the log may hold beyond twice its live marks before a write compacts it. */
const SLACK_ENTRIES = 256;

/** A refused change and why. */
export interface RejectionMark {
  changeId: number;
  reason: string;
}

/** Changes to the marks: a reason sets one, null removes it. */
export type RejectionChanges = ReadonlyMap<number, string | null>;

export class RejectionLog {
  private readonly marks = new Map<number, string>();
  /** Entries in the valid range, live or overruled (what compaction would shrink). */
  private entries = 0;

  constructor(
    private readonly file: StorageBackend,
    private readonly state: SyncStateFile,
  ) {
    const { start, end } = state.value.rejectedLog ?? { start: 0, end: 0 };
    invariant(start >= 0 && end >= start, `the rejection log's range [${start}, ${end}) is not a range`);
    const bytes = new Uint8Array(end - start);
    const n = end > start ? file.read(bytes, start) : 0;
    invariant(n === bytes.length, `the rejection log holds ${n} of its ${bytes.length} recorded bytes`);
    for (const [id, reason] of decodeEntries(bytes)) {
      this.entries++;
      if (reason === null) this.marks.delete(id);
      else this.marks.set(id, reason);
    }
    const legacy = state.value.rejected;
    if (legacy !== undefined) {
      const moved = new Map<number, string>(Object.entries(legacy).map(([id, reason]) => [Number(id), reason]));
      this.record(moved, { rejected: undefined });
    }
  }

  /** Why change `changeId` was refused; undefined when it was not. */
  reason(changeId: number): string | undefined {
    return this.marks.get(changeId);
  }

  has(changeId: number): boolean {
    return this.marks.has(changeId);
  }

  get size(): number {
    return this.marks.size;
  }

  /** Every mark, by change id. */
  all(): RejectionMark[] {
    return [...this.marks].sort((a, b) => a[0] - b[0]).map(([changeId, reason]) => ({ changeId, reason }));
  }

  /**
   * Applies `changes` durably, with `alongside` recorded in the same sync-state update (see the
   * header). Changes that change nothing are left out; with none left, only `alongside` is
   * recorded (when it has anything).
   */
  record(changes: RejectionChanges, alongside: Partial<Omit<SyncState, 'seq'>> = {}): void {
    const effective = [...changes].filter(([id, reason]) => (reason === null ? this.marks.has(id) : this.marks.get(id) !== reason));
    if (effective.length === 0) {
      if (Object.keys(alongside).length > 0) this.state.update(alongside);
      return;
    }
    for (const [id, reason] of effective) {
      if (reason === null) this.marks.delete(id);
      else this.marks.set(id, reason);
    }
    const { start, end } = this.state.value.rejectedLog ?? { start: 0, end: 0 };
    if (this.entries + effective.length > 2 * this.marks.size + SLACK_ENTRIES) {
      const snapshot = encodeEntries([...this.marks]);
      const at = snapshot.length <= start ? 0 : end;
      this.file.write(snapshot, at);
      this.file.flush();
      this.state.update({ ...alongside, rejectedLog: { start: at, end: at + snapshot.length } });
      // The old range is dead now; dropping the bytes past the new one only saves space.
      if (at === 0) this.file.truncate(snapshot.length);
      this.entries = this.marks.size;
      return;
    }
    const appended = encodeEntries(effective);
    this.file.write(appended, end);
    this.file.flush();
    this.state.update({ ...alongside, rejectedLog: { start, end: end + appended.length } });
    this.entries += effective.length;
  }

  close(): void {
    this.file.close();
  }
}

function encodeEntries(entries: readonly (readonly [number, string | null])[]): Uint8Array {
  const encoder = new TextEncoder();
  const bodies = entries.map((e) => encoder.encode(JSON.stringify(e)));
  const out = new Uint8Array(bodies.reduce((n, b) => n + LENGTH_BYTES + b.length, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const body of bodies) {
    view.setUint32(at, body.length, true);
    out.set(body, at + LENGTH_BYTES);
    at += LENGTH_BYTES + body.length;
  }
  return out;
}

function decodeEntries(bytes: Uint8Array): [number, string | null][] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const decoder = new TextDecoder();
  const out: [number, string | null][] = [];
  let at = 0;
  while (at < bytes.length) {
    invariant(at + LENGTH_BYTES <= bytes.length, 'a rejection log entry is cut short');
    const length = view.getUint32(at, true);
    invariant(at + LENGTH_BYTES + length <= bytes.length, 'a rejection log entry is cut short');
    const entry: unknown = JSON.parse(decoder.decode(bytes.subarray(at + LENGTH_BYTES, at + LENGTH_BYTES + length)));
    invariant(
      Array.isArray(entry) && entry.length === 2 && Number.isInteger(entry[0]) && (typeof entry[1] === 'string' || entry[1] === null),
      'a rejection log entry has an unknown shape',
    );
    out.push([entry[0] as number, entry[1] as string | null]);
    at += LENGTH_BYTES + length;
  }
  return out;
}
