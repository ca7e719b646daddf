/**
 * Hostile requests at the HTTP level, generated: what attack.test.ts and attack-routes.test.ts
 * do not vary. Each case is one raw connection that sends a seeded mix of: oversized or many
 * headers, a request line or header that is not HTTP, a wrong or missing content type, a body
 * whose length lies (shorter, longer, a bad chunk size, chunked and a length at once), several
 * requests pipelined with garbage between or after them, and tokens that must not pass (none,
 * `alg: none`, HS512 with the right secret, expired, not yet valid, for another database, for a
 * list of databases without this one, signed with another secret, truncated). It must hold:
 * - the server never answers 5xx and never crashes, and every answer on the connection is a
 *   well-formed HTTP status line (or the connection is closed);
 * - a request whose token must not pass never gets a 2xx, and the victim's rows never change;
 * - after each case, another tenant is still served at once.
 * Each run prints its seed; OUTPOST_SEED=<seed> replays it, OUTPOST_HTTP_CASES sets the count
 * (default 60).
 */
import * as net from 'node:net';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { mintToken } from '../../src/server/auth.js';
import { encodePullRequest } from '../../src/protocol/pull-updates.js';
import type { OutpostServer } from '../../src/server/server.js';
import { type Random, int, pick, rng, testSeed } from '../support/generate.js';
import { SECRET, runBatch, startServer } from '../support/server.js';

const CASES = Number(process.env.OUTPOST_HTTP_CASES ?? 60);
const BODY_TIMEOUT_MS = 1500;

let server: OutpostServer;
let base: string;
let port: number;

beforeAll(async () => {
  ({ server, url: base } = await startServer({ bodyTimeoutMs: BODY_TIMEOUT_MS, maxBodyBytes: 256 * 1024, shareOfServer: 1 }));
  port = Number(new URL(base).port);
  const r = await runBatch(`${base}/db/victim`, await mintToken(SECRET, { role: 'write', db: 'victim' }), 'CREATE TABLE secrets(id INTEGER PRIMARY KEY, s TEXT)', "INSERT INTO secrets(s) VALUES ('a'), ('b'), ('c')");
  expect(r.errors).toEqual([null, null]);
});
afterAll(() => server.close());

const key = (secret: string): Uint8Array => new TextEncoder().encode(secret);
const b64url = (s: string): string => Buffer.from(s).toString('base64url');

/** A token that must not pass for the database `victim`, and what it is. */
async function badToken(random: Random): Promise<[what: string, token: string | null]> {
  const now = Math.floor(Date.now() / 1000);
  switch (int(random, 0, 9)) {
    case 0:
      return ['none', null];
    case 1:
      return ['alg none', `${b64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${b64url(JSON.stringify({ db: 'victim', role: 'write' }))}.`];
    case 2:
      return ['HS512 with the secret', await new SignJWT({ db: 'victim', role: 'write' }).setProtectedHeader({ alg: 'HS512' }).sign(key(SECRET))];
    case 3:
      return ['expired', await new SignJWT({ db: 'victim', role: 'write' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(now - int(random, 1, 100_000)).sign(key(SECRET))];
    case 4:
      return ['not yet valid', await new SignJWT({ db: 'victim', role: 'write' }).setProtectedHeader({ alg: 'HS256' }).setNotBefore(now + int(random, 60, 100_000)).sign(key(SECRET))];
    case 5:
      // Not 'other': the route /db/victim/../other/ reaches database "other" (the server reads the
      // path as a URL), where a token for it rightly passes.
      return ['for another database', await mintToken(SECRET, { role: 'write', db: pick(random, ['elsewhere', 'Victim', 'victim ', 'victim/..', 'victim.db', '']) })];
    case 6:
      return ['for a list without it', await mintToken(SECRET, { role: 'write', db: ['elsewhere', pick(random, ['VICTIM', 'victim2', 'vict'])] })];
    case 7:
      return ['another secret', await mintToken(`${SECRET}-not`, { role: 'write', db: 'victim' })];
    case 8: {
      const good = await mintToken(SECRET, { role: 'write', db: 'victim' });
      return ['truncated', good.slice(0, int(random, 1, good.length - 2))];
    }
    default:
      return ['role missing', await new SignJWT({ db: 'victim', role: pick(random, ['admin ', 'WRITE', 'root', '']) }).setProtectedHeader({ alg: 'HS256' }).sign(key(SECRET))];
  }
}

const GARBAGE = ['\r\n\r\n', 'GARBAGE\r\n\r\n', '\x00\x01\x02\xff\r\n', 'GET / HTTP/9.9\r\n\r\n', 'POST /db/victim/v2/pipeline HTTP/1.1\r\nContent-Length: -1\r\n\r\n', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', `GET /${'a'.repeat(70_000)} HTTP/1.1\r\n\r\n`];

/** One seeded hostile request (or pipelined run of them) as raw bytes, and whether any of it carries a token that may pass. */
async function hostileBytes(random: Random): Promise<{ bytes: string; what: string[] }> {
  const what: string[] = [];
  let bytes = '';
  for (let n = int(random, 1, 3); n > 0; n--) {
    const route = pick(random, ['/db/victim/v2/pipeline', '/db/victim/v3/pipeline', '/db/victim/pull-updates', '/db/victim/v3/cursor', '/db/victim/info', '/db/%76ictim/v2/pipeline', '/db/victim/../other/v2/pipeline', '/db/victim//v2/pipeline', '/health', '/metrics']);
    const [tokenWhat, token] = await badToken(random);
    const body = route.endsWith('pull-updates') && random() < 0.5 ? Buffer.from(encodePullRequest({})).toString('latin1') : pick(random, [JSON.stringify({ baton: null, requests: [{ type: 'execute', stmt: { sql: 'DELETE FROM secrets' } }] }), '{"baton":null,"requests":[', '\x00'.repeat(10), '', 'x'.repeat(int(random, 1, 4000))]);
    const headers: string[] = [`Host: ${pick(random, ['x', 'x', '', 'x'.repeat(5000)])}`];
    if (token !== null) headers.push(`Authorization: ${pick(random, ['Bearer ', 'bearer ', 'Bearer  ', 'Basic '])}${token}`);
    const type = pick(random, ['application/json', 'application/protobuf', 'text/plain', 'multipart/form-data; boundary=x', '', 'application/json; charset=utf-16']);
    if (type) headers.push(`Content-Type: ${type}`);
    const framing = pick(random, ['length', 'length', 'length', 'chunked', 'short', 'long', 'bad-chunk', 'both', 'none']);
    let payload = body;
    if (framing === 'length') headers.push(`Content-Length: ${Buffer.byteLength(body, 'latin1')}`);
    else if (framing === 'short') headers.push(`Content-Length: ${Math.max(0, Buffer.byteLength(body, 'latin1') - int(random, 1, 5))}`);
    else if (framing === 'long') headers.push(`Content-Length: ${Buffer.byteLength(body, 'latin1') + int(random, 1, 5)}`);
    else if (framing === 'chunked') {
      headers.push('Transfer-Encoding: chunked');
      payload = `${Buffer.byteLength(body, 'latin1').toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    } else if (framing === 'bad-chunk') {
      headers.push('Transfer-Encoding: chunked');
      payload = `${pick(random, ['zz', 'ffffffffffffffff', '-1', '1;'.repeat(3000)])}\r\n${body}\r\n0\r\n\r\n`;
    } else if (framing === 'both') {
      headers.push(`Content-Length: ${Buffer.byteLength(body, 'latin1')}`, 'Transfer-Encoding: chunked');
      payload = `${Buffer.byteLength(body, 'latin1').toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    }
    const extra = pick(random, ['none', 'none', 'none', 'huge', 'many', 'bad-name', 'folded']);
    if (extra === 'huge') headers.push(`X-Big: ${'b'.repeat(int(random, 10_000, 200_000))}`);
    else if (extra === 'many') for (let i = int(random, 100, 3000); i > 0; i--) headers.push(`X-${i}: v`);
    else if (extra === 'bad-name') headers.push('Bad Header: x');
    else if (extra === 'folded') headers.push('X-Folded: a\r\n  continued');
    what.push(`${route} token ${tokenWhat}, ${type || 'no type'}, ${framing}, ${extra}`);
    bytes += `POST ${route} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n${payload}`;
    if (random() < 0.3) {
      const g = pick(random, GARBAGE);
      bytes += g;
      what.push(`garbage ${JSON.stringify(g.slice(0, 20))}`);
    }
  }
  return { bytes, what };
}

/** Sends `bytes` on a new connection; resolves to everything the server answered once it closes (or after a while). */
function exchange(bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (d) => (answer += d.toString('latin1')));
    socket.on('error', () => {});
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    socket.on('close', done);
    // Bodies that promise more than they send wait for the body timeout: the server cuts them.
    const timer = setTimeout(done, BODY_TIMEOUT_MS * 4);
    socket.write(Buffer.from(bytes, 'latin1'), () => socket.end());
  });
}

test('generated hostile requests: no 5xx, no crash, no bad token passes, and other tenants are served', async () => {
  const seed = testSeed();
  console.log(`hostile http: seed ${seed}, ${CASES} cases (OUTPOST_SEED=${seed} replays it)`);
  const random = rng(seed);
  const other = await mintToken(SECRET, { role: 'write', db: 'bystander' });
  const statuses = new Map<string, number>();
  for (let c = 0; c < CASES; c++) {
    // Batches of concurrent connections, as an attacker would open them.
    // Built one after another: interleaved, the awaits inside would take the random numbers in
    // an order that depends on timing, and a seed would not replay.
    const batch: Awaited<ReturnType<typeof hostileBytes>>[] = [];
    for (let n = int(random, 1, 4); n > 0; n--) batch.push(await hostileBytes(random));
    const answers = await Promise.all(batch.map((h) => exchange(h.bytes)));
    for (const [i, answer] of answers.entries()) {
      const context = `seed ${seed} case ${c}.${i}: ${batch[i]!.what.join(' | ')}`;
      const lines = [...answer.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => m[1]!);
      for (const s of lines) statuses.set(s, (statuses.get(s) ?? 0) + 1);
      expect(lines.filter((s) => s.startsWith('5')), `${context}: ${answer.slice(0, 300)}`).toEqual([]);
      // /health and /metrics answer without a token; nothing else may succeed.
      const dataRoutes = batch[i]!.what.filter((w) => w.startsWith('/db/'));
      if (dataRoutes.length === batch[i]!.what.filter((w) => !w.startsWith('garbage')).length) expect(lines.filter((s) => s.startsWith('2')), `${context}: ${answer.slice(0, 300)}`).toEqual([]);
    }
    const r = await runBatch(`${base}/db/bystander`, other, 'SELECT 1');
    expect(r.errors, `seed ${seed} case ${c}: the bystander`).toEqual([null]);
  }
  const victim = await runBatch(`${base}/db/victim`, await mintToken(SECRET, { role: 'read', db: 'victim' }), 'SELECT group_concat(s) FROM secrets');
  expect(JSON.stringify(victim.rows), `seed ${seed}: the victim's rows`).toContain('a,b,c');
  console.log(`hostile http: statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
}, 300_000);
