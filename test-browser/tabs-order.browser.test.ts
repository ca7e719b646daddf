/**
 * The order of a multi-tab hand-over's messages, which travel by several roads: the channel
 * (announcements, events), a follower's own reply channel, its port from the broker, and its
 * seat's line. Messages on different roads can arrive in either order. Here the test plays the
 * engines, the broker and the seat around one real `SharedDriver`, and delivers them in the
 * order that broke a follower, so each case runs the same way every time.
 */
import { afterEach, expect, test, vi } from 'vitest';
import type { SyncProgress } from '../src/types.js';
import { SharedDriver } from '../src/worker/tabs.js';
import { type BrokerMessage, type BrokerRequest, type LocalCall, MIN_TAB_TIMEOUT_MS, type SeatEvent, type TabMessage, type TabReply, brokerLockName, channelName, engineLockName, replyChannelName } from '../src/worker/tabs-protocol.js';

const unique = (prefix: string): string => `${prefix}-${crypto.randomUUID()}`;
const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** Resolves with the first message on `target` that `match` accepts. */
function nextMessage<T>(target: { onmessage: ((event: MessageEvent) => void) | null }, match: (m: T) => boolean): Promise<T> {
  return new Promise((resolve) => {
    target.onmessage = (event: MessageEvent<T>) => {
      if (match(event.data)) resolve(event.data);
    };
  });
}

/**
 * Waits until everything posted on channel `name` so far has been handled by the receivers
 * opened before this call (the driver's): a channel delivers to the receivers of one page in
 * the order they were created, after the messages posted before.
 */
async function drained(name: string): Promise<void> {
  const sender = new BroadcastChannel(name);
  const receiver = new BroadcastChannel(name);
  const marker = crypto.randomUUID();
  const seen = nextMessage<{ marker?: string }>(receiver, (m) => m.marker === marker);
  sender.postMessage({ marker });
  await seen;
  sender.close();
  receiver.close();
}

/** Holds a Web Lock until the test ends, or until the function it resolves with is called. */
async function hold(lockName: string): Promise<() => void> {
  let release: () => void = () => {};
  await new Promise<void>((granted) => {
    void navigator.locks.request(lockName, () => {
      granted();
      return new Promise<void>((done) => cleanups.push((release = done)));
    });
  });
  return release;
}

/** An engine played by the test holds its lock, as a real one does until it has finished; the function ends it. */
const engineLives = (name: string, engineId: string): Promise<() => void> => hold(engineLockName(name, engineId));

interface Follower {
  shared: SharedDriver;
  clientId: string;
  /** The engine the follower was given first. */
  first: string;
  /** That engine ends without a word: its lock comes free (`engineLives`). */
  endFirst: () => void;
  /** The test's end of the follower's seat line. */
  seat: MessagePort;
  /** The test's end of the follower's broker port (null: no broker). */
  broker: MessagePort | null;
  /** Sends the follower its port to `engineId` as the broker does; returns the engine's end. */
  link: (engineId: string) => MessagePort;
  /** The id of the broker the test plays. */
  brokerId: string;
}

/**
 * A `SharedDriver` whose broker (`withBroker`) and seat are ports the test holds the other ends
 * of. Its first engine is its own (`seat`: its seat says so), or another context's, reached over
 * the broker's port, or announced on the channel without a broker (`other`).
 */
async function follower(name: string, withBroker: boolean, first: 'seat' | 'other'): Promise<Follower> {
  const brokerId = crypto.randomUUID();
  // The broker lives while its lock is held: the driver waits for its ports.
  if (withBroker) await hold(brokerLockName(name, brokerId));
  const brokerChannel = new MessageChannel();
  const seatChannel = new MessageChannel();
  cleanups.push(() => brokerChannel.port2.close(), () => seatChannel.port2.close());
  const joined = withBroker ? nextMessage<BrokerRequest>(brokerChannel.port2, (m) => m.type === 'join') : null;
  let startSeat: (seat: { clientId: string }) => void = () => {};
  const seatStarted = new Promise<{ clientId: string }>((resolve) => (startSeat = resolve));
  const joining = SharedDriver.join(name, 60_000, async (seat) => startSeat(seat), withBroker ? { port: brokerChannel.port1, brokerId } : null, seatChannel.port1);
  const { clientId } = await seatStarted;
  if (joined) await joined;
  const link = (engineId: string): MessagePort => {
    const { port1, port2 } = new MessageChannel();
    brokerChannel.port2.postMessage({ type: 'link', engineId, port: port2 } satisfies BrokerMessage, [port2]);
    cleanups.push(() => port1.close());
    return port1;
  };
  const engineId = crypto.randomUUID();
  const endFirst = await engineLives(name, engineId);
  if (first === 'seat') {
    for (const event of [
      { type: 'electing', engineId },
      { type: 'local', engineId },
    ] satisfies SeatEvent[])
      seatChannel.port2.postMessage(event);
  } else if (withBroker) {
    link(engineId);
  } else {
    const channel = new BroadcastChannel(channelName(name));
    channel.postMessage({ type: 'engine', engineId, brokerId: null } satisfies TabMessage);
    channel.close();
  }
  const shared = await joining;
  cleanups.push(() => shared.close());
  return { shared, clientId, first: engineId, endFirst, seat: seatChannel.port2, broker: withBroker ? brokerChannel.port2 : null, link, brokerId };
}

/** The channel of database `name`, as an engine played by the test uses it. */
function engineChannel(name: string): BroadcastChannel {
  const channel = new BroadcastChannel(channelName(name));
  cleanups.push(() => channel.close());
  return channel;
}

/** Answers the next call that arrives on `target` as engine `engineId`, on `answer`; resolves with its method. */
async function answerNextCall(target: { onmessage: ((event: MessageEvent) => void) | null }, engineId: string, answer: (r: TabReply) => void): Promise<string> {
  const call = (await nextMessage<TabMessage>(target, (m) => m.type === 'call' && m.engineId === engineId)) as Extract<TabMessage, { type: 'call' }>;
  answer({ type: 'result', engineId, callId: call.callId, ok: true, value: 'answered', inTransaction: false });
  return call.method;
}

/**
 * A follower without a broker whose first engine, played by the test on the channel, has
 * accepted the call `send` makes; `written` settles as the follower answers it.
 */
async function acceptedCall(prefix: string, send: (shared: SharedDriver) => Promise<unknown>) {
  const name = unique(prefix);
  const f = await follower(name, false, 'other');
  const channel = engineChannel(name);
  const replies = new BroadcastChannel(replyChannelName(name, f.clientId));
  cleanups.push(() => replies.close());
  const call = nextMessage<TabMessage>(channel, (m) => m.type === 'call' && m.engineId === f.first);
  const written = send(f.shared);
  const { callId } = (await call) as Extract<TabMessage, { type: 'call' }>;
  replies.postMessage({ type: 'accepted', engineId: f.first, callId } satisfies TabReply);
  await drained(replyChannelName(name, f.clientId));
  return { ...f, name, channel, replies, callId, written };
}

/** How long a case may take before it counts as hung: the driver's work here is a few messages. */
const HUNG_MS = 30_000;

test("a new engine's tables and progress, announced before the broker's port to it arrives, are heard once it does", async () => {
  const name = unique('order-early');
  const { shared, link, brokerId, endFirst } = await follower(name, true, 'other');
  const tables: string[][] = [];
  const progress: SyncProgress[] = [];
  await shared.driver.onTablesChanged((t) => tables.push(t));
  await shared.driver.onSyncProgress((p) => progress.push(p));
  // The next engine announces itself and its first events on the channel...
  const next = crypto.randomUUID();
  await engineLives(name, next);
  const channel = engineChannel(name);
  const bar: SyncProgress = { phase: 'bootstrap', pagesDone: 3, pagesTotal: 9, bytes: 12_288 };
  for (const message of [
    { type: 'electing', engineId: next },
    // Registered with the follower's broker: the follower waits for the broker's port to it.
    { type: 'engine', engineId: next, brokerId },
    { type: 'tables', engineId: next, tables: ['t'] },
    { type: 'progress', engineId: next, progress: bar },
  ] satisfies TabMessage[])
    channel.postMessage(message);
  await drained(channelName(name));
  expect(tables).toEqual([]);
  // (The first engine is gone: a next one is elected only once it let the database go.)
  endFirst();
  // ...and its port comes later, through the broker.
  const port = link(next);
  const answered = shared.driver.query('SELECT 1', []);
  await answerNextCall(port, next, (r) => port.postMessage(r));
  await answered;
  expect(tables).toEqual([['t']]);
  expect(progress).toEqual([bar]);
});

test("the previous engine's 'closed', read after the next engine took over, leaves calls going to the next engine (reply channel)", { timeout: HUNG_MS }, async () => {
  const name = unique('order-closed');
  const { shared, clientId, first } = await follower(name, false, 'other');
  const channel = engineChannel(name);
  const replies = new BroadcastChannel(replyChannelName(name, clientId));
  cleanups.push(() => replies.close());
  const next = crypto.randomUUID();
  await engineLives(name, next);
  channel.postMessage({ type: 'electing', engineId: next } satisfies TabMessage);
  channel.postMessage({ type: 'engine', engineId: next, brokerId: null } satisfies TabMessage);
  await drained(channelName(name));
  // The first engine's last word comes on the follower's reply channel, which is not ordered
  // with the main channel: here it comes after the next engine's announcement.
  replies.postMessage({ type: 'closed', engineId: first } satisfies TabReply);
  await drained(replyChannelName(name, clientId));
  const answered = shared.driver.query('SELECT 1', []);
  expect(await answerNextCall(channel, next, (r) => replies.postMessage(r))).toBe('query');
  expect(await answered).toBe('answered');
});

test("this context's own engine's 'closed', read after the next engine took over, leaves calls going to the next engine (seat line)", { timeout: HUNG_MS }, async () => {
  const name = unique('order-own-closed');
  const { shared, first, seat, broker, link } = await follower(name, true, 'seat');
  // The own engine stepped down (the page was frozen): it closed, which let the next engine
  // open and send its port before the seat's 'closed' came through.
  const next = crypto.randomUUID();
  await engineLives(name, next);
  const port = link(next);
  const forwarded = nextMessage<BrokerRequest>(broker!, (m) => m.type === 'retired');
  seat.postMessage({ type: 'closed', engineId: first } satisfies SeatEvent);
  // A message after 'closed' on the same line, which the driver passes on to the broker: once
  // the broker has it, the driver has read 'closed'.
  seat.postMessage({ type: 'broker', request: { type: 'retired', name, engineId: first } } satisfies SeatEvent);
  await forwarded;
  const answered = shared.driver.query('SELECT 1', []);
  expect(await answerNextCall(port, next, (r) => port.postMessage(r))).toBe('query');
  expect(await answered).toBe('answered');
});

test("the previous engine's 'not-run' for a write it had accepted, read after the next engine took over, sends the write there once", { timeout: HUNG_MS }, async () => {
  // The first engine accepts a recorded write, then closes without running it.
  const { name, first, endFirst, channel, replies, callId, written } = await acceptedCall('order-not-run', (shared) => shared.driver.run('INSERT INTO t VALUES (1)', []));
  // The first engine's lock comes free before its 'not-run' is read (the lock's way is faster
  // than its message), so the next engine takes over: the follower asks it whether the write
  // committed.
  const next = crypto.randomUUID();
  await engineLives(name, next);
  const calls: Extract<TabMessage, { type: 'call' }>[] = [];
  const asked = new Promise<void>((resolve) => {
    channel.onmessage = (event: MessageEvent<TabMessage>) => {
      const m = event.data;
      if (m.type === 'outcomes' && m.engineId === next) resolve();
      if (m.type === 'call' && m.engineId === next) {
        calls.push(m);
        replies.postMessage({ type: 'result', engineId: next, callId: m.callId, ok: true, value: 'ran once', inTransaction: false } satisfies TabReply);
      }
    };
  });
  channel.postMessage({ type: 'electing', engineId: next } satisfies TabMessage);
  channel.postMessage({ type: 'engine', engineId: next, brokerId: null } satisfies TabMessage);
  endFirst();
  await asked;
  replies.postMessage({ type: 'not-run', engineId: first, callId } satisfies TabReply);
  expect(await written).toBe('ran once');
  expect(calls.map((c) => c.method)).toEqual(['run']);
});

test("an answer the previous engine sends after the next engine's announcement settles its call (not OUTCOME_UNKNOWN)", { timeout: HUNG_MS }, async () => {
  // A write the engine does not record (RETURNING), accepted: after a crash its fate is unknown.
  const { shared, name, first, channel, replies, callId, written } = await acceptedCall('order-late-answer', (d) => d.driver.query('INSERT INTO t VALUES (1) RETURNING x', []));
  // The engine steps down: it finishes the call, then closes; the next one's announcement, on
  // another road, comes first.
  const next = crypto.randomUUID();
  await engineLives(name, next);
  channel.postMessage({ type: 'electing', engineId: next } satisfies TabMessage);
  channel.postMessage({ type: 'engine', engineId: next, brokerId: null } satisfies TabMessage);
  await drained(channelName(name));
  replies.postMessage({ type: 'result', engineId: first, callId, ok: true, value: 'ran on the first', inTransaction: false } satisfies TabReply);
  replies.postMessage({ type: 'closed', engineId: first } satisfies TabReply);
  expect(await written).toBe('ran on the first');
  // And the next engine takes the calls after it.
  const answered = shared.driver.query('SELECT 1', []);
  expect(await answerNextCall(channel, next, (r) => replies.postMessage(r))).toBe('query');
  expect(await answered).toBe('answered');
});

test("this context's own engine's answer, read after the next engine's port came, settles its call (seat line)", { timeout: HUNG_MS }, async () => {
  const name = unique('order-own-late');
  const { shared, first, seat, link } = await follower(name, true, 'seat');
  const local = nextMessage<unknown>(seat, (m) => Array.isArray(m));
  const written = shared.driver.run('INSERT INTO t VALUES (1)', []);
  const [, callId] = (await local) as LocalCall;
  // The page was frozen while the call ran: the engine finishes it and closes, and the next
  // engine's port comes through the broker before the seat's answer.
  const next = crypto.randomUUID();
  await engineLives(name, next);
  const port = link(next);
  seat.postMessage([first, callId, true, { changes: 1, lastInsertRowid: 1 }, false, undefined]);
  seat.postMessage({ type: 'closed', engineId: first } satisfies SeatEvent);
  expect(await written).toEqual({ changes: 1, lastInsertRowid: 1 });
  const answered = shared.driver.query('SELECT 1', []);
  expect(await answerNextCall(port, next, (r) => port.postMessage(r))).toBe('query');
  expect(await answered).toBe('answered');
});

test('an announcement of an engine that has finished, read after the live one, leaves calls going to the live one', { timeout: HUNG_MS }, async () => {
  const name = unique('order-stale');
  const { shared, clientId, first } = await follower(name, false, 'other');
  const channel = engineChannel(name);
  const replies = new BroadcastChannel(replyChannelName(name, clientId));
  cleanups.push(() => replies.close());
  // An engine before the first answered a hello just before it closed; its answer comes late.
  channel.postMessage({ type: 'engine', engineId: crypto.randomUUID(), brokerId: null } satisfies TabMessage);
  await drained(channelName(name));
  const answered = shared.driver.query('SELECT 1', []);
  expect(await answerNextCall(channel, first, (r) => replies.postMessage(r))).toBe('query');
  expect(await answered).toBe('answered');
});

test("a context's own worker slow to start its seat is not taken for a silent engine", async () => {
  // The silence watchdog's clock, and only it, is the test's: the worker takes "long" to start.
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
  const seatChannel = new MessageChannel();
  cleanups.push(() => seatChannel.port2.close());
  let seatStarts: () => void = () => {};
  let seatAsked: () => void = () => {};
  const asked = new Promise<void>((resolve) => (seatAsked = resolve));
  const joining = SharedDriver.join(unique('order-slow-seat'), MIN_TAB_TIMEOUT_MS, () => {
    seatAsked();
    return new Promise<void>((resolve) => (seatStarts = resolve));
  }, null, seatChannel.port1);
  await asked;
  // Loading the worker's scripts takes many silence bounds on a busy machine...
  vi.advanceTimersByTime(5 * MIN_TAB_TIMEOUT_MS);
  // ...then its seat starts, takes the free lock and opens the engine at once.
  const engineId = crypto.randomUUID();
  for (const event of [
    { type: 'electing', engineId },
    { type: 'local', engineId },
  ] satisfies SeatEvent[])
    seatChannel.port2.postMessage(event);
  seatStarts();
  const shared = await joining;
  cleanups.push(() => shared.close());
});
