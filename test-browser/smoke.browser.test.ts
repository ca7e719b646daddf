import { expect, test } from 'vitest';
import { open } from '../src/index.js';

test('smoke', async () => {
  const db = await open(`smoke-${crypto.randomUUID()}`);
  expect(await db.query('pragma journal_mode')).toEqual([{ journal_mode: 'wal' }]);
  await db.close();
});
