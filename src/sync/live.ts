/**
 * Live sync (`sync: { live: true }`): keeps one database in sync without calls from the app.
 * It runs where the engine runs (the database worker that holds the engine, or Node), so with
 * several tabs it runs once per database and moves with the engine on hand-over.
 *
 * - Pull: a loop of long polls. A download touches nothing local; its apply runs through
 *   `whenIdle`, between transactions, so reads and writes wait only for the apply itself.
 * - Push: `pushDelayMs` after a commit (a burst of commits goes in one push); a commit during a
 *   push starts another once it ends. A pull about to apply starts a due push first.
 * - Failure: the next attempt waits 250 ms, doubling up to 30 s (±25% jitter), or as long as
 *   the server's Retry-After asks.
 * - Offline (the realm's `offline` event, `navigator.onLine`): requests in flight are aborted
 *   and nothing is sent until `online`, which resumes both at once. Node counts as online.
 *   While offline, `navigator.onLine` is also checked every `OFFLINE_RECHECK_MS`: a dedicated
 *   worker does not always hear the events (Chromium under DevTools network emulation flips its
 *   `navigator.onLine` and fails its fetches, but fires no `online` or `offline` there).
 *   With `backgroundPush`, each commit while offline still makes one push attempt, so that a
 *   service worker can queue its batch (push.ts, README "Background push").
 * - `stop()`: clears every timer, aborts every request, and resolves when the loop has ended.
 */
import { SyncError, isTransient } from '../errors.js';
import type { SyncEngine } from './engine.js';
import { sleep } from './sleep.js';
import type { PulledUpdate } from './pull.js';

/** Whether the network is there, and a way to hear when that changes. */
export interface Connectivity {
  online(): boolean;
  /** Calls `listener` on every change; returns an unsubscribe. */
  watch(listener: () => void): () => void;
}

/** Long poll of the live loop when `longPollTimeoutMs` is not set. */
const DEFAULT_LONG_POLL_MS = 20_000;
const DEFAULT_PUSH_DELAY_MS = 10;
/** A pull that came back empty sooner than this (a server without long polls) waits this long before the next. */
const MIN_POLL_INTERVAL_MS = 500;
const BACKOFF_BASE_MS = 250;
/** While offline, how often `navigator.onLine` is read again, for realms that miss the `online` event. */
const OFFLINE_RECHECK_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
/** The longest Retry-After honoured; a server asking for more is asked again after this. */
const RETRY_AFTER_MAX_MS = 5 * 60_000;

type Scope = {
  addEventListener?: (type: string, listener: () => void) => void;
  removeEventListener?: (type: string, listener: () => void) => void;
  navigator?: { onLine?: boolean };
};

/** The connectivity of this realm: a window's or worker's events; always online without them (Node). */
export function realmConnectivity(): Connectivity {
  // Browsers type globalThis as a Window; the same code runs in a worker and in Node.
  const scope = globalThis as unknown as Scope;
  return {
    online: () => scope.navigator?.onLine !== false,
    watch: (listener) => {
      const add = scope.addEventListener;
      const remove = scope.removeEventListener;
      if (typeof add !== 'function' || typeof remove !== 'function') return () => {};
      add.call(scope, 'online', listener);
      add.call(scope, 'offline', listener);
      return () => {
        remove.call(scope, 'online', listener);
        remove.call(scope, 'offline', listener);
      };
    },
  };
}

/** The wait before attempt `failures + 1`: exponential with jitter, at least what the server asked. */
export function backoffMs(failures: number, error: unknown): number {
  const exponential = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, failures - 1)) * (0.75 + Math.random() / 2);
  const askedMs = error instanceof SyncError ? Math.min(error.retryAfterMs ?? 0, RETRY_AFTER_MAX_MS) : 0;
  return Math.max(askedMs, exponential);
}

export interface LiveOptions {
  longPollTimeoutMs?: number | undefined;
  pushDelayMs?: number | undefined;
  /** Offline, a commit still makes one push attempt, whose batch a service worker queues (push.ts). */
  backgroundPush?: boolean | undefined;
}

export class LiveSync {
  private readonly stopping = new AbortController();
  /** Aborted (and replaced) when the network comes back: ends a wait at once. */
  private wake = new AbortController();
  private pushTimer: ReturnType<typeof setTimeout> | null = null;
  private pushing: Promise<void> | null = null;
  private pushAgain = false;
  private pushFailures = 0;
  /** Set while offline: reads `online()` again until it is true (see the header). */
  private offlineTimer: ReturnType<typeof setInterval> | null = null;
  private readonly loop: Promise<void>;
  private readonly unwatch: () => void;

  constructor(
    private readonly engine: SyncEngine,
    /** Runs `fn` when no transaction is open (driver.ts). */
    private readonly whenIdle: (fn: () => void) => Promise<void>,
    private readonly options: LiveOptions = {},
    private readonly net: Connectivity = realmConnectivity(),
  ) {
    engine.onCommit(() => this.schedulePush());
    this.unwatch = net.watch(() => this.connectivityChanged());
    if (engine.hasPending()) this.schedulePush();
    this.loop = this.pullLoop();
  }

  private get stopped(): boolean {
    return this.stopping.signal.aborted;
  }

  /** Stops everything: see the header. */
  async stop(): Promise<void> {
    if (!this.stopped) {
      this.stopping.abort();
      if (this.pushTimer !== null) clearTimeout(this.pushTimer);
      this.pushTimer = null;
      this.stopOfflineRecheck();
      this.unwatch();
      this.engine.onCommit(null);
      this.engine.stopNetwork();
    }
    await this.loop;
    await this.pushing;
  }

  private connectivityChanged(): void {
    if (this.stopped) return;
    if (!this.net.online()) {
      // The long poll would otherwise hang on a dead connection until its timeout.
      this.engine.abortRequests();
      this.recheckWhileOffline();
      return;
    }
    this.stopOfflineRecheck();
    this.wake.abort();
    this.wake = new AbortController();
    if (this.engine.hasPending()) this.schedulePush();
  }

  /** Reads `online()` every OFFLINE_RECHECK_MS until it is true, then resumes as `online` does. */
  private recheckWhileOffline(): void {
    if (this.stopped || this.offlineTimer !== null) return;
    this.offlineTimer = setInterval(() => {
      if (this.net.online()) this.connectivityChanged();
    }, OFFLINE_RECHECK_MS);
  }

  private stopOfflineRecheck(): void {
    if (this.offlineTimer !== null) clearInterval(this.offlineTimer);
    this.offlineTimer = null;
  }

  /** Waits `delayMs` (forever when null) or until the network comes back or live sync stops. */
  private async nap(delayMs: number | null): Promise<void> {
    await sleep(delayMs, this.stopping.signal, this.wake.signal);
  }

  private async pullLoop(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      if (!this.net.online()) {
        this.recheckWhileOffline();
        await this.nap(null);
        continue;
      }
      const startedAt = Date.now();
      try {
        const update = await this.engine.fetchPull(this.options.longPollTimeoutMs || DEFAULT_LONG_POLL_MS);
        if (this.stopped) return;
        if (update) await this.apply(update);
        failures = 0;
        if (!update && Date.now() - startedAt < MIN_POLL_INTERVAL_MS) await this.nap(MIN_POLL_INTERVAL_MS);
      } catch (e) {
        if (this.stopped) return;
        // The pull applied; the change it could not replay stays pending, in the status.
        if (e instanceof SyncError && e.code === 'REJECTED') continue;
        failures++;
        if (this.net.online()) await this.nap(backoffMs(failures, e));
        else {
          this.recheckWhileOffline();
          await this.nap(null);
        }
      }
    }
  }

  private async apply(update: PulledUpdate): Promise<void> {
    this.pushBeforeApply();
    let failure: unknown = null;
    await this.whenIdle(() => {
      try {
        this.engine.applyPull(update);
      } catch (e) {
        failure = e;
      }
    });
    if (failure !== null) throw failure;
  }

  private schedulePush(delayMs = this.options.pushDelayMs ?? DEFAULT_PUSH_DELAY_MS): void {
    if (this.stopped) return;
    if (this.pushing) {
      this.pushAgain = true;
      return;
    }
    if (this.pushTimer !== null) return;
    this.pushTimer = setTimeout(() => this.startPush(), delayMs);
  }

  private startPush(): void {
    if (this.pushTimer !== null) clearTimeout(this.pushTimer);
    this.pushTimer = null;
    this.pushing = this.pushNow().then((retryMs) => {
      this.pushing = null;
      if (retryMs !== null) this.schedulePush(retryMs);
      else if (this.pushAgain) this.schedulePush();
    });
  }

  /**
   * Starts a push that waits for its debounce now. The pull loop calls it before an apply: the
   * apply holds the engine's thread for its flushes, and a pull that follows a commit is often
   * this client's own last push coming back, so a push left behind it made every other client
   * wait for an apply that changes nothing they need. Started first, its request is on its way
   * while the apply runs.
   */
  private pushBeforeApply(): void {
    if (this.pushTimer !== null && this.pushFailures === 0) this.startPush();
  }

  /** One push; resolves to the wait before a retry after a failure that may pass, else null. */
  private async pushNow(): Promise<number | null> {
    this.pushAgain = false;
    if (this.stopped) return null;
    if (!this.net.online()) {
      // With backgroundPush, one attempt per commit hands the batches to a service worker that
      // queues them (it fails here with NETWORK); either way coming online pushes again.
      this.recheckWhileOffline();
      if (this.options.backgroundPush) await this.engine.push().catch(() => {});
      return null;
    }
    try {
      await this.engine.push();
      this.pushFailures = 0;
      return null;
    } catch (e) {
      if (this.stopped) return null;
      if (!this.net.online()) {
        this.recheckWhileOffline();
        return null;
      }
      // A refused change waits for the app (the status names it); the next commit pushes the rest.
      if (!isTransient(e) && !(e instanceof SyncError && e.code === 'AUTH')) return null;
      this.pushFailures++;
      return backoffMs(this.pushFailures, e);
    }
  }
}
