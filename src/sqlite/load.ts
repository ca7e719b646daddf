/**
 * Loads the official SQLite WASM build once per realm (worker or Node process).
 *
 * Installing Outpost's VFS in the loaded module is the engine's job (`engine/runtime.ts`): this
 * layer knows SQLite, not Outpost's storage.
 *
 * A browser page may hand its database workers a compiled `WebAssembly.Module` (one it
 * compiled itself while the worker's script loaded, or the first worker's, sent back to the
 * page: worker/client.ts), so workers instantiate it instead of fetching and compiling the WASM.
 * `LoadOptions` carries it both ways.
 *
 * Contract / may import: nothing internal.
 */
import sqlite3InitModule from '@sqlite.org/sqlite-wasm';
import type { Sqlite3Runtime } from './wasm-api.js';

export interface LoadOptions {
  /**
   * A module compiled from this build's sqlite3.wasm: instantiated instead of fetching it. A
   * promise of one is waited for (the page is still compiling it); null: load the build's own.
   */
  module?: WebAssembly.Module | Promise<WebAssembly.Module | null> | undefined;
  /** Called with the module this realm compiled itself (only when no `module` came). */
  compiled?: ((module: WebAssembly.Module) => void) | undefined;
}

/** The Emscripten hook that replaces the build's own fetch and compile of its WASM. */
type InstantiateWasm = (imports: WebAssembly.Imports, receive: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void) => object;

let loading: Promise<Sqlite3Runtime> | null = null;

/**
 * The WASM module, loaded on first use; every later call gets the same module (and the options
 * of later calls are ignored).
 */
export function loadSqlite(options: LoadOptions = {}): Promise<Sqlite3Runtime> {
  loading ??= load(options);
  return loading;
}

async function load(options: LoadOptions): Promise<Sqlite3Runtime> {
  const module = await options.module;
  if (module) return fromModule(module).catch(() => init({}));
  return options.compiled ? keepingModule(options.compiled) : init({});
}

/**
 * Instantiates `module`. The build waits for the hook's `receive` and has no way to hear of a
 * failure, so a failed instantiation (a module from another build) rejects through `failed`,
 * as does a build that rejects the instance, and the caller loads the build's own WASM instead.
 */
function fromModule(module: WebAssembly.Module): Promise<Sqlite3Runtime> {
  let failed: (e: unknown) => void = () => {};
  const failure = new Promise<never>((_, reject) => (failed = reject));
  const instantiateWasm: InstantiateWasm = (imports, receive) => {
    WebAssembly.instantiate(module, imports)
      .then((instance) => receive(instance, module))
      .catch(failed);
    return {};
  };
  return Promise.race([init({ instantiateWasm }), failure]);
}

/**
 * Loads the build's own WASM and hands the compiled module to `compiled`. The build compiles it
 * with `WebAssembly.instantiateStreaming` (or `instantiate` on bytes, its fallback) and keeps
 * only the instance; these two are wrapped while it loads to see the module. The realm is a
 * database worker that runs nothing else meanwhile, and the originals come back once it loaded.
 */
function keepingModule(compiled: (module: WebAssembly.Module) => void): Promise<Sqlite3Runtime> {
  const wasm = WebAssembly as { instantiateStreaming?: typeof WebAssembly.instantiateStreaming; instantiate: typeof WebAssembly.instantiate };
  const { instantiateStreaming, instantiate } = wasm;
  const seen = (source: WebAssembly.WebAssemblyInstantiatedSource): WebAssembly.WebAssemblyInstantiatedSource => {
    compiled(source.module);
    return source;
  };
  if (instantiateStreaming) wasm.instantiateStreaming = (source, imports) => instantiateStreaming.call(WebAssembly, source, imports).then(seen);
  // instantiate(module) resolves to an Instance, instantiate(bytes) to { module, instance }:
  // the overloads are one function, typed here as the bytes form it is called with.
  const fromBytes = instantiate as (bytes: BufferSource, imports?: WebAssembly.Imports) => Promise<WebAssembly.WebAssemblyInstantiatedSource>;
  wasm.instantiate = ((source: BufferSource | WebAssembly.Module, imports?: WebAssembly.Imports) =>
    source instanceof WebAssembly.Module ? instantiate.call(WebAssembly, source, imports) : fromBytes.call(WebAssembly, source, imports).then(seen)) as typeof WebAssembly.instantiate;
  const restore = (): void => {
    if (instantiateStreaming) wasm.instantiateStreaming = instantiateStreaming;
    wasm.instantiate = instantiate;
  };
  const loaded = init({});
  loaded.then(restore, restore);
  return loaded;
}

function init(hooks: { instantiateWasm?: InstantiateWasm }): Promise<Sqlite3Runtime> {
  // The WASM build probes for its own OPFS VFS (which needs cross-origin isolation) and warns
  // when it cannot install it. Outpost does not use it, so that warning is noise: drop it.
  // The typings declare init() without the Emscripten module options it accepts, and type
  // the module less precisely than it behaves (see wasm-api.ts): cast once, here.
  const start = sqlite3InitModule as unknown as (options: object) => Promise<Sqlite3Runtime>;
  // Nor does Outpost use the build's other VFSes: in a cross-origin isolated page, installing
  // its "opfs" and "opfs-wl" VFSes starts two proxy workers and waits for them at every open.
  // The build reads (and then deletes) this global during init.
  (globalThis as { sqlite3ApiConfig?: object }).sqlite3ApiConfig = { disable: { vfs: { opfs: true, 'opfs-wl': true, 'opfs-vfs': true, 'opfs-sahpool': true } } };
  return start({
    ...hooks,
    print: () => {},
    printErr: (...args: unknown[]) => {
      const text = args.join(' ');
      if (!/OPFS|opfs|SharedArrayBuffer|Atomics/.test(text)) console.error(text);
    },
  });
}
