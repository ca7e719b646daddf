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
 *
 * Change events: the tables a commit changed go to this tab's page (seat.ts) and, on the
 * channel, to every other context. A posted BroadcastChannel message costs about as much as a
 * small call's round trip, so a commit is broadcast only while another context may listen
 * (`othersMayListen`). Every other context holds its lifetime lock (`clientLockName`) from
 * before its first message until it dies: the engine assumes listeners until a look at the
 * held locks finds none but its own page's, and any sign of another context (its `hello`, a
 * call, a broker port) counts again from then on. A context that joins later takes its lock
 * before it says `hello`, and the look starts after this engine's channel exists, so either
 * the look sees its lock or the engine hears its `hello`; a follower cannot read the database
 * before either has happened, so it never misses a commit after its first read. The engine's
 * first event (every table changed) is always broadcast.
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
  private channelClosed = false;
  private readonly replies = new Map<string, BroadcastChannel>();
  /** Followers' ports from the broker: their calls arrive, and are answered, there. */
  private readonly links = new Map<string, MessagePort>();
  private readonly watched = new Set<string>();
  private readonly queue: Job[] = [];
  private owner: string | null = null;
  private running: Promise<void> | null = null;
  /** Whose call is running (its `Job.clientId`), while one is. */
  private runningClient: string | null = null;
  private closing = false;
  private idle: (() => void) | null = null;
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  /** When the last heartbeat was posted (wall clock, as the followers see it). */
  private lastBeatAt = Date.now();
  /** Recent stretches without a heartbeat, longer than two beats: [from, to]. */
  private silences: [number, number][] = [];
  /** Another context may listen to the broadcast events (header): true until a look finds none. */
  private othersMayListen = true;
  /** Signs of another context so far: a look at the locks started before the latest one is stale. */
  private otherSigns = 0;

  constructor(
    private readonly name: string,
    readonly engineId: string,
    private readonly driver: Driver,
    private readonly inTransaction: () => boolean,
    /** `answering`: the running call is this tab's page's (`callLocal`), whose answer follows. */
    private readonly localTables: (tables: string[], answering: boolean) => void,
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
    // Stepped down while it started (a freeze, seat.ts): its channel is closed, and a heartbeat
    // or an announcement now would call followers to an engine that is gone.
    if (this.closing) return;
    this.beat();
    this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS);
    // Registered before the announcement: a follower of the same broker then waits for its port.
    this.broker?.register(this.engineId);
    this.announce();
    // After the announcement, which waits for nothing else: this deletes only records of
    // followers that are gone, which no live follower will ask about.
    const alive = await this.liveClients();
    if (this.closing) return;
    this.forgetDeadClients(alive);
    // Writes the previous engine committed without telling anyone may have changed anything.
    const userTables = allTables.filter((t) => t !== CALLS_TABLE);
    if (userTables.length > 0) this.tablesChanged(userTables, true);
  }

  /**
   * The client ids of the contexts alive now (their lifetime locks), other than this engine's
   * own page and `gone`; then, unless another context showed itself meanwhile, whether any may
   * listen. `gone`: a follower whose lock this engine holds right now, having learnt of its death.
   */
  private async liveClients(gone?: string): Promise<Set<string>> {
    const signs = this.otherSigns;
    const prefix = clientLockName(this.name, '');
    const locks = await navigator.locks.query();
    const names = [...(locks.held ?? []), ...(locks.pending ?? [])].map((l) => l.name ?? '');
    const alive = new Set(names.filter((n) => n.startsWith(prefix)).map((n) => n.slice(prefix.length)));
    if (this.ownerId !== null) alive.delete(this.ownerId);
    if (gone !== undefined) alive.delete(gone);
    if (this.otherSigns === signs) this.othersMayListen = alive.size > 0;
    return alive;
  }

  /** Another context showed itself: broadcast the events from now on. */
  private otherContext(): void {
    this.otherSigns++;
    this.othersMayListen = true;
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
    this.otherContext();
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
  private forgetDeadClients(alive: ReadonlySet<string>): void {
    const calls = this.calls;
    if (calls) this.enqueueSystem(() => calls.forget((client) => alive.has(client)));
  }

  /** Bookkeeping run in the queue, outside every follower's transaction. */
  private enqueueSystem(fn: () => void): void {
    this.queue.push({ clientId: SYSTEM_CLIENT, run: async () => fn(), settle: () => {}, refuse: () => {} });
    this.pump();
  }

  /** `always`: broadcast even when no other context may listen (header). */
  private tablesChanged(changed: string[], always = false): void {
    // The applied-call records are bookkeeping: nobody watches them.
    const tables = changed.filter((t) => t !== CALLS_TABLE);
    if (tables.length === 0) return;
    this.localTables(tables, this.runningClient === LOCAL_CLIENT);
    if (always || this.othersMayListen) this.post({ type: 'tables', engineId: this.engineId, tables });
  }

  /**
   * Tells every other context. A notification never fails the call whose commit caused it:
   * once the channel is closed (close(), or by the browser) there is nobody left to tell.
   */
  private post(message: TabMessage): void {
    if (this.channelClosed) return;
    try {
      this.channel.postMessage(message);
    } catch (e) {
      if (!(e instanceof DOMException && e.name === 'InvalidStateError')) throw e;
      this.channelClosed = true;
    }
  }

  /**
   * A message from the channel, or from a follower's port (`via` answers on that port): a
   * call is answered where it came from, so the answers of one sender stay in order.
   */
  private receive(message: TabMessage, via?: (r: TabReply) => void): void {
    if (message.type === 'hello') {
      this.otherContext();
      if (!this.closing) this.announce();
      return;
    }
    if (message.type !== 'call' && message.type !== 'outcomes') return;
    if (message.engineId !== this.engineId) return;
    this.otherContext();
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
    if (message.type === 'call') this.callLocal(message.engineId, message.callId, message.method, message.args, reply);
  }

  /** A call of this worker's own page (`receiveLocal`), as the page sends it (tabs-protocol.ts `LocalCall`). */
  callLocal(engineId: string, callId: number, method: string, args: unknown[], reply: (r: TabReply) => void): void {
    if (this.closing || engineId !== this.engineId) {
      reply({ type: 'not-run', engineId, callId });
      return;
    }
    this.dispatch(LOCAL_CLIENT, method, withParts(method, args, engineId, callId, reply), () => {}, undefined, undefined, (outcome) =>
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
    // It may have been the last other context: look again whether anyone may listen.
    if (!this.closing) void this.liveClients(clientId).catch(() => {});
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
      this.runningClient = null;
      job.settle({ ...result, owns: this.owner === job.clientId });
      this.pump();
    };
    this.runningClient = job.clientId;
    this.running = job.run().then(
      (value) => finish({ ok: true, value }),
      (error: unknown) => finish({ ok: false, error }),
    );
  }

  /**
   * Hands the database over: see the header. Resolves once the Driver has closed. `lastWord`
   * runs once every follower has been told `closed`, before the Driver closes: nothing of the
   * engine reaches another context after it.
   */
  async close(lastWord: () => void = () => {}): Promise<void> {
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
    this.channelClosed = true;
    this.channel.close();
    this.broker?.retire(this.engineId);
    for (const channel of [...this.replies.values(), ...this.links.values()]) {
      channel.postMessage({ type: 'closed', engineId: this.engineId } satisfies TabReply);
      channel.close();
    }
    lastWord();
    await this.driver.close();
  }
}
