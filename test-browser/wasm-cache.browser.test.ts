/**
 * The page keeps SQLite's compiled WASM (worker/client.ts `startWorker`): it compiles it while
 * its first database worker starts and sends it to that worker, every later worker of the page
 * instantiates that module, and a module SQLite cannot use, or none (a failed compile), makes
 * the worker load its own WASM instead of failing the open.
 */
import { afterEach, expect, test } from 'vitest';
import { open } from '../src/index.js';
import type { BootMessage, CompiledMessage } from '../src/worker/protocol.js';
import { int, pick, rng, testSeed } from '../test/support/generate.js';

const postMessage = Worker.prototype.postMessage;

const typeOf = (message: unknown): unknown => (typeof message === 'object' && message !== null ? (message as { type?: unknown }).type : undefined);

/**
 * Records the boot message of every database worker started from now on, and the modules the
 * page sends them after it; `change` may replace a boot, `send` may take over sending a
 * module (it gets the worker and the page's module message, and posts it when it likes).
 */
function watchBoots(
  change: (boot: BootMessage, worker: Worker) => BootMessage = (b) => b,
  send?: (worker: Worker, message: CompiledMessage) => void,
): { boots: BootMessage[]; modules: CompiledMessage[] } {
  const seen = { boots: [] as BootMessage[], modules: [] as CompiledMessage[] };
  // Wraps the prototype's method: the test sees what the page sends without changing client.ts.
  Worker.prototype.postMessage = function (this: Worker, message: unknown, ...rest: unknown[]) {
    let sent = message;
    if (typeOf(message) === 'outpost:boot') seen.boots.push((sent = change(message as BootMessage, this)) as BootMessage);
    if (typeOf(message) === 'outpost:wasm') {
      seen.modules.push(message as CompiledMessage);
      if (send) return send(this, message as CompiledMessage);
    }
    return (postMessage as (this: Worker, ...args: unknown[]) => void).call(this, sent, ...rest);
  } as typeof Worker.prototype.postMessage;
  return seen;
}

afterEach(() => {
  Worker.prototype.postMessage = postMessage;
});

test('the page compiles SQLite for its first database worker and sends it the module', async () => {
  // The first test of this file: nothing compiled SQLite in this page yet.
  const { boots, modules } = watchBoots();
  const db = await open(`wasm-page-${crypto.randomUUID()}`, { storage: 'memory' });
  expect(await db.get('SELECT 1 AS one')).toEqual({ one: 1 });
  await db.close();
  expect(boots).toEqual([{ type: 'outpost:boot', wasm: null, compiling: true }]);
  expect(modules).toHaveLength(1);
  expect(modules[0]!.module).toBeInstanceOf(WebAssembly.Module);
});

test('after a first open, every database worker of the page gets its compiled SQLite, on each path', async () => {
  const { boots } = watchBoots();
  const id = crypto.randomUUID();
  const first = await open(`wasm-first-${id}`, { storage: 'memory' });
  expect(await first.get('SELECT 1 AS one')).toEqual({ one: 1 });
  await first.close();

  const opened = [
    await open(`wasm-memory-${id}`, { storage: 'memory' }),
    await open(`wasm-shared-${id}`),
    await open(`wasm-alone-${id}`, { lockTimeoutMs: 5_000 }),
  ];
  for (const [i, db] of opened.entries()) {
    await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
    await db.run('INSERT INTO t(v) VALUES (?)', [`row ${i}`]);
    expect(await db.query('SELECT v FROM t')).toEqual([{ v: `row ${i}` }]);
    await db.close();
  }
  // Reopened on the module: the rows written under it are read back from OPFS.
  const again = await open(`wasm-shared-${id}`);
  expect(await again.query('SELECT v FROM t')).toEqual([{ v: 'row 1' }]);
  expect(await again.get('PRAGMA integrity_check')).toEqual({ integrity_check: 'ok' });
  await again.close();

  expect(boots.length).toBeGreaterThanOrEqual(5);
  for (const boot of boots.slice(1)) expect(boot.wasm).toBeInstanceOf(WebAssembly.Module);
});

test('a module SQLite cannot use makes the worker load its own WASM, and the open works', async () => {
  // A valid WASM module with nothing in it: it instantiates, but SQLite finds none of its exports.
  const empty = new WebAssembly.Module(Uint8Array.of(0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00));
  const { boots } = watchBoots((boot) => ({ ...boot, wasm: empty }));
  const id = crypto.randomUUID();
  for (const options of [{ storage: 'memory' as const }, {}]) {
    const db = await open(`wasm-wrong-${id}-${boots.length}`, options);
    await db.exec('CREATE TABLE t(v)');
    await db.run('INSERT INTO t VALUES (?)', ['kept']);
    expect(await db.query('SELECT v FROM t')).toEqual([{ v: 'kept' }]);
    await db.close();
  }
  expect(boots.map((b) => b.wasm)).toEqual([empty, empty]);
});

test('a worker told the page is compiling opens whenever the module comes, and loads its own when none does (generated)', async () => {
  const seed = testSeed();
  console.log(`wasm boot order seed ${seed} (OUTPOST_SEED replays it)`);
  const random = rng(seed);
  // The page's module, compiled by an earlier open of this page.
  const warm = await open(`wasm-warm-${crypto.randomUUID()}`, { storage: 'memory' });
  await warm.close();
  let module: WebAssembly.Module | null = null;
  const cases: { delayMs: number; none: boolean }[] = [];
  watchBoots(
    (boot, worker) => {
      module = boot.wasm;
      const c = { delayMs: pick(random, [0, int(random, 1, 30), int(random, 100, 400)]), none: random() < 0.3 };
      cases.push(c);
      // Every worker now waits for a module message, which this test sends late or empty.
      setTimeout(() => postMessage.call(worker, { type: 'outpost:wasm', module: c.none ? null : module } satisfies CompiledMessage), c.delayMs);
      return { ...boot, wasm: null, compiling: true };
    },
    () => {},
  );
  const id = crypto.randomUUID();
  for (let i = 0; i < 6; i++) {
    const options = pick(random, [{ storage: 'memory' as const }, {}, { lockTimeoutMs: 5_000 }]);
    const db = await open(`wasm-order-${id}-${i}`, options);
    await db.exec('CREATE TABLE t(v)');
    await db.run('INSERT INTO t VALUES (?)', [i]);
    expect(await db.query('SELECT v FROM t'), `case ${JSON.stringify(cases[i])}, seed ${seed}`).toEqual([{ v: i }]);
    await db.close();
  }
  expect(module).toBeInstanceOf(WebAssembly.Module);
});
