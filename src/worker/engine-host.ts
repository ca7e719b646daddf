/**
 * The elected engine's side of a database shared by several tabs: it runs the calls of its own
 * tab (client `local`) and of every follower on one Driver, one at a time.
 *
 * Transactions: after each call the host asks SQLite whether a transaction is open; if so, the
 * caller owns the engine and only its calls run until the transaction ends, so other tabs wait
 * behind it and never interleave. A follower that dies (its lifetime lock is granted to the
 * host) has its queued calls dropped and its open transaction rolled back.
 *
 * Closing: calls not yet started are answered `not-run` (the follower sends them to the next
 * engine), the running one finishes, a follower's open transaction is rolled back, every
 * follower that called is told `closed` (after its last answer), then the Driver closes, which
 * releases the database lock and lets the next tab take over.
 */
import type { Driver } from '../driver.js';
import type { PackedRows } from '../engine/packed-rows.js';
import type { SyncProgress } from '../types.js';
import { CALLS_TABLE } from '../sync/calls-table.js';
import { type CallLog, RECORDED_METHODS } from './call-log.js';
import { serializeError } from './protocol.js';
import { HEARTBEAT_MS, type TabMessage, type TabReply, UNQUEUED_METHODS, channelName, clientLockName, isRetriable, replyChannelName } from './tabs-protocol.js';

export const LOCAL_CLIENT = 'local';

/** A query's arguments with its `onPart` (driver.ts) replying each part of its rows to the caller. */
function withParts(method: string, args: unknown[], engineId: string, callId: number, reply: (r: TabReply) => void): unknown[] {
  if (method !== 'query') return args;
  const part = (rows: PackedRows): void => reply({ type: 'part', engineId, callId, rows });
  return [args[0], args[1], args[2], args[3], part];
}
/** The host's own bookkeeping jobs (applied-call records). */
const SYSTEM_CLIENT = 'system';

/** How a call ended, and whether its caller owns the engine (an open transaction) after it. */
type Outcome = ({ ok: true; value: unknown } | { ok: false; error: unknown }) & { owns: boolean };

interface Job {
  clientId: string;
  run: () => Promise<unknown>;
  settle: (outcome: Outcome) => void;
  /** Answers a follower whose call will not run here. */
  refuse: () => void;
  /** A follower's call: it is not started after the engine was silent too long (`expired`). */
  deadline?: { sentAt: number; timeoutMs: number; expire: () => void };
}

/** The broker this engine's context joined (broker.ts), as the host uses it. */
export interface HostBroker {
  /** The broker's id while it lives; null once it died. */
  brokerId(): string | null;
  /** Registers this engine: the broker links every other context to it. */
  register(engineId: string): void;
  /** This engine closed: the broker links nobody else to it. */
  retire(engineId: string): void;
}

export class EngineHost {
  private readonly channel: BroadcastChannel;
  private readonly replies = new Map<string, BroadcastChannel>();
  /** Followers' ports from the broker: their calls arrive, and are answered, there. */
  private readonly links = new Map<string, MessagePort>();
  private readonly watched = new Set<string>();
  private readonly queue: Job[] = [];
  private owner: string | null = null;
  private running: Promise<void> | null = null;
  private closing = false;
  private idle: (() => void) | null = null;
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  /** When the last heartbeat was posted (wall clock, as the followers see it). */
  private lastBeatAt = Date.now();
  /** Recent stretches without a heartbeat, longer than two beats: [from, to]. */
  private silences: [number, number][] = [];

  constructor(
    private readonly name: string,
    readonly engineId: string,
    private readonly driver: Driver,
    private readonly inTransaction: () => boolean,
    private readonly localTables: (tables: string[]) => void,
    private readonly localProgress: (progress: SyncProgress) => void = () => {},
    /** Where follower write calls are recorded as they commit; null: nothing is recorded. */
    private readonly calls: CallLog | null = null,
    private readonly broker: HostBroker | null = null,
    /** The client id of the page this engine's worker belongs to (seat.ts): it calls over `receiveLocal`. */
    private readonly ownerId: string | null = null,
  ) {
    this.channel = new BroadcastChannel(channelName(name));
    this.channel.onmessage = (event: MessageEvent<TabMessage>) => this.receive(event.data);
  }

  /** Starts fanning out change events and announces the engine; `tables` all changed. */
  async start(allTables: string[]): Promise<void> {
    await this.driver.onTablesChanged((tables) => this.tablesChanged(tables));
    await this.driver.onSyncProgress((progress) => {
      this.localProgress(progress);
      this.post({ type: 'progress', engineId: this.engineId, progress });
    });
    this.beat();
    this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS);
    // Registered before the announcement: a follower of the same broker then waits for its port.
    this.broker?.register(this.engineId);
    this.announce();
    // After the announcement, which waits for nothing else: this deletes only records of
    // followers that are gone, which no live follower will ask about.
    await this.forgetDeadClients();
    // Writes the previous engine committed without telling anyone may have changed anything.
    const userTables = allTables.filter((t) => t !== CALLS_TABLE);
    if (userTables.length > 0) this.tablesChanged(userTables);
  }

  private announce(): void {
    this.post({ type: 'engine', engineId: this.engineId, brokerId: this.broker?.brokerId() ?? null, ...(this.ownerId === null ? {} : { ownerId: this.ownerId }) });
  }

  /** A follower's port from the broker: its calls come in, and are answered, on it. */
  addClient(clientId: string, port: MessagePort): void {
    if (this.closing) {
      // Nothing will run here any more: the follower sends its calls to the next engine.
      port.postMessage({ type: 'closed', engineId: this.engineId } satisfies TabReply);
      port.close();
      return;
    }
    this.links.get(clientId)?.close();
    this.links.set(clientId, port);
    port.onmessage = (event: MessageEvent<TabMessage>) => this.receive(event.data, (r) => port.postMessage(r));
  }

  private beat(): void {
    const now = Date.now();
    if (now - this.lastBeatAt > 2 * HEARTBEAT_MS) this.silences.push([this.lastBeatAt, now]);
    // Only silences a call still waiting could have been sent before matter; ten minutes is plenty.
    while (this.silences.length > 0 && this.silences[0]![1] < now - 600_000) this.silences.shift();
    this.lastBeatAt = now;
    this.post({ type: 'alive', engineId: this.engineId });
  }

  /**
   * Whether the engine fell silent, since `sentAt`, for long enough that the follower may have
   * given up on the call (half its timeout, so that the follower, counting from the last
   * message it received, cannot have given up on a call this engine still starts).
   */
  private silentSince(sentAt: number, timeoutMs: number): boolean {
    const now = Date.now();
    const spans: [number, number][] = [...this.silences, [this.lastBeatAt, now]];
    return spans.some(([from, to]) => to - Math.max(from, sentAt) > timeoutMs / 2);
  }

  /** Deletes the applied-call records of followers that are gone (their lifetime lock is free). */
  private async forgetDeadClients(): Promise<void> {
    if (!this.calls) return;
    const prefix = clientLockName(this.name, '');
    const held = (await navigator.locks.query()).held ?? [];
    const alive = new Set(held.map((l) => l.name ?? '').filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length)));
    const calls = this.calls;
    this.enqueueSystem(() => calls.forget((client) => alive.has(client)));
  }

  /** Bookkeeping run in the queue, outside every follower's transaction. */
  private enqueueSystem(fn: () => void): void {
    this.queue.push({ clientId: SYSTEM_CLIENT, run: async () => fn(), settle: () => {}, refuse: () => {} });
    this.pump();
  }

  private tablesChanged(changed: string[]): void {
    // The applied-call records are bookkeeping: nobody watches them.
    const tables = changed.filter((t) => t !== CALLS_TABLE);
    if (tables.length === 0) return;
    this.localTables(tables);
    this.post({ type: 'tables', engineId: this.engineId, tables });
  }

  private post(message: TabMessage): void {
    this.channel.postMessage(message);
  }

  /**
   * A message from the channel, or from a follower's port (`via` answers on that port): a
   * call is answered where it came from, so the answers of one sender stay in order.
   */
  private receive(message: TabMessage, via?: (r: TabReply) => void): void {
    if (message.type === 'hello') {
      if (!this.closing) this.announce();
      return;
    }
    if (message.type !== 'call' && message.type !== 'outcomes') return;
    if (message.engineId !== this.engineId) return;
    const { clientId } = message;
    const reply = via ?? ((r: TabReply): void => this.replyChannel(clientId).postMessage(r));
    if (message.type === 'outcomes') {
      const { calls } = message;
      void this.appliedCalls(clientId, calls).then((applied) => reply({ type: 'outcomes', engineId: this.engineId, applied, asked: calls.map((c) => c.callId) }));
      return;
    }
    const { callId, method, args, keepFrom, timeoutMs } = message;
    const deadline = { sentAt: message.sentAt, timeoutMs, expire: () => reply({ type: 'expired', engineId, callId }) };
    const engineId = this.engineId;
    if (this.closing) {
      reply({ type: 'not-run', engineId, callId });
      return;
    }
    this.watchClient(clientId);
    const retriable = isRetriable(method, args);
    // A call that changes nothing goes to the next engine whether or not this one took it
    // (tabs.ts): saying so would only cost every read a message.
    if (!retriable) reply({ type: 'accepted', engineId, callId });
    const calls = this.calls;
    const recorded =
      calls && RECORDED_METHODS.has(method) && !retriable
        ? (call: () => Promise<unknown>) => calls.run(clientId, callId, keepFrom, method, call, () => reply({ type: 'unrecorded', engineId, callId }))
        : undefined;
    this.dispatch(clientId, method, withParts(method, args, engineId, callId, reply), () => reply({ type: 'not-run', engineId, callId }), recorded, deadline, (outcome) =>
      reply(
        outcome.ok
          ? { type: 'result', engineId, callId, ok: true, value: outcome.value, inTransaction: outcome.owns }
          : { type: 'result', engineId, callId, ok: false, error: serializeError(outcome.error), inTransaction: outcome.owns },
      ),
    );
  }

  /**
   * A message from this worker's own page (seat.ts): its calls run as the local client, so they
   * are neither recorded nor refused when the engine closes in order (the page dies with its
   * worker, and a stepping-down engine finishes them first), and are not held to a deadline.
   */
  receiveLocal(message: TabMessage, reply: (r: TabReply) => void): void {
    if (message.type === 'outcomes') {
      this.receive(message, reply);
      return;
    }
    if (message.type !== 'call') return;
    const { callId, engineId } = message;
    if (this.closing || engineId !== this.engineId) {
      reply({ type: 'not-run', engineId, callId });
      return;
    }
    this.dispatch(LOCAL_CLIENT, message.method, withParts(message.method, message.args, engineId, callId, reply), () => {}, undefined, undefined, (outcome) =>
      reply(
        outcome.ok
          ? { type: 'result', engineId, callId, ok: true, value: outcome.value, inTransaction: outcome.owns }
          : { type: 'result', engineId, callId, ok: false, error: serializeError(outcome.error), inTransaction: outcome.owns },
      ),
    );
  }

  private replyChannel(clientId: string): BroadcastChannel {
    let channel = this.replies.get(clientId);
    if (!channel) {
      channel = new BroadcastChannel(replyChannelName(this.name, clientId));
      this.replies.set(clientId, channel);
    }
    return channel;
  }

  /** Learns of a follower's death: its lifetime lock is granted to us only then. */
  private watchClient(clientId: string): void {
    if (this.watched.has(clientId)) return;
    this.watched.add(clientId);
    void navigator.locks.request(clientLockName(this.name, clientId), async () => this.clientGone(clientId)).catch(() => {});
  }

  private clientGone(clientId: string): void {
    for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i]!.clientId === clientId) this.queue.splice(i, 1);
    this.replies.get(clientId)?.close();
    this.replies.delete(clientId);
    this.links.get(clientId)?.close();
    this.links.delete(clientId);
    if (this.owner === clientId) this.rollbackFor(clientId);
    const calls = this.calls;
    if (calls && !this.closing) this.enqueueSystem(() => calls.forget((client) => client !== clientId));
  }

  /** Which of `clientId`'s calls committed, from the records (for a tab whose engine died). */
  async appliedCalls(clientId: string, calls: readonly { callId: number; method: string }[]): Promise<{ callId: number; value: unknown }[]> {
    if (!this.calls) return [];
    return this.calls.applied(
      clientId,
      calls.map((c) => c.callId),
      calls.map((c) => c.method),
    );
  }

  /** Rolls back the transaction `clientId` left open, as its next (and last) call. */
  private rollbackFor(clientId: string): void {
    const job: Job = { clientId, run: () => this.driver.rollback(), settle: () => {}, refuse: () => {} };
    this.queue.unshift(job);
    this.pump();
  }

  /** Whether this tab's own `Database` has a transaction open on the engine. */
  localTransactionOpen(): boolean {
    return this.owner === LOCAL_CLIENT;
  }

  /** Runs `method` for this tab's own `Database`, in the same queue as the other tabs' calls. */
  submit(clientId: string, method: string, args: unknown[]): Promise<unknown> {
    return new Promise((resolve, reject) =>
      this.dispatch(clientId, method, args, () => {}, undefined, undefined, (outcome) => (outcome.ok ? resolve(outcome.value) : reject(outcome.error))),
    );
  }

  /** Runs `method` for `clientId`: in the engine's queue, behind any other tab's transaction. */
  private dispatch(
    clientId: string,
    method: string,
    args: unknown[],
    refuse: () => void,
    recorded: ((call: () => Promise<unknown>) => Promise<unknown>) | undefined,
    deadline: Job['deadline'],
    settle: (outcome: Outcome) => void,
  ): void {
    const plain = (): Promise<unknown> => {
      // The method and its arguments were typed by Driver at the sender; the name came as text.
      const target = this.driver as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
      const fn = target[method];
      if (typeof fn !== 'function' || method === 'close' || method === 'onTablesChanged' || method === 'onSyncProgress') {
        return Promise.reject(new Error(`the engine has no method ${method} for other tabs`));
      }
      return fn(...args);
    };
    const run = recorded ? () => recorded(plain) : plain;
    if (UNQUEUED_METHODS.has(method)) {
      run().then(
        (value) => settle({ ok: true, value, owns: this.owner === clientId }),
        (error: unknown) => settle({ ok: false, error, owns: this.owner === clientId }),
      );
      return;
    }
    this.queue.push({ clientId, run, settle, refuse, ...(deadline ? { deadline } : {}) });
    this.pump();
  }

  private pump(): void {
    if (this.running) return;
    const i = this.queue.findIndex((job) => this.owner === null || job.clientId === this.owner);
    if (i < 0) {
      if (this.queue.length === 0) this.idle?.();
      return;
    }
    const job = this.queue.splice(i, 1)[0]!;
    if (job.deadline && this.silentSince(job.deadline.sentAt, job.deadline.timeoutMs)) {
      job.deadline.expire();
      // Its sender has given up on its transaction too: end it, or it would hold every tab.
      if (this.owner === job.clientId) this.rollbackFor(job.clientId);
      else this.pump();
      return;
    }
    // The owner is updated in the same step as the call ends, before anything else can run.
    const finish = (result: { ok: true; value: unknown } | { ok: false; error: unknown }): void => {
      this.owner = this.inTransaction() ? job.clientId : null;
      this.running = null;
      job.settle({ ...result, owns: this.owner === job.clientId });
      this.pump();
    };
    this.running = job.run().then(
      (value) => finish({ ok: true, value }),
      (error: unknown) => finish({ ok: false, error }),
    );
  }

  /** Hands the database over: see the header. Resolves once the Driver has closed. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    for (const job of this.queue.filter((j) => j.clientId !== LOCAL_CLIENT)) job.refuse();
    this.queue.splice(0, this.queue.length, ...this.queue.filter((j) => j.clientId === LOCAL_CLIENT));
    if (this.owner !== null && this.owner !== LOCAL_CLIENT) this.rollbackFor(this.owner);
    await new Promise<void>((resolve) => {
      this.idle = resolve;
      this.pump();
    });
    await this.running;
    // Calls posted from now on are never delivered; `closed` tells their senders so.
    this.channel.close();
    this.broker?.retire(this.engineId);
    for (const channel of [...this.replies.values(), ...this.links.values()]) {
      channel.postMessage({ type: 'closed', engineId: this.engineId } satisfies TabReply);
      channel.close();
    }
    await this.driver.close();
  }
}
