/**
 * Multi-tab: an engine tab that falls silent (frozen in the background, or busy in one long
 * statement) keeps its lock, so no other tab takes over; the others' calls must still settle.
 * A frozen tab is played by the test page holding the database lock and speaking the tab
 * protocol without heartbeats; a busy one by a real engine tab running a long statement.
 */
import { afterEach, expect, test } from 'vitest';
import { type Database, OutpostError, open } from '../src/index.js';
import { databaseLockName } from '../src/opfs-vfs/storage/opfs.js';
import { HEARTBEAT_MS, type TabMessage, type TabReply, channelName, engineLockName, replyChannelName } from '../src/worker/tabs-protocol.js';
import { Tab } from './tab.js';

const unique = (prefix: string): string => `${prefix}-${crypto.randomUUID()}`;
const TAB_TIMEOUT_MS = 1000;
const codeOf = (e: unknown): unknown => (e instanceof OutpostError ? e.code : e);

/** An engine that holds the lock and answers `hello`, then never beats: a frozen tab. */
class FrozenEngine {
  readonly engineId = crypto.randomUUID();
  private readonly channel: BroadcastChannel;
  private readonly replies = new Map<string, BroadcastChannel>();
  private release: () => void = () => {};
  /** Calls it received. */
  readonly calls: Extract<TabMessage, { type: 'call' }>[] = [];
  private callSeen: (() => void) | null = null;

  constructor(
    private readonly name: string,
    /** Answer `hello` (a tab frozen after it announced itself), and accept calls. */
    private readonly behaviour: { hello: boolean; accept: boolean },
  ) {
    this.channel = new BroadcastChannel(channelName(name));
    this.channel.onmessage = (event: MessageEvent<TabMessage>) => {
      const m = event.data;
      if (m.type === 'hello' && this.behaviour.hello) this.channel.postMessage({ type: 'engine', engineId: this.engineId, brokerId: null } satisfies TabMessage);
      if (m.type !== 'call' || m.engineId !== this.engineId) return;
      this.calls.push(m);
      if (this.behaviour.accept) {
        let replies = this.replies.get(m.clientId);
        if (!replies) {
          replies = new BroadcastChannel(replyChannelName(this.name, m.clientId));
          this.replies.set(m.clientId, replies);
        }
        replies.postMessage({ type: 'accepted', engineId: this.engineId, callId: m.callId } satisfies TabReply);
      }
      this.callSeen?.();
    };
  }

  async start(): Promise<void> {
    // The database lock, and its own engine lock, which a frozen tab keeps too.
    const releases = await Promise.all(
      [databaseLockName(this.name), engineLockName(this.name, this.engineId)].map(
        (lock) =>
          new Promise<() => void>((granted) => {
            void navigator.locks.request(lock, () => new Promise<void>((r) => granted(r)));
          }),
      ),
    );
    this.release = () => releases.forEach((r) => r());
  }

  nextCall(): Promise<void> {
    return new Promise((resolve) => (this.callSeen = resolve));
  }

  stop(): void {
    this.channel.close();
    for (const r of this.replies.values()) r.close();
    this.release();
  }
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function frozen(name: string, behaviour: { hello: boolean; accept: boolean }): Promise<FrozenEngine> {
  const engine = new FrozenEngine(name, behaviour);
  await engine.start();
  cleanups.push(() => engine.stop());
  return engine;
}

/** Resolves once no engine of database `name` has said it is alive for `beats` heartbeats. */
function heartbeatsMissed(name: string, beats: number): Promise<void> {
  const channel = new BroadcastChannel(channelName(name));
  return new Promise<void>((resolve) => {
    let timer: ReturnType<typeof setTimeout>;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        channel.close();
        resolve();
      }, beats * HEARTBEAT_MS);
    };
    channel.onmessage = (event: MessageEvent<TabMessage>) => {
      if (event.data.type === 'alive') arm();
    };
    arm();
  });
}

async function follower(name: string): Promise<Database> {
  const db = await open(name, { tabTimeoutMs: TAB_TIMEOUT_MS });
  cleanups.push(() => db.close().catch(() => {}));
  return db;
}

test('a call the silent engine never accepted rejects ENGINE_UNRESPONSIVE', async () => {
  const name = unique('frozen-unaccepted');
  const engine = await frozen(name, { hello: true, accept: false });
  const db = await follower(name);
  const seen = engine.nextCall();
  const write = db.run('CREATE TABLE t(x)').then(
    () => null,
    (e: unknown) => e,
  );
  await seen;
  expect(codeOf(await write)).toBe('ENGINE_UNRESPONSIVE');
});

test('a write the silent engine accepted rejects OUTCOME_UNKNOWN', async () => {
  const name = unique('frozen-accepted');
  const engine = await frozen(name, { hello: true, accept: true });
  const db = await follower(name);
  const seen = engine.nextCall();
  const write = db.run('CREATE TABLE t(x)').then(
    () => null,
    (e: unknown) => e,
  );
  await seen;
  const error = await write;
  expect(codeOf(error)).toBe('OUTCOME_UNKNOWN');
  expect(String(error)).toMatch(/no sign of life/);
});

test('opening a database whose engine tab is frozen rejects ENGINE_UNRESPONSIVE instead of hanging', async () => {
  const name = unique('frozen-open');
  await frozen(name, { hello: false, accept: false });
  expect(codeOf(await open(name, { tabTimeoutMs: TAB_TIMEOUT_MS }).catch((e: unknown) => e))).toBe('ENGINE_UNRESPONSIVE');
});

test('a call queued behind a statement longer than the timeout is given up and never runs', async () => {
  const name = unique('frozen-busy');
  const engine = new Tab();
  cleanups.push(() => engine.terminate());
  await engine.call({ op: 'open', name });
  await engine.call({ op: 'run', sql: 'CREATE TABLE t(x)' });
  const db = await follower(name);
  // Several timeouts of work in one statement, whatever this machine's speed (a fixed count
  // took under one timeout on a faster browser): the engine's worker cannot beat meanwhile.
  const counting = (rows: number): string => `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${rows}) SELECT count(*) AS n FROM c`;
  const sample = 500_000;
  const before = performance.now();
  await engine.call({ op: 'query', sql: counting(sample) });
  const rows = Math.max(2_000_000, Math.ceil((sample * 4 * TAB_TIMEOUT_MS) / Math.max(1, performance.now() - before)));
  const busy = engine.call({ op: 'query', sql: counting(rows) });
  await engine.event((e) => e.event === 'started');
  // 'started' is posted as the call leaves the engine tab's page, and the follower's write could
  // reach the engine first: write once the engine has missed two heartbeats, inside the statement.
  await heartbeatsMissed(name, 2);
  const write = db.run('INSERT INTO t VALUES (1)').then(
    () => null,
    (e: unknown) => e,
  );
  expect(codeOf(await write)).toBe('ENGINE_UNRESPONSIVE');
  await busy;
  expect(await db.query('SELECT count(*) AS n FROM t')).toEqual([{ n: 0 }]);
});

test('a page about to be frozen hands its engine to another tab and goes on as a follower', async () => {
  const name = unique('frozen-handover');
  const page = await open(name);
  cleanups.push(() => page.close().catch(() => {}));
  await page.exec('CREATE TABLE t(x)');
  const other = new Tab();
  cleanups.push(() => other.terminate());
  await other.call({ op: 'open', name });
  const announced = new Promise<void>((resolve) => {
    const channel = new BroadcastChannel(channelName(name));
    channel.onmessage = (event: MessageEvent<TabMessage>) => {
      if (event.data.type !== 'engine') return;
      channel.close();
      resolve();
    };
  });
  document.dispatchEvent(new Event('freeze'));
  // The only other context took over: the page no longer runs the engine.
  await announced;
  await page.run('INSERT INTO t VALUES (1)');
  expect(await other.call({ op: 'query', sql: 'SELECT count(*) AS n FROM t' })).toEqual([{ n: 1 }]);
});
