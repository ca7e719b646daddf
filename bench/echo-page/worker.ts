/**
 * The echo page's worker (bench/echo.ts): answers each message by the transport the page chose
 * in its first message (`mode`). See main.ts for what each variant measures.
 */
import * as Comlink from 'comlink';

type Mode = 'sync' | 'microtask' | 'port' | 'transfer' | 'comlink' | 'atomics' | 'spin' | 'awake' | 'post-atomics' | 'async-atomics' | 'sab-json' | 'window';

/** The dedicated worker's scope (this file is typed with the DOM's `self`). */
const scope = self as unknown as {
  postMessage(m: unknown, t?: Transferable[]): void;
  onmessage: ((e: MessageEvent) => void) | null;
} & Comlink.Endpoint;

interface Setup {
  mode: Mode;
  port?: MessagePort;
  sab?: SharedArrayBuffer;
}

const echoOn = (target: { postMessage(m: unknown, t?: Transferable[]): void }, data: unknown): void => {
  if (data instanceof ArrayBuffer) target.postMessage(data, [data]);
  else target.postMessage(data);
};

/** Milliseconds the 'window' worker blocks in Atomics.wait for its page's next call. */
const WINDOW_MS = 1;

/** Milliseconds a spin waits for the next call before the thread sleeps (Atomics.wait) or returns to its event loop. */
const SPIN_IDLE_MS = 0.5;

/**
 * Answers the call in `bytes` (its JSON's length in cells[2]) with a `SELECT 1` result as JSON,
 * then publishes it: cells[3] opens the window first when `reopen` (else the page would find it
 * closed), cells[1] the call's number.
 */
function answerJson(cells: Int32Array, bytes: Uint8Array, call: [number, ...unknown[]], reopen: boolean): void {
  const answer = encoder.encode(JSON.stringify([call[0], true, { columns: ['1'], rowCount: 1, values: [1] }, false]));
  bytes.set(answer);
  Atomics.store(cells, 2, answer.length);
  if (reopen) Atomics.store(cells, 3, 1);
  Atomics.store(cells, 1, call[0]);
  Atomics.notify(cells, 1);
}

/** The call written in `bytes` (TextDecoder does not read shared memory: a copy first). */
function readCall(cells: Int32Array, bytes: Uint8Array): [number, ...unknown[]] {
  return JSON.parse(decoder.decode(bytes.slice(0, Atomics.load(cells, 2)))) as [number, ...unknown[]];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

scope.onmessage = (first: MessageEvent<Setup>) => {
  const { mode, port, sab } = first.data;
  if (mode === 'comlink') {
    Comlink.expose({ echo: (x: unknown) => x }, port ?? scope);
    scope.postMessage('ready');
    return;
  }
  if (mode === 'atomics' || mode === 'spin') {
    // [0] calls sent by the page, [1] calls answered. Answers by the counter only.
    const cells = new Int32Array(sab!);
    scope.postMessage('ready');
    let seen = 0;
    for (;;) {
      if (mode === 'spin') {
        const t0 = performance.now();
        while (Atomics.load(cells, 0) === seen && performance.now() - t0 < SPIN_IDLE_MS);
      }
      Atomics.wait(cells, 0, seen);
      seen = Atomics.load(cells, 0);
      if (seen < 0) return;
      Atomics.store(cells, 1, seen);
      Atomics.notify(cells, 1);
    }
  }
  if (mode === 'awake') {
    // Echoes by postMessage, then, in a task of its own (a message sent to itself: the answer
    // leaves only when the task that posted it ends), keeps its thread running with a bounded
    // spin on the "a message comes" cell the page sets before posting, so the page's message
    // finds a running thread instead of a halted CPU.
    const cells = new Int32Array(sab!);
    const self2 = new MessageChannel();
    self2.port1.onmessage = () => {
      const seen = Atomics.load(cells, 1);
      const t0 = performance.now();
      while (Atomics.load(cells, 0) === seen && performance.now() - t0 < SPIN_IDLE_MS);
    };
    scope.onmessage = (e: MessageEvent) => {
      echoOn(scope, e.data);
      Atomics.store(cells, 1, Atomics.load(cells, 0));
      self2.port2.postMessage(0);
    };
    scope.postMessage('ready');
    return;
  }
  if (mode === 'async-atomics') {
    // As 'atomics', the worker waiting in Atomics.waitAsync (its event loop stays free).
    const cells = new Int32Array(sab!);
    scope.postMessage('ready');
    waitAsyncLoop(cells, (seen) => {
      Atomics.store(cells, 1, seen);
      Atomics.notify(cells, 1);
    });
    return;
  }
  if (mode === 'sab-json') {
    // As 'async-atomics', carrying the call and its answer as JSON in the buffer from byte 16.
    const cells = new Int32Array(sab!);
    const bytes = new Uint8Array(sab!, 16);
    scope.postMessage('ready');
    waitAsyncLoop(cells, () => answerJson(cells, bytes, readCall(cells, bytes), false));
    return;
  }
  if (mode === 'window') {
    // As 'sab-json', but the worker blocks in Atomics.wait for at most WINDOW_MS after each
    // answer ([3]: 1 while it waits there, 2 once the page claimed the wait for a call), and
    // otherwise waits in its event loop, where the page's call comes by postMessage.
    const cells = new Int32Array(sab!);
    const bytes = new Uint8Array(sab!, 16);
    let seen = 0;
    const waitWindow = (): void => {
      for (;;) {
        if (Atomics.wait(cells, 0, seen, WINDOW_MS) === 'timed-out' && Atomics.compareExchange(cells, 3, 1, 0) === 1) return;
        // Claimed: the call is written, or about to be.
        while (Atomics.load(cells, 0) === seen) Atomics.wait(cells, 0, seen);
        seen = Atomics.load(cells, 0);
        if (seen < 0) return;
        answerJson(cells, bytes, readCall(cells, bytes), true);
      }
    };
    scope.onmessage = (e: MessageEvent) => {
      const call = e.data as [number, ...unknown[]];
      seen = call[0];
      answerJson(cells, bytes, call, true);
      waitWindow();
    };
    scope.postMessage('ready');
    return;
  }
  if (mode === 'post-atomics') {
    // Calls by postMessage, answers by the counter [1] alone (the page waits in waitAsync).
    const cells = new Int32Array(sab!);
    scope.onmessage = (e: MessageEvent) => {
      Atomics.store(cells, 1, (e.data as [number])[0]);
      Atomics.notify(cells, 1);
    };
    scope.postMessage('ready');
    return;
  }
  const target = port ?? scope;
  const answer = mode === 'microtask'
    ? (e: MessageEvent) => void Promise.resolve().then(() => echoOn(target, e.data))
    : (e: MessageEvent) => echoOn(target, e.data);
  if (port) port.onmessage = answer;
  else scope.onmessage = answer;
  scope.postMessage('ready');
};

/** Waits in `Atomics.waitAsync` (the event loop stays free) for each new call counted in cell 0, until it goes negative. */
function waitAsyncLoop(cells: Int32Array, onCall: (seen: number) => void): void {
  void (async () => {
    let seen = 0;
    for (;;) {
      const w = Atomics.waitAsync(cells, 0, seen);
      if (w.async) await w.value;
      seen = Atomics.load(cells, 0);
      if (seen < 0) return;
      onCall(seen);
    }
  })();
}
