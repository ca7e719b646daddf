/**
 * Test-only fault injection: a simulated storage quota, reported the way a browser at its quota
 * reports it. The OPFS backend wraps its access handles in this when a database is opened with
 * `simulatedQuota`, so the browser tests can exhaust the quota without filling the disk.
 *
 * Browsers report an exhausted quota in three ways (see `opfs.ts`), and the styles copy them:
 * - `'throw'`: the write throws a `QuotaExceededError` DOMException;
 * - `'short'`: the write stores what fits and returns that smaller count;
 * - `'bogus'`: the write stores nothing and returns 0xFFFFFFF8 (a negative errno, unsigned).
 *
 * Contract / may import: nothing (not even the OPFS backend, which imports this file).
 */

/** A quota of `bytes` per file, exceeded in the given style. */
export interface SimulatedQuota {
  bytes: number;
  style: 'throw' | 'short' | 'bogus';
}

/**
 * The part of `FileSystemSyncAccessHandle` the wrapper intercepts. It is the OPFS backend's
 * `SyncAccessHandleLike` (an alias of this type there, since that module imports this one).
 */
export interface PositionalHandle {
  read(buffer: Uint8Array, options: { at: number }): number;
  write(buffer: Uint8Array, options: { at: number }): number;
  getSize(): number;
  truncate(size: number): void;
  flush(): void;
  close(): void;
}

/** Wraps a handle so that writes past `quota.bytes` fail the way a browser at quota does. */
export function withSimulatedQuota(handle: PositionalHandle, quota: SimulatedQuota): PositionalHandle {
  return {
    read: (b, o) => handle.read(b, o),
    getSize: () => handle.getSize(),
    truncate: (n) => {
      if (n > quota.bytes) throw new DOMException('quota', 'QuotaExceededError');
      handle.truncate(n);
    },
    flush: () => handle.flush(),
    close: () => handle.close(),
    write: (b, o) => {
      const room = quota.bytes - o.at;
      if (b.length <= room) return handle.write(b, o);
      if (quota.style === 'throw') throw new DOMException('The quota has been exceeded.', 'QuotaExceededError');
      if (quota.style === 'bogus') return 0xfffffff8;
      return room > 0 ? handle.write(b.subarray(0, room), o) : 0;
    },
  };
}
