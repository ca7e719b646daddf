/**
 * The replay file (`db-replay`): the pending change records saved at the start of an apply
 * (step a), so that a crash anywhere in the apply can still replay them (engine.ts).
 *
 * Layout:
 *
 *   offset 0  u32 length of the body, little endian
 *   offset 4  body: UTF-8 JSON, an array of `{ id, ddl, changeset }`, oldest record first:
 *             each record as the change log stores it (change-log.ts, `encodeRecord`), with
 *             the changeset as an array of byte values. Files written before records had
 *             segments hold `ddl` as an array of statements; `decodeRecord` reads both.
 *
 * A write truncates the file, writes header and body and flushes; the sync state's
 * `replayEntries`, recorded after that, says whether the file is valid. The file is read only
 * when that count is positive, so a torn write (the state still says 0) is never read; a file
 * that is shorter than its header says is an error, never a silent empty replay.
 */
import type { StorageBackend } from '../opfs-vfs/storage/backend.js';
import { type ChangeRecord, decodeRecord, encodeRecord } from './change-log.js';
import { invariant } from './invariant.js';

const LENGTH_BYTES = 4;

export class ReplayFile {
  constructor(private readonly file: StorageBackend) {}

  /** Replaces the file's content with `records`, durably. */
  write(records: ChangeRecord[]): void {
    const body = new TextEncoder().encode(
      JSON.stringify(
        records.map((r) => {
          const stored = encodeRecord(r);
          return { id: r.id, ddl: stored.ddl, changeset: Array.from(stored.changeset) };
        }),
      ),
    );
    const header = new Uint8Array(LENGTH_BYTES);
    new DataView(header.buffer).setUint32(0, body.length, true);
    this.file.truncate(0);
    this.file.write(header, 0);
    this.file.write(body, LENGTH_BYTES);
    this.file.flush();
  }

  /** The records of the last complete write; `expected` is the sync state's `replayEntries`. */
  read(expected: number): ChangeRecord[] {
    if (expected === 0) return [];
    const header = new Uint8Array(LENGTH_BYTES);
    if (this.file.read(header, 0) < LENGTH_BYTES) throw new Error('the sync replay file is missing; cannot finish an interrupted pull');
    const body = new Uint8Array(new DataView(header.buffer).getUint32(0, true));
    const n = this.file.read(body, LENGTH_BYTES);
    invariant(n === body.length, `the replay file holds ${n} of its ${body.length} bytes`);
    const parsed = JSON.parse(new TextDecoder().decode(body)) as { id: number; ddl: string | string[] | null; changeset: number[] }[];
    invariant(parsed.length === expected, `the replay file holds ${parsed.length} records, the sync state says ${expected}`);
    return parsed.map((r) => ({ id: r.id, segments: decodeRecord(r.ddl, Uint8Array.from(r.changeset)) }));
  }

  close(): void {
    this.file.close();
  }
}
