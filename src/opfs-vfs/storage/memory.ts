/**
 * The memory backend: a growable byte array. Used for `{ storage: 'memory' }` databases and for
 * SQLite's temporary files (statement journals, sorter spills, VACUUM's scratch database).
 * Nothing survives `close()`. `flush()` is a no-op.
 *
 * `quotaBytes` caps the file size to simulate a full disk: a write that would pass it throws
 * `StorageFullError` and writes nothing (tests use it; it is also a real size cap).
 */
import { type StorageBackend, type StorageDirectory, StorageFullError, assertByteOffset } from './backend.js';

export class MemoryBackend implements StorageBackend {
  private bytes = new Uint8Array(0);
  private length = 0;

  constructor(private readonly quotaBytes = Number.POSITIVE_INFINITY) {}

  read(dst: Uint8Array, offset: number): number {
    assertByteOffset(offset, 'read offset');
    const n = Math.max(0, Math.min(dst.length, this.length - offset));
    if (n > 0) dst.set(this.bytes.subarray(offset, offset + n));
    return n;
  }

  write(src: Uint8Array, offset: number): void {
    assertByteOffset(offset, 'write offset');
    const end = offset + src.length;
    if (end > this.quotaBytes) {
      throw new StorageFullError(`memory store is full: ${end} bytes exceed the quota of ${this.quotaBytes}`);
    }
    this.reserve(end);
    this.bytes.set(src, offset);
    if (end > this.length) this.length = end;
  }

  size(): number {
    return this.length;
  }

  truncate(sizeBytes: number): void {
    assertByteOffset(sizeBytes, 'truncate size');
    if (sizeBytes > this.quotaBytes) throw new StorageFullError('memory store is full');
    // An emptied file (a sync staging file after its pull applied) gives its memory back.
    if (sizeBytes === 0) this.bytes = new Uint8Array(0);
    this.reserve(sizeBytes);
    // Bytes past the new end must read as zeros if the file grows again.
    if (sizeBytes < this.length) this.bytes.fill(0, sizeBytes, this.length);
    this.length = sizeBytes;
  }

  flush(): void {}

  close(): void {
    this.bytes = new Uint8Array(0);
    this.length = 0;
  }

  private reserve(sizeBytes: number): void {
    if (sizeBytes <= this.bytes.length) return;
    // Grow geometrically so that appending N pages costs O(N) copies, not O(N^2).
    const next = new Uint8Array(Math.max(sizeBytes, Math.min(this.bytes.length * 2, this.bytes.length + 64 * 1024 * 1024), 4096));
    next.set(this.bytes.subarray(0, this.length));
    this.bytes = next;
  }
}

/** A directory of memory files. Files live as long as the directory object. */
export class MemoryDirectory implements StorageDirectory {
  private readonly files = new Map<string, MemoryBackend>();

  constructor(
    readonly label: string,
    private readonly quotaBytes?: number,
  ) {}

  async open(name: string): Promise<StorageBackend> {
    let file = this.files.get(name);
    if (!file) {
      file = new MemoryBackend(this.quotaBytes);
      this.files.set(name, file);
    }
    // A close of the returned handle must not discard the data: the directory owns it.
    const shared = file;
    return {
      read: (dst, offset) => shared.read(dst, offset),
      write: (src, offset) => shared.write(src, offset),
      size: () => shared.size(),
      truncate: (n) => shared.truncate(n),
      flush: () => {},
      close: () => {},
    };
  }

  async fileSize(name: string): Promise<number | null> {
    return this.files.get(name)?.size() ?? null;
  }

  async release(): Promise<void> {}
}
