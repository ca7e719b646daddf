/** The page's line to its own worker (worker/worker-link.ts), both ends over a fake channel. */
import { expect, test } from 'vitest';
import { type LinkPort, type WorkerScope, acceptLink, linkToWorker } from '../src/worker/worker-link.js';
import { int, rng, sqlValue, testSeed } from './support/generate.js';

/** Two EventTargets standing for a dedicated worker and its global scope, delivering in order. */
function channel(): { worker: Worker; scope: WorkerScope & EventTarget } {
  const page = new EventTarget();
  const inside = new EventTarget();
  // Delivered later, as postMessage does, and in the order posted.
  const deliver = (target: EventTarget, data: unknown): void => void queueMicrotask(() => target.dispatchEvent(new MessageEvent('message', { data: structuredClone(data) })));
  const worker = Object.assign(page, { postMessage: (m: unknown) => deliver(inside, m) }) as unknown as Worker;
  const scope = Object.assign(inside, { postMessage: (m: unknown) => deliver(page, m) }) as WorkerScope & EventTarget;
  return { worker, scope };
}

const flush = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

test('line messages arrive in order at their end, wait for a late receiver, and never reach the control plane (generated)', async () => {
  const seed = testSeed();
  console.log(`worker-link seed ${seed} (OUTPOST_SEED=${seed} replays)`);
  const random = rng(seed);
  for (let round = 0; round < 30; round++) {
    const { worker, scope } = channel();
    const pageEnd: LinkPort = linkToWorker(worker);
    const workerEnd: LinkPort = acceptLink(scope);
    // Comlink's listeners, added after the line's: they must see only Comlink's own messages.
    const control: unknown[] = [];
    scope.addEventListener('message', (e) => control.push((e as MessageEvent).data));
    const toWorker: unknown[] = [];
    const toPage: unknown[] = [];
    const gotInWorker: unknown[] = [];
    const gotInPage: unknown[] = [];
    const lateAt = int(random, 0, 10);
    for (let i = 0; i < 20; i++) {
      // The worker's receiver is set only after some messages have arrived (a seat made late).
      if (i === lateAt) {
        await flush();
        workerEnd.onmessage = (e) => gotInWorker.push(e.data);
        pageEnd.onmessage = (e) => gotInPage.push(e.data);
      }
      const message = random() < 0.5 ? [i, 'query', [sqlValue(random)]] : { type: 'call', callId: i, args: [sqlValue(random)] };
      if (random() < 0.2) worker.postMessage({ id: `comlink-${i}`, type: 'GET', path: [] });
      if (random() < 0.5) {
        pageEnd.postMessage(message);
        toWorker.push(message);
      } else {
        workerEnd.postMessage(message);
        toPage.push(message);
      }
    }
    await flush();
    expect(gotInWorker).toEqual(toWorker);
    expect(gotInPage).toEqual(toPage);
    expect(control.every((m) => !Array.isArray(m) && typeof (m as { id?: unknown }).id === 'string')).toBe(true);
  }
});

test('a closed end neither sends nor delivers', async () => {
  const { worker, scope } = channel();
  const pageEnd = linkToWorker(worker);
  const workerEnd = acceptLink(scope);
  const got: unknown[] = [];
  workerEnd.onmessage = (e) => got.push(e.data);
  pageEnd.postMessage('before');
  await flush();
  workerEnd.close();
  pageEnd.postMessage('after');
  pageEnd.close();
  pageEnd.postMessage('never sent');
  await flush();
  expect(got).toEqual(['before']);
});
