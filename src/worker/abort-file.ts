/**
 * The abort flag of a page without cross-origin isolation (driver.ts `AbortFlag`): four bytes in
 * an OPFS file per database, `<OPFS root>/outpost-abort/<name>`, holding the abort id of the
 * last call aborted while it ran. The engine worker reads it from SQLite's progress handler
 * while it is busy in a statement; the page's abort writer (abort-writer.ts, a worker of its
 * own because the engine's worker hears nothing while busy) or a follower tab's writer writes
 * it. Shared memory would do this for free, but browsers give it only to isolated pages.
 *
 * Several contexts may hold a file open at once only through Chromium's `readwrite-unsafe` sync
 * access handles (Chrome 121+); a browser without that mode ignores the option and opens the
 * ordinary exclusive handle, which `mode` reveals, so `openAbortFile` then gives up and a
 * running call stops only at its `timeoutMs`, as before. The file sits outside `outpost/` so
 * that `listDatabases` and `deleteDatabase` never see it.
 *
 * Reading the file costs a round trip to the browser's storage (measured 0.7 ms per read in
 * headless Chromium on a loaded machine), so a call's watch reads it only every few
 * milliseconds, paced from the measured cost of a read: at most about 5% of a long call, and an
 * abort is seen within `MAX_INTERVAL_MS` plus one read.
 */
import type { AbortFlag } from '../driver.js';

/** The folder of the abort files, at the OPFS root beside Outpost's `outpost/`. */
const ABORT_DIRECTORY = 'outpost-abort';
/** Reads are spaced by this many times their own cost, so they take at most ~5% of a call. */
const COST_FACTOR = 20;
const MIN_INTERVAL_MS = 1;
const MAX_INTERVAL_MS = 15;

/** The sync access handle's methods used here (TypeScript's DOM library lacks the type). */
export interface AbortFileHandle {
  read(buffer: Uint8Array, options: { at: number }): number;
  write(buffer: Uint8Array, options: { at: number }): number;
  close(): void;
  readonly mode?: string;
}

/**
 * Opens the database's abort file in `readwrite-unsafe` mode, or resolves null where that is
 * impossible (no OPFS here, not a dedicated worker, a browser without the mode).
 */
export async function openAbortFile(name: string): Promise<AbortFileHandle | null> {
  try {
    const root = await navigator.storage.getDirectory();
    const dir = await root.getDirectoryHandle(ABORT_DIRECTORY, { create: true });
    const file = await dir.getFileHandle(name, { create: true });
    // createSyncAccessHandle and its options are declared in TypeScript's WebWorker lib only.
    const opener = file as unknown as { createSyncAccessHandle?(options: { mode: string }): Promise<AbortFileHandle> };
    if (typeof opener.createSyncAccessHandle !== 'function') return null;
    const handle = await opener.createSyncAccessHandle({ mode: 'readwrite-unsafe' });
    if (handle.mode === 'readwrite-unsafe') return handle;
    // An exclusive handle would lock every other context out of the file: give it back at once.
    handle.close();
    return null;
  } catch {
    return null;
  }
}

/**
 * Removes the abort file of a deleted database, best effort: a context that still holds it
 * open (a page whose writer has not yet closed it) keeps it, and it is four bytes.
 */
export async function removeAbortFile(name: string): Promise<void> {
  try {
    const root = await navigator.storage.getDirectory();
    const dir = await root.getDirectoryHandle(ABORT_DIRECTORY);
    await dir.removeEntry(name);
  } catch {
    // Never created, or still open somewhere: nothing to do.
  }
}

/** Writes `abortId` as the file's four bytes (little-endian). */
export function writeAbortId(handle: AbortFileHandle, abortId: number): void {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setInt32(0, abortId, true);
  handle.write(bytes, { at: 0 });
}

/** The engine's side: a flag that reads the file, paced by what a read costs. */
export function fileAbortFlag(handle: AbortFileHandle): AbortFlag {
  const bytes = new Uint8Array(4);
  const view = new DataView(bytes.buffer);
  let intervalMs = MIN_INTERVAL_MS;
  const read = (): number => {
    const startedAt = performance.now();
    const n = handle.read(bytes, { at: 0 });
    const costMs = performance.now() - startedAt;
    intervalMs = Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, costMs * COST_FACTOR));
    return n === 4 ? view.getInt32(0, true) : 0;
  };
  return {
    watch(abortId) {
      // A call shorter than one interval never reads the file: calls with a signal that end
      // quickly cost nothing.
      let nextReadAt = performance.now() + intervalMs;
      return () => {
        const now = performance.now();
        if (now < nextReadAt) return false;
        const aborted = read() === abortId;
        nextReadAt = performance.now() + intervalMs;
        return aborted;
      };
    },
  };
}

/** Both flags (the second known later): aborted when either says so. */
export function eitherAbortFlag(first: AbortFlag | null, second: () => AbortFlag | null): AbortFlag {
  return {
    watch(abortId) {
      const a = first?.watch(abortId) ?? null;
      const b = second()?.watch(abortId) ?? null;
      if (!a || !b) return a ?? b;
      return () => a() || b();
    },
  };
}
