/**
 * The server reads nothing from a URL's query string, and logs none of its values: a client
 * that puts its token there (`?authToken=...`, as some clients' URLs carry it) must not have a
 * valid credential written to every log line the server prints (front.ts `loggedPath`).
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { mintToken } from '../../src/server/auth.js';
import type { OutpostServer } from '../../src/server/index.js';
import { int, pick, rng, testSeed } from '../support/generate.js';
import { SECRET, batch, startServer } from '../support/server.js';

let server: OutpostServer;
let base: string;
const lines: string[] = [];

beforeAll(async () => {
  ({ server, url: base } = await startServer({ log: (line) => lines.push(line), logLevel: 'debug' }));
});
afterAll(async () => {
  await server.close();
});

test('generated: values in query strings (tokens among them) appear in no log line, whatever the route and answer', async () => {
  const seed = testSeed();
  console.log(`log redaction seed=${seed}`);
  const random = rng(seed);
  for (let round = 0; round < 20; round++) {
    const db = `q${round}`;
    const token = await mintToken(SECRET, { db, role: pick(random, ['read', 'write'] as const), subject: `s${int(random, 0, 1e6)}` });
    const secret = pick(random, [token, `${token}.${int(random, 0, 1e9)}`, encodeURIComponent(token)]);
    const name = pick(random, ['authToken', 'token', 'jwt', 'access_token', 'auth', 'x']);
    const extra = random() < 0.5 ? `&other=${int(random, 0, 1e9)}` : '';
    const route = pick(random, [`/db/${db}/v2/pipeline`, `/db/${db}/pull-updates`, '/v2/pipeline', '/nowhere', '/health', '/ready']);
    const withHeader = random() < 0.5;
    const method = route === '/health' || route === '/ready' ? 'GET' : 'POST';
    const before = lines.length;
    const res = await fetch(`${base}${route}?${name}=${secret}${extra}`, {
      method,
      headers: withHeader ? { authorization: `Bearer ${token}` } : {},
      ...(method === 'POST' ? { body: route.endsWith('pipeline') ? JSON.stringify(batch('SELECT 1')) : new Uint8Array(0) } : {}),
    });
    await res.arrayBuffer();
    // The request's log line is written once its answer is sent, before the client reads it all... or just after.
    await waitFor(() => lines.slice(before).some((l) => l.includes('request') && l.includes(route)));
    const logged = lines.slice(before).join('\n');
    const context = JSON.stringify({ seed, round, route, name, withHeader, status: res.status });
    expect(logged.includes(secret), context).toBe(false);
    expect(logged.includes(token.split('.')[2]!), context).toBe(false);
    // The parameter's name stays, so an operator sees that a token was put there.
    if (route !== '/health' && route !== '/ready') expect(logged.includes(name), context).toBe(true);
  }
});

async function waitFor(ok: () => boolean): Promise<void> {
  while (!ok()) await new Promise((resolve) => setImmediate(resolve));
}
