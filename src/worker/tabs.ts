/**
 * One database shared by every tab and worker of the origin. Each context that calls `open()`
 * (the page, here) builds a `SharedDriver`, and its database worker a seat (seat.ts) that queues
 * for the database's Web Lock. The holder's worker runs the engine (engine-host.ts). The page
 * sends every Driver call straight to the worker that runs the engine: its own over the seat's
 * line (worker-link.ts, in the short form `LocalCall`), another context's over a port from the
 * broker (broker.ts) or over BroadcastChannel (tabs-protocol.ts), so a follower's call crosses
 * one thread each way, as the engine tab's own does. When the engine dies or closes, the lock
 * passes to the next waiting seat, which opens the engine: hand-over needs no action from the app.
 *
 * Calls go to the current engine until it has finished: it said `closed` (after answering every
 * call it took), or its engine lock (`engineLockName`) was granted to this context (it crashed).
 * Only then is another engine taken: an announcement that comes earlier, by another road, may
 * be stale, and the current engine may still answer. Every call settles:
 * - Sent to no engine yet: it waits for the next one, which exists as long as any context is
 *   waiting for the lock (every follower is).
 * - Not run by an engine that finished in order (`not-run`, or never reached it): it goes to the
 *   next engine, nothing is lost or doubled.
 * - Sent to an engine that crashed without saying it received it (`accepted`, posted before it
 *   starts a call): it never ran, and goes to the next engine. Taken and not answered: a plain
 *   read (`isRetriable`) goes to the next engine; a recorded write (`exec`, `run`, `batch`:
 *   call-log.ts) is looked up there, resolving with its recorded result if it committed, else
 *   sent there once; anything else (a `query` with RETURNING, `import`, sync calls, a write run
 *   unrecorded) rejects `OutpostError('OUTCOME_UNKNOWN')`. A call inside this tab's transaction
 *   rejects `TRANSACTION_LOST` (later calls of it too, until `Database` rolls it back), unless
 *   it was the COMMIT and the records show it committed.
 * - The engine fell silent (a frozen tab keeps its lock): after `timeoutMs` without a sign of
 *   life, a call it had not accepted rejects `ENGINE_UNRESPONSIVE` (the engine refuses to start
 *   it later: `expired`), one it had accepted `OUTCOME_UNKNOWN` (checkSilence).
 */
import { DRIVER_METHODS, type Driver } from '../driver.js';
import { type QueryRows, RowParts } from '../engine/packed-rows.js';
import { OutpostError } from '../errors.js';
import type { SyncProgress } from '../types.js';
import { EarlyEvents } from './early-events.js';
import { type BrokerPort, deserializeError } from './protocol.js';
import type { LinkPort } from './worker-link.js';
import type { BrokerMessage, BrokerRequest, LocalCall, SeatEvent, SeatRequest, TabMessage, TabReply } from './tabs-protocol.js';
import { HEARTBEAT_MS, MIN_TAB_TIMEOUT_MS, RECORDED_METHODS, UNQUEUED_METHODS, brokerLockName, channelName, clientLockName, engineLockName } from './tabs-protocol.js';
import { fromLocalResult, isRetriable, outcomeUnknown, replyChannelName, silentOutcomeUnknown, transactionLost, unresponsive } from './tabs-protocol.js';

const UNHEARD_PROGRESS_MAX = 1000;

/** Starts this context's seat (seat.ts) in its database worker, at the other end of the seat's line (worker-link.ts). */
export type StartSeat = (seat: { clientId: string; brokerId: string | null }) => Promise<void>;

interface PendingCall {
  method: string;
  args: unknown[];
  resolve: (value: unknown) => void;
  reject: (e: Error) => void;
  /** The engine it was sent to, or null while it waits for one. */
  sentTo: string | null;
  /** That engine said it received the call (and may have run it). */
  accepted: boolean;
  /** That engine records whether the call committed (call-log.ts), unless it said otherwise. */
  recorded: boolean;
  /**
   * Its engine died after accepting it: `waiting` to ask the next engine whether it committed,
   * or the id of the engine asked. `null` otherwise.
   */
  ask: string | null;
  /** It was the call in flight when the engine died inside this tab's transaction. */
  inLostTransaction: boolean;
  /** When it was last sent, or queued (wall clock, as the engine's heartbeats). */
  sentAt: number;
  /** The parts of a query's rows from the engine it was sent to, made into objects. */
  parts?: RowParts | undefined;
}

/** The engine is reached over a port (`link`: the seat's line when `own`, else the broker's) or the broadcast (null). */
type State =
  | { kind: 'waiting' }
  | { kind: 'remote'; engineId: string; link: LinkPort | null; own: boolean }
  | { kind: 'failed'; error: Error }
  | { kind: 'closed' };

export class SharedDriver {
  private readonly clientId = crypto.randomUUID();
  private readonly channel: BroadcastChannel;
  private readonly replies: BroadcastChannel;
  private readonly pending = new Map<number, PendingCall>();
  /** Engines that have finished (header): nothing more comes from them. */
  private readonly retired = new Set<string>();
  /** Engines whose lock this context waits for (`watchEngine`). */
  private readonly watching = new Set<string>();
  /** An engine that showed itself before the current one finished: taken once it has, unless it finished first. */
  private candidate: { engineId: string; link: LinkPort | null } | null = null;
  /** Ports to engines, from the broker, by engine id. */
  private readonly links = new Map<string, MessagePort>();
  /** The engine last announced on the channel as registered with our broker: its port is coming. */
  private announced: string | null = null;
  private readonly stopWaiting = new AbortController();
  /** The engine this context's own worker runs or is opening. */
  private ownEngine: string | null = null;
  private state: State = { kind: 'waiting' };
  private currentEngine: string | null = null;
  private nextCallId = 1;
  /** This tab's transaction is open on the current engine. */
  private inTransaction = false;
  /** The engine died inside this tab's transaction, which `Database` has not yet rolled back. */
  private transactionLost = false;
  private listener: ((tables: string[]) => void) | null = null;
  /** What engines announced before this context could call them: heard when they become current. */
  private readonly early = new EarlyEvents(UNHEARD_PROGRESS_MAX);
  private progressListener: ((progress: SyncProgress) => void) | null = null;
  /** Progress before anyone listened (a live bootstrap can end before the app's first `onSyncProgress`): the first listener hears it. */
  private unheardProgress: SyncProgress[] | null = [];
  private releaseClientLock: () => void = () => {};
  private readySettled = false;
  /** This context is opening the engine (a slow open is not a silent engine). */
  private opening = false;
  /** This context's own worker has started its seat: no silence counts before (loading scripts can take seconds). */
  private seatStarted = false;
  /** When the current (or awaited) engine was last heard from. */
  private lastHeardAt = Date.now();
  private readonly watchdog: ReturnType<typeof setInterval>;
  /** How long calls wait on a silent engine (`tabTimeoutMs`). */
  private readonly timeoutMs: number;
  private resolveReady: () => void = () => {};
  private rejectReady: (e: Error) => void = () => {};
  /** Settles when this context first has an engine to talk to (its own or another's). */
  readonly ready: Promise<void>;
  readonly driver: Driver;

  private constructor(
    private readonly name: string,
    timeoutMs: number,
    private readonly startSeat: StartSeat,
    /** The broker, while it lives (its lifetime lock is not granted to us). */
    private broker: BrokerPort | null,
    /** This context's end of its seat's line (seat.ts): its own worker's channel (worker-link.ts). */
    private readonly seat: LinkPort,
  ) {
    this.seat.onmessage = (event: MessageEvent<SeatEvent>) => this.fromSeat(event.data);
    this.timeoutMs = Math.max(MIN_TAB_TIMEOUT_MS, timeoutMs);
    this.watchdog = setInterval(() => this.checkSilence(), HEARTBEAT_MS);
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    // It can reject before start() awaits it (the worker failed while loading): not unhandled.
    this.ready.catch(() => {});
    this.channel = new BroadcastChannel(channelName(name));
    this.channel.onmessage = (event: MessageEvent<TabMessage>) => this.receive(event.data);
    this.replies = new BroadcastChannel(replyChannelName(name, this.clientId));
    this.replies.onmessage = (event: MessageEvent<TabReply>) => this.answer(event.data);
    const entries = DRIVER_METHODS.map((method) => [method, (...args: unknown[]) => this.call(method, args)]);
    // Each entry forwards its method's arguments and result unchanged, so it has that method's type.
    this.driver = {
      ...(Object.fromEntries(entries) as unknown as Driver),
      onTablesChanged: async (listener) => {
        this.listener = listener;
      },
      onSyncProgress: async (listener) => {
        this.progressListener = listener;
        const unheard = this.unheardProgress;
        this.unheardProgress = null;
        if (listener) for (const progress of unheard ?? []) listener(progress);
      },
      close: () => this.close(),
    };
  }

  private progressed(progress: SyncProgress): void {
    if (this.progressListener) this.progressListener(progress);
    else if (this.unheardProgress && this.unheardProgress.push(progress) > UNHEARD_PROGRESS_MAX) this.unheardProgress.shift();
  }

  /**
   * Joins the database `name`; its worker's seat is started by `startSeat`, and this context
   * talks to it over `seat` (worker-link.ts). Resolves once there is an engine to call (this
   * context's own, when nobody ran one).
   */
  static async join(name: string, timeoutMs: number, startSeat: StartSeat, broker: BrokerPort | null, seat: LinkPort): Promise<SharedDriver> {
    const shared = new SharedDriver(name, timeoutMs, startSeat, broker, seat);
    try {
      await shared.start();
    } catch (e) {
      await shared.close();
      throw e;
    }
    return shared;
  }

  private async start(): Promise<void> {
    // Held for this context's whole life: the engine learns of our death when it is released.
    await new Promise<void>((granted) => {
      void navigator.locks.request(clientLockName(this.name, this.clientId), () => {
        granted();
        return new Promise<void>((release) => (this.releaseClientLock = release));
      });
    });
    this.joinBroker();
    this.channel.postMessage({ type: 'hello' } satisfies TabMessage);
    await this.startSeat({ clientId: this.clientId, brokerId: this.broker?.brokerId ?? null });
    // The seat now queues for the database lock: from here, a silence is another engine's.
    this.seatStarted = true;
    this.lastHeardAt = Date.now();
    await this.ready;
  }

  /** What this context's own worker says of its seat, and its engine's answers to our calls. */
  private fromSeat(event: SeatEvent): void {
    if (Array.isArray(event)) return this.answer(fromLocalResult(event));
    switch (event.type) {
      case 'electing':
        this.ownEngine = event.engineId;
        this.opening = true;
        this.lastHeardAt = Date.now();
        return;
      case 'local':
        this.opening = false;
        this.engineReady(event.engineId, this.seat);
        return;
      case 'failed':
        this.opening = false;
        this.ownEngine = null;
        this.fail(deserializeError(event.error));
        return;
      case 'broker':
        this.toBroker(event.request);
        return;
      case 'tables':
        if (this.isCurrent(event.engineId)) this.listener?.(event.tables);
        return;
      case 'progress':
        if (this.isCurrent(event.engineId)) this.progressed(event.progress);
        return;
      default:
        this.answer(event);
    }
  }

  private isCurrent(engineId: string): boolean {
    return this.state.kind === 'remote' && this.state.engineId === engineId;
  }

  private toSeat(request: SeatRequest, transfer: Transferable[] = []): void {
    if (!this.closed()) this.seat.postMessage(request, transfer);
  }

  /** This context cannot reach an engine any more (its own failed to open, or its worker died). */
  fail(error: Error): void {
    if (this.closed()) return;
    this.state = { kind: 'failed', error };
    for (const call of this.pending.values()) call.reject(error);
    this.pending.clear();
    this.settleReady(error);
  }

  /** Joins the broker (after taking the lifetime lock it watches), and learns of its death. */
  private joinBroker(): void {
    const broker = this.broker;
    if (!broker) return;
    broker.port.onmessage = (event: MessageEvent<BrokerMessage>) => this.fromBroker(event.data);
    this.toBroker({ type: 'join', name: this.name, clientId: this.clientId });
    void navigator.locks
      .request(brokerLockName(this.name, broker.brokerId), { signal: this.stopWaiting.signal }, () => this.brokerGone())
      .catch(() => {});
  }

  private toBroker(request: BrokerRequest): void {
    this.broker?.port.postMessage(request);
  }

  private fromBroker(message: BrokerMessage): void {
    if (message.type === 'client') {
      // A follower's port to our worker's engine (the broker knows no other engine of ours).
      this.toSeat({ type: 'client', clientId: message.clientId, port: message.port }, [message.port]);
      return;
    }
    if (message.type !== 'link') return;
    if (this.closed() || this.retired.has(message.engineId)) {
      message.port.close();
      return;
    }
    const port = message.port;
    this.links.set(message.engineId, port);
    port.onmessage = (event: MessageEvent<TabReply>) => this.answer(event.data);
    this.engineReady(message.engineId, port);
  }

  /**
   * The broker died (its process crashed): ports it handed out still work, but no new one will
   * come, so an engine announced on the channel is reached over the channel.
   */
  private brokerGone(): void {
    this.broker = null;
    this.toSeat({ type: 'broker-gone' });
    const announced = this.announced;
    if (announced !== null && this.state.kind === 'waiting' && !this.retired.has(announced)) this.engineReady(announced, null);
  }

  /**
   * Engine `engineId` is ready to take calls: over `link` (this context's seat port for its
   * own engine), or over the channel when null.
   */
  private engineReady(engineId: string, link: LinkPort | null): void {
    if (this.state.kind === 'closed' || this.state.kind === 'failed' || this.retired.has(engineId)) return;
    if (this.state.kind === 'remote' && this.state.engineId === engineId) return;
    this.watchEngine(engineId);
    const current = this.currentEngine;
    if (current !== null && current !== engineId && !this.retired.has(current)) {
      // The current engine may still answer calls it took: their outcomes are known once it
      // has finished (`finished`), and then this one is taken, unless it finished first.
      this.candidate = { engineId, link };
      return;
    }
    if (this.candidate?.engineId === engineId) this.candidate = null;
    this.engineChanged(engineId);
    this.state = { kind: 'remote', engineId, link, own: engineId === this.ownEngine };
    const early = this.early.take(engineId);
    if (early.tables.length > 0) this.listener?.(early.tables);
    for (const progress of early.progress) this.progressed(progress);
    this.settleReady();
    this.flush();
  }

  private readonly closed = (): boolean => this.state.kind === 'closed';

  private settleReady(error?: Error): void {
    if (this.readySettled) return;
    this.readySettled = true;
    if (error) this.rejectReady(error);
    else this.resolveReady();
  }

  private receive(message: TabMessage): void {
    if (message.type === 'electing') this.lastHeardAt = Date.now();
    if (message.type === 'alive' || message.type === 'engine' || message.type === 'tables') {
      if (this.state.kind !== 'remote' || message.engineId === this.state.engineId) this.lastHeardAt = Date.now();
    }
    // An election says nothing certain of the current engine (it may be stale): see the header.
    if (message.type === 'engine') {
      // Our own worker's engine is called over the seat port, which says when it is ready.
      if (message.engineId === this.ownEngine || (message.ownerId !== undefined && message.ownerId === this.clientId)) return;
      if (this.retired.has(message.engineId)) return;
      // An engine registered with our broker is reached over the port the broker sends.
      if (this.broker && message.brokerId === this.broker.brokerId) {
        this.announced = message.engineId;
        const link = this.links.get(message.engineId);
        if (link) this.engineReady(message.engineId, link);
        return;
      }
      this.engineReady(message.engineId, null);
    } else if (message.type === 'tables') {
      // Our own engine's events come over the seat port, in order with its answers or inside them (seat.ts).
      if (message.engineId === this.ownEngine) return;
      if (this.isCurrent(message.engineId)) this.listener?.(message.tables);
      else if (!this.retired.has(message.engineId)) this.early.tables(message.engineId, message.tables);
    } else if (message.type === 'progress') {
      if (message.engineId === this.ownEngine) return;
      if (this.isCurrent(message.engineId)) this.progressed(message.progress);
      else if (!this.retired.has(message.engineId)) this.early.progress(message.engineId, message.progress);
    }
  }

  /** Learns when engine `engineId` has finished (`engineLockName`); asked once it showed itself, when it holds its lock. */
  private watchEngine(engineId: string): void {
    if (this.watching.has(engineId)) return;
    this.watching.add(engineId);
    void navigator.locks.request(engineLockName(this.name, engineId), { signal: this.stopWaiting.signal }, () => this.finished(engineId, false)).catch(() => {});
  }

  /**
   * Engine `engineId` has finished: in order (`closed`: it answered every call it took, the
   * others never reached it, and go to the next engine) or not (its lock was granted first: it
   * crashed). What a crashed engine took is settled when the next one is ready
   * (`engineChanged`), which leaves its last answers time to arrive.
   */
  private finished(engineId: string, inOrder: boolean): void {
    if (this.retired.has(engineId)) return;
    this.retired.add(engineId);
    this.dropLink(engineId);
    if (engineId === this.ownEngine) this.ownEngine = null;
    if (this.candidate?.engineId === engineId) this.candidate = null;
    const wasCurrent = this.currentEngine === engineId;
    if (wasCurrent && this.inTransaction) {
      // This tab's transaction lived there: rolled back, or gone with the engine.
      this.inTransaction = false;
      this.transactionLost = true;
      for (const call of this.pending.values()) if (!UNQUEUED_METHODS.has(call.method)) call.inLostTransaction = true;
    }
    for (const call of this.pending.values()) {
      // Asked an engine that is gone: the records are still there for the next one.
      if (call.ask === engineId) call.ask = 'waiting';
      else if (inOrder && call.sentTo === engineId && call.ask === null) this.resend(call);
    }
    if (!wasCurrent) return this.flush();
    if (this.state.kind === 'remote') this.state = { kind: 'waiting' };
    const next = this.candidate;
    // The next engine, if it showed itself already; else whoever runs it now says so.
    if (next) this.engineReady(next.engineId, next.link);
    else if (!this.closed()) this.channel.postMessage({ type: 'hello' } satisfies TabMessage);
  }

  /** The engine `engineId` is ready, and the previous one has finished: settle what a crash left (header). */
  private engineChanged(engineId: string): void {
    const previous = this.currentEngine;
    if (previous === engineId) return;
    this.currentEngine = engineId;
    if (previous === null) return;
    for (const [callId, call] of this.pending) {
      if (call.ask !== null) continue;
      // Inside a lost transaction, a call not sent yet must not run outside it on the new engine.
      const lost = call.inLostTransaction;
      if (call.sentTo !== previous && !lost) continue;
      if (!lost && (!call.accepted || isRetriable(call.method, call.args))) {
        this.resend(call);
        continue;
      }
      if (call.sentTo === previous && call.accepted && call.recorded) {
        // The new engine can tell from the records whether it committed (flush asks).
        call.ask = 'waiting';
        continue;
      }
      this.pending.delete(callId);
      call.reject(lost ? transactionLost(this.name) : outcomeUnknown(this.name, call.method));
    }
  }

  /** Closes the port to a retired engine: everything it will ever answer has been read. */
  private dropLink(engineId: string): void {
    this.links.get(engineId)?.close();
    this.links.delete(engineId);
  }

  private resend(call: PendingCall): void {
    call.sentTo = null;
    call.parts = undefined;
    call.accepted = false;
    call.recorded = false;
    call.ask = null;
  }

  /** The answer to asking whether `asked` calls committed: settle those that did, resend or reject the others. */
  private outcomes(asked: readonly number[], applied: readonly { callId: number; value: unknown }[]): void {
    const values = new Map(applied.map((a) => [a.callId, a.value]));
    for (const callId of asked) {
      const call = this.pending.get(callId);
      if (!call || call.ask === null) continue;
      if (values.has(callId)) {
        // It committed; in a lost transaction it was that transaction's COMMIT.
        this.pending.delete(callId);
        if (call.inLostTransaction) this.transactionLost = false;
        call.resolve(values.get(callId));
      } else if (call.inLostTransaction) {
        this.pending.delete(callId);
        call.reject(transactionLost(this.name));
      } else {
        // It never committed, and its engine is gone: it runs once, on this one.
        this.resend(call);
      }
    }
    this.flush();
  }

  private call(method: string, args: unknown[]): Promise<unknown> {
    if (this.state.kind === 'closed') return Promise.reject(new OutpostError(`database "${this.name}" is closed`, 'DATABASE_CLOSED'));
    if (this.state.kind === 'failed') return Promise.reject(this.state.error);
    if (this.transactionLost) {
      // Database ends every transaction with rollback(): that call closes the lost one.
      if (method === 'rollback' && args[0] === undefined) {
        this.transactionLost = false;
        return Promise.resolve();
      }
      return Promise.reject(transactionLost(this.name));
    }
    return new Promise((resolve, reject) => {
      const callId = this.nextCallId++;
      this.pending.set(callId, { method, args, resolve, reject, sentTo: null, accepted: false, recorded: false, ask: null, inLostTransaction: false, sentAt: Date.now() });
      this.flush();
    });
  }

  /** Sends every waiting call to the current engine, if there is one. */
  private flush(): void {
    const state = this.state;
    if (state.kind !== 'remote') return;
    this.askOutcomes(state);
    // Keeps the order of calls: nothing goes out while an older call's outcome is unknown.
    for (const c of this.pending.values()) if (c.ask !== null) return;
    const keepFrom = this.pending.keys().next().value ?? this.nextCallId;
    for (const [callId, call] of this.pending) {
      if (call.sentTo !== null) continue;
      call.sentTo = state.engineId;
      call.sentAt = Date.now();
      if (state.own && state.link === this.seat) {
        // Our own engine runs it unrecorded and says nothing before answering; if our worker
        // died without closing in order, a write may have run (engineChanged).
        call.accepted = true;
        call.recorded = false;
        this.seat.postMessage([state.engineId, callId, call.method, call.args] satisfies LocalCall);
      } else this.postTo(state, { type: 'call', engineId: state.engineId, clientId: this.clientId, callId, keepFrom, sentAt: call.sentAt, timeoutMs: this.timeoutMs, method: call.method, args: call.args });
    }
  }

  /** Asks the current engine whether the calls its predecessor died holding committed. */
  private askOutcomes(state: Extract<State, { kind: 'remote' }>): void {
    let waiting: [number, PendingCall][] | null = null;
    for (const entry of this.pending) if (entry[1].ask === 'waiting') (waiting ??= []).push(entry);
    if (waiting === null) return;
    const calls = waiting.map(([callId, c]) => ({ callId, method: c.method }));
    for (const [, c] of waiting) c.ask = state.engineId;
    this.postTo(state, { type: 'outcomes', engineId: state.engineId, clientId: this.clientId, calls });
  }

  /** Sends to the remote engine over its port, or over the channel when it has none. */
  private postTo(state: { link: LinkPort | null }, message: TabMessage): void {
    if (state.link) state.link.postMessage(message);
    else this.channel.postMessage(message);
  }

  /**
   * Gives up on calls the engine has been silent on for `timeoutMs` (a frozen or busy engine
   * tab keeps its lock, so no other engine comes). The engine starts no call after such a
   * silence (engine-host.ts, `expired`), so a call it had not accepted did not run; one it had
   * accepted may be the one it was running.
   */
  private checkSilence(): void {
    // Our own engine is not silent while this context lives; a busy statement there has no timeout.
    if ((this.state.kind === 'remote' && this.state.own) || this.state.kind === 'closed' || this.opening || !this.seatStarted) return;
    const now = Date.now();
    for (const [callId, call] of this.pending) {
      if (now - Math.max(this.lastHeardAt, call.sentAt) <= this.timeoutMs) continue;
      this.pending.delete(callId);
      const mayHaveRun = call.accepted && !isRetriable(call.method, call.args);
      call.reject(mayHaveRun ? silentOutcomeUnknown(this.name, call.method, this.timeoutMs) : unresponsive(this.name, this.timeoutMs));
    }
    if (!this.readySettled && now - this.lastHeardAt > this.timeoutMs) {
      this.settleReady(unresponsive(this.name, this.timeoutMs));
      void this.close();
    }
  }

  private answer(reply: TabReply): void {
    if (reply.engineId === this.currentEngine) this.lastHeardAt = Date.now();
    if (reply.type === 'expired') {
      const call = this.pending.get(reply.callId);
      if (!call || call.sentTo !== reply.engineId) return;
      this.pending.delete(reply.callId);
      call.reject(unresponsive(this.name, this.timeoutMs));
      return;
    }
    if (reply.type === 'outcomes') {
      if (reply.engineId === this.currentEngine) this.outcomes(reply.asked, reply.applied);
      return;
    }
    if (reply.type === 'closed') {
      // Every call it took has been answered before this: the others never reached it.
      this.finished(reply.engineId, true);
      return;
    }
    if (reply.type === 'result' && reply.tables && this.isCurrent(reply.engineId)) this.listener?.(reply.tables);
    const call = this.pending.get(reply.callId);
    // An answer from an engine the call is no longer waiting on (it was sent on) is stale.
    if (!call || call.sentTo !== reply.engineId) return;
    if (reply.type === 'accepted') {
      call.accepted = true;
      call.recorded = RECORDED_METHODS.has(call.method);
      return;
    }
    if (reply.type === 'unrecorded') {
      call.recorded = false;
      return;
    }
    if (reply.type === 'part') return (call.parts ??= new RowParts()).add(reply.rows);
    if (reply.type === 'not-run') {
      // The engine is closing: the call goes to the next one, which may be current already
      // (this came by another road than its announcement) and may have been asked about it.
      this.resend(call);
      // Its `closed` follows on this road: the next engine is taken then (`finished`).
      if (this.isCurrent(reply.engineId)) this.state = { kind: 'waiting' };
      else this.flush();
      return;
    }
    this.pending.delete(reply.callId);
    this.inTransaction = reply.inTransaction;
    if (reply.ok) call.resolve(call.parts ? call.parts.finish(reply.value as QueryRows) : reply.value);
    else call.reject(deserializeError(reply.error));
  }

  /** Closes this context's side; the page closes its worker's seat after this (client.ts). */
  async close(): Promise<void> {
    clearInterval(this.watchdog);
    this.state = { kind: 'closed' };
    this.stopWaiting.abort();
    for (const call of this.pending.values()) call.reject(new OutpostError(`database "${this.name}" is closed`, 'DATABASE_CLOSED'));
    this.pending.clear();
    this.channel.close();
    this.replies.close();
    for (const engineId of [...this.links.keys()]) this.dropLink(engineId);
    this.broker?.port.close();
    this.broker = null;
    this.seat.close();
    this.releaseClientLock();
  }
}
