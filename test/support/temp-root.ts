/**
 * Vitest global setup: every temporary directory of one run (servers' data, databases, browser
 * profiles, clones) goes under one root, removed when the run ends. Test files make their
 * directories with `mkdtempSync(join(tmpdir(), …))` and leave them; pointing `TMPDIR` at the
 * root before any worker or child process starts makes `os.tmpdir()` return it everywhere.
 * Without this, each run left a few gigabytes in /tmp, and repeated runs filled the disk. The
 * same goes for the folders servers keep in memory (/dev/shm, `scratchDataDir`): 21,509 of them,
 * 5.2 GB of RAM, had piled up there.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  // Several projects each run this; the first one's root serves them all.
  if (process.env.OUTPOST_TEST_TMP) return () => {};
  const root = mkdtempSync(join(tmpdir(), 'outpost-test-run-'));
  // The memory file system's root for servers' data (networks.ts `scratchDataDir`), where there is one.
  let memoryRoot: string | null = null;
  try {
    memoryRoot = mkdtempSync('/dev/shm/outpost-test-run-');
    process.env.OUTPOST_TEST_SHM = memoryRoot;
  } catch {
    // No /dev/shm: scratch folders go under `root`.
  }
  const previous = process.env.TMPDIR;
  process.env.OUTPOST_TEST_TMP = root;
  process.env.TMPDIR = root;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    delete process.env.OUTPOST_TEST_TMP;
    delete process.env.OUTPOST_TEST_SHM;
    for (const dir of memoryRoot === null ? [root] : [root, memoryRoot]) {
      // Best effort: a browser still closing may be writing its profile here.
      try {
        rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
      } catch (e) {
        console.warn(`could not remove ${dir}: ${String(e)}`);
      }
    }
  };
}
