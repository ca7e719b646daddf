/**
 * The page's private line to its own database worker, over the worker's own message channel
 * (`worker.postMessage` and the worker's `self.postMessage`) instead of a `MessageChannel`
 * (issue 15). In Chromium a message to a dedicated worker's own channel is posted straight to
 * the other thread, while a `MessagePort` message takes the port machinery between them:
 * measured with an echoing worker at load 20, a round trip over a port took about 20 us more
 * than over the worker (slower in 11 of 15 interleaved pairs), a tenth of a `SELECT 1`.
 *
 * The line looks like the `MessagePort` it replaces (`LinkPort`), so call-port.ts and the
 * seat's protocol (tabs.ts, seat.ts) are unchanged. Comlink (the control plane) shares the
 * channel: a line message is a one-element array `[message]`, which Comlink's page end ignores
 * (it answers only its own ids) and which the worker's end takes out of the channel before
 * Comlink sees it (`acceptLink` must run before `Comlink.expose`). A message that arrives
 * before its receiver set `onmessage` waits for it, as on a port.
 */

/** What call-port.ts, tabs.ts and seat.ts use of a MessagePort. */
export interface LinkPort {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  onmessage: ((event: MessageEvent) => void) | null;
  close(): void;
}

/** A line message: one element, the message itself (Comlink's messages are objects). */
type Wrapped = [message: unknown];

function isWrapped(data: unknown): data is Wrapped {
  return Array.isArray(data) && data.length === 1;
}

/** One end of the line: `send` posts a wrapped message; `deliver` hands an arrived one on. */
class LinkEnd implements LinkPort {
  private receiver: ((event: MessageEvent) => void) | null = null;
  private waiting: MessageEvent[] = [];
  private closed = false;

  constructor(private readonly send: (wrapped: Wrapped, transfer: Transferable[]) => void) {}

  get onmessage(): ((event: MessageEvent) => void) | null {
    return this.receiver;
  }

  set onmessage(receiver: ((event: MessageEvent) => void) | null) {
    this.receiver = receiver;
    if (!receiver || this.waiting.length === 0) return;
    const waiting = this.waiting;
    this.waiting = [];
    for (const event of waiting) receiver(event);
  }

  postMessage(message: unknown, transfer: Transferable[] = []): void {
    if (!this.closed) this.send([message], transfer);
  }

  deliver(event: MessageEvent): void {
    if (this.closed) return;
    if (this.receiver) this.receiver(event);
    else this.waiting.push(event);
  }

  close(): void {
    this.closed = true;
    this.receiver = null;
    this.waiting = [];
  }
}

/** An event carrying the unwrapped message (its receivers read `data` only). */
function unwrapped(event: MessageEvent<Wrapped>): MessageEvent {
  return { data: event.data[0] } as MessageEvent;
}

/** The page's end of the line to `worker`. */
export function linkToWorker(worker: Worker): LinkPort {
  const end = new LinkEnd((wrapped, transfer) => worker.postMessage(wrapped, transfer));
  worker.addEventListener('message', (event: MessageEvent) => {
    if (isWrapped(event.data)) end.deliver(unwrapped(event as MessageEvent<Wrapped>));
  });
  return end;
}

/** The minimal view of a dedicated worker's global scope the worker's end needs. */
export interface WorkerScope {
  postMessage(message: unknown, transfer: Transferable[]): void;
  addEventListener(type: 'message', listener: (event: MessageEvent) => void): void;
}

/**
 * The worker's end of the line, on its own global `scope`. Line messages stop here: listeners
 * added after this one (Comlink's) never see them.
 */
export function acceptLink(scope: WorkerScope): LinkPort {
  const end = new LinkEnd((wrapped, transfer) => scope.postMessage(wrapped, transfer));
  scope.addEventListener('message', (event: MessageEvent) => {
    if (!isWrapped(event.data)) return;
    event.stopImmediatePropagation();
    end.deliver(unwrapped(event as MessageEvent<Wrapped>));
  });
  return end;
}
