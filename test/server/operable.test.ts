/**
 * Running the server for real, in-process: `/metrics` scrapes in Prometheus's format and
 * counts what happened, `/ready` follows startup and drain, log lines are JSON when asked and
 * honour the level, CORS origins can be limited, `createHandler` mounts inside an existing
 * Node HTTP app, and a drain answers long polls and lets requests in flight finish.
 */
import { connect } from '@tursodatabase/sync';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { PullStreamReader } from '../../src/protocol/pull-updates.js';
import { type OutpostHandler, type OutpostServer, createHandler } from '../../src/server/server.js';
import { batch, rawPipeline, rawPull, startServer, tempDir } from '../support/server.js';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function started(options: Parameters<typeof startServer>[0] = {}): Promise<{ server: OutpostServer; url: string }> {
  const s = await startServer({ auth: false, ...options });
  cleanups.push(() => s.server.close());
  return s;
}

/** The value of one sample of a Prometheus text exposition; undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

async function scrape(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return res.text();
}

/** A pipeline that writes the sync protocol table, as a push does. */
function push(clientId: string, changeId: number): unknown {
  return batch(
    'BEGIN IMMEDIATE',
    'CREATE TABLE IF NOT EXISTS turso_sync_last_change_id (client_id TEXT PRIMARY KEY, pull_gen INTEGER, change_id INTEGER)',
    'CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, body TEXT)',
    `INSERT INTO notes(body) VALUES ('n${changeId}')`,
    `INSERT OR REPLACE INTO turso_sync_last_change_id VALUES ('${clientId}', 0, ${changeId})`,
    'COMMIT',
  );
}

function revisionOf(body: Uint8Array): string {
  const reader = new PullStreamReader();
  reader.push(body);
  return reader.finish().serverRevision;
}

describe('/metrics', () => {
  test('counts requests by route and status, pushes, pulls, bytes and open databases', async () => {
    const { url } = await started();
    expect((await rawPipeline(`${url}/db/m1`, push('c1', 1))).status).toBe(200);
    expect((await rawPull(`${url}/db/m1`, {})).status).toBe(200);
    expect((await rawPipeline(`${url}/db/m1`, '{not json')).status).toBe(400);
    const text = await scrape(url);
    expect(sample(text, 'outpost_http_requests_total', { route: 'pipeline', method: 'POST', status: '200' })).toBe(1);
    expect(sample(text, 'outpost_http_requests_total', { route: 'pipeline', method: 'POST', status: '400' })).toBe(1);
    expect(sample(text, 'outpost_http_requests_total', { route: 'pull-updates', method: 'POST', status: '200' })).toBe(1);
    expect(sample(text, 'outpost_http_request_duration_seconds_count', { route: 'pipeline' })).toBe(2);
    expect(sample(text, 'outpost_pushes_total', { outcome: 'ok' })).toBe(1);
    expect(sample(text, 'outpost_pulls_total', { outcome: 'ok' })).toBe(1);
    expect(sample(text, 'outpost_databases_open')).toBe(1);
    expect(sample(text, 'outpost_databases_opened_total')).toBe(1);
    // The one database's main file and WAL, from a pool that had no need to close either.
    expect(sample(text, 'outpost_database_files_open')).toBe(2);
    expect(sample(text, 'outpost_database_files_limit')).toBeGreaterThanOrEqual(2);
    expect(sample(text, 'outpost_database_file_reopens_total')).toBe(0);
    expect(sample(text, 'outpost_http_received_bytes_total')).toBeGreaterThan(500);
    expect(sample(text, 'outpost_http_sent_bytes_total')).toBeGreaterThan(4096);
    expect(sample(text, 'outpost_ready')).toBe(1);
    expect(sample(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);
  });

  test('counts evictions past the open limit', async () => {
    const { url } = await started({ maxOpenDatabases: 1 });
    for (const name of ['e1', 'e2', 'e3']) expect((await rawPipeline(`${url}/db/${name}`, batch('SELECT 1'))).status).toBe(200);
    const text = await scrape(url);
    expect(sample(text, 'outpost_databases_evicted_total')).toBe(2);
    expect(sample(text, 'outpost_databases_open')).toBe(1);
  });

  test('counts a long poll while it waits, and its wait once it is answered', async () => {
    const log = new LogWatch();
    const { url } = await started({ logLevel: 'debug', log: log.sink });
    await rawPipeline(`${url}/db/lp`, batch('CREATE TABLE t(v)'));
    const revision = revisionOf((await rawPull(`${url}/db/lp`, {})).body);
    const waiting = log.next('long poll waiting');
    const poll = rawPull(`${url}/db/lp`, { clientRevision: revision, longPollTimeoutMs: 60_000 });
    await waiting;
    expect(sample(await scrape(url), 'outpost_long_polls_waiting')).toBe(1);
    await rawPipeline(`${url}/db/lp`, batch("INSERT INTO t VALUES ('wake')"));
    expect((await poll).status).toBe(200);
    const text = await scrape(url);
    expect(sample(text, 'outpost_long_polls_waiting')).toBe(0);
    expect(sample(text, 'outpost_long_poll_duration_seconds_count')).toBe(1);
    // The long-polled pull is not in the latency histogram: only the first, plain pull is.
    expect(sample(text, 'outpost_http_request_duration_seconds_count', { route: 'pull-updates' })).toBe(1);
  });

  test('many long polls at once raise no listener-leak warning', async () => {
    const polls = 24;
    let waiting = 0;
    let allWaiting!: () => void;
    const everyPollWaits = new Promise<void>((resolve) => (allWaiting = resolve));
    const sink = (line: string): void => {
      if (line.includes('long poll waiting') && ++waiting === polls) allWaiting();
    };
    const { url } = await started({ logLevel: 'debug', log: sink });
    await rawPipeline(`${url}/db/many`, batch('CREATE TABLE t(v)'));
    const revision = revisionOf((await rawPull(`${url}/db/many`, {})).body);
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    try {
      const answers = Array.from({ length: polls }, () => rawPull(`${url}/db/many`, { clientRevision: revision, longPollTimeoutMs: 60_000 }));
      await everyPollWaits;
      await rawPipeline(`${url}/db/many`, batch("INSERT INTO t VALUES ('wake')"));
      for (const answer of await Promise.all(answers)) expect(answer.status).toBe(200);
      // A warning is emitted on a later tick than the listener that caused it.
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.filter((w) => w.includes('MaxListeners'))).toEqual([]);
  });

  test('label values are route kinds, never database names', async () => {
    const { url } = await started();
    await rawPipeline(`${url}/db/secret-tenant-name`, batch('SELECT 1'));
    expect(await scrape(url)).not.toContain('secret-tenant-name');
  });

  test('metrics: false removes the route', async () => {
    const { url } = await started({ metrics: false });
    expect((await fetch(`${url}/metrics`)).status).toBe(404);
  });

  test('with a metrics token, a scrape without it or with another gets 401 and no metrics', async () => {
    const { url } = await started({ metricsToken: 'metrics-token-0123456789' });
    for (const headers of [{} as Record<string, string>, { authorization: 'Bearer metrics-token-0123456788' }, { authorization: 'metrics-token-0123456789' }, { authorization: 'Bearer ' }]) {
      const res = await fetch(`${url}/metrics`, { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      const body = await res.text();
      expect(body).toContain('metrics token');
      expect(body).not.toContain('outpost_http_requests_total');
    }
  });

  test('its refusals have the shape of every error answer: error, message and code', async () => {
    // @libsql/client reads an error's code only beside a `message`.
    const off = await fetch(`${(await started({ metrics: false })).url}/metrics`);
    expect(await off.json()).toEqual({ error: 'metrics are turned off', message: 'metrics are turned off', code: 'NOT_FOUND' });
    const unauthorized = await fetch(`${(await started({ metricsToken: 'metrics-token-0123456789' })).url}/metrics`);
    expect(await unauthorized.json()).toMatchObject({ message: expect.stringContaining('metrics token'), code: 'UNAUTHORIZED' });
  });

  test('with a metrics token, a scrape that sends it gets the metrics', async () => {
    const { url } = await started({ metricsToken: 'metrics-token-0123456789' });
    const res = await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer metrics-token-0123456789' } });
    expect(res.status).toBe(200);
    expect(sample(await res.text(), 'outpost_ready')).toBe(1);
  });

  test('a metrics token shorter than 16 characters is refused at startup', async () => {
    await expect(startServer({ auth: false, metricsToken: 'short' })).rejects.toThrow(/at least 16/);
  });
});

describe('logs', () => {
  test('JSON lines carry level, message, method, status and database', async () => {
    const lines: string[] = [];
    const { url } = await started({ logFormat: 'json', log: (line) => lines.push(line) });
    await rawPipeline(`${url}/db/logged`, batch('SELECT 1'));
    await rawPipeline(`${url}/db/logged`, '{bad');
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records).toContainEqual(expect.objectContaining({ level: 'info', msg: 'request', method: 'POST', status: 200, db: 'logged', time: expect.any(String) }));
    expect(records).toContainEqual(expect.objectContaining({ level: 'info', msg: 'request', status: 400, code: 'PROTOCOL_ERROR' }));
  });

  test('the level drops lines below it', async () => {
    const lines: string[] = [];
    const { url } = await started({ logLevel: 'warn', log: (line) => lines.push(line) });
    await rawPipeline(`${url}/db/quiet`, batch('SELECT 1'));
    expect(lines).toEqual([]);
  });
});

describe('/ready and drain', () => {
  test('/ready answers 200 once listening, /health too', async () => {
    const { url, server } = await started();
    expect(server.ready).toBe(true);
    expect(await (await fetch(`${url}/ready`)).json()).toEqual({ ready: true, draining: false });
    expect((await fetch(`${url}/health`)).status).toBe(200);
  });

  test('a drain answers a waiting long poll at once, lets a request in flight finish, then refuses', async () => {
    // The handler under our own socket server, so requests can still reach it while it drains.
    const log = new LogWatch();
    const { handler, url } = await mounted('', log.sink);
    await rawPipeline(`${url}/db/d`, batch('CREATE TABLE t(v)'));
    const revision = revisionOf((await rawPull(`${url}/db/d`, {})).body);
    const waiting = log.next('long poll waiting');
    const poll = rawPull(`${url}/db/d`, { clientRevision: revision, longPollTimeoutMs: 60_000 });
    await waiting;
    // A request in flight: the handler has its headers, its body is still to come.
    const body = JSON.stringify(batch("INSERT INTO t VALUES ('in flight')"));
    const arrived = log.next('request started');
    const inFlight = rawRequest(`${url}/db/d/v2/pipeline`, body);
    await arrived;
    const drained = handler.drain();
    expect(handler.ready).toBe(false);
    expect((await poll).status).toBe(200);
    expect((await fetch(`${url}/ready`)).status).toBe(503);
    const refused = await fetch(`${url}/db/d/v2/pipeline`, { method: 'POST', body: JSON.stringify(batch('SELECT 1')) });
    expect(refused.status).toBe(503);
    expect(await refused.json()).toEqual({ error: 'the server is shutting down', message: 'the server is shutting down', code: 'SHUTTING_DOWN' });
    inFlight.finish();
    expect(await inFlight.status).toBe(200);
    await drained;
  });
});

describe('createHandler in an existing app', () => {
  test('serves sync under a prefix, passes other requests to the app, and an official client syncs through it', async () => {
    const { url } = await mounted('/sync');
    expect(await (await fetch(`${url}/app`)).text()).toBe('the app');
    expect((await rawPipeline(`${url}/sync/db/mounted`, batch('CREATE TABLE t(v)', "INSERT INTO t VALUES ('via the app')"))).status).toBe(200);
    expect((await fetch(`${url}/sync/ready`)).status).toBe(200);
    const dir = tempDir('outpost-mounted-');
    const client = await connect({ path: join(dir, 'c.db'), url: `${url}/sync/db/mounted`, clientName: 'mounted' });
    try {
      expect(await (await client.prepare('SELECT v FROM t')).all()).toEqual([{ v: 'via the app' }]);
      await client.exec("INSERT INTO t VALUES ('from the client')");
      await client.push();
    } finally {
      await client.close();
    }
    const res = await rawPipeline(`${url}/sync/db/mounted`, batch('SELECT count(*) FROM t'));
    expect(res.json.results[0].response.result.step_results[0].rows[0][0].value).toBe('2');
  });
});

describe('CORS origins', () => {
  test('a listed origin is echoed, another gets no CORS headers', async () => {
    const { url } = await started({ corsOrigins: ['https://app.example'] });
    const allowed = await fetch(`${url}/db/cors/v2/pipeline`, { method: 'OPTIONS', headers: { origin: 'https://app.example' } });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(allowed.headers.get('vary')).toBe('Origin');
    const other = await fetch(`${url}/db/cors/v2/pipeline`, { method: 'POST', headers: { origin: 'https://evil.example' }, body: JSON.stringify(batch('SELECT 1')) });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });

  test('by default any origin may call', async () => {
    const { url } = await started();
    const res = await fetch(`${url}/db/cors/v2/pipeline`, { method: 'POST', headers: { origin: 'https://any.example' }, body: JSON.stringify(batch('SELECT 1')) });
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
  });
});

/** An app on its own socket: `/app` is the app's, the rest goes to an Outpost handler (under `basePath`). */
async function mounted(basePath = '', log: (line: string) => void = () => {}): Promise<{ handler: OutpostHandler; url: string }> {
  const handler = createHandler({ dataDir: tempDir('outpost-handler-'), auth: false, basePath, log, logLevel: 'debug' });
  const app = http.createServer((req, res) => {
    if (req.url === '/app') return void res.end('the app');
    handler(req, res, () => {
      res.statusCode = 404;
      res.end('not the app either');
    });
  });
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', () => resolve()));
  await handler.whenReady();
  cleanups.push(async () => {
    await handler.close();
    app.closeAllConnections();
    await new Promise((resolve) => app.close(resolve));
  });
  return { handler, url: `http://127.0.0.1:${(app.address() as AddressInfo).port}` };
}

/** A POST whose headers go out now and whose body goes out on finish(). */
function rawRequest(url: string, body: string): { finish: () => void; status: Promise<number> } {
  const target = new URL(url);
  let finish = (): void => {};
  const status = new Promise<number>((resolve, reject) => {
    const req = http.request({ host: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.flushHeaders();
    finish = () => req.end(body);
  });
  return { finish: () => finish(), status };
}

/** Log lines as events: `next(text)` resolves on the next line containing it. */
class LogWatch {
  private readonly waiters: { text: string; resolve: () => void }[] = [];
  readonly sink = (line: string): void => {
    for (const w of [...this.waiters]) {
      if (!line.includes(w.text)) continue;
      this.waiters.splice(this.waiters.indexOf(w), 1);
      w.resolve();
    }
  };
  next(text: string): Promise<void> {
    return new Promise((resolve) => this.waiters.push({ text, resolve }));
  }
}
