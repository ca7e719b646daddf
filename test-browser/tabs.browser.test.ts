/**
 * Multi-tab: several contexts of one origin open the same OPFS database. Each "tab" is a
 * dedicated worker (tabs.worker.ts) calling the public `open()`, or the test page itself;
 * `worker.terminate()` is a tab crashing (its nested database worker dies with it).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { type Database, OutpostError, open } from '../src/index.js';
import { type TabMessage, type TabReply, channelName, clientLockName, replyChannelName } from '../src/worker/tabs-protocol.js';
import { int, rng, testSeed } from '../test/support/generate.js';
import { Tab, type TabKind } from './tab.js';
import type { WriteLoopResult } from './tabs.worker.js';

const unique = (prefix: string): string => `${prefix}-${crypto.randomUUID()}`;

/** Settles with the engine's id when a context next announces it runs the engine of `name` (other than `except`). */
function nextEngineAnnouncement(name: string, except?: string): Promise<string> {
  return nextAnnouncement(name, except).then((m) => m.engineId);
}

function nextAnnouncement(name: string, except?: string): Promise<Extract<TabMessage, { type: 'engine' }>> {
  const channel = new BroadcastChannel(channelName(name));
  return new Promise((resolve) => {
    channel.onmessage = (event: MessageEvent<TabMessage>) => {
      if (event.data.type !== 'engine' || event.data.engineId === except) return;
      channel.close();
      resolve(event.data);
    };
  });
}

/**
 * A follower played by the test through the tab protocol itself, to see what an engine
 * records: it holds its lifetime lock (so its records are kept) and reads its own answers.
 */
class ProtocolFollower {
  readonly clientId = crypto.randomUUID();
  private readonly channel: BroadcastChannel;
  private readonly replies: BroadcastChannel;
  private readonly waiting: ((r: TabReply) => boolean)[] = [];
  private release: () => void = () => {};

  constructor(private readonly name: string) {
    this.channel = new BroadcastChannel(channelName(name));
    this.replies = new BroadcastChannel(replyChannelName(name, this.clientId));
    this.replies.onmessage = (event: MessageEvent<TabReply>) => {
      const i = this.waiting.findIndex((w) => w(event.data));
      if (i >= 0) this.waiting.splice(i, 1);
    };
  }

  async start(): Promise<void> {
    await new Promise<void>((granted) => {
      void navigator.locks.request(clientLockName(this.name, this.clientId), () => {
        granted();
        return new Promise<void>((r) => (this.release = r));
      });
    });
  }

  private reply<R extends TabReply>(match: (r: TabReply) => r is R): Promise<R> {
    return new Promise((resolve) =>
      this.waiting.push((r) => {
        if (!match(r)) return false;
        resolve(r);
        return true;
      }),
    );
  }

  /** Sends a call to `engineId` and waits for its result. */
  async call(engineId: string, callId: number, method: string, args: unknown[]): Promise<TabReply> {
    const result = this.reply((r): r is TabReply => r.type === 'result' && r.callId === callId);
    this.channel.postMessage({ type: 'call', engineId, clientId: this.clientId, callId, keepFrom: callId, sentAt: Date.now(), timeoutMs: 60_000, method, args } satisfies TabMessage);
    return result;
  }

  outcomes(engineId: string, calls: { callId: number; method: string }[]): Promise<Extract<TabReply, { type: 'outcomes' }>> {
    const answer = this.reply((r): r is Extract<TabReply, { type: 'outcomes' }> => r.type === 'outcomes');
    this.channel.postMessage({ type: 'outcomes', engineId, clientId: this.clientId, calls } satisfies TabMessage);
    return answer;
  }

  close(): void {
    this.channel.close();
    this.replies.close();
    this.release();
  }
}

const tabs: Tab[] = [];
const databases: Database[] = [];
/** The kind of tab the running suite starts (tab.ts): frames use the broker, workers the fallback. */
let kind: TabKind = 'worker';
function tab(): Tab {
  const t = new Tab(kind);
  tabs.push(t);
  return t;
}
async function openHere(name: string, options: { tabTimeoutMs?: number } = {}): Promise<Database> {
  const db = await open(name, options);
  databases.push(db);
  return db;
}

const followers: ProtocolFollower[] = [];
afterEach(async () => {
  for (const f of followers.splice(0)) f.close();
  for (const t of tabs.splice(0)) t.terminate();
  for (const db of databases.splice(0)) await db.close().catch(() => {});
});

/**
 * Every test runs on both paths: the broker path (frames and this page, all with
 * `SharedWorker`), and the fallback (dedicated-worker tabs, which have no `SharedWorker`, and
 * this page with it hidden).
 */
describe.each([
  { path: 'broker (SharedWorker)', tabKind: 'frame' as const, sharedWorker: true },
  { path: 'fallback (BroadcastChannel only)', tabKind: 'worker' as const, sharedWorker: false },
])('$path', ({ tabKind, sharedWorker }) => {
  beforeAll(() => {
    kind = tabKind;
    if (!sharedWorker) vi.stubGlobal('SharedWorker', undefined);
  });
  afterAll(() => {
    vi.unstubAllGlobals();
  });

  test('the engine is reached on the path under test', async () => {
    const name = unique('tabs-path');
    const announced = nextAnnouncement(name);
    const engine = tab();
    // What this test checks is the path, not liveness: a generous silence bound keeps a machine
    // starved of CPU (CI at load 30 starved the engine's heartbeats past the 10 s default) from
    // turning a slow answer into a refusal.
    const tabTimeoutMs = 120_000;
    await engine.call({ op: 'open', name, tabTimeoutMs });
    expect(await engine.call({ op: 'hasSharedWorker' })).toBe(sharedWorker);
    const announcement = await announced;
    // An engine registered with a broker names it: its followers then wait for the broker's port.
    expect(announcement.brokerId !== null).toBe(sharedWorker);
    // The broker's port carries a follower's calls; without it they go on the broadcast.
    const broadcast = new BroadcastChannel(channelName(name));
    let broadcastCalls = 0;
    broadcast.onmessage = (event: MessageEvent<TabMessage>) => {
      if (event.data.type === 'call') broadcastCalls++;
    };
    const page = await openHere(name, { tabTimeoutMs });
    await page.exec('CREATE TABLE t(x)');
    expect(await engine.call({ op: 'query', sql: "SELECT name FROM sqlite_schema WHERE name = 't'" })).toEqual([{ name: 't' }]);
    broadcast.close();
    expect(broadcastCalls > 0).toBe(!sharedWorker);
  });

  test('a second and third context open the same database, and every write is visible everywhere', async () => {
    const name = unique('tabs-three');
    const page = await openHere(name);
    await page.exec('CREATE TABLE t(who TEXT, seq INTEGER)');
    const [a, b] = [tab(), tab()];
    await Promise.all([a.call({ op: 'open', name }), b.call({ op: 'open', name })]);
    const count = 30;
    const pageWrites = (async () => {
      for (let seq = 0; seq < count; seq++) await page.run('INSERT INTO t(who, seq) VALUES (?, ?)', ['page', seq]);
    })();
    const [ra, rb] = await Promise.all([
      a.call<WriteLoopResult>({ op: 'writeLoop', who: 'a', count }),
      b.call<WriteLoopResult>({ op: 'writeLoop', who: 'b', count }),
      pageWrites,
    ]);
    expect(ra.acked).toHaveLength(count);
    expect(rb.acked).toHaveLength(count);
    const sql = 'SELECT who, count(*) AS n FROM t GROUP BY who ORDER BY who';
    const expected = [
      { who: 'a', n: count },
      { who: 'b', n: count },
      { who: 'page', n: count },
    ];
    expect(await page.query(sql)).toEqual(expected);
    expect(await a.call({ op: 'query', sql })).toEqual(expected);
    expect(await b.call({ op: 'query', sql })).toEqual(expected);
  });

  test('a crashed engine context is replaced: every write settles, nothing acknowledged is lost, nothing applied twice', async () => {
    const seed = testSeed();
    console.log(`tabs crash seed ${seed} (OUTPOST_SEED replays it)`);
    const random = rng(seed);
    const name = unique('tabs-crash');
    const engine = tab();
    await engine.call({ op: 'open', name });
    await engine.call({ op: 'run', sql: 'CREATE TABLE t(who TEXT, seq INTEGER)' });
    const follower = tab();
    await follower.call({ op: 'open', name });
    const page = await openHere(name);
    const count = 200;
    const followerWrites = follower.call<WriteLoopResult>({ op: 'writeLoop', who: 'follower', count });
    const pageResult: WriteLoopResult = { acked: [], unknown: [], failed: [] };
    const pageWrites = (async () => {
      for (let seq = 0; seq < count; seq++) {
        try {
          await page.run('INSERT INTO t(who, seq) VALUES (?, ?)', ['page', seq]);
          pageResult.acked.push(seq);
        } catch (e) {
          if (e instanceof OutpostError && e.code === 'OUTCOME_UNKNOWN') pageResult.unknown.push(seq);
          else pageResult.failed.push({ seq, message: String(e) });
        }
      }
    })();
    const crashAfter = int(random, 1, 120);
    await follower.event((e) => e.event === 'ack' && e.seq === crashAfter);
    engine.terminate();
    const [followerResult] = await Promise.all([followerWrites, pageWrites]);

    for (const [who, result] of [
      ['follower', followerResult],
      ['page', pageResult],
    ] as const) {
      expect(result.failed, who).toEqual([]);
      // A write in flight when the engine died is answered from the applied-call records.
      expect(result.unknown, who).toEqual([]);
      expect(result.acked.length + result.unknown.length, who).toBe(count);
      const rows = await page.query<{ seq: number; n: number }>('SELECT seq, count(*) AS n FROM t WHERE who = ? GROUP BY seq', [who]);
      const times = new Map(rows.map((r) => [r.seq, r.n]));
      for (const seq of result.acked) expect(times.get(seq), `${who} ${seq}`).toBe(1);
      for (const seq of result.unknown) expect(times.get(seq) ?? 0, `${who} ${seq}`).toBeLessThanOrEqual(1);
      expect(rows.every((r) => r.n === 1), who).toBe(true);
    }
    expect(await page.query('PRAGMA integrity_check')).toEqual([{ integrity_check: 'ok' }]);
  });

  /** An engine tab holding an open transaction of its own, and a follower of it: calls sent to the engine wait in its queue. */
  async function engineHoldingCalls(name: string): Promise<{ engine: Tab; reader: Tab; writer: Tab }> {
    const engine = tab();
    await engine.call({ op: 'open', name });
    await engine.call({ op: 'run', sql: 'CREATE TABLE t(who TEXT, seq INTEGER)' });
    const [reader, writer] = [tab(), tab()];
    await Promise.all([reader.call({ op: 'open', name }), writer.call({ op: 'open', name })]);
    await engine.call({ op: 'hangInTransaction', sql: "INSERT INTO t VALUES ('engine', 1)" });
    await engine.event((e) => e.event === 'inside');
    return { engine, reader, writer };
  }

  /** syncStatus skips the engine's queue and goes after the calls sent before it: once answered, the engine has them. */
  async function delivered(...contexts: Tab[]): Promise<void> {
    for (const t of contexts) await t.call({ op: 'syncStatus' });
  }

  test('when the engine crashes holding calls, a read and a recorded write it never committed run once on the next engine', async () => {
    const name = unique('tabs-inflight');
    const { engine, reader, writer } = await engineHoldingCalls(name);
    const read = reader.call({ op: 'query', sql: 'SELECT count(*) AS n FROM t' });
    const write = writer.call({ op: 'run', sql: "INSERT INTO t VALUES ('writer', 1)" });
    await delivered(reader, writer);
    engine.terminate();
    // The read may run before or after the write on the next engine; the engine's row is gone.
    expect([[{ n: 0 }], [{ n: 1 }]]).toContainEqual(await read);
    await write;
    expect(await writer.call({ op: 'query', sql: 'SELECT who, count(*) AS n FROM t GROUP BY who' })).toEqual([{ who: 'writer', n: 1 }]);
  });

  test('when the engine crashes holding an unrecorded write (a query with RETURNING), it rejects OUTCOME_UNKNOWN', async () => {
    const name = unique('tabs-unknown');
    const { engine, writer } = await engineHoldingCalls(name);
    const write = writer.call({ op: 'query', sql: "INSERT INTO t VALUES ('writer', 1) RETURNING who" }).then(
      () => null,
      (e: unknown) => e,
    );
    await delivered(writer);
    engine.terminate();
    expect(await write).toMatchObject({ code: 'OUTCOME_UNKNOWN' });
    expect(await writer.call({ op: 'query', sql: 'SELECT count(*) AS n FROM t' })).toEqual([{ n: 0 }]);
  });

  test("a follower's transaction cut by an engine crash rejects TRANSACTION_LOST and leaves nothing", async () => {
    const name = unique('tabs-txlost');
    const engine = tab();
    await engine.call({ op: 'open', name });
    await engine.call({ op: 'run', sql: 'CREATE TABLE t(who TEXT, seq INTEGER)' });
    const follower = tab();
    await follower.call({ op: 'open', name });
    const transaction = follower.call({ op: 'pausedTransaction', sql: "INSERT INTO t VALUES ('follower', 1)" }).then(
      () => null,
      (e: unknown) => e,
    );
    await follower.event((e) => e.event === 'inside');
    // Terminating a tab does not stop its nested database worker at once: until the follower
    // announces itself as the engine (it holds the lock, so the old one is gone), the old engine
    // could still run and commit the rest of the transaction.
    const announced = nextEngineAnnouncement(name);
    engine.terminate();
    await announced;
    await follower.call({ op: 'resume' });
    expect(await transaction).toMatchObject({ code: 'TRANSACTION_LOST' });
    expect(await follower.call({ op: 'query', sql: 'SELECT count(*) AS n FROM t' })).toEqual([{ n: 0 }]);
    await follower.call({ op: 'run', sql: "INSERT INTO t VALUES ('after', 1)" });
    expect(await follower.call({ op: 'query', sql: 'SELECT who FROM t' })).toEqual([{ who: 'after' }]);
  });

  test('closing the engine context hands over without losing or failing a call', async () => {
    const name = unique('tabs-close');
    const engine = await open(name);
    await engine.exec('CREATE TABLE t(who TEXT, seq INTEGER)');
    const follower = tab();
    await follower.call({ op: 'open', name });
    const count = 100;
    const writes = follower.call<WriteLoopResult>({ op: 'writeLoop', who: 'follower', count });
    await follower.event((e) => e.event === 'ack' && e.seq === 10);
    await engine.close();
    const result = await writes;
    expect(result).toEqual({ acked: Array.from({ length: count }, (_, i) => i), unknown: [], failed: [] });
    expect(await follower.call({ op: 'query', sql: 'SELECT count(*) AS n FROM t' })).toEqual([{ n: count }]);
  });

  test("a follower's transaction holds other contexts' writes and is rolled back when it dies", async () => {
    const name = unique('tabs-tx');
    const page = await openHere(name);
    await page.exec('CREATE TABLE t(who TEXT, seq INTEGER)');
    const follower = tab();
    await follower.call({ op: 'open', name });
    await follower.call({ op: 'hangInTransaction', sql: "INSERT INTO t VALUES ('follower', 1)" });
    await follower.event((e) => e.event === 'inside');
    // Had the page's write run inside the follower's transaction, the rollback would undo it too.
    const pageWrite = page.run("INSERT INTO t VALUES ('page', 1)");
    follower.terminate();
    await pageWrite;
    expect(await page.query('SELECT who FROM t')).toEqual([{ who: 'page' }]);
    expect(await page.query('PRAGMA integrity_check')).toEqual([{ integrity_check: 'ok' }]);
  });

  test("a follower's watch and onChange fire for another context's write", async () => {
    const name = unique('tabs-watch');
    const page = await openHere(name);
    await page.exec('CREATE TABLE t(who TEXT, seq INTEGER); CREATE TABLE other(v)');
    const watcher = tab();
    const writer = tab();
    await Promise.all([watcher.call({ op: 'open', name }), writer.call({ op: 'open', name })]);
    await watcher.call({ op: 'watch', sql: 'SELECT count(*) AS n FROM t' });
    await watcher.event((e) => e.event === 'rows' && JSON.stringify(e.rows) === '[{"n":0}]');
    const seenHere = new Promise<string[]>((resolve) => page.onChange(['t'], resolve));
    await writer.call({ op: 'run', sql: "INSERT INTO t VALUES ('writer', 1)" });
    await watcher.event((e) => e.event === 'rows' && JSON.stringify(e.rows) === '[{"n":1}]');
    expect(await seenHere).toEqual(['t']);
  });

  test('a context that never calls hears every commit by onChange alone: of an engine that first committed alone, and of the next one after a crash', async () => {
    const seed = testSeed();
    console.log(`tabs onChange-only seed ${seed} (OUTPOST_SEED replays it)`);
    const random = rng(seed);
    const name = unique('tabs-listen-only');
    const engine = tab();
    await engine.call({ op: 'open', name });
    await engine.call({ op: 'run', sql: 'CREATE TABLE t(v INTEGER)' });
    // Alone, the engine broadcasts its commits to nobody (engine-host.ts): a context joining later must still hear the next ones.
    const alone = int(random, 1, 30);
    for (let i = 0; i < alone; i++) await engine.call({ op: 'run', sql: `INSERT INTO t VALUES (${i})` });
    const writer = tab();
    await writer.call({ op: 'open', name });
    const page = await openHere(name);
    const heard = (): Promise<string[]> =>
      new Promise((resolve) => {
        const stop = page.onChange(['t'], (tables) => {
          stop();
          resolve([...tables]);
        });
      });
    const writes = async (writers: Tab[]): Promise<void> => {
      for (let i = int(random, 2, 6); i > 0; i--) {
        const next = heard();
        await writers[int(random, 0, writers.length - 1)]!.call({ op: 'run', sql: `INSERT INTO t VALUES (${i})` });
        expect(await next).toEqual(['t']);
      }
    };
    await writes([engine, writer]);
    // The next engine (the writer's worker or this page's) starts with every table changed.
    const handedOver = heard();
    engine.terminate();
    await handedOver;
    await writes([writer]);
  });

  test("after the engine crashes, a follower's watch fires for a write through the new engine", async () => {
    const name = unique('tabs-watch-handover');
    const engine = tab();
    await engine.call({ op: 'open', name });
    await engine.call({ op: 'run', sql: 'CREATE TABLE t(who TEXT, seq INTEGER)' });
    const [watcher, writer] = [tab(), tab()];
    await Promise.all([watcher.call({ op: 'open', name }), writer.call({ op: 'open', name })]);
    await watcher.call({ op: 'watch', sql: 'SELECT count(*) AS n FROM t' });
    const first = await watcher.event((e) => e.event === 'rows' && JSON.stringify(e.rows) === '[{"n":0}]');
    engine.terminate();
    // The new engine announces every table as changed, so the watch runs again: hand-over done.
    await watcher.event((e) => e.event === 'rows' && e !== first);
    await writer.call({ op: 'run', sql: "INSERT INTO t VALUES ('writer', 1)" });
    await watcher.event((e) => e.event === 'rows' && JSON.stringify(e.rows) === '[{"n":1}]');
  });

  test("a follower's prepared statement, iteration and timeout go through another tab's engine, and the statement survives the hand-over", async () => {
    const name = unique('tabs-statements');
    const engine = tab();
    await engine.call({ op: 'open', name });
    await engine.call({ op: 'run', sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY)' });
    const page = await openHere(name);
    await page.run('INSERT INTO t SELECT x FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2500) SELECT x FROM c)');
    const upTo = await page.prepare<{ n: number }>('SELECT count(*) AS n FROM t WHERE id <= ?');
    expect(await upTo.get([10])).toEqual({ n: 10 });
    let seen = 0;
    for await (const _row of page.iterate('SELECT id FROM t')) seen++;
    expect(seen).toBe(2500);
    const slow = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000000000) SELECT count(*) FROM c';
    const stopped = await page.get(slow, [], { timeoutMs: 50 }).catch((e: unknown) => e);
    expect((stopped as Error).name).toBe('AbortError');
    const announced = nextEngineAnnouncement(name);
    await engine.call({ op: 'close' });
    await announced;
    expect(await upTo.get([20])).toEqual({ n: 20 });
  });

  /** An engine tab with a table `t`, a second tab waiting to take over, and a protocol follower. */
  async function engineWithProtocolFollower(name: string): Promise<{ engine: Tab; engineId: string; follower: ProtocolFollower }> {
    const announced = nextEngineAnnouncement(name);
    const engine = tab();
    await engine.call({ op: 'open', name });
    const engineId = await announced;
    await engine.call({ op: 'run', sql: 'CREATE TABLE t(who TEXT, seq INTEGER)' });
    await tab().call({ op: 'open', name });
    const follower = new ProtocolFollower(name);
    followers.push(follower);
    await follower.start();
    return { engine, engineId, follower };
  }

  test('after a crash, the next engine tells which accepted writes committed, with their results', async () => {
    const name = unique('tabs-records');
    const { engine, engineId, follower } = await engineWithProtocolFollower(name);
    // The follower never reads these answers: as if the engine had died before sending them.
    expect(await follower.call(engineId, 1, 'run', ["INSERT INTO t VALUES ('follower', 1)", undefined])).toMatchObject({ ok: true });
    expect(await follower.call(engineId, 2, 'batch', [[{ sql: "INSERT INTO t VALUES ('follower', 2)" }, { sql: "INSERT INTO t VALUES ('follower', 3)" }]])).toMatchObject({ ok: true });
    const next = nextEngineAnnouncement(name, engineId);
    engine.terminate();
    const answer = await follower.outcomes(await next, [
      { callId: 1, method: 'run' },
      { callId: 2, method: 'batch' },
      { callId: 3, method: 'run' },
    ]);
    expect(answer.asked).toEqual([1, 2, 3]);
    expect(answer.applied).toEqual([
      { callId: 1, value: { changes: 1, lastInsertRowid: 1n } },
      {
        callId: 2,
        value: [
          { changes: 1, lastInsertRowid: 2n },
          { changes: 1, lastInsertRowid: 3n },
        ],
      },
    ]);
  });

  test("after a crash, the next engine knows a follower's COMMIT committed and a cut transaction did not", async () => {
    const name = unique('tabs-records-tx');
    const { engine, engineId, follower } = await engineWithProtocolFollower(name);
    await follower.call(engineId, 1, 'exec', ['BEGIN IMMEDIATE']);
    await follower.call(engineId, 2, 'run', ["INSERT INTO t VALUES ('follower', 1)", undefined]);
    expect(await follower.call(engineId, 3, 'exec', ['COMMIT'])).toMatchObject({ ok: true, inTransaction: false });
    await follower.call(engineId, 4, 'exec', ['BEGIN IMMEDIATE']);
    await follower.call(engineId, 5, 'run', ["INSERT INTO t VALUES ('follower', 2)", undefined]);
    const next = nextEngineAnnouncement(name, engineId);
    engine.terminate();
    const answer = await follower.outcomes(await next, [
      { callId: 3, method: 'exec' },
      { callId: 5, method: 'run' },
    ]);
    expect(answer.applied).toEqual([{ callId: 3, value: undefined }]);
  });
});

/**
 * A SharedWorker that starts but never answers (a broker script replaced by a proxy, a worker
 * stuck at start): the page must not wait on it forever (client.ts `BROKER_ANSWER_TIMEOUT_MS`).
 */
describe('a broker that never answers', () => {
  beforeAll(() => {
    kind = 'worker';
    const silent = URL.createObjectURL(new Blob(['// A broker that never answers.\n'], { type: 'text/javascript' }));
    class SilentSharedWorker extends SharedWorker {
      constructor(_url: string | URL, options?: string | WorkerOptions) {
        super(silent, options);
      }
    }
    vi.stubGlobal('SharedWorker', SilentSharedWorker);
  });
  afterAll(() => {
    vi.unstubAllGlobals();
  });

  test('open() takes the BroadcastChannel path after the bound, and another tab shares its engine', async () => {
    const name = unique('tabs-silent-broker');
    const announced = nextAnnouncement(name);
    const db = await openHere(name);
    // An engine without a broker announces none: its followers use the broadcast.
    expect((await announced).brokerId).toBeNull();
    await db.exec('CREATE TABLE t(v); INSERT INTO t VALUES (1)');
    const other = tab();
    await other.call({ op: 'open', name });
    await other.call({ op: 'run', sql: 'INSERT INTO t VALUES (2)' });
    expect(await db.query('SELECT v FROM t ORDER BY v')).toEqual([{ v: 1 }, { v: 2 }]);
  });
});
