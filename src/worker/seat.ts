/**
 * A context's seat at a shared database, in its database worker: it queues for the database's
 * Web Lock and, while it holds it, runs the engine (engine-host.ts) for every context. Which
 * engine a call goes to, and how calls settle on hand-over, is decided in the context that
 * called `open()` (tabs.ts, "the page"), which talks to whichever worker runs the engine
 * straight over a port: to its own worker over the worker's line (worker-link.ts), to another's over
 * a broker port or the broadcast. A follower's call thus crosses one thread each way, as the
 * engine tab's own does.
 *
 * Hand-over speed: the runtime (WASM compiled and instantiated) is loaded as soon as the seat
 * exists, and a seat left waiting warms it up (`warmUp`: V8 compiles WASM and JS functions on
 * their first call, and opening a database calls many), so taking over costs only opening the
 * database; a closing page steps down on `pagehide` (browser/open.ts), and its engine gives the
 * lock back first, then closes without a checkpoint.
 */
import type { Driver } from '../driver.js';
import { type PackedRows, type QueryRows, transferables } from '../engine/packed-rows.js';
import { loadRuntime } from '../engine/runtime.js';
import { databaseLockName } from '../opfs-vfs/storage/opfs.js';
import type { CallLog } from './call-log.js';
import { EngineHost } from './engine-host.js';
import { serializeError } from './protocol.js';
import type { LinkPort } from './worker-link.js';
import { type SeatEvent, type SeatRequest, type TabMessage, type TabReply, channelName, engineLockName, toLocalResult } from './tabs-protocol.js';

/**
 * The engine this context opens when it wins the lock; `release` gives the lock back.
 * `leaving`: makes its close as short as it can be (no checkpoint), for a page going away.
 */
export type OpenEngine = (release: () => void) => Promise<{
  driver: Driver;
  inTransaction: () => boolean;
  tables: () => Promise<string[]>;
  calls?: CallLog | undefined;
  leaving?: (() => void) | undefined;
}>;

/** The buffers of a result that can move to the page instead of being copied. */
function resultTransfer(method: string, value: unknown): Transferable[] {
  if (method === 'query') return transferables(value as QueryRows);
  // statementRows and watchQuery answer { rows: PackedRows, ... } (driver.ts).
  if (method === 'statementRows' || method === 'watchQuery') return transferables((value as { rows: PackedRows }).rows);
  if (method === 'export') return [(value as Uint8Array).buffer];
  return [];
}

export class EngineSeat {
  private host: EngineHost | null = null;
  /** This seat has been granted the lock once (it runs or ran the engine). */
  private seated = false;
  /** Gives the database lock back (the engine's Driver does so too when it closes). */
  private releaseLock: () => void = () => {};
  /** Gives back the engine's own lock (`engineLockName`), once it has said its last word. */
  private releaseEngineLock: () => void = () => {};
  /** Makes the engine's close short (OpenEngine). */
  private leaving: () => void = () => {};
  private closed = false;
  private readonly stopWaiting = new AbortController();
  /** For `electing` only: the host has its own channel. */
  private readonly channel: BroadcastChannel;
  /** The methods of the page's calls by id, to move their results' buffers. */
  private readonly methods = new Map<number, string>();
  /**
   * Tables the engine's commits changed that the page has not been told of: they go with the
   * next message to the page (inside an answer, which saves a message per autocommit write), or
   * on their own at the end of this task. Either way before anything the page hears after.
   */
  private unsentTables: { engineId: string; tables: Set<string> } | null = null;

  constructor(
    private readonly name: string,
    /** The page's end is in tabs.ts. */
    private readonly port: LinkPort,
    /** The page's client id: the engine is registered and announced under it. */
    private readonly clientId: string,
    private readonly openEngine: OpenEngine,
    private brokerId: string | null,
    /** Runs a throwaway engine in memory, so that the code an open runs is compiled already. */
    warmUp: () => Promise<void> = async () => {},
  ) {
    this.channel = new BroadcastChannel(channelName(name));
    port.onmessage = (event: MessageEvent<SeatRequest>) => this.fromPage(event.data);
    this.queueForLock();
    // Loaded now, while idle: at hand-over, compiling the WASM took most of the time. Warmed up
    // only by a seat that waits for another context's engine: the worker starts loading the
    // runtime before `open` (worker.ts), so it is often ready before a free lock is granted,
    // and a warm-up then would run in front of this tab's own first open.
    void loadRuntime()
      .then(async () => (this.seated || this.closed || !(await this.lockHeldElsewhere()) ? undefined : warmUp()))
      .catch(() => {});
  }

  /** True while another context holds the database lock: this seat would wait for it. */
  private async lockHeldElsewhere(): Promise<boolean> {
    const held = (await navigator.locks.query()).held ?? [];
    return !this.seated && held.some((l) => l.name === databaseLockName(this.name));
  }

  /**
   * Waits for the database lock, to run the engine when this context gets it. The lock is
   * held until `released` settles, which is returned as is (not through an async function),
   * so that releasing it reaches the browser before any work that follows in this worker.
   */
  private queueForLock(): void {
    navigator.locks
      .request(databaseLockName(this.name), { signal: this.stopWaiting.signal }, () => {
        let release: () => void = () => {};
        const released = new Promise<void>((r) => (release = r));
        void this.becomeEngine(release);
        return released;
      })
      .catch(() => {});
  }

  private post(message: SeatEvent, transfer: Transferable[] = []): void {
    const unsent = this.unsentTables;
    if (unsent && Array.isArray(message) && message[0] === unsent.engineId) {
      this.unsentTables = null;
      message[5] = [...unsent.tables];
    } else this.sendTables();
    this.port.postMessage(message, transfer);
  }

  /**
   * Engine `engineId` committed changes to `tables`: the page hears of them with its next
   * message (`unsentTables`), which is the answer of the running call when it is the page's
   * (`answering`); else at the end of this task.
   */
  private tablesChanged(engineId: string, tables: string[], answering: boolean): void {
    if (this.unsentTables && this.unsentTables.engineId !== engineId) this.sendTables();
    if (!this.unsentTables) {
      this.unsentTables = { engineId, tables: new Set() };
      if (!answering) setTimeout(() => this.sendTables(), 0);
    }
    for (const table of tables) this.unsentTables.tables.add(table);
  }

  private sendTables(): void {
    const unsent = this.unsentTables;
    if (!unsent) return;
    this.unsentTables = null;
    this.port.postMessage({ type: 'tables', engineId: unsent.engineId, tables: [...unsent.tables] } satisfies SeatEvent);
  }

  private fromPage(message: SeatRequest): void {
    if (Array.isArray(message)) {
      const [engineId, callId, method, args] = message;
      if (!this.host) return this.post({ type: 'not-run', engineId, callId });
      this.methods.set(callId, method);
      return this.host.callLocal(engineId, callId, method, args, (reply) => this.toPage(reply));
    }
    if (message.type === 'client') {
      if (this.host) this.host.addClient(message.clientId, message.port);
      else message.port.close();
      return;
    }
    if (message.type === 'broker-gone') {
      this.brokerId = null;
      return;
    }
    const host = this.host;
    if (!host) {
      if (message.type === 'call') this.post({ type: 'not-run', engineId: message.engineId, callId: message.callId });
      return;
    }
    if (message.type === 'call') this.methods.set(message.callId, message.method);
    host.receiveLocal(message, (reply) => this.toPage(reply));
  }

  private toPage(reply: TabReply): void {
    if (reply.type === 'part') return this.post(reply, transferables(reply.rows));
    if (reply.type !== 'result') return this.post(reply);
    const method = this.methods.get(reply.callId) ?? '';
    this.methods.delete(reply.callId);
    this.post(toLocalResult(reply), reply.ok ? resultTransfer(method, reply.value) : []);
  }

  /** Runs the engine while this context holds the lock; `release` gives it back. */
  private async becomeEngine(release: () => void): Promise<void> {
    if (this.closed) return release();
    this.seated = true;
    const engineId = crypto.randomUUID();
    this.channel.postMessage({ type: 'electing', engineId } satisfies TabMessage);
    this.post({ type: 'electing', engineId });
    this.releaseLock = release;
    // Taken while the engine opens, and held before anyone hears of the engine (tabs-protocol.ts).
    // Given back at once if this election ended before the grant (an open that failed fast).
    let ended = false;
    let releaseEngine = (): void => void (ended = true);
    this.releaseEngineLock = () => releaseEngine();
    const engineLock = new Promise<void>((held) => {
      void navigator.locks
        .request(engineLockName(this.name, engineId), () => {
          held();
          return ended ? undefined : new Promise<void>((done) => (releaseEngine = done));
        })
        .catch(() => held());
    });
    let started: EngineHost | null = null;
    try {
      const [engine] = await Promise.all([this.openEngine(release), engineLock]);
      if (this.closed) {
        // Closed while the engine opened: give the database to the next context at once.
        await engine.driver.close().catch(() => {});
        release();
        this.releaseEngineLock();
        return;
      }
      this.leaving = engine.leaving ?? (() => {});
      const request = (r: SeatEvent & { type: 'broker' }): void => this.post(r);
      const host = new EngineHost(
        this.name,
        engineId,
        engine.driver,
        engine.inTransaction,
        (tables, answering) => this.tablesChanged(engineId, tables, answering),
        (progress) => this.post({ type: 'progress', engineId, progress }),
        engine.calls ?? null,
        {
          brokerId: () => this.brokerId,
          register: (id) => request({ type: 'broker', request: { type: 'engine', name: this.name, clientId: this.clientId, engineId: id } }),
          retire: (id) => request({ type: 'broker', request: { type: 'retired', name: this.name, engineId: id } }),
        },
        this.clientId,
      );
      this.host = started = host;
      // Before the announcement: the page then calls over this port, not as a follower.
      this.post({ type: 'local', engineId });
      await host.start(await engine.tables());
    } catch (e) {
      // An engine stepped down while it started (stepDown took it) has closed in order, and the
      // seat may run another one by now: its failure is not this context's.
      if (started !== null && this.host !== started) return;
      this.host = null;
      this.post({ type: 'failed', error: serializeError(e) });
      release();
      this.releaseEngineLock();
    }
  }

  /**
   * The engine has told every follower `closed`: the page hears it too (after the answers to
   * its calls, all posted before), and the engine lock goes, before the Driver's close, so
   * that every context knows at once that nothing more comes from this engine.
   */
  private lastWord(engineId: string): void {
    this.post({ type: 'closed', engineId });
    this.releaseEngineLock();
  }

  /**
   * Hands the engine to another context, if this one runs it, and queues for it again
   * (browser/open.ts: the page is being frozen, put in the back/forward cache, or closed).
   * Not while the page's own transaction is open: closing would roll it back. `leaving`: the
   * page is being closed or reloaded, and does not queue again.
   */
  async stepDown(leaving = false): Promise<void> {
    const host = this.host;
    if (!host || host.localTransactionOpen()) return;
    this.host = null;
    // A closing page's worker is torn down soon, and its lock would be released only then
    // (hundreds of milliseconds after pagehide, measured): release it first. The next engine cannot open
    // the files before this one has closed them (OPFS sync access handles are exclusive;
    // opfs.ts waits for them), so nothing runs on both.
    if (leaving) {
      this.releaseLock();
      this.leaving();
    }
    await host.close(() => this.lastWord(host.engineId));
    if (!this.closed && !leaving) this.queueForLock();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopWaiting.abort();
    this.channel.close();
    const host = this.host;
    this.host = null;
    try {
      await host?.close(() => this.releaseEngineLock());
    } finally {
      this.releaseEngineLock();
      this.port.close();
    }
  }
}
