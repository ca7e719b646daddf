/**
 * What `import ... from 'outpost'` gives in Node (the `node` export condition): the same names
 * as the browser entry, whose calls fail at once with an error that names `outpost/node`. The
 * browser build needs a dedicated `Worker` and OPFS; without this file, server-side rendering
 * or a Node script would import it and fail later with a ReferenceError on `Worker`. Importing
 * stays harmless, so code shared with the browser can be rendered on a server.
 */
import { OutpostError } from '../errors.js';
import type { Database, OpenOptions } from '../types.js';

export type * from '../types.js';
export { SqliteError, DatabaseLockedError, OutpostError, SyncError, AbortError, type OutpostErrorCode, type SyncErrorCode } from '../errors.js';

function browserOnly(call: string): OutpostError {
  return new OutpostError(
    `${call} from "outpost" runs in a browser (a dedicated Worker over OPFS); in Node, import { open } from "outpost/node"`,
    'WORKER_FAILED',
  );
}

/** Fails: the browser's `open` needs a Worker. Use `open` from `outpost/node` in Node. */
export async function open(_name: string, _options?: OpenOptions): Promise<Database> {
  throw browserOnly('open()');
}

/** Fails: OPFS exists only in browsers. Use `deleteDatabase` from `outpost/node` in Node. */
export async function deleteDatabase(_name: string, _options?: { lockTimeoutMs?: number }): Promise<void> {
  throw browserOnly('deleteDatabase()');
}

/** Fails: OPFS exists only in browsers. */
export async function listDatabases(): Promise<string[]> {
  throw browserOnly('listDatabases()');
}
