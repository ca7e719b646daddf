/**
 * More routes to the attacks of attack.test.ts, found by an audit of issue 10 (see
 * docs/issue10-coverage.md): each class is tried by every route the audit could name, with the
 * cases generated (seeded; the seed is printed on failure). After each attack the victims still
 * hold their rows and the server still answers.
 */
import { readdirSync, readlinkSync } from 'node:fs';
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, test, vi } from 'vitest';
import { mintToken } from '../../src/server/auth.js';
import { encodePullRequest } from '../../src/protocol/pull-updates.js';
import type { OutpostServer } from '../../src/server/server.js';
import { int, pick, rng, testSeed } from '../support/generate.js';
import { type BatchOutcome, SECRET, batch, rawPipeline, runBatch, startServer } from '../support/server.js';

const ANSWER_BYTES_MAX = 2 * 1024 * 1024;
const BODY_BYTES_MAX = 1024 * 1024;
const BODY_TIMEOUT_MS = 1500;

let server: OutpostServer;
let base: string;

async function token(db: string, role: 'read' | 'write' = 'write'): Promise<string> {
  return mintToken(SECRET, { role, db });
}

/** Runs statements as one Hrana batch on `db` with a token of `role`. */
async function run(db: string, role: 'read' | 'write', ...sql: string[]): Promise<BatchOutcome> {
  return runBatch(`${base}/db/${db}`, await token(db, role), ...sql);
}

const firstValue = (rows: unknown[] | undefined): string => String((rows?.[0] as { value: string }[] | undefined)?.[0]?.value);

async function victimRows(): Promise<string> {
  const r = await run('victim', 'read', 'SELECT count(*) FROM secrets');
  expect(r.errors).toEqual([null]);
  return firstValue(r.rows[0]);
}

beforeAll(async () => {
  // Every test here attacks on its own; one tenant's time share must not refuse the next test.
  ({ server, url: base } = await startServer({
    statementTimeoutMs: 1000,
    bodyTimeoutMs: BODY_TIMEOUT_MS,
    maxBodyBytes: BODY_BYTES_MAX,
    valueBytesMax: BODY_BYTES_MAX,
    maxAnswerBytes: ANSWER_BYTES_MAX,
    shareOfServer: 1,
  }));
  const r = await run('victim', 'write', 'CREATE TABLE IF NOT EXISTS secrets(id INTEGER PRIMARY KEY, s TEXT)', "INSERT INTO secrets(s) VALUES ('a'), ('b'), ('c')");
  expect(r.errors).toEqual([null, null]);
  // Read tokens cannot create a database: the ones they attack exist.
  for (const db of ['state2', 'bigvalue', 'answers', 'chunks', 'slow', 'unread']) expect((await run(db, 'write', 'SELECT 1')).errors).toEqual([null]);
});
afterAll(() => server.close());

describe('connection state', () => {
  /** Settings of the connection (not of the file); each value differs from the server's. */
  const SETTINGS: [name: string, value: string][] = [
    ['hard_heap_limit', '1'],
    ['soft_heap_limit', '1'],
    ['query_only', '1'],
    ['foreign_keys', '0'],
    ['recursive_triggers', '1'],
    ['reverse_unordered_selects', '1'],
    ['temp_store', '2'],
    ['cache_size', '-1000000'],
    ['cache_spill', '0'],
    ['mmap_size', '1000000000'],
    ['threads', '8'],
    ['busy_timeout', '100000'],
    ['locking_mode', "'exclusive'"],
    ['journal_mode', "'delete'"],
    ['synchronous', '0'],
    ['wal_autocheckpoint', '0'],
    ['cell_size_check', '0'],
    ['case_sensitive_like', '1'],
    ['automatic_index', '0'],
    ['writable_schema', '1'],
    ['trusted_schema', '1'],
    ['secure_delete', '1'],
    ['analysis_limit', '1'],
  ];

  test('generated PRAGMA routes (statement, schema-qualified, table-valued) leave the next request the state it started with', async () => {
    const seed = testSeed();
    const random = rng(seed);
    await run('state2', 'write', 'CREATE TABLE IF NOT EXISTS t(x)');
    const before = await run('state2', 'write', ...SETTINGS.filter(([n]) => !n.endsWith('heap_limit')).map(([n]) => `SELECT * FROM pragma_${n}`));
    for (let i = 0; i < 60; i++) {
      const [name, value] = pick(random, SETTINGS);
      const sql = pick(random, [
        `PRAGMA ${name} = ${value}`,
        `PRAGMA main.${name} = ${value}`,
        `PRAGMA ${name}(${value})`,
        `SELECT * FROM pragma_${name}(${value})`,
        `SELECT * FROM main.pragma_${name}(${value})`,
      ]);
      await run('state2', pick(random, ['read', 'write'] as const), sql);
      // The next request, of another client: it writes, and sees the settings as they were.
      const after = await run('state2', 'write', 'INSERT INTO t VALUES (1)', 'PRAGMA integrity_check');
      expect(after.errors, `seed ${seed}: after ${sql}`).toEqual([null, null]);
      expect(firstValue(after.rows[1]), `seed ${seed}: after ${sql}`).toBe('ok');
    }
    const settings = await run('state2', 'write', ...SETTINGS.filter(([n]) => !n.endsWith('heap_limit')).map(([n]) => `SELECT * FROM pragma_${n}`));
    expect(settings, `seed ${seed}`).toEqual(before);
    expect(await victimRows()).toBe('3');
    expect((await fetch(`${base}/health`)).status).toBe(200);
  });
});

test('PRAGMAs that read by name (table_info(t), index_list(t), ...) are answered, for read tokens too, in either form', async () => {
  await run('state2', 'write', 'CREATE TABLE IF NOT EXISTS named(id INTEGER PRIMARY KEY, v TEXT UNIQUE)');
  for (const role of ['read', 'write'] as const) {
    const r = await run(
      'state2',
      role,
      'PRAGMA table_info(named)',
      "SELECT name FROM pragma_table_info('named') ORDER BY cid",
      'PRAGMA table_xinfo(named)',
      'PRAGMA index_list(named)',
      'PRAGMA foreign_key_list(named)',
      'PRAGMA foreign_key_check(named)',
      'PRAGMA integrity_check(10)',
      'PRAGMA quick_check(named)',
    );
    expect(r.errors, role).toEqual([null, null, null, null, null, null, null, null]);
    expect(r.rows[1]!.map((row) => (row as { value: string }[])[0]!.value), role).toEqual(['id', 'v']);
  }
});

describe('values and answers', () => {
  test('generated routes to a value over the limit fail with SQLITE_TOOBIG, and the server goes on', async () => {
    const seed = testSeed();
    const random = rng(seed);
    const over = (): number => BODY_BYTES_MAX + int(random, 1, 4 * BODY_BYTES_MAX);
    for (let i = 0; i < 30; i++) {
      const n = over();
      const sql = pick(random, [
        `SELECT zeroblob(${n})`,
        `SELECT randomblob(${n})`,
        `SELECT printf('%.*c', ${n}, 'x')`,
        `SELECT length(printf('%${n}d', 1))`,
        `SELECT replace(hex(zeroblob(${Math.ceil(n / 2) + 1})), '0', '00')`,
        `SELECT length(group_concat(hex(randomblob(${Math.ceil(n / 64)})), '')) FROM (WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 40) SELECT i FROM s)`,
        `WITH RECURSIVE c(x, s) AS (SELECT 1, 'xxxxxxxx' UNION ALL SELECT x + 1, s || s FROM c WHERE x < 40) SELECT length(s) FROM c`,
      ]);
      const r = await run('bigvalue', pick(random, ['read', 'write'] as const), sql);
      expect(r.errors[0], `seed ${seed}: ${sql}`).toMatch(/too big|TOOBIG|too large/i);
    }
    expect(await victimRows()).toBe('3');
  });

  test("generated reads whose rows pass the answer limit fail with SQLITE_TOOBIG; smaller ones are answered whole", async () => {
    const seed = testSeed();
    const random = rng(seed);
    for (let i = 0; i < 24; i++) {
      const rows = int(random, 1, 40);
      const bytes = int(random, 1, 300_000);
      const steps = int(random, 1, 3);
      const select = `SELECT randomblob(${bytes}) FROM (WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ${rows}) SELECT i FROM s)`;
      const role = pick(random, ['read', 'write'] as const);
      const r = await run('answers', role, ...Array.from({ length: steps }, () => select));
      const context = `seed ${seed}: ${steps} x ${rows} rows of ${bytes} bytes (${role})`;
      // The budget counts every cell of the whole pipeline, in order.
      const failsAt = Math.floor(ANSWER_BYTES_MAX / (rows * bytes));
      for (let s = 0; s < steps; s++) {
        if (s < failsAt) {
          expect(r.errors[s], context).toBeNull();
          expect(r.rows[s]!.length, context).toBe(rows);
        } else if (s === failsAt) {
          expect(r.errors[s], context).toMatch(/answer limit of \d+ bytes/);
        }
      }
      // Each request has a budget of its own.
      expect((await run('answers', role, 'SELECT 1')).errors, context).toEqual([null]);
    }
    expect(await victimRows()).toBe('3');
  });

  test("a sequence's rows are bounded too, and a write's RETURNING rows are never cut after its changes", async () => {
    const { json } = await rawPipeline(
      `${base}/db/answers`,
      { baton: null, requests: [{ type: 'sequence', sql: 'SELECT randomblob(900000) FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3)' }] },
      await token('answers', 'read'),
    );
    expect(json.results[0].type).toBe('error');
    expect(json.results[0].error.message).toMatch(/answer limit/);
    const w = await run('answers', 'write', 'CREATE TABLE IF NOT EXISTS r(v)', 'INSERT INTO r SELECT zeroblob(900000) FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3) RETURNING v');
    expect(w.errors).toEqual([null, null]);
    expect(w.rows[1]!.length).toBe(3);
  });
});

describe('bodies', () => {
  test('generated oversized chunked bodies, with any token or none, on every route, are refused and the server goes on', async () => {
    const seed = testSeed();
    const random = rng(seed);
    const tokens = { write: await token('chunks'), read: await token('chunks', 'read'), other: await token('elsewhere'), none: null, forged: 'a.b.c' };
    for (let i = 0; i < 16; i++) {
      const route = pick(random, ['v2/pipeline', 'v3/pipeline', 'v3/cursor', 'pull-updates']);
      const who = pick(random, Object.keys(tokens) as (keyof typeof tokens)[]);
      const chunkBytes = int(random, 1024, 256 * 1024);
      const chunks = Math.ceil((BODY_BYTES_MAX + int(random, 1, 2 * BODY_BYTES_MAX)) / chunkBytes);
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          const chunk = new Uint8Array(chunkBytes).fill(32);
          for (let c = 0; c < chunks; c++) controller.enqueue(chunk);
          controller.close();
        },
      });
      const t = tokens[who];
      const res = await fetch(`${base}/db/chunks/${route}`, {
        method: 'POST',
        headers: { ...(t ? { authorization: `Bearer ${t}` } : {}), 'content-type': route === 'pull-updates' ? 'application/protobuf' : 'application/json' },
        body,
        duplex: 'half',
      } as RequestInit).catch((e: Error) => e);
      // The server may close the socket while the body still arrives: the client then sees an error.
      const expected = who === 'none' || who === 'forged' ? 401 : who === 'other' ? 403 : 413;
      if (!(res instanceof Error)) expect(res.status, `seed ${seed}: ${route} with ${who}`).toBe(expected);
    }
    expect(await victimRows()).toBe('3');
  });

  test('generated slow bodies (stalled or trickling, with a token, none or a forged one) are cut off', async () => {
    const seed = testSeed();
    const random = rng(seed);
    const { port } = new URL(base);
    const write = await token('slow');
    const cases = Array.from({ length: 8 }, () => ({
      auth: pick(random, [write, null, 'a.b.c']),
      trickle: random() < 0.5,
      route: pick(random, ['/db/slow/v2/pipeline', '/db/slow/pull-updates', '/db/slow/v3/cursor']),
    }));
    const answers = await Promise.all(
      cases.map(
        ({ auth, trickle, route }) =>
          new Promise<string>((resolve) => {
            const socket = net.connect(Number(port), '127.0.0.1');
            let answer = '';
            let timer: ReturnType<typeof setInterval> | undefined;
            socket.on('data', (d) => (answer += d.toString()));
            socket.on('error', () => {});
            socket.on('close', () => {
              clearInterval(timer);
              resolve(answer);
            });
            socket.write(`POST ${route} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n${auth ? `Authorization: Bearer ${auth}\r\n` : ''}\r\n{`);
            // A byte every so often: never enough to finish, always enough to look alive.
            if (trickle) timer = setInterval(() => socket.write(' '), BODY_TIMEOUT_MS / 10);
          }),
      ),
    );
    for (const [i, answer] of answers.entries()) {
      const c = cases[i]!;
      const context = `seed ${seed}: ${c.route}, ${c.auth === null ? 'no token' : c.auth === write ? 'a token' : 'a forged token'}, ${c.trickle ? 'trickling' : 'stalled'}`;
      // Closed by the server: the body timeout (408, or nothing), or at once when unauthorised.
      expect(answer === '' || /^HTTP\/1\.1 (408|401)/.test(answer), `${context}: ${answer.split('\r\n')[0]}`).toBe(true);
    }
    expect(await victimRows()).toBe('3');
  });
});

describe('clients that do not read', () => {
  /** The spool files the server holds open (unlinked: only their descriptors are left). */
  function spoolFiles(): number {
    let n = 0;
    for (const fd of readdirSync('/proc/self/fd')) {
      try {
        if (readlinkSync(`/proc/self/fd/${fd}`).includes('/.pulls/pull-')) n++;
      } catch {
        // The descriptor closed while it was listed.
      }
    }
    return n;
  }

  test.skipIf(process.platform !== 'linux')('pulls that their clients never read are let go (socket and spool file) after the body time limit', async () => {
    // Far over the spool's memory limit (1 MiB), and over what the sockets' kernel buffers take
    // in (several MiB each on loopback), so the answers cannot all be handed to the system.
    for (let i = 0; i < 8; i++) {
      const r = await run('unread', 'write', 'CREATE TABLE IF NOT EXISTS b(v)', 'INSERT INTO b SELECT randomblob(4000) FROM (WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 1000) SELECT i FROM s)');
      expect(r.errors).toEqual([null, null]);
    }
    const body = encodePullRequest({});
    const read = await token('unread', 'read');
    const { port } = new URL(base);
    const sockets: net.Socket[] = [];
    for (let i = 0; i < 4; i++) {
      const socket = net.connect(Number(port), '127.0.0.1');
      socket.on('error', () => {});
      // The client never reads: its receive buffer fills, then the server's send buffer.
      socket.pause();
      socket.write(`POST /db/unread/pull-updates HTTP/1.1\r\nHost: x\r\nContent-Type: application/protobuf\r\nContent-Length: ${body.length}\r\nAuthorization: Bearer ${read}\r\n\r\n`);
      socket.write(body);
      sockets.push(socket);
    }
    try {
      await vi.waitFor(() => expect(spoolFiles()).toBeGreaterThan(0), { timeout: 60_000, interval: 50 });
      // Each stalled answer is cut off once nothing moved for the body time limit.
      await vi.waitFor(() => expect(spoolFiles()).toBe(0), { timeout: 120_000, interval: 200 });
    } finally {
      for (const s of sockets) s.destroy();
    }
    expect(await victimRows()).toBe('3');
  });
});
