/// <reference types="vitest/config" />
/**
 * One Vite config for the playground (`demo/`), the benchmark page (`bench/`) and the tests.
 * Vitest runs three projects: `node` (test/**, in Node), `browser` (test-browser/**, in
 * headless Chromium through Playwright) and `e2e` (e2e/**: the built demo and benchmark pages
 * driven through Playwright from Node). `npm test` runs all three.
 */
import { defineConfig } from 'vite';
import { playwright } from '@vitest/browser-playwright';
import { chromiumPath } from './scripts/chromium.js';

// Vitest 5 prints failures with Map.groupBy, which Node 20 lacks (it arrived in Node 21): without
// this, a failing test crashes the reporter instead of printing why it failed.
if (typeof (Map as { groupBy?: unknown }).groupBy !== 'function') {
  Object.defineProperty(Map, 'groupBy', {
    value<K, V>(items: Iterable<V>, key: (item: V, index: number) => K): Map<K, V[]> {
      const groups = new Map<K, V[]>();
      let i = 0;
      for (const item of items) {
        const k = key(item, i++);
        const group = groups.get(k);
        if (group) group.push(item);
        else groups.set(k, [item]);
      }
      return groups;
    },
  });
}

export default defineConfig({
  // The WASM build locates sqlite3.wasm relative to its own module; pre-bundling would move it.
  optimizeDeps: {
    exclude: ['@sqlite.org/sqlite-wasm'],
    // What the browser tests and their workers import, optimized before the first test runs:
    // a dependency found later (protobufjs, first imported by the worker) makes Vite re-optimize
    // and reload the page under the running tests, and the reloaded modules get a second copy
    // of Comlink without Outpost's error transfer, so errors arrive as undefined.
    include: ['comlink', 'protobufjs/light.js', 'react', 'react-dom', 'react-dom/client', 'drizzle-orm', 'drizzle-orm/logger', 'drizzle-orm/relations', 'drizzle-orm/sql/sql', 'drizzle-orm/sqlite-core', 'drizzle-orm/sqlite-core/session', 'drizzle-orm/utils', 'kysely'],
  },
  test: {
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
    projects: [
      {
        extends: true,
        test: {
          name: 'node',
          include: ['test/**/*.test.ts'],
          globalSetup: ['test/support/temp-root.ts'],
          environment: 'node',
          testTimeout: 60_000,
          // Hooks start servers and open synced databases: real work that waits on events, which
          // a busy machine (CI at load 30) stretched past vitest's default 10 s.
          hookTimeout: 60_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['e2e/**/*.e2e.test.ts'],
          globalSetup: ['test/support/temp-root.ts'],
          environment: 'node',
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // Pages do real work (a worker, WASM, OPFS, a sync server) that takes far longer than
          // expect.poll's default second when the machine is busy: wait up to 30 s for each
          // condition, checking often, instead of failing on a slow moment.
          expect: { poll: { timeout: 30_000, interval: 50 } },
        },
      },
      {
        extends: true,
        // The browser has no `process`: testSeed (test/support/generate.ts) reads OUTPOST_SEED here.
        define: { __OUTPOST_SEED__: JSON.stringify(process.env.OUTPOST_SEED ?? '') },
        test: {
          name: 'browser',
          include: ['test-browser/**/*.browser.test.ts'],
          globalSetup: ['test/support/temp-root.ts', 'test-browser/global-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          browser: {
            enabled: true,
            headless: true,
            provider: playwright({
              launchOptions: {
                executablePath: chromiumPath(),
                args: ['--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
              },
            }),
            instances: [{ browser: 'chromium' }],
          },
        },
      },
    ],
  },
});
