/**
 * C callbacks that SQLite calls often and that the engine sets often: the authorizer (set on
 * every new SQLite handle, and a synced database reopens its handle twice per pull) and the
 * session's table filter (set on every new session, that is at every commit of a captured
 * write). Handing SQLite a JS function makes the WASM build compile a small WebAssembly module
 * to wrap it, each time: in the sync simulation that was about 6% of all CPU time.
 *
 * So each kind of callback is one WASM function per runtime, installed on first use, that finds
 * its JS handler by the context pointer SQLite passes back (a small integer id, never a real
 * pointer). A handler is registered by its owner and removed when the owner is done with it.
 *
 * A handler must not throw into WASM: the dispatcher catches and answers as the build's own
 * wrappers did (the error's `resultCode`, else SQLITE_ERROR).
 */
import { SQLITE_DENY, SQLITE_ERROR } from '../sqlite/constants.js';
import type { Sqlite3Runtime } from '../sqlite/wasm-api.js';

/** An authorizer's handler: the action, then its four C strings as JS strings (null when absent or empty). */
export type AuthorizerHandler = (action: number, a: string | null, b: string | null, dbName: string | null, trigger: string | null) => number;

/** A session table filter's handler: non-zero attaches `table`. */
export type TableFilterHandler = (table: string) => number;

/** One installed WASM function and the handlers it dispatches to, by context id. */
export class CallbackSlot<H> {
  private nextId = 1;

  constructor(
    /** The WASM function pointer to hand SQLite. */
    readonly pointer: number,
    /** The handlers by context id, shared with the installed function that looks them up. */
    private readonly handlers: Map<number, H>,
  ) {}

  /** Registers `handler`; returns the context id to hand SQLite with `pointer`. */
  add(handler: H): number {
    const id = this.nextId++;
    this.handlers.set(id, handler);
    return id;
  }

  /** Forgets a handler (after SQLite can no longer call it). */
  remove(id: number): void {
    this.handlers.delete(id);
  }
}

interface RuntimeSlots {
  authorizer: CallbackSlot<AuthorizerHandler>;
  tableFilter: CallbackSlot<TableFilterHandler>;
}

const installed = new WeakMap<Sqlite3Runtime, RuntimeSlots>();

/** The runtime's callback slots, installed on first use. */
export function callbackSlots(sqlite3: Sqlite3Runtime): RuntimeSlots {
  let slots = installed.get(sqlite3);
  if (!slots) {
    slots = { authorizer: authorizerSlot(sqlite3), tableFilter: tableFilterSlot(sqlite3) };
    installed.set(sqlite3, slots);
  }
  return slots;
}

function authorizerSlot(sqlite3: Sqlite3Runtime): CallbackSlot<AuthorizerHandler> {
  const { wasm } = sqlite3;
  const handlers = new Map<number, AuthorizerHandler>();
  // An empty string is absent too, as the build's own wrapper passed it on.
  const text = (p: number): string | null => (p ? wasm.cstrToJs(p) || null : null);
  // int xAuth(void *ctx, int action, const char*, const char*, const char *db, const char *trigger)
  const pointer = wasm.installFunction('i(pipppp)', (ctx: number, action: number, a: number, b: number, dbName: number, trigger: number) => {
    try {
      const handler = handlers.get(ctx);
      // A handler is removed only after its connection closed, so no statement should get here;
      // if one did, it is denied (SQLITE_DENY), never let past a host's rules.
      return handler ? handler(action, text(a), text(b), text(dbName), text(trigger)) | 0 : SQLITE_DENY;
    } catch (e) {
      return resultCode(e);
    }
  });
  return new CallbackSlot(pointer, handlers);
}

function tableFilterSlot(sqlite3: Sqlite3Runtime): CallbackSlot<TableFilterHandler> {
  const { wasm } = sqlite3;
  const handlers = new Map<number, TableFilterHandler>();
  // int xFilter(void *ctx, const char *zTab)
  const pointer = wasm.installFunction('i(pp)', (ctx: number, table: number) => {
    try {
      const handler = handlers.get(ctx);
      return handler ? handler(wasm.cstrToJs(table)) | 0 : 0;
    } catch (e) {
      return resultCode(e);
    }
  });
  return new CallbackSlot(pointer, handlers);
}

/** What the WASM build's own callback wrappers answer for a thrown error. */
function resultCode(e: unknown): number {
  const rc = (e as { resultCode?: unknown } | null)?.resultCode;
  return typeof rc === 'number' && rc !== 0 ? rc : SQLITE_ERROR;
}
