/**
 * The page keeps SQLite's compiled WASM (worker/client.ts `startWorker`): its first database
 * worker compiles it, every later worker of the page instantiates that module, and a module
 * SQLite cannot use makes the worker load its own WASM instead of failing the open.
 */
import { afterEach, expect, test } from 'vitest';
import { open } from '../src/index.js';
import type { BootMessage } from '../src/worker/protocol.js';

const postMessage = Worker.prototype.postMessage;

/** Records the boot message of every database worker started from now on; `change` may replace it. */
function watchBoots(change: (boot: BootMessage) => BootMessage = (b) => b): BootMessage[] {
  const boots: BootMessage[] = [];
  // Wraps the prototype's method: the test sees what the page sends without changing client.ts.
  Worker.prototype.postMessage = function (this: Worker, message: unknown, ...rest: unknown[]) {
    const isBoot = typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'outpost:boot';
    const sent = isBoot ? change(message as BootMessage) : message;
    if (isBoot) boots.push(sent as BootMessage);
    return (postMessage as (this: Worker, ...args: unknown[]) => void).call(this, sent, ...rest);
  } as typeof Worker.prototype.postMessage;
  return boots;
}

afterEach(() => {
  Worker.prototype.postMessage = postMessage;
});

test('after a first open, every database worker of the page gets its compiled SQLite, on each path', async () => {
  const boots = watchBoots();
  const id = crypto.randomUUID();
  // The first open's worker compiles (unless an earlier test of this page did) and sends the
  // module back before its open answer, on the same port.
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
  const boots = watchBoots((boot) => ({ ...boot, wasm: empty }));
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
