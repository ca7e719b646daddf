/**
 * Runs the storage backend conformance checks (test/shared/backend-checks.ts) on the OPFS
 * backend, in the one place OPFS sync access handles exist: a dedicated worker. Runs every
 * suite of opfs-suites.ts, posts one `BackendCheckResult` per suite and check, then `null`.
 */
import { OpfsBackend, type SyncAccessHandleLike } from '../src/opfs-vfs/storage/opfs.js';
import { withSimulatedQuota } from '../src/opfs-vfs/storage/simulated-quota.js';
import { type BackendFactory, checksFor } from '../test/shared/backend-checks.js';
import { type BackendCheckResult, OPFS_SUITES } from './opfs-suites.js';

async function run(): Promise<void> {
  const root = await navigator.storage.getDirectory();
  const dirName = `backend-suite-${crypto.randomUUID()}`;
  const dir = await root.getDirectoryHandle(dirName, { create: true });
  let n = 0;
  const openHandle = async (): Promise<{ handle: SyncAccessHandleLike; label: string }> => {
    const name = `f${++n}`;
    const file = await dir.getFileHandle(name, { create: true });
    // createSyncAccessHandle is declared in TypeScript's WebWorker lib only, not in DOM.
    const handle = await (file as unknown as { createSyncAccessHandle(): Promise<SyncAccessHandleLike> }).createSyncAccessHandle();
    return { handle, label: `opfs:/${dirName}/${name}` };
  };
  try {
    for (const { name: suite, quotaStyle: style } of OPFS_SUITES) {
      const factory: BackendFactory = style
        ? {
            create: async () => {
              const { handle, label } = await openHandle();
              return new OpfsBackend(withSimulatedQuota(handle, { bytes: 1 << 30, style }), label);
            },
            createWithQuota: async (bytes) => {
              const { handle, label } = await openHandle();
              return new OpfsBackend(withSimulatedQuota(handle, { bytes, style }), label);
            },
          }
        : {
            create: async () => {
              const { handle, label } = await openHandle();
              return new OpfsBackend(handle, label);
            },
          };
      for (const check of checksFor(factory)) {
        let error: string | null = null;
        try {
          await check.run(factory);
        } catch (e) {
          error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
        }
        const result: BackendCheckResult = { suite, check: check.name, error };
        postMessage(result);
      }
    }
  } finally {
    await root.removeEntry(dirName, { recursive: true }).catch(() => {});
    postMessage(null);
  }
}

run().catch((e: unknown) => {
  const result: BackendCheckResult = { suite: '(worker)', check: '(setup)', error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  postMessage(result);
  postMessage(null);
});
