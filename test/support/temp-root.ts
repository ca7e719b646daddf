/**
 * Vitest global setup: every temporary directory of one run (servers' data, databases, browser
 * profiles, clones) goes under one root, removed when the run ends. Test files make their
 * directories with `mkdtempSync(join(tmpdir(), …))` and leave them; pointing `TMPDIR` at the
 * root before any worker or child process starts makes `os.tmpdir()` return it everywhere.
 * Without this, each run left a few gigabytes in /tmp, and repeated runs filled the disk.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  // Several projects each run this; the first one's root serves them all.
  if (process.env.OUTPOST_TEST_TMP) return () => {};
  const root = mkdtempSync(join(tmpdir(), 'outpost-test-run-'));
  const previous = process.env.TMPDIR;
  process.env.OUTPOST_TEST_TMP = root;
  process.env.TMPDIR = root;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    delete process.env.OUTPOST_TEST_TMP;
    // Best effort: a browser still closing may be writing its profile here.
    try {
      rmSync(root, { recursive: true, force: true, maxRetries: 3 });
    } catch (e) {
      console.warn(`could not remove ${root}: ${String(e)}`);
    }
  };
}
