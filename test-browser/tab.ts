/**
 * A "tab" for the multi-tab tests: a dedicated worker (tabs.worker.ts) that opens a database
 * with the public `open()`, as a tab would. `worker.terminate()` is the tab crashing.
 */
import type { TabCommand } from './tabs.worker.js';

export class Tab {
  readonly worker = new Worker(new URL('./tabs.worker.ts', import.meta.url), { type: 'module' });
  private nextId = 1;
  private readonly events: Record<string, unknown>[] = [];
  private readonly waiters: { match: (e: Record<string, unknown>) => boolean; resolve: (e: Record<string, unknown>) => void }[] = [];

  constructor() {
    this.worker.addEventListener('message', (event: MessageEvent<Record<string, unknown>>) => {
      if (!('event' in event.data)) return;
      this.events.push(event.data);
      for (const w of [...this.waiters]) {
        if (w.match(event.data)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(event.data);
        }
      }
    });
  }

  call<T = unknown>(command: TabCommand): Promise<T> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const onMessage = (event: MessageEvent<{ id?: number; ok: boolean; value: T; error: { message: string; code?: string } }>): void => {
        if (event.data.id !== id) return;
        this.worker.removeEventListener('message', onMessage);
        if (event.data.ok) resolve(event.data.value);
        else reject(Object.assign(new Error(event.data.error.message), { code: event.data.error.code }));
      };
      this.worker.addEventListener('message', onMessage);
      this.worker.postMessage({ id, command });
    });
  }

  /** The first event (seen already or to come) that `match` accepts. */
  event(match: (e: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ match, resolve }));
  }
}

