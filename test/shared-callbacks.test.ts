/**
 * The engine's callbacks (authorizer, progress handler, scalar functions) go through one WASM
 * function each per runtime, dispatched by handle (engine/guards.ts): each connection must
 * still get only its own, and a closed connection's must not reach the next handle SQLite
 * puts at the same address. Generated: connections opened and closed in a seeded order.
 */
import { expect, test } from 'vitest';
import { Connection } from '../src/engine/connection.js';
import { SqliteError } from '../src/errors.js';
import { MemoryDirectory } from '../src/opfs-vfs/storage/memory.js';
import { rng, testSeed } from './support/generate.js';

let opened = 0;
const openConnection = (options: { lookaside?: boolean } = {}): Promise<Connection> =>
  Connection.open(new MemoryDirectory(`memory:callbacks-${opened++}`), { durability: 'normal', intMode: 'number', ...options });

test('generated: each connection calls its own function, authorizer and progress handler, also after others closed at the same address', async () => {
  const seed = testSeed();
  console.log(`shared callbacks seed=${seed}`);
  const random = rng(seed);
  const live: { conn: Connection; tag: number; denied: string; stops: boolean }[] = [];
  let tags = 0;
  let checks = 0;
  for (let step = 0; step < 60; step++) {
    if (live.length > 0 && random() < 0.4) {
      // Close a random one: its handle's address is free for the next open.
      const [gone] = live.splice(Math.floor(random() * live.length), 1);
      await gone!.conn.close();
      continue;
    }
    const conn = await openConnection({ lookaside: random() < 0.5 });
    const tag = ++tags;
    const denied = `secret_${tag}`;
    const stops = random() < 0.3;
    conn.exec(`CREATE TABLE ${denied}(x); CREATE TABLE open_${tag}(x)`);
    conn.createFunction('whose', 0, () => tag);
    conn.setAuthorizer((action, a) => !(a === denied));
    if (stops) conn.setProgressHandler(1, () => true);
    live.push({ conn, tag, denied, stops });
    for (const entry of live) {
      if (entry.stops) {
        expect(() => entry.conn.value('WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 100000) SELECT count(*) FROM c')).toThrow(/interrupt/i);
        continue;
      }
      expect(entry.conn.value('SELECT whose()')).toBe(entry.tag);
      expect(() => entry.conn.value(`SELECT count(*) FROM ${entry.denied}`)).toThrow(/not authorized/i);
      expect(entry.conn.value(`SELECT count(*) FROM open_${entry.tag}`)).toBe(0);
      checks++;
    }
  }
  for (const entry of live) await entry.conn.close();
  expect(checks).toBeGreaterThan(0);
});

test('a function that throws fails its statement with the thrown message, and the connection goes on', async () => {
  const conn = await openConnection();
  conn.createFunction('boom', 1, (x) => {
    throw new Error(`boom ${String(x)}`);
  });
  expect(() => conn.value("SELECT boom('now')")).toThrow(/boom now/);
  expect(conn.value('SELECT 1')).toBe(1);
  await conn.close();
});

test('rules or a progress check that throw fail only the statement, and the connection goes on', async () => {
  const conn = await openConnection();
  conn.exec('CREATE TABLE t(x)');
  conn.setAuthorizer(() => {
    throw new Error('rules broke');
  });
  // SQLite reports it (a SqliteError); the JS error never unwound through SQLite's frames.
  expect(() => conn.value('SELECT count(*) FROM t')).toThrow(SqliteError);
  conn.setAuthorizer(null);
  conn.setProgressHandler(1, () => {
    throw new Error('check broke');
  });
  expect(() => conn.value('WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000) SELECT count(*) FROM c')).toThrow(/interrupt/i);
  conn.setProgressHandler(1, null);
  expect(conn.value('SELECT count(*) FROM t')).toBe(0);
  await conn.close();
});

test('a removed progress handler stops nothing', async () => {
  const conn = await openConnection();
  conn.setProgressHandler(1, () => true);
  expect(() => conn.value('WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000) SELECT count(*) FROM c')).toThrow(/interrupt/i);
  conn.setProgressHandler(1, null);
  expect(conn.value('WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000) SELECT count(*) FROM c')).toBe(1000);
  await conn.close();
});

test('a connection without lookaside works as one with it', async () => {
  const conn = await openConnection({ lookaside: false });
  conn.exec('CREATE TABLE t(a, b); INSERT INTO t WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 500) SELECT n, hex(randomblob(20)) FROM c');
  expect(conn.value('SELECT count(*) FROM t')).toBe(500);
  await conn.close();
});
