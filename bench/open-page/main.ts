/**
 * The open probe's page (`bench/open.ts` drives it): makes a database of about 50 MB once, then
 * opens it through the public API as often as asked, in this page, and gives each open's time.
 * The first open of a page pays for loading SQLite; later ones may reuse what the page kept.
 */
import { open } from '../../src/index.js';

/** Creates `name` with `mb` MiB of blobs unless it already has them. */
async function prepare(name: string, mb: number): Promise<void> {
  const db = await open(name);
  try {
    const have = await db.get<{ n: number }>("SELECT count(*) AS n FROM sqlite_master WHERE name = 'filler'");
    if (have?.n) return;
    await db.exec('CREATE TABLE filler(b BLOB)');
    await db.transaction(async (tx) => {
      for (let i = 0; i < mb; i++) await tx.run('INSERT INTO filler VALUES (randomblob(1024 * 1024))');
    });
  } finally {
    await db.close();
  }
}

/** Opens `name` and reads from it, as the benchmark's open-50mb row does; the time in ms. */
async function openOnce(name: string, lockTimeoutMs?: number): Promise<number> {
  const t0 = performance.now();
  const db = await open(name, lockTimeoutMs === undefined ? {} : { lockTimeoutMs });
  await db.get('SELECT count(*) FROM filler');
  const ms = performance.now() - t0;
  await db.close();
  return ms;
}

declare global {
  interface Window {
    probe: { prepare: typeof prepare; openOnce: typeof openOnce };
  }
}
window.probe = { prepare, openOnce };
document.getElementById('status')!.textContent = 'ready';
