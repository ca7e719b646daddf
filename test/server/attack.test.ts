/**
 * The server under attack by its own tenants: a token for one database must reach exactly that
 * database, leave no connection state behind, stay within time and memory limits, and never
 * take the server down. The SQL cases are generated (seeded; the seed is printed on failure),
 * each against a victim database whose acknowledged rows are checked afterwards.
 */
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mintToken } from '../../src/server/auth.js';
import type { OutpostServer } from '../../src/server/server.js';
import { int, pick, rng, testSeed } from '../support/generate.js';
import { type BatchOutcome, SECRET, batch, rawPipeline, runBatch, startServer } from '../support/server.js';

let server: OutpostServer;
let base: string;
let dataDir: string;
const tokens = new Map<string, string>();

async function token(db: string): Promise<string> {
  let t = tokens.get(db);
  if (!t) {
    t = await mintToken(SECRET, { role: 'write', db });
    tokens.set(db, t);
  }
  return t;
}

/** Runs statements as one Hrana batch on `db` with a write token. */
async function run(db: string, ...sql: string[]): Promise<BatchOutcome> {
  return runBatch(`${base}/db/${db}`, await token(db), ...sql);
}

async function count(db: string, table: string): Promise<number> {
  const r = await run(db, `SELECT count(*) FROM ${table}`);
  expect(r.errors[0] ?? null, `count ${table} in ${db}`).toBeNull();
  return Number((r.rows[0]![0] as { value: string }[])[0]!.value);
}

async function integrity(db: string): Promise<string> {
  const r = await run(db, 'PRAGMA integrity_check');
  return String((r.rows[0]![0] as { value: string }[])[0]!.value);
}

beforeAll(async () => {
  // bodyTimeoutMs: long enough for a 40 MiB body to arrive on a busy machine (the oversized body
  // must meet the size limit, not the clock); the never-ending body waits this long.
  ({ server, url: base, dataDir } = await startServer({ statementTimeoutMs: 300, bodyTimeoutMs: 5000 }));
  // Several victims with acknowledged rows, so their files are mounted in the server's VFS.
  for (let v = 0; v < 4; v++) {
    const r = await run(`victim${v}`, 'CREATE TABLE IF NOT EXISTS secrets(id INTEGER PRIMARY KEY, s TEXT)', "INSERT INTO secrets(s) VALUES ('a'), ('b'), ('c')");
    expect(r.errors).toEqual([null, null]);
  }
});
afterAll(() => server.close());

/** Every name under which another tenant's files might be reached. */
function foreignPaths(random: () => number): string {
  const v = int(random, 0, 3);
  return pick(random, [
    `/${int(random, 0, 40)}/db`,
    `/${int(random, 0, 40)}/db-wal`,
    `${dataDir}/victim${v}.db`,
    `victim${v}.db`,
    `file:/${int(random, 0, 40)}/db?vfs=outpost`,
    `file:${dataDir}/victim${v}.db`,
    `../victim${v}.db`,
  ]);
}

describe('a write token reaches only its own database', () => {
  test('generated ATTACH and VACUUM INTO routes to other files are refused, and victims keep their rows', async () => {
    const seed = testSeed();
    const random = rng(seed);
    for (let i = 0; i < 60; i++) {
      const path = foreignPaths(random).replaceAll("'", "''");
      const sql = pick(random, [
        `ATTACH '${path}' AS other`,
        `ATTACH DATABASE '${path}' AS x${i}`,
        `VACUUM INTO '${path}'`,
        `ATTACH '${path}' AS o; INSERT INTO o.secrets(s) VALUES ('pwned')`,
      ]);
      const r = await run('attacker', ...sql.split('; '));
      expect(r.errors[0], `seed ${seed}: ${sql} must be refused`).toBeTruthy();
      await run('attacker', 'PRAGMA wal_checkpoint(TRUNCATE)');
    }
    for (let v = 0; v < 4; v++) {
      expect(await count(`victim${v}`, 'secrets'), `seed ${seed}: victim${v}`).toBe(3);
      expect(await integrity(`victim${v}`)).toBe('ok');
    }
  });

  test('raw page writes and schema edits are refused', async () => {
    await run('pages', 'CREATE TABLE IF NOT EXISTS t(x)', 'INSERT INTO t VALUES (1)');
    const attempts = [
      "INSERT INTO sqlite_dbpage(pgno, data) VALUES (2, zeroblob(4096))",
      "UPDATE sqlite_dbpage SET data = zeroblob(4096) WHERE pgno = 1",
      'DELETE FROM sqlite_dbpage',
      'PRAGMA writable_schema = ON',
      "UPDATE sqlite_schema SET sql = 'CREATE TABLE t(y)' WHERE name = 't'",
      "DELETE FROM sqlite_master WHERE name = 't'",
    ];
    for (const sql of attempts) {
      const r = await run('pages', sql);
      expect(r.errors[0], `${sql} must be refused`).toBeTruthy();
    }
    expect(await count('pages', 't')).toBe(1);
    expect(await integrity('pages')).toBe('ok');
  });
});

describe('no connection state outlives a request', () => {
  test('TEMP objects, pragmas and attachments are refused or gone by the next request', async () => {
    await run('state', 'CREATE TABLE IF NOT EXISTS t(x)');
    const leaks = [
      'CREATE TEMP TABLE big(x)',
      'CREATE TEMPORARY VIEW v AS SELECT 1',
      'PRAGMA query_only = 1',
      'PRAGMA foreign_keys = OFF',
      'PRAGMA recursive_triggers = ON',
      'PRAGMA case_sensitive_like = ON',
      "ATTACH ':memory:' AS mem",
      'PRAGMA temp_store = MEMORY',
      'PRAGMA cache_size = -1000000',
    ];
    for (const sql of leaks) await run('state', sql);
    // Another client of the same database: its writes work, and it sees none of that state.
    const r = await run(
      'state',
      'INSERT INTO t VALUES (1)',
      'SELECT count(*) FROM sqlite_temp_schema',
      "SELECT count(*) FROM pragma_database_list WHERE name NOT IN ('main', 'temp')",
      'PRAGMA query_only',
      'PRAGMA foreign_keys',
    );
    expect(r.errors).toEqual([null, null, null, null, null]);
    const value = (step: number): string => (r.rows[step]![0] as { value: string }[])[0]!.value;
    expect(value(1)).toBe('0');
    expect(value(2)).toBe('0');
    expect(value(3)).toBe('0');
    expect(value(4)).toBe('0');
  });
});

describe('one tenant cannot take down the others', () => {
  test('heap, memory and thread pragmas are refused and every database keeps serving', async () => {
    for (const sql of ['PRAGMA hard_heap_limit = 1', 'PRAGMA soft_heap_limit = 1', 'PRAGMA mmap_size = 1000000000', 'PRAGMA threads = 8']) {
      const r = await run('heap', sql);
      expect(r.errors[0], `${sql} must be refused`).toBeTruthy();
    }
    expect(await count('victim0', 'secrets')).toBe(3);
    const health = await fetch(`${base}/health`);
    expect(health.status).toBe(200);
  });

  test('an endless recursive query is stopped by the statement time limit', async () => {
    const r = await run('slow', 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c');
    expect(r.errors[0]).toMatch(/interrupt|time limit/i);
    expect(await count('victim1', 'secrets')).toBe(3);
  });

  test('a tenant that keeps running heavy queries waits its turn (429 BUSY, Retry-After) while the others are served', async () => {
    const heavy = batch('WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c');
    let refused: Awaited<ReturnType<typeof rawPipeline>> | null = null;
    // Each heavy query runs its full limit (300 ms); the burst allowed is twice that, drained at a quarter.
    for (let i = 0; i < 30 && !refused; i++) {
      const r = await rawPipeline(`${base}/db/hog`, heavy, await token('hog'));
      if (r.status === 429) refused = r;
      else expect(r.status).toBe(200);
    }
    expect(refused, 'the hog was never made to wait').not.toBeNull();
    expect(refused!.json.code).toBe('BUSY');
    expect(refused!.json.error).toMatch(/share of the server's time.*retry in \d+ s/);
    expect(Number(refused!.headers.get('retry-after'))).toBeGreaterThan(0);
    // Another tenant is served at once.
    expect(await count('victim3', 'secrets')).toBe(3);
  });

  test('a huge zeroblob is refused at once by the value size limit', async () => {
    const r = await run('blob', 'SELECT length(zeroblob(2000000000))');
    expect(r.errors[0]).toMatch(/too big|TOOBIG|too large/i);
  });

  test('an oversized chunked body is answered 413 and the server keeps serving', async () => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        const chunk = new Uint8Array(1024 * 1024).fill(32);
        for (let i = 0; i < 40; i++) controller.enqueue(chunk);
        controller.close();
      },
    });
    const res = await fetch(`${base}/db/chunked/v2/pipeline`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await token('chunked')}`, 'content-type': 'application/json' },
      body,
      duplex: 'half',
    } as RequestInit).catch((e: Error) => e);
    if (!(res instanceof Error)) expect(res.status).toBe(413);
    expect(await count('victim2', 'secrets')).toBe(3);
  });

  test('a request body that never ends is cut off', async () => {
    const { port } = new URL(base);
    const socket = net.connect(Number(port), '127.0.0.1');
    const closed = new Promise<string>((resolve) => {
      let answer = '';
      socket.on('data', (d) => (answer += d.toString()));
      socket.on('close', () => resolve(answer));
    });
    socket.write(`POST /db/slowbody/v2/pipeline HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nAuthorization: Bearer ${await token('slowbody')}\r\n\r\n{"baton":`);
    // The server closes the socket on its own (body timeout); nothing more is sent.
    const answer = await closed;
    expect(answer === '' || /^HTTP\/1\.1 408/.test(answer)).toBe(true);
  });

  test('a deeply nested Hrana condition is a 400, not a crash', async () => {
    let cond: unknown = { type: 'ok', step: 0 };
    for (let i = 0; i < 100_000; i++) cond = { type: 'not', cond };
    const body = { baton: null, requests: [{ type: 'batch', batch: { steps: [{ stmt: { sql: 'SELECT 1', args: [] } }, { stmt: { sql: 'SELECT 2', args: [] }, condition: cond }] } }] };
    let text: string;
    try {
      text = JSON.stringify(body);
    } catch {
      // Too deep even for JSON.stringify here: build the text by hand.
      text = `{"baton":null,"requests":[{"type":"batch","batch":{"steps":[{"stmt":{"sql":"SELECT 1","args":[]}},{"stmt":{"sql":"SELECT 2","args":[]},"condition":${'{"type":"not","cond":'.repeat(100_000)}{"type":"ok","step":0}${'}'.repeat(100_000)}}]}}]}`;
    }
    const r = await rawPipeline(`${base}/db/nested`, text, await token('nested'));
    expect(r.status).toBe(400);
    expect(await count('victim3', 'secrets')).toBe(3);
  });
});

describe('pulls are not held in memory', () => {
  test('a pull larger than the in-memory limit streams from an unlinked spool file, byte for byte', async () => {
    // Four statements of 1 MB each, so that none reaches the 300 ms statement limit on a loaded machine.
    const quarter = 'INSERT INTO b SELECT randomblob(4000) FROM (WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 250) SELECT i FROM s)';
    const r = await run('bigpull', 'CREATE TABLE IF NOT EXISTS b(v)', quarter, quarter, quarter, quarter);
    expect(r.errors).toEqual([null, null, null, null, null]);
    const { PullStreamReader } = await import('../../src/protocol/pull-updates.js');
    const { rawPull } = await import('../support/server.js');
    let res = await rawPull(`${base}/db/bigpull`, {}, await token('bigpull'));
    // Writing 4 MB may use up the database's share on a loaded machine (the 300 ms statement
    // limit is its burst), and a pull's build is charged to it too: wait as the server asks.
    if (res.status === 429) {
      await new Promise((resolve) => setTimeout(resolve, Number(res.headers.get('retry-after')) * 1000));
      res = await rawPull(`${base}/db/bigpull`, {}, await token('bigpull'));
    }
    expect(res.status).toBe(200);
    const reader = new PullStreamReader();
    const pages = reader.push(res.body);
    const header = reader.finish();
    expect(pages.length).toBe(header.dbSize);
    expect(header.dbSize).toBeGreaterThan(1000);
    // The spool file was unlinked as soon as it was made: nothing is left behind.
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(`${dataDir}/.pulls`)).toEqual([]);
  });
});

describe("a token cannot write another client's acknowledgement", () => {
  test("rows of turso_sync_last_change_id belong to the subject that first wrote them", async () => {
    const url = `${base}/db/owned`;
    const alice = await mintToken(SECRET, { db: 'owned', role: 'write', subject: 'alice' });
    const bob = await mintToken(SECRET, { db: 'owned', role: 'write', subject: 'bob' });
    const as = async (t: string, ...sql: string[]): Promise<(string | null)[]> => {
      const { json } = await rawPipeline(url, batch(...sql), t);
      return json.results[0].response.result.step_errors.map((e: { message: string } | null) => e?.message ?? null);
    };
    const create = 'CREATE TABLE IF NOT EXISTS turso_sync_last_change_id (client_id TEXT PRIMARY KEY, pull_gen INTEGER, change_id INTEGER)';
    expect(await as(alice, create, "INSERT INTO turso_sync_last_change_id VALUES ('alice-client', 1, 5)")).toEqual([null, null]);
    expect(await as(alice, "UPDATE turso_sync_last_change_id SET change_id = 6 WHERE client_id = 'alice-client'")).toEqual([null]);
    const attacks = [
      "UPDATE turso_sync_last_change_id SET change_id = 999 WHERE client_id = 'alice-client'",
      "DELETE FROM turso_sync_last_change_id WHERE client_id = 'alice-client'",
      "INSERT OR REPLACE INTO turso_sync_last_change_id VALUES ('alice-client', 1, 999)",
      "INSERT INTO turso_sync_last_change_id VALUES ('alice-client', 1, 999) ON CONFLICT(client_id) DO UPDATE SET change_id = 999",
      "UPDATE turso_sync_last_change_id SET client_id = 'stolen'",
      "SELECT outpost_may_write_client('alice-client')",
      'DROP TABLE turso_sync_last_change_id',
      'ALTER TABLE turso_sync_last_change_id RENAME TO gone',
    ];
    for (const sql of attacks) expect((await as(bob, sql))[0], sql).toBeTruthy();
    // Bob's own client works, and Alice's acknowledgement is untouched.
    expect(await as(bob, "INSERT INTO turso_sync_last_change_id VALUES ('bob-client', 1, 1)")).toEqual([null]);
    const r = await rawPipeline(url, batch("SELECT change_id FROM turso_sync_last_change_id WHERE client_id = 'alice-client'"), alice);
    expect(r.json.results[0].response.result.step_results[0].rows[0][0].value).toBe('6');
  });
});
