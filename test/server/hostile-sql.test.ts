/**
 * Hostile SQL from a tenant, generated: the routes attack.test.ts and attack-routes.test.ts do
 * not vary. Each case runs a seeded pipeline of one to four statements drawn from: extension
 * loading in every spelling, fts3_tokenizer (a pointer route), ATTACH and VACUUM INTO through
 * URIs with vfs/mode/cache parameters, TEMP objects by other syntaxes (temp.x, TEMPORARY
 * TRIGGER, a CTE-made temp index), PRAGMAs that change files or limits by other spellings,
 * amplifiers (printf widths, replace and zeroblob growth, group_concat over a recursive CTE),
 * sorts that spill to temporary files, deeply nested JSON, and slow functions; with a write or
 * a read token. It must hold:
 * - every answer is 200 or 429 (never a 5xx or a dropped connection), a statement that fails
 *   says why, and the server's memory stays bounded (RSS growth under 512 MiB);
 * - the next request on the same database starts clean (no TEMP object, no attachment,
 *   query_only and foreign_keys as the server sets them) and may write;
 * - the data folder holds no file the tenant named, the victim keeps its rows and integrity,
 *   and a bystander is served at once.
 * Each run prints its seed; OUTPOST_SEED=<seed> replays it, OUTPOST_SQL_CASES sets the count
 * (default 40).
 */
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { mintToken } from '../../src/server/auth.js';
import type { OutpostServer } from '../../src/server/server.js';
import { type Random, int, pick, rng, testSeed } from '../support/generate.js';
import { SECRET, runBatch, startServer } from '../support/server.js';

const CASES = Number(process.env.OUTPOST_SQL_CASES ?? 40);
const RSS_GROWTH_MAX_BYTES = 512 * 1024 * 1024;

let server: OutpostServer;
let base: string;
let dataDir: string;

beforeAll(async () => {
  ({ server, url: base, dataDir } = await startServer({ statementTimeoutMs: 500, shareOfServer: 1, valueBytesMax: 4 * 1024 * 1024 }));
  const r = await run('victim', 'write', 'CREATE TABLE secrets(id INTEGER PRIMARY KEY, s TEXT)', "INSERT INTO secrets(s) VALUES ('a'), ('b'), ('c')");
  expect(r.errors).toEqual([null, null]);
  // Read tokens cannot create a database: the ones they attack exist.
  for (const db of ['attacker0', 'attacker1', 'attacker2', 'attacker3', 'bystander']) expect((await run(db, 'write', 'CREATE TABLE IF NOT EXISTS probe(x)')).errors).toEqual([null]);
});
afterAll(() => server.close());

async function run(db: string, role: 'read' | 'write', ...sql: string[]): ReturnType<typeof runBatch> {
  return runBatch(`${base}/db/${db}`, await mintToken(SECRET, { role, db }), ...sql);
}

const recursive = (n: number): string => `(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${n}) SELECT x FROM c)`;

/** One hostile statement, and a file name it may try to create. */
function hostile(random: Random, marker: string): string {
  const file = pick(random, [`${marker}.db`, `/tmp/${marker}.db`, `${dataDir}/${marker}.db`, `../${marker}.db`]);
  const uri = pick(random, [`file:${file}`, `file:${file}?vfs=unix`, `file:${file}?mode=rwc`, `file:${file}?vfs=outpost&mode=rwc`, `file:${marker}?mode=memory&cache=shared`, `file::memory:?cache=shared`, '']);
  switch (int(random, 0, 11)) {
    case 0:
      return pick(random, [`SELECT load_extension('${file}')`, `SELECT LOAD_EXTENSION('/lib/x86_64-linux-gnu/libc.so.6', 'system')`, `SELECT "load_extension"('${file}')`, `SELECT load_extension(char(47,116,109,112))`]);
    case 1:
      return pick(random, ["SELECT fts3_tokenizer('simple')", "SELECT fts3_tokenizer('evil', x'4141414141414141')", "CREATE VIRTUAL TABLE f USING fts3(x, tokenize=evil)", "CREATE VIRTUAL TABLE temp.f4 USING fts4(x)"]);
    case 2:
      return pick(random, [`ATTACH '${uri}' AS a${int(random, 0, 9)}`, `ATTACH DATABASE '${uri}' AS "main2"`, `VACUUM INTO '${uri}'`, `VACUUM main INTO '${file}'`, `ATTACH '${uri}' AS temp2; CREATE TABLE temp2.x(y)`]);
    case 3:
      return pick(random, [
        'CREATE TABLE temp.t(x)',
        'CREATE TABLE "TEMP"."t2"(x)',
        `CREATE TABLE TeMp.big AS SELECT randomblob(1000) FROM ${recursive(int(random, 1000, 200_000))}`,
        'CREATE TEMPORARY TRIGGER tt AFTER INSERT ON main.probe BEGIN SELECT 1; END',
        "CREATE TRIGGER temp.tr AFTER INSERT ON main.probe BEGIN UPDATE main.probe SET x = 'pwned'; END",
        'CREATE TEMP VIEW tv AS SELECT 1',
        'CREATE VIEW temp.v AS SELECT 1',
        'CREATE INDEX temp.i ON probe(x)',
        'CREATE VIRTUAL TABLE temp.f USING fts5(x)',
        `CREATE TEMP TABLE big AS SELECT randomblob(1000) FROM ${recursive(int(random, 1000, 200_000))}`,
      ]);
    case 4:
      return pick(random, ['PRAGMA temp.cache_size = -2000000', 'PRAGMA main.journal_mode = DELETE', 'PRAGMA journal_mode = OFF', 'PRAGMA main.locking_mode = EXCLUSIVE', 'PRAGMA synchronous = OFF', 'PRAGMA max_page_count = 2', 'PRAGMA page_size = 512', 'PRAGMA auto_vacuum = FULL', 'PRAGMA secure_delete = ON', 'PRAGMA cell_size_check = OFF', 'PRAGMA trusted_schema = ON', 'PRAGMA temp_store_directory = \'/tmp\'', 'PRAGMA data_store_directory = \'/tmp\'', 'PRAGMA query_only = TRUE', 'PRAGMA foreign_keys = 1', 'PRAGMA wal_autocheckpoint = 0', 'PRAGMA main.wal_checkpoint(RESTART)', 'PRAGMA schema_version = 1', 'PRAGMA legacy_alter_table = ON']);
    case 5:
      return pick(random, [`SELECT length(printf('%.*c', ${pick(random, [1e6, 1e8, 2 ** 31 - 1])}, 'x'))`, `SELECT length(printf('%0${int(random, 1e5, 1e9)}d', 1))`, `SELECT length(replace(zeroblob(${int(random, 1e5, 4e6)}), x'00', x'${'ab'.repeat(int(random, 2, 200))}'))`, `SELECT length(hex(hex(hex(zeroblob(${int(random, 1e5, 1e6)})))))`]);
    case 6:
      return `SELECT length(group_concat(randomblob(${int(random, 100, 10_000)}))) FROM ${recursive(int(random, 10_000, 10_000_000))}`;
    case 7:
      return pick(random, [`SELECT count(*) FROM (SELECT randomblob(${int(random, 500, 4000)}) b FROM ${recursive(int(random, 100_000, 5_000_000))} ORDER BY b)`, `SELECT count(DISTINCT randomblob(${int(random, 100, 2000)})) FROM ${recursive(int(random, 100_000, 5_000_000))}`, `SELECT x FROM ${recursive(int(random, 100_000, 5_000_000))} GROUP BY randomblob(64) LIMIT 1`]);
    case 8: {
      const depth = pick(random, [500, 999, 1001, 5000, 100_000]);
      return pick(random, [`SELECT json_valid(replace(hex(zeroblob(${depth})), '00', '[') || replace(hex(zeroblob(${depth})), '00', ']'))`, `SELECT json_array_length(json(replace(hex(zeroblob(${depth})), '00', '{"a":') || '1' || replace(hex(zeroblob(${depth})), '00', '}')))`, `SELECT count(*) FROM json_tree(replace(hex(zeroblob(${depth})), '00', '[') || replace(hex(zeroblob(${depth})), '00', ']'))`, `SELECT jsonb(replace(hex(zeroblob(${depth})), '00', '['))`]);
    }
    case 9:
      return pick(random, [`SELECT count(*) FROM ${recursive(1000)} a, ${recursive(1000)} b, ${recursive(1000)} c`, `SELECT max(x) FROM ${recursive(2 ** 31)}`, `SELECT sum(length(randomblob(100000))) FROM ${recursive(1_000_000)}`, "SELECT like('%a%a%a%a%a%a%a%a%a%a%b', replace(hex(zeroblob(5000)), '00', 'a'))", `SELECT count(*) FROM ${recursive(100_000)} WHERE x GLOB '*1*2*3*4*5*6*7*8*9*0*'`]);
    case 10:
      return pick(random, ['SELECT * FROM sqlite_temp_master', 'SELECT * FROM pragma_database_list', 'SELECT * FROM pragma_function_list', "SELECT * FROM pragma_compile_options WHERE compile_options LIKE '%LOAD%'", 'SELECT sqlite_offset(id) FROM secrets', 'SELECT * FROM sqlite_dbpage', 'SELECT * FROM dbstat', 'SELECT * FROM bytecode(\'SELECT 1\')']);
    default:
      return pick(random, ['BEGIN', 'BEGIN EXCLUSIVE', 'SAVEPOINT s', 'COMMIT', 'ROLLBACK', `CREATE TABLE IF NOT EXISTS t${int(random, 0, 3)}(x)`, `INSERT INTO t0 SELECT randomblob(1000) FROM ${recursive(int(random, 10, 100_000))}`, 'CREATE INDEX IF NOT EXISTS i0 ON t0(x)', 'DROP TABLE IF EXISTS t1']);
  }
}

test('generated hostile SQL: bounded, answered, leaves no state, no file, no victim harmed', async () => {
  const seed = testSeed();
  console.log(`hostile sql: seed ${seed}, ${CASES} cases (OUTPOST_SEED=${seed} replays it)`);
  const random = rng(seed);
  const rssBefore = process.memoryUsage().rss;
  let rssPeak = rssBefore;
  const outcomes = new Map<string, number>();
  for (let c = 0; c < CASES; c++) {
    const db = `attacker${int(random, 0, 3)}`;
    const marker = `m${seed}x${c}`;
    const role = random() < 0.8 ? 'write' : 'read';
    const sql = Array.from({ length: int(random, 1, 4) }, () => hostile(random, marker)).flatMap((s) => s.split('; '));
    const what = `seed ${seed} case ${c} (${role} on ${db}): ${sql.map((s) => s.slice(0, 160)).join(' ; ')}`;
    const r = await run(db, role, ...sql);
    rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    expect([200, 429, 403], `${what}: status ${r.status} ${r.errors.join(' ')}`).toContain(r.status);
    for (const e of r.errors) {
      const kind = e === null ? 'ok' : e.replace(/[0-9]+/g, 'N').slice(0, 60);
      outcomes.set(kind, (outcomes.get(kind) ?? 0) + 1);
    }
    // The next request starts clean and may write (unless this tenant is waiting its turn).
    const next = await run(db, 'write', 'SELECT count(*) FROM sqlite_temp_schema', "SELECT count(*) FROM pragma_database_list WHERE name NOT IN ('main', 'temp')", 'PRAGMA query_only', 'CREATE TABLE IF NOT EXISTS probe(x)', 'INSERT INTO probe VALUES (1)');
    if (next.status === 200) {
      expect(next.errors, `${what}: the next request`).toEqual([null, null, null, null, null]);
      const values = next.rows.slice(0, 3).map((rows) => String((rows[0] as { value: string }[] | undefined)?.[0]?.value));
      expect(values, `${what}: the next request's temp objects, attachments, query_only`).toEqual(['0', '0', '0']);
    } else expect(next.status, what).toBe(429);
    expect(readdirSync(dataDir).filter((f) => f.includes(marker)), `${what}: files named by the tenant`).toEqual([]);
    const bystander = await run('bystander', 'read', 'SELECT 1');
    expect(bystander.status, `${what}: the bystander`).not.toBeGreaterThanOrEqual(500);
  }
  const victim = await run('victim', 'read', "SELECT group_concat(s) FROM secrets", 'PRAGMA integrity_check');
  expect(JSON.stringify(victim.rows), `seed ${seed}: victim`).toContain('a,b,c');
  expect(JSON.stringify(victim.rows[1]), `seed ${seed}: victim integrity`).toContain('ok');
  console.log(`hostile sql: RSS peak +${Math.round((rssPeak - rssBefore) / 2 ** 20)} MiB; outcomes ${JSON.stringify(Object.fromEntries(outcomes))}`);
  expect(rssPeak - rssBefore, `seed ${seed}: RSS growth`).toBeLessThan(RSS_GROWTH_MAX_BYTES);
}, 600_000);
