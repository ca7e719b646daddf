/**
 * The storage backend conformance suite on the OPFS backend, real and under each simulated
 * quota style. OPFS sync access handles exist only in dedicated workers, so the checks run in
 * a module worker (backends.worker.ts), which reports each result back; here every result
 * becomes one test with the same name as in the Node suites.
 */
import { beforeAll, describe, expect, test } from 'vitest';
import { checksFor } from '../test/shared/backend-checks.js';
import { type BackendCheckResult, OPFS_SUITES } from './opfs-suites.js';

const results = new Map<string, string | null>();
const key = (suite: string, check: string): string => `${suite} / ${check}`;

beforeAll(async () => {
  const worker = new Worker(new URL('./backends.worker.ts', import.meta.url), { type: 'module' });
  try {
    await new Promise<void>((resolve, reject) => {
      worker.onerror = (e) => reject(new Error(`the backend suite worker failed: ${e.message}`));
      worker.onmessage = (e: MessageEvent<BackendCheckResult | null>) => {
        if (e.data === null) resolve();
        else results.set(key(e.data.suite, e.data.check), e.data.error);
      };
    });
  } finally {
    worker.terminate();
  }
  const setup = results.get(key('(worker)', '(setup)'));
  if (setup !== undefined) throw new Error(`the backend suite worker could not run: ${setup}`);
});

for (const suite of OPFS_SUITES) {
  // Which checks apply depends only on whether the suite can simulate a full store.
  const factory = suite.quotaStyle ? { createWithQuota: () => {} } : {};
  describe(`storage backend: ${suite.name}`, () => {
    for (const check of checksFor(factory)) {
      test(check.name, () => {
        const outcome = results.get(key(suite.name, check.name));
        expect(outcome, 'the worker reported no result for this check').not.toBeUndefined();
        if (outcome) throw new Error(outcome);
      });
    }
  });
}
