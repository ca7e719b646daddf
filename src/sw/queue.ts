/**
 * The background-push queue's rules, over any store of requests with metadata (Workbox's
 * `QueueStore` in a service worker, an array in tests). No service-worker globals here.
 *
 * Keep: a failed request that is a replayable push batch (protocol/turso-tables.ts
 * `replayablePush`) is stored without its Authorization header, in ONE write that adds it.
 * Nothing is emptied and refilled, so a kill at any point leaves either the queue before the
 * keep or the queue after it. A batch supersedes the stored batches of its client and
 * database whose changes overlap its own, and, when it starts an offer (`afterId` 0, from the
 * first pending change), those wholly before it too (the server has them, or the tab dropped
 * them). Which stored batches are live is worked out from the whole queue in stored order
 * (`liveBatches`): removing a superseded one is tidying only, done after the new batch is
 * stored, so it can be cut short by a kill and lose nothing. The engine offers only the batches
 * it has not offered yet in this session (sync/push.ts `offerForBackgroundPush`), so a commit
 * stores only its own batches.
 *
 * Replay: sends the live batches oldest first, each with the token `token(url)` gives, and
 * removes a batch only once the server has answered it (a kill mid-replay sends it again
 * later, which its gates make harmless). A network failure, 429 or 5xx leaves the batch and
 * every one after it and throws (the browser retries the sync event later), so nothing after
 * it is sent out of turn. A 401 or 403 leaves it and stops (a token may be stored later). Any
 * other answer ends its life: applied, already applied or waiting for a batch before it that
 * is gone (its gates applied nothing), or refused; the tab's next push finds out what the
 * server has and sends the rest.
 *
 * Keeps and replays run one at a time, so a replay never sends a batch a keep is replacing.
 */
import { type ReplayablePush, replayablePush } from '../protocol/turso-tables.js';

/** A stored request, its store id (stored order) and what the queue knows of it. */
export interface StoredPush {
  id: number;
  request: Request;
  metadata?: object;
}

/** The store the queue keeps batches in; each call is one atomic write or read. */
export interface PushStore {
  /** Appends an entry after every stored one. */
  add(entry: { request: Request; metadata: object }): Promise<void>;
  /** Every stored entry, in stored order. */
  all(): Promise<StoredPush[]>;
  /** Removes one entry; an id already gone is no error. */
  remove(id: number): Promise<void>;
}

/** Metadata kept with a stored batch. */
export interface BatchMetadata extends ReplayablePush {
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
    const headers = new Headers(request.headers);
    // Never stored: the replay asks for the token the page chose to store, if any.
    headers.delete('authorization');
    await this.store.add({ request: new Request(request.url, { method: 'POST', headers, body }), metadata: { ...metadata } });
    // Only a batch that starts an offer (once per session or after the network came back, see
    // the header) reads the queue to tidy it, so a commit's keep stays one write.
    if (metadata.afterId === 0) await this.removeSuperseded(await this.store.all());
    return true;
  }

  private async replayNow(): Promise<void> {
    const live = await this.removeSuperseded(await this.store.all());
    for (const entry of live) {
      const token = await this.options.token(entry.request.url).catch(() => undefined);
      const headers = new Headers(entry.request.headers);
      if (token) headers.set('authorization', `Bearer ${token}`);
      const response = await (this.options.fetch ?? fetch)(new Request(entry.request.clone(), { headers }));
      if (response.status === 429 || response.status >= 500) {
        await response.body?.cancel().catch(() => undefined);
        throw new Error(`the sync server answered ${response.status}; the push stays queued`);
      }
      if (response.status === 401 || response.status === 403) return;
      // The answer says nothing the tab's next push would not find out; the body is not needed.
      await response.body?.cancel().catch(() => undefined);
      await this.store.remove(entry.id);
    }
  }

  /** Removes the entries no replay would send; the live ones, in order. */
  private async removeSuperseded(entries: StoredPush[]): Promise<StoredPush[]> {
    const live = liveBatches(entries);
    const kept = new Set(live.map((e) => e.id));
    for (const entry of entries) if (!kept.has(entry.id)) await this.store.remove(entry.id);
    return live;
  }
}

/**
 * The stored entries a replay sends, in stored order: each entry drops the earlier ones it
 * supersedes (`supersedes`). An entry whose metadata this version cannot read is sent in its
 * turn and supersedes nothing.
 */
export function liveBatches<E extends Pick<StoredPush, 'metadata'>>(entries: readonly E[]): E[] {
  const live: E[] = [];
  for (const entry of entries) {
    const next = batchMetadata(entry.metadata);
    const kept = next ? live.filter((old) => !supersedes(next, batchMetadata(old.metadata))) : live;
    kept.push(entry);
    live.splice(0, live.length, ...kept);
  }
  return live;
}

/** Whether the newer batch `next` makes the stored batch `old` obsolete (see the header). */
function supersedes(next: BatchMetadata, old: BatchMetadata | null): boolean {
  if (!old || old.url !== next.url || old.clientId !== next.clientId) return false;
  const overlaps = old.firstId <= next.lastId && old.lastId >= next.firstId;
  return overlaps || (next.afterId === 0 && old.lastId < next.firstId);
}

function batchMetadata(metadata: object | undefined): BatchMetadata | null {
  const m = metadata as Partial<BatchMetadata> | undefined;
  const ids = [m?.firstId, m?.lastId, m?.afterId];
  if (typeof m?.url !== 'string' || typeof m.clientId !== 'string' || !ids.every((id) => typeof id === 'number' && Number.isSafeInteger(id))) return null;
  // Checked field by field just above.
  return m as BatchMetadata;
}
