/**
 * `outpost/node`'s one engine thread per process (node/thread.ts): every database opened with
 * the thread engine runs there, each with its own abort flag, so stopping a call of one database
 * never stops another's.
 */
import { expect, test } from 'vitest';
import { open } from '../src/node/index.js';
import { SLOW_SQL } from './shared/statement-suite.js';

const COUNT_SQL = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) SELECT count(*) AS n FROM c';

test("aborting one database's call stops it and not the statement another database is running", async () => {
  const a = await open(':memory:', { storage: 'memory' });
  const b = await open(':memory:', { storage: 'memory' });
  try {
    const counted = a.get(COUNT_SQL);
    const controller = new AbortController();
    const stopped = b.get(SLOW_SQL, [], { signal: controller.signal }).catch((e: unknown) => e);
    controller.abort();
    expect(((await stopped) as Error).name).toBe('AbortError');
    expect(await counted).toEqual({ n: 2000000 });
    expect(await b.get('SELECT 1 AS one')).toEqual({ one: 1 });
  } finally {
    await a.close();
    await b.close();
  }
});

test("a running statement of one database stops at its abort while another database's call waits, which then runs", async () => {
  const a = await open(':memory:', { storage: 'memory' });
  const b = await open(':memory:', { storage: 'memory' });
  try {
    const controller = new AbortController();
    const slow = a.get(SLOW_SQL, [], { signal: controller.signal }).catch((e: unknown) => e);
    const other = b.get('SELECT 2 AS two');
    controller.abort();
    expect(((await slow) as Error).name).toBe('AbortError');
    expect(await other).toEqual({ two: 2 });
    expect(await a.get('SELECT 1 AS one')).toEqual({ one: 1 });
  } finally {
    await a.close();
    await b.close();
  }
});

test('a database opened after every other closed works, and closing one leaves the others open', async () => {
  const a = await open(':memory:', { storage: 'memory' });
  await a.close();
  const b = await open(':memory:', { storage: 'memory' });
  const c = await open(':memory:', { storage: 'memory' });
  try {
    await b.close();
    await c.exec('CREATE TABLE t(v); INSERT INTO t VALUES (1)');
    expect(await c.query('SELECT v FROM t')).toEqual([{ v: 1 }]);
    await expect(b.get('SELECT 1')).rejects.toMatchObject({ code: 'DATABASE_CLOSED' });
  } finally {
    await c.close();
  }
});
