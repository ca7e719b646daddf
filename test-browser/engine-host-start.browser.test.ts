/**
 * An engine that steps down while it is still starting (a page frozen between its election
 * and the end of EngineHost.start: seat.ts) must finish its start quietly: no throw (the seat
 * would report its page's database failed for good), no registration with the broker and no
 * heartbeat for an engine that is gone. Found by tabs-handover.browser.test.ts in CI (seed
 * 818160); here the window is held open on purpose.
 */
import { expect, test } from 'vitest';
import type { Driver } from '../src/driver.js';
import { EngineHost } from '../src/worker/engine-host.js';
import { rng, testSeed } from '../test/support/generate.js';

test('an engine closed while it starts neither throws nor registers nor beats (generated)', async () => {
  const seed = testSeed();
  console.log(`engine-host start seed ${seed}`);
  const random = rng(seed);
  for (let i = 0; i < 8; i++) {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    // Which of start's two awaits the close lands in.
    const waitsIn = random() < 0.5 ? 'tables' : 'progress';
    const driver = {
      onTablesChanged: async () => {
        if (waitsIn === 'tables') await gate;
      },
      onSyncProgress: async () => {
        if (waitsIn === 'progress') await gate;
      },
      close: async () => {},
    } as unknown as Driver;
    const registered: string[] = [];
    const host = new EngineHost(`host-start-${seed}-${i}`, `engine-${i}`, driver, () => false, () => {}, () => {}, null, {
      brokerId: () => 'broker',
      register: (id) => registered.push(id),
      retire: () => {},
    });
    const started = host.start([]);
    await host.close();
    open();
    await expect(started, `seed ${seed} case ${i} (${waitsIn})`).resolves.toBeUndefined();
    expect(registered, `seed ${seed} case ${i} (${waitsIn})`).toEqual([]);
  }
});
