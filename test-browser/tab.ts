/**
 * A "tab" for the multi-tab tests, opening a database with the public `open()` as a tab would,
 * and running the commands of tabs.worker.ts. Two kinds:
 * - `worker`: a dedicated worker. It has no `SharedWorker`, so its database reaches the engine
 *   over BroadcastChannel (the fallback path).
 * - `frame`: an iframe of the test page, a window with `SharedWorker`, so its database uses the
 *   broker (worker/broker.ts); `{ sharedWorker: false }` hides it, forcing the fallback.
 * `terminate()` is the tab crashing: the worker is terminated, or the frame removed, and the
 * database worker it started dies with it.
 */
import type { TabCommand } from './tabs.worker.js';

export type TabKind = 'worker' | 'frame';

type Message = Record<string, unknown> & { id?: number; ok?: boolean; value?: unknown; error?: { message: string; code?: string } };

export class Tab {
  private readonly worker: Worker | null = null;
  private readonly frame: HTMLIFrameElement | null = null;
  private readonly loaded: Promise<void>;
  private nextId = 1;
  private readonly events: Record<string, unknown>[] = [];
  private readonly waiters: { match: (e: Record<string, unknown>) => boolean; resolve: (e: Record<string, unknown>) => void }[] = [];
  private readonly answers = new Map<number, (m: Message) => void>();

  constructor(kind: TabKind = 'worker', options: { sharedWorker?: boolean } = {}) {
    let loaded: () => void = () => {};
    this.loaded = new Promise((resolve) => (loaded = resolve));
    const receive = (data: Message): void => {
      if (data.event === 'loaded') {
        loaded();
        return;
      }
      if (typeof data.id === 'number') {
        this.answers.get(data.id)?.(data);
        this.answers.delete(data.id);
        return;
      }
      if (!('event' in data)) return;
      this.events.push(data);
      for (const w of [...this.waiters]) {
        if (w.match(data)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(data);
        }
      }
    };
    if (kind === 'worker') {
      this.worker = new Worker(new URL('./tabs.worker.ts', import.meta.url), { type: 'module' });
      this.worker.addEventListener('message', (event: MessageEvent<Message>) => receive(event.data));
      loaded();
      return;
    }
    const frame = document.createElement('iframe');
    frame.src = new URL(`./tab.html?sharedWorker=${options.sharedWorker === false ? 0 : 1}`, import.meta.url).href;
    window.addEventListener('message', (event: MessageEvent<Message>) => {
      if (event.source === frame.contentWindow) receive(event.data);
    });
    document.body.append(frame);
    this.frame = frame;
  }

  async call<T = unknown>(command: TabCommand): Promise<T> {
    await this.loaded;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.answers.set(id, (data) => {
        if (data.ok) resolve(data.value as T);
        else reject(Object.assign(new Error(data.error?.message), { code: data.error?.code }));
      });
      if (this.worker) this.worker.postMessage({ id, command });
      else this.frame?.contentWindow?.postMessage({ id, command }, '*');
    });
  }

  /** The tab crashes: nothing of it runs any more, its database worker included. */
  terminate(): void {
    this.worker?.terminate();
    this.frame?.remove();
  }

  /** The first event (seen already or to come) that `match` accepts. */
  event(match: (e: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }
}
