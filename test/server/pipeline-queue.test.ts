/**
 * Pulls before pipelines (pipeline-queue.ts): a pipeline's SQL waits in a first-come,
 * first-served queue that starts pipelines from the event loop's check phase, so a pull read
 * beside pushes is served before them, and nothing else about the order changes.
 * - One socket carrying several pushes and then a pull, pipelined in one write: the pull is
 *   answered from the revision before the pushes (it ran first), and the pushes then commit in
 *   the order they were sent. Without the queue the pushes ran from their handlers first and
 *   the pull saw all of them.
 * - Pipelines still queued when the server closes do not open databases again after it closed
 *   them all (they get 503 SHUTTING_DOWN).
 * - Generated mixed traffic (seeded): writers pushing numbered rows (some pipelined several to a
 *   socket, some one at a time, some as a stream of two requests with a baton), pullers and
 *   long pollers keeping a page image of their database up to date from incremental answers,
 *   all at once on a few databases, with slices of 0, 1 or 5 ms. Checked: every acknowledged
 *   row is there once, each writer's rows are in the order it sent them, and every replica
 *   built from incremental and long-poll answers equals the database's whole image.
 */
import * as net from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { RawHttpClient } from '../../bench/raw-http.js';
import { PipelineQueue } from '../../src/server/pipeline-queue.js';
import { PAGE_BYTES, PullStreamReader, encodePullRequest } from '../../src/protocol/pull-updates.js';
import type { OutpostServer } from '../../src/server/server.js';
import { rng, testSeed } from '../support/generate.js';
import { startServer } from '../support/server.js';

interface Answer {
  status: number;
  body: Buffer;
}

/** Writes `requests` to one new socket in one write (HTTP/1.1 pipelining) and reads their answers, in order. */
function pipelined(port: number, requests: Buffer[]): Promise<Answer[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let buffered = Buffer.alloc(0);
    const answers: Answer[] = [];
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`socket closed after ${answers.length} of ${requests.length} answers`)));
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const headEnd = buffered.indexOf('\r\n\r\n');
        if (headEnd < 0) break;
        const head = buffered.subarray(0, headEnd).toString('latin1');
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? Number.NaN);
        if (Number.isNaN(length)) return reject(new Error(`an answer without content-length: ${head}`));
        if (buffered.length < headEnd + 4 + length) break;
        answers.push({ status: Number(head.split(' ')[1]), body: buffered.subarray(headEnd + 4, headEnd + 4 + length) });
        buffered = buffered.subarray(headEnd + 4 + length);
      }
      if (answers.length === requests.length) {
        socket.removeAllListeners('close');
        socket.destroy();
        resolve(answers);
      }
    });
    socket.write(Buffer.concat(requests));
  });
}

const stmt = (sql: string, args: unknown[] = []): unknown => ({ sql, args: args.map((value) => (typeof value === 'number' ? { type: 'integer', value: String(value) } : { type: 'text', value: String(value) })) });

/** A pushed transaction of one numbered row, as a libsql client's batch sends it. */
function pushBody(writer: string, seq: number): string {
  const steps = [{ stmt: stmt('BEGIN IMMEDIATE') }, { stmt: stmt('INSERT INTO t(writer, seq) VALUES (?, ?)', [writer, seq]), condition: { type: 'ok', step: 0 } }, { stmt: stmt('COMMIT'), condition: { type: 'ok', step: 1 } }];
  return JSON.stringify({ baton: null, requests: [{ type: 'batch', batch: { steps } }] });
}

/** A page image of one database, kept up to date from pull answers. */
class Replica {
  revision = '';
  private pages = new Map<number, Buffer>();
  private size = 0;

  /** Applies one answer; false when it was not a 200. */
  apply(answer: Answer): void {
    expect(answer.status, answer.body.toString().slice(0, 200)).toBe(200);
    const reader = new PullStreamReader();
    const pages = reader.push(new Uint8Array(answer.body.buffer, answer.body.byteOffset, answer.body.byteLength));
    const header = reader.finish();
    if (header.applyMode !== 0) this.pages.clear();
    for (const page of pages) this.pages.set(page.pageId, Buffer.from(page.page));
    this.size = header.dbSize;
    this.revision = header.serverRevision;
  }

  image(): Buffer {
    const image = Buffer.alloc(this.size * PAGE_BYTES);
    for (const [id, page] of this.pages) if (id < this.size) page.copy(image, id * PAGE_BYTES);
    return image;
  }
}

describe('the pipeline queue', () => {
  test('generated: pipelines start in the order queued, and one waiting on another\'s start does not hold the queue', async () => {
    const seed = testSeed();
    const random = rng(seed);
    const queue = new PipelineQueue({ sliceMs: [0, 1, 5][Math.floor(random() * 3)]! });
    const started: number[] = [];
    const startedSignals = new Map<number, () => void>();
    const whenStarted = new Map<number, Promise<void>>();
    const count = 20 + Math.floor(random() * 60);
    for (let i = 0; i < count; i++) whenStarted.set(i, new Promise((resolve) => startedSignals.set(i, resolve)));
    const runs: Promise<number>[] = [];
    for (let i = 0; i < count; i++) {
      // Some wait for a later pipeline to start (as a stream's request waits for its turn), some for a timer, some not at all.
      const kind = random();
      const later = i + 1 + Math.floor(random() * 5);
      const delayMs = Math.floor(random() * 3);
      runs.push(
        queue.run(async () => {
          started.push(i);
          startedSignals.get(i)!();
          if (kind < 0.3 && later < count) await whenStarted.get(later);
          else if (kind < 0.5) await new Promise((resolve) => setTimeout(resolve, delayMs));
          return i;
        }),
      );
      // Pipelines also arrive while others run.
      if (random() < 0.2) await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await Promise.all(runs), `seed ${seed}`).toEqual(Array.from({ length: count }, (_, i) => i));
    expect(started, `seed ${seed}`).toEqual(Array.from({ length: count }, (_, i) => i));
    expect(queue.length).toBe(0);
  });
});

describe('pulls before pipelines', () => {
  let server: OutpostServer | null = null;
  afterEach(async () => {
    await server?.close();
    server = null;
  });

  async function start(sliceMs: number): Promise<{ port: number; client: RawHttpClient }> {
    const started = await startServer({ auth: false, pipelineSliceMs: sliceMs, shareOfServer: 1 });
    server = started.server;
    const port = Number(new URL(started.url).port);
    return { port, client: new RawHttpClient('127.0.0.1', port) };
  }

  test('a pull sent after pushes on one socket is answered before they commit, and they commit in the order sent', async () => {
    const { port, client } = await start(0);
    const schema = await client.send(client.encode('/db/a/v2/pipeline', JSON.stringify({ baton: null, requests: [{ type: 'execute', stmt: stmt('CREATE TABLE t(id INTEGER PRIMARY KEY, writer TEXT, seq INTEGER)') }] }), null));
    expect(schema.status).toBe(200);
    const before = new Replica();
    before.apply(await client.send(client.encode('/db/a/pull-updates', Buffer.from(encodePullRequest({})), null)));
    const pushes = Array.from({ length: 8 }, (_, i) => client.encode('/db/a/v2/pipeline', pushBody('w', i), null));
    const pull = client.encode('/db/a/pull-updates', Buffer.from(encodePullRequest({ clientRevision: before.revision })), null);
    const answers = await pipelined(port, [...pushes, pull]);
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
    const pulled = new Replica();
    pulled.apply(answers[answers.length - 1]!);
    expect(pulled.revision, 'the pull ran before the pushes read with it').toBe(before.revision);
    const rows = await client.send(client.encode('/db/a/v2/pipeline', JSON.stringify({ baton: null, requests: [{ type: 'execute', stmt: stmt('SELECT seq FROM t ORDER BY id') }] }), null));
    const seqs = (JSON.parse(rows.body.toString()) as { results: { response: { result: { rows: { value: string }[][] } } }[] }).results[0]!.response.result.rows.map((r) => Number(r[0]!.value));
    expect(seqs).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    client.destroy();
  });

  test('pipelines still queued when the server closes open no database after it closed them all', async () => {
    const { port, client } = await start(0);
    const requests = Array.from({ length: 30 }, (_, i) => client.encode(`/db/q${i}/v2/pipeline`, JSON.stringify({ baton: null, requests: [{ type: 'execute', stmt: stmt('CREATE TABLE t(x)') }] }), null));
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write(Buffer.concat(requests));
    // Slices of 0 ms start one pipeline a turn of the loop: close once the first has opened its database.
    while (server!.openDatabases === 0) await new Promise((resolve) => setImmediate(resolve));
    await server!.close();
    for (let turn = 0; turn < 50; turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(server!.openDatabases).toBe(0);
    socket.destroy();
    client.destroy();
  });

  test('generated: mixed pushes, streams, pulls and long polls keep each writer\'s order and give replicas equal to the database', async () => {
    const seed = testSeed();
    const random = rng(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const sliceMs = pick([0, 1, 5]);
    const { port, client } = await start(sliceMs);
    const databases = Array.from({ length: 2 + Math.floor(random() * 3) }, (_, i) => `m${i}`);
    const at = (db: string, route: string): string => `/db/${db}/${route}`;
    const execute = (db: string, sql: string): Promise<Answer> => client.send(client.encode(at(db, 'v2/pipeline'), JSON.stringify({ baton: null, requests: [{ type: 'execute', stmt: stmt(sql) }] }), null));
    for (const db of databases) expect((await execute(db, 'CREATE TABLE t(id INTEGER PRIMARY KEY, writer TEXT, seq INTEGER)')).status, `seed ${seed}`).toBe(200);
    const pullFrom = (db: string, revision: string, longPollMs = 0): Promise<Answer> =>
      client.send(client.encode(at(db, 'pull-updates'), Buffer.from(encodePullRequest({ clientRevision: revision, longPollTimeoutMs: longPollMs })), null));
    /** Rows each writer had acknowledged, by database, in the order it sent them. */
    const acknowledged = new Map<string, { db: string; seqs: number[] }>();
    let writersLeft = 0;

    const writer = async (name: string, db: string, plan: { kind: 'one' | 'pipelined' | 'stream'; count: number }[]): Promise<void> => {
      const done: number[] = [];
      acknowledged.set(name, { db, seqs: done });
      let seq = 0;
      for (const { kind, count } of plan) {
        if (kind === 'one') {
          const answer = await client.send(client.encode(at(db, 'v2/pipeline'), pushBody(name, seq), null));
          expect(answer.status, `seed ${seed}: ${answer.body.toString().slice(0, 200)}`).toBe(200);
          done.push(seq++);
        } else if (kind === 'pipelined') {
          const seqs = Array.from({ length: count }, () => seq++);
          const answers = await pipelined(port, seqs.map((s) => client.encode(at(db, 'v2/pipeline'), pushBody(name, s), null)));
          for (const answer of answers) expect(answer.status, `seed ${seed}: ${answer.body.toString().slice(0, 200)}`).toBe(200);
          done.push(...seqs);
        } else {
          // A transaction over two requests: BEGIN and the row, then COMMIT with the baton.
          const first = await client.send(client.encode(at(db, 'v2/pipeline'), JSON.stringify({ baton: null, requests: [{ type: 'execute', stmt: stmt('BEGIN IMMEDIATE') }, { type: 'execute', stmt: stmt('INSERT INTO t(writer, seq) VALUES (?, ?)', [name, seq]) }] }), null));
          // Others waiting for the database refuse a new stream (503 BUSY): nothing was written.
          if (first.status === 503) continue;
          expect(first.status, `seed ${seed}: ${first.body.toString().slice(0, 200)}`).toBe(200);
          const baton = (JSON.parse(first.body.toString()) as { baton: string | null }).baton;
          expect(baton, `seed ${seed}`).not.toBeNull();
          const second = await client.send(client.encode(at(db, 'v2/pipeline'), JSON.stringify({ baton, requests: [{ type: 'execute', stmt: stmt('COMMIT') }, { type: 'close' }] }), null));
          expect(second.status, `seed ${seed}: ${second.body.toString().slice(0, 200)}`).toBe(200);
          done.push(seq++);
        }
      }
    };
    const follower = async (db: string, longPollMs: number): Promise<Replica> => {
      const replica = new Replica();
      replica.apply(await pullFrom(db, ''));
      while (writersLeft > 0) replica.apply(await pullFrom(db, replica.revision, longPollMs));
      return replica;
    };

    const writers = Array.from({ length: 3 + Math.floor(random() * 4) }, (_, i) => {
      // Drawn before anything runs, so a seed replays the same plan whatever the timing.
      const plan = Array.from({ length: 4 + Math.floor(random() * 8) }, () => ({ kind: pick(['one', 'one', 'pipelined', 'stream'] as const), count: 2 + Math.floor(random() * 4) }));
      return { name: `w${i}`, db: pick(databases), plan };
    });
    const followers = Array.from({ length: 2 + Math.floor(random() * 4) }, () => ({ db: pick(databases), longPollMs: pick([0, 0, 50, 200]) }));
    writersLeft = writers.length;
    const replicas = followers.map((f) => follower(f.db, f.longPollMs).then((replica) => ({ db: f.db, replica })));
    await Promise.all(writers.map((w) => writer(w.name, w.db, w.plan).finally(() => writersLeft--)));
    const built = await Promise.all(replicas);

    for (const [name, { db, seqs }] of acknowledged) {
      const rows = await execute(db, `SELECT seq FROM t WHERE writer = '${name}' ORDER BY id`);
      const json = JSON.parse(rows.body.toString()) as { results: { response: { result: { rows: { value: string }[][] } } }[] };
      const stored = json.results[0]!.response.result.rows.map((r) => Number(r[0]!.value));
      expect(stored, `seed ${seed} (slices of ${sliceMs} ms): writer ${name}'s rows, in the order stored`).toEqual(seqs);
    }
    for (const { db, replica } of built) {
      // Brought up to date from its last revision, the replica equals a whole pull's image.
      replica.apply(await pullFrom(db, replica.revision));
      const whole = new Replica();
      whole.apply(await pullFrom(db, ''));
      expect(replica.revision, `seed ${seed}`).toBe(whole.revision);
      expect(replica.image().equals(whole.image()), `seed ${seed}: replica of ${db} differs from its whole image`).toBe(true);
    }
    console.log(`pipeline queue: seed ${seed}, slices of ${sliceMs} ms, ${databases.length} databases, ${writers.length} writers, ${followers.length} followers`);
    client.destroy();
  });
});
