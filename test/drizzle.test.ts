/** outpost/drizzle in Node, on a file and in memory, and the folder migrator of outpost/drizzle/migrator. */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import { drizzle, type MigrationFiles } from '../src/drizzle/index.js';
import { migrate } from '../src/drizzle/migrator.js';
import { open } from '../src/node/index.js';
import { drizzleSuite } from './shared/drizzle-suite.js';

const folder = fileURLToPath(new URL('./fixtures/drizzle', import.meta.url));
const migrations: MigrationFiles = {
  journal: JSON.parse(readFileSync(join(folder, 'meta/_journal.json'), 'utf8')),
  migrations: Object.fromEntries(
    readdirSync(folder)
      .filter((f) => f.endsWith('.sql'))
      .map((f) => [f.replace(/\.sql$/, ''), readFileSync(join(folder, f), 'utf8')]),
  ),
};

const dir = mkdtempSync(join(tmpdir(), 'outpost-drizzle-'));
let n = 0;
drizzleSuite('node file', () => open(join(dir, `db${++n}.sqlite`)), migrations);
drizzleSuite('node memory', () => open(':memory:', { storage: 'memory' }), migrations);

test('the folder migrator applies a drizzle-kit folder once, with the hashes drizzle-kit records', async () => {
  const db = await open(join(dir, 'folder.sqlite'));
  try {
    const orm = drizzle(db);
    await migrate(orm, { migrationsFolder: folder });
    await migrate(orm, { migrationsFolder: folder });
    const rows = await db.query<{ hash: string }>('SELECT hash FROM __drizzle_migrations ORDER BY id');
    const { createHash } = await import('node:crypto');
    const expected = ['0000_init_users', '0001_add_posts'].map((tag) =>
      createHash('sha256').update(readFileSync(join(folder, `${tag}.sql`), 'utf8')).digest('hex'),
    );
    expect(rows.map((r) => r.hash)).toEqual(expected);
  } finally {
    await db.close();
  }
});
