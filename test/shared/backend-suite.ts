/**
 * The storage backend conformance suite (the contract in src/opfs-vfs/storage/backend.ts), run
 * against every backend: memory and Node in test/backends.test.ts, OPFS in
 * test-browser/backends.browser.test.ts. The checks themselves are in backend-checks.ts.
 */
import { describe, test } from 'vitest';
import { type BackendFactory, checksFor } from './backend-checks.js';

export type { BackendFactory } from './backend-checks.js';

export function backendSuite(name: string, factory: BackendFactory): void {
  describe(`storage backend: ${name}`, () => {
    for (const check of checksFor(factory)) test(check.name, () => check.run(factory));
  });
}
