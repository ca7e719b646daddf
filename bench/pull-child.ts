/**
 * One large incremental pull in its own process, so that its memory is its own
 * (bench/large-pull.ts starts it):
 * `tsx bench/pull-child.ts <database path> <thread|inline> [Outpost checkout root]` (Outpost from that
 * checkout's build, `builtNodeEntry`).
 * The database at the path is a synced replica that is behind its server (the URL is in its
 * sync state). Prints one JSON line: wall and CPU time of the pull, and the peak RSS and JS
 * memory (heap + external) above the process's level after the open, before the pull. With the
 * thread engine the pull runs in the engine's worker thread, whose heap the JS figure does not
 * see (RSS does); with `inline` it runs on this thread and the JS figure sees it all.
 */
import { type ChildSample, builtNodeEntry, measure } from './child-sample.js';

export interface PullSample extends ChildSample {
  pulled: boolean;
}

const [path, engine, root] = process.argv.slice(2);
if (!path || (engine !== 'thread' && engine !== 'inline')) throw new Error('usage: pull-child.ts <path> <thread|inline> [root]');

// Imported by path, so the same script runs an older checkout's build too.
const { open } = (await import(builtNodeEntry(root ?? new URL('..', import.meta.url).pathname))) as typeof import('../src/node/index.js');
const db = await open(path, { engine });
// RSS is sampled: the open's own peak (the engine's compile) may be above the pull's.
const { sample, result: pulled } = await measure(() => db.pull(), 'sampled');
await db.close();
const result: PullSample = { ...sample, pulled };
process.stdout.write(`${JSON.stringify(result)}\n`);
