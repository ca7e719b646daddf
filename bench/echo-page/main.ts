/**
 * The echo floor probe's page (`bench/echo.ts` drives it): the round trip of a message from this
 * page to a dedicated worker and back, by each transport a `SELECT 1` could take, each as the
 * median of C round trips after 50 warm-up ones, in a fresh worker:
 * - `reassign`: the hot page's echo (an array, `onmessage` set per call);
 * - `map`: one listener, the answer resolved through a map of pending calls (as call-port.ts);
 * - `object`: as `map` with an object of nine keys instead of the array;
 * - `microtask`: as `map`, the worker answering after a microtask instead of in `onmessage`;
 * - `port`: as `map` over a `MessageChannel` port pair;
 * - `transfer`: as `map`, a 64-byte ArrayBuffer transferred each way instead of a clone;
 * - `comlink`: Comlink's `wrap`/`expose` path;
 * - `atomics`: no message: a SharedArrayBuffer counter, the worker asleep in `Atomics.wait`, the
 *   page in `Atomics.waitAsync`;
 * - `async-atomics`: as `atomics`, the worker waiting in `Atomics.waitAsync` (its event loop free);
 * - `sab-json`: as `async-atomics`, the call and a `SELECT 1` answer carried as JSON in the buffer;
 * - `window`: as `sab-json`, but the worker blocks in `Atomics.wait` for at most 1 ms after each
 *   answer and takes the page's next call there, else from its event loop by postMessage;
 * - `spin`: as `atomics`, both threads spinning on the counter instead of sleeping (at most 0.5 ms);
 * - `post-atomics`: the call by postMessage (an array), the answer by the counter alone;
 * - `awake`: as `map`, but the worker keeps its thread running between messages (a spin of at
 *   most 0.5 ms on a cell the page sets before each post);
 * - `awake-page`: as `awake`, and the page too spins (synchronously, at most 0.5 ms) until the
 *   worker's "answered" cell moves before it returns to its event loop for the answer.
 */
type Variant = 'reassign' | 'map' | 'object' | 'microtask' | 'port' | 'transfer' | 'comlink' | 'atomics' | 'async-atomics' | 'sab-json' | 'window' | 'spin' | 'post-atomics' | 'awake' | 'awake-page';
const VARIANTS: Variant[] = ['reassign', 'map', 'object', 'microtask', 'port', 'transfer', 'comlink', 'atomics', 'async-atomics', 'sab-json', 'window', 'spin', 'post-atomics', 'awake', 'awake-page'];
import * as Comlink from 'comlink';

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const SPIN_MS = 0.5;

async function timed(calls: number, once: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 50; i++) await once();
  const lat: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    await once();
    lat.push(performance.now() - t0);
  }
  return median(lat);
}

async function run(variant: Variant, calls: number): Promise<number> {
  const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
  const ready = (): Promise<void> => new Promise((resolve) => {
    worker.onmessage = () => resolve();
  });
  try {
    const mode =
      variant === 'reassign' || variant === 'map' || variant === 'object' ? 'sync' : variant === 'awake-page' ? 'awake' : variant;
    const sab = typeof SharedArrayBuffer === 'function' ? new SharedArrayBuffer(4096) : undefined;
    const cells = sab ? new Int32Array(sab) : undefined;
    let port: MessagePort | undefined;
    let r = ready();
    if (variant === 'port') {
      const channel = new MessageChannel();
      port = channel.port1;
      worker.postMessage({ mode, port: channel.port2 }, [channel.port2]);
    } else worker.postMessage({ mode, sab });
    await r;
    if (variant === 'reassign') {
      return await timed(calls, () => new Promise((resolve) => {
        worker.onmessage = (e) => resolve(e.data);
        worker.postMessage([1, 'query', ['SELECT 1', undefined]]);
      }));
    }
    if (variant === 'comlink') {
      const remote = Comlink.wrap<{ echo(x: unknown): unknown }>(worker);
      return await timed(calls, () => remote.echo([1, 'query', ['SELECT 1', undefined]]));
    }
    if (variant === 'post-atomics' || variant === 'sab-json' || variant === 'window' || variant === 'atomics' || variant === 'async-atomics' || variant === 'spin') {
      // Cells: [0] calls sent, [1] calls answered, [2] the JSON's length from byte 16, [3] the window.
      const c = cells!;
      const bytes = new Uint8Array(sab!, 16);
      const encoder = new TextEncoder();
      const decoder = new TextDecoder();
      const writeCall = (call: unknown[]): void => {
        const encoded = encoder.encode(JSON.stringify(call));
        bytes.set(encoded);
        Atomics.store(c, 2, encoded.length);
      };
      let sent = 0;
      try {
        return await timed(calls, async () => {
          sent++;
          const call = [sent, 'query', ['SELECT 1', null, 1, null]];
          const carried = variant === 'sab-json' || (variant === 'window' && Atomics.compareExchange(c, 3, 1, 2) === 1);
          if (variant === 'post-atomics' || (variant === 'window' && !carried)) worker.postMessage(call);
          else {
            if (carried) writeCall(call);
            Atomics.store(c, 0, sent);
            Atomics.notify(c, 0);
          }
          if (variant === 'spin') {
            const t0 = performance.now();
            while (Atomics.load(c, 1) !== sent && performance.now() - t0 < SPIN_MS);
          }
          while (Atomics.load(c, 1) !== sent) {
            const w = Atomics.waitAsync(c, 1, Atomics.load(c, 1));
            if (w.async) await w.value;
          }
          // TextDecoder does not read shared memory: a copy first.
          return variant === 'sab-json' || variant === 'window' ? (JSON.parse(decoder.decode(bytes.slice(0, Atomics.load(c, 2)))) as unknown) : undefined;
        });
      } finally {
        Atomics.store(c, 0, -1);
        Atomics.notify(c, 0);
      }
    }
    // The map of pending calls, one listener (as call-port.ts).
    const pending = new Map<number, (v: unknown) => void>();
    const target = port ?? worker;
    const onAnswer = (e: MessageEvent): void => {
      const d = e.data as unknown;
      const id = d instanceof ArrayBuffer ? new Int32Array(d)[0]! : Array.isArray(d) ? (d[0] as number) : (d as { id: number }).id;
      const settle = pending.get(id);
      pending.delete(id);
      settle?.(d);
    };
    if (port) port.onmessage = onAnswer;
    else worker.onmessage = onAnswer;
    let next = 0;
    return await timed(calls, () => new Promise((resolve) => {
      const id = ++next;
      pending.set(id, resolve);
      if (variant === 'object') {
        target.postMessage({ id, method: 'query', sql: 'SELECT 1', params: undefined, engine: 'e1', client: 'c1', sentAt: 0, timeoutMs: 5000, oldest: id });
      } else if (variant === 'transfer') {
        const b = new ArrayBuffer(64);
        new Int32Array(b)[0] = id;
        target.postMessage(b, [b]);
      } else {
        if (variant === 'awake' || variant === 'awake-page') Atomics.store(cells!, 0, id);
        target.postMessage([id, 'query', ['SELECT 1', undefined]]);
        if (variant === 'awake-page') {
          const t0 = performance.now();
          while (Atomics.load(cells!, 1) !== id && performance.now() - t0 < SPIN_MS);
        }
      }
    }));
  } finally {
    worker.terminate();
  }
}

/** Every variant once, in the given order; median ms each. */
async function all(calls: number, order: Variant[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of order) out[v] = await run(v, calls);
  return out;
}

declare global {
  interface Window {
    echo: { all: typeof all; variants: Variant[]; isolated: boolean };
  }
}
window.echo = { all, variants: VARIANTS, isolated: crossOriginIsolated };
document.getElementById('status')!.textContent = 'ready';
