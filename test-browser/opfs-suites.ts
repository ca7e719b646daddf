/**
 * The OPFS runs of the backend conformance suite: real handles (a real quota cannot be reached
 * on demand, so no quota check), and the whole suite over `withSimulatedQuota` for each way a
 * browser reports an exhausted quota. Shared by the worker that runs them and the test that
 * reports them.
 */
import type { SimulatedQuota } from '../src/opfs-vfs/storage/simulated-quota.js';

export interface OpfsSuite {
  name: string;
  quotaStyle: SimulatedQuota['style'] | null;
}

export const OPFS_SUITES: readonly OpfsSuite[] = [
  { name: 'opfs', quotaStyle: null },
  { name: 'opfs, simulated quota: throw', quotaStyle: 'throw' },
  { name: 'opfs, simulated quota: short', quotaStyle: 'short' },
  { name: 'opfs, simulated quota: bogus', quotaStyle: 'bogus' },
];

/** What the worker posts for each check: the error message, or null when the check passed. */
export interface BackendCheckResult {
  suite: string;
  check: string;
  error: string | null;
}
