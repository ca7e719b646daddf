/**
 * A streamed bootstrap in a real browser worker on OPFS (sync/bootstrap.ts): a database of
 * more than one 8 MiB bootstrap chunk, fetched as one streamed answer and written page by page
 * into the OPFS main file, opens with every row and passes integrity_check.
 */
import { expect, inject, test } from 'vitest';
import { open } from '../src/index.js';

const FILL_SQL = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) INSERT INTO big(payload) SELECT randomblob(1000) FROM c';

/** Runs SQL on the server, waiting as its time share says (a bulk fill runs into it). */
async function remote(url: string, sql: string): Promise<void> {
  for (;;) {
    const res = await fetch(`${url}/v2/pipeline`, {
      method: 'POST',
      body: JSON.stringify({ baton: null, requests: [{ type: 'batch', batch: { steps: [{ stmt: { sql } }] } }] }),
    });
    if (res.status !== 429) {
      expect(res.status).toBe(200);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000 * Number(res.headers.get('retry-after') ?? 1)));
  }
}

test('a bootstrap larger than a chunk streams into OPFS and opens whole', async () => {
  const name = `stream-${crypto.randomUUID()}`;
  const url = `${inject('outpostServerUrl')}/db/${name}`;
  await remote(url, 'CREATE TABLE big(id INTEGER PRIMARY KEY, payload BLOB)');
  const megabytes = 12;
  for (let i = 0; i < megabytes; i++) await remote(url, FILL_SQL);
  const db = await open(name, { sync: { url } });
  try {
    const status = await db.syncStatus();
    expect(status?.lastError).toBeNull();
    expect(status?.revision).not.toBeNull();
    expect(status?.bytesReceived).toBeGreaterThan(megabytes * 1_000_000);
    expect(await db.get('SELECT count(*) AS n FROM big')).toEqual({ n: megabytes * 1000 });
    expect(await db.get('PRAGMA integrity_check')).toEqual({ integrity_check: 'ok' });
  } finally {
    await db.close();
  }
}, 120_000);
