/**
 * The background-push queue's rules, over any store of requests with metadata (Workbox's
 * `Queue` in a service worker, an array in tests). No service-worker globals here.
 *
 * Keep: a failed request that is a replayable push batch (protocol/turso-tables.ts
 * `replayablePush`) is stored without its Authorization header. A push offers every pending
 * change as batches in order (sync/push.ts `offerForBackgroundPush`); the first batch of an
 * offer (`afterId` 0) replaces every stored batch of its client and database, since it starts at
 * the first pending change; a later batch replaces the stored ones from its first change on.
 * So the store holds, per client and database, the newest offer's batches, in order.
 *
 * Replay: sends the stored batches oldest first, each with the token `token(url)` gives. A
 * network failure, 429 or 5xx puts the batch back and throws (the browser retries the sync
 * event later), so nothing after it is sent out of turn. A 401 or 403 puts it back and stops
 * (a token may be stored later). Any other answer ends its life: applied, already applied or
 * waiting for a batch before it that is gone (its gates, applied nothing), or refused; the
 * tab's next push finds out what the server has and sends the rest.
 *
 * Keeps and replays run one at a time, so a replay never sends a batch a keep is replacing.
 */
import { type ReplayablePush, replayablePush } from '../protocol/turso-tables.js';

/** A stored request and what the queue knows of it. */
export interface StoredPush {
  request: Request;
  metadata?: object;
}

/** The store the queue keeps batches in: Workbox's `Queue` has this shape. */
export interface PushStore {
  pushRequest(entry: StoredPush): Promise<void>;
  unshiftRequest(entry: StoredPush): Promise<void>;
  shiftRequest(): Promise<StoredPush | undefined>;
}

/** Metadata kept with a stored batch. */
interface BatchMetadata extends ReplayablePush {
  url: string;
}

export interface PushQueueOptions {
  /** The token to send with a replayed request to `url`; none when it resolves to nothing. */
  token: (url: string) => Promise<string | null | undefined>;
  /** The fetch to replay with. */
  fetch?: typeof fetch;
}

export class PushQueue {
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: PushStore,
    private readonly options: PushQueueOptions,
  ) {}

  /** Stores `request` when it is a replayable push batch; true when it did. */
  keep(request: Request): Promise<boolean> {
    return this.serially(() => this.keepNow(request));
  }

  /** Sends the stored batches (see the header). */
  replay(): Promise<void> {
    return this.serially(() => this.replayNow());
  }

  private serially<T>(job: () => Promise<T>): Promise<T> {
    const run = this.chain.catch(() => undefined).then(job);
    this.chain = run;
    return run;
  }

  private async keepNow(request: Request): Promise<boolean> {
    const body = await request.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return false;
    }
    const push = replayablePush(parsed);
    if (!push) return false;
    const metadata: BatchMetadata = { url: request.url, ...push };
    const entries: StoredPush[] = [];
    for (let entry = await this.store.shiftRequest(); entry; entry = await this.store.shiftRequest()) entries.push(entry);
    for (const entry of entries) if (!replacedBy(entry.metadata as BatchMetadata | undefined, metadata)) await this.store.pushRequest(entry);
    const headers = new Headers(request.headers);
    // Never stored: the replay asks for the token the page chose to store, if any.
    headers.delete('authorization');
    await this.store.pushRequest({ request: new Request(request.url, { method: 'POST', headers, body }), metadata: { ...metadata } });
    return true;
  }

  private async replayNow(): Promise<void> {
    for (let entry = await this.store.shiftRequest(); entry; entry = await this.store.shiftRequest()) {
      const token = await this.options.token(entry.request.url).catch(() => undefined);
      const headers = new Headers(entry.request.headers);
      if (token) headers.set('authorization', `Bearer ${token}`);
      let response: Response;
      try {
        response = await (this.options.fetch ?? fetch)(new Request(entry.request.clone(), { headers }));
      } catch (error) {
        await this.store.unshiftRequest(entry);
        throw error;
      }
      if (response.status === 429 || response.status >= 500) {
        await this.store.unshiftRequest(entry);
        throw new Error(`the sync server answered ${response.status}; the push stays queued`);
      }
      if (response.status === 401 || response.status === 403) {
        await this.store.unshiftRequest(entry);
        return;
      }
      // The answer says nothing the tab's next push would not find out; the body is not needed.
      await response.body?.cancel().catch(() => undefined);
    }
  }
}

/** Whether the stored batch `old` is made obsolete by the new batch `next` (see the header). */
function replacedBy(old: BatchMetadata | undefined, next: BatchMetadata): boolean {
  if (!old || old.url !== next.url || old.clientId !== next.clientId) return false;
  return next.afterId === 0 || old.firstId >= next.firstId;
}
