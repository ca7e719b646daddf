/**
 * `Connection.hasTable` (file-image.ts) answers from SQLite's own name lookup without compiling
 * a statement; the server trusts its "no" to skip the exact sqlite_schema query at every open
 * (client-owners.ts). So it must say yes exactly when sqlite_schema has a table (ordinary or
 * virtual) of that name in any case, and never for a view, an index, a trigger or a temp table.
 */
import { afterAll, describe, expect, test } from 'vitest';
import { Connection } from '../src/engine/connection.js';
import { NodeDirectory } from '../src/opfs-vfs/storage/node.js';
import { int, rng, testSeed } from './support/generate.js';
import { tempDir } from './support/server.js';

const seed = testSeed();
console.log(`has-table seed ${seed} (replay with OUTPOST_SEED=${seed})`);

const NAMES = ['turso_sync_last_change_id', 'notes', 'x', 'a_b'];

/** `name` with each letter's case chosen at random. */
const recase = (name: string, random: () => number): string => [...name].map((c) => (random() < 0.5 ? c.toUpperCase() : c)).join('');

describe('Connection.hasTable', () => {
  const conns: Connection[] = [];
  afterAll(async () => {
    for (const c of conns) await c.close();
  });

  test(`agrees with sqlite_schema after generated schema changes (120 steps, seed ${seed})`, async () => {
    const random = rng(seed);
    const conn = await Connection.open(new NodeDirectory(`${tempDir('outpost-has-table-')}/db.db`), { durability: 'normal', intMode: 'number' });
    conns.push(conn);
    for (let step = 0; step < 120; step++) {
      const name = NAMES[int(random, 0, NAMES.length - 1)]!;
      const spelled = recase(name, random);
      const kind = int(random, 0, 5);
      const existing = conn.execute(`SELECT type, name FROM main.sqlite_schema WHERE lower(name) = lower(?)`, [name]).rows;
      try {
        if (kind === 0) conn.exec(`CREATE TABLE "${spelled}"(client_id TEXT, v)`);
        else if (kind === 1) conn.exec(`CREATE VIRTUAL TABLE "${spelled}" USING fts5(v)`);
        else if (kind === 2) conn.exec(`CREATE VIEW "${spelled}" AS SELECT 1 AS v`);
        else if (kind === 3) conn.exec(`CREATE TEMP TABLE "${spelled}"(v)`);
        else if (kind === 4) conn.exec(`CREATE INDEX "${spelled}" ON sqlite_schema_never(v)`);
        else for (const [type, existingName] of existing) conn.exec(`DROP ${String(type).toUpperCase()} IF EXISTS main."${String(existingName)}"`);
      } catch {
        // A name already taken, or the index on a missing table: the schema stays as it was.
      }
      for (const asked of NAMES) {
        const probe = recase(asked, random);
        const want = Number(conn.value(`SELECT count(*) FROM main.sqlite_schema WHERE type = 'table' AND lower(name) = lower(?)`, [probe])) > 0;
        expect(conn.hasTable(probe), `step ${step}: ${probe}`).toBe(want);
      }
    }
  });
});
