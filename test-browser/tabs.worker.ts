/**
 * One more "tab" for the multi-tab tests (tab.ts): a dedicated worker, or the script of an
 * iframe, that opens a database with the public `open()` (which starts its own database worker,
 * as a tab would) and runs the commands the test page posts. Answers `{ id, ok, value | error }`;
 * posts `{ event, ... }` as things happen, `{ event: 'loaded' }` first.
 */
import { type Database, OutpostError, open } from '../src/index.js';
import { rng } from '../test/support/generate.js';

export type TabCommand =
  /** With `liveSyncUrl`, the database syncs live with it. */
  | { op: 'open'; name: string; liveSyncUrl?: string; tabTimeoutMs?: number }
  | { op: 'run'; sql: string; params?: unknown[] }
  | { op: 'query'; sql: string }
  | { op: 'writeLoop'; who: string; count: number }
  /**
   * `count` steps, each (seeded) a plain insert into t(who, seq) or a transaction that reads
   * the counter ctr, logs what it read in txlog(who, seq, seen) and stores it plus one. Posts
   * `{ event: 'step', who, seq }` after each settled step; ends early after `stopLoop`.
   */
  | { op: 'mixLoop'; who: string; count: number; seed: number }
  | { op: 'stopLoop' }
  /**
   * `count` calls of seeded kinds (`CallKind`), one after another as a tab's Database sends
   * them, each writing rows keyed (who, seq) into h(who, seq, part); answers how each settled.
   * Posts `{ event: 'step', who, seq }` after each; ends early after `stopLoop`.
   */
  | { op: 'callLoop'; who: string; count: number; seed: number }
  /**
   * The page is frozen (`freeze`) or hidden for good (`pagehide`, not persisted): browser/open.ts
   * hands its engine over if it runs it, while the calls go on. Only in a frame.
   */
  | { op: 'pageEvent'; event: 'freeze' | 'pagehide' }
  | { op: 'hangInTransaction'; sql: string }
  | { op: 'watch'; sql: string }
  | { op: 'syncStatus' }
  /** A transaction that runs `sql`, posts `inside`, waits for `resume`, runs `sql` again. */
  | { op: 'pausedTransaction'; sql: string }
  | { op: 'resume' }
  /** Runs `sql` with a signal, aborts it once started; answers the error's name, or null if it ended. */
  | { op: 'abortRunning'; sql: string }
  | { op: 'close' }
  /** Whether this context can start a SharedWorker (and so uses the broker). */
  | { op: 'hasSharedWorker' };

export interface WriteLoopResult {
  acked: number[];
  unknown: number[];
  failed: { seq: number; message: string }[];
}

/** How each step of a mixLoop settled. `lost`: a transaction rejected TRANSACTION_LOST. */
export interface MixStep {
  seq: number;
  kind: 'insert' | 'transaction';
  fate: 'acked' | 'unknown' | 'lost' | 'failed';
  message?: string;
}

/** The kinds of call a callLoop makes: each writes its (who, seq) rows or nothing. */
export type CallKind = 'run' | 'exec' | 'batch' | 'returning' | 'transaction';

/** How one call of a callLoop settled: `ok`, or the error's code (its message when it has none). */
export interface CallStep {
  seq: number;
  kind: CallKind;
  /** The rows it writes when applied. */
  rows: number;
  outcome: string;
}

let db: Database | null = null;
let stopLoop = false;
let resume: () => void = () => {};
const inFrame = typeof window !== 'undefined' && window.parent !== window;
const post = (message: unknown): void => (inFrame ? window.parent.postMessage(message, '*') : (self as unknown as Worker).postMessage(message));
const opened = (): Database => {
  if (!db) throw new Error('open first');
  return db;
};

async function writeLoop(who: string, count: number): Promise<WriteLoopResult> {
  const result: WriteLoopResult = { acked: [], unknown: [], failed: [] };
  for (let seq = 0; seq < count; seq++) {
    try {
      await opened().run('INSERT INTO t(who, seq) VALUES (?, ?)', [who, seq]);
      result.acked.push(seq);
      post({ event: 'ack', who, seq });
    } catch (e) {
      if (e instanceof OutpostError && e.code === 'OUTCOME_UNKNOWN') result.unknown.push(seq);
      else result.failed.push({ seq, message: `${(e as Error).name} ${(e as { code?: string }).code} ${(e as Error).message} ${(e as Error).stack}` });
    }
  }
  return result;
}

async function mixLoop(who: string, count: number, seed: number): Promise<MixStep[]> {
  const random = rng(seed);
  const steps: MixStep[] = [];
  for (let seq = 0; seq < count && !stopLoop; seq++) {
    const kind = random() < 0.4 ? 'transaction' : 'insert';
    try {
      if (kind === 'insert') await opened().run('INSERT INTO t(who, seq) VALUES (?, ?)', [who, seq]);
      else
        await opened().transaction(async (tx) => {
          const seen = (await tx.get<{ v: number }>('SELECT v FROM ctr WHERE id = 1'))!.v;
          await tx.run('INSERT INTO txlog(who, seq, seen) VALUES (?, ?, ?)', [who, seq, seen]);
          await tx.run('UPDATE ctr SET v = ? WHERE id = 1', [seen + 1]);
        });
      steps.push({ seq, kind, fate: 'acked' });
    } catch (e) {
      const code = e instanceof OutpostError ? e.code : undefined;
      const fate = code === 'OUTCOME_UNKNOWN' ? 'unknown' : code === 'TRANSACTION_LOST' ? 'lost' : 'failed';
      steps.push({ seq, kind, fate, ...(fate === 'failed' ? { message: `${(e as Error).name} ${String(code)} ${(e as Error).message}` } : {}) });
    }
    post({ event: 'step', who, seq });
  }
  return steps;
}

async function callLoop(who: string, count: number, seed: number): Promise<CallStep[]> {
  const random = rng(seed);
  const kinds: CallKind[] = ['run', 'exec', 'batch', 'returning', 'transaction'];
  const steps: CallStep[] = [];
  let work = 0;
  // Some calls take a while (a few milliseconds of SQL), so that a hand-over finds them running.
  const insert = (seq: number, part: number): string =>
    `INSERT INTO h(who, seq, part) SELECT '${who}', ${seq}, ${part} FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${work}) SELECT count(*) FROM c)`;
  for (let seq = 0; seq < count && !stopLoop; seq++) {
    const kind = kinds[Math.floor(random() * kinds.length)]!;
    work = random() < 0.5 ? 1 : Math.floor(random() * 200_000);
    const rows = kind === 'batch' || kind === 'transaction' ? 2 : 1;
    try {
      if (kind === 'run') await opened().run(insert(seq, 0));
      else if (kind === 'exec') await opened().exec(insert(seq, 0));
      else if (kind === 'batch') await opened().batch([insert(seq, 0), insert(seq, 1)]);
      else if (kind === 'returning') await opened().query(`${insert(seq, 0)} RETURNING part`);
      else
        await opened().transaction(async (tx) => {
          await tx.run(insert(seq, 0));
          await tx.run(insert(seq, 1));
        });
      steps.push({ seq, kind, rows, outcome: 'ok' });
    } catch (e) {
      const code = e instanceof OutpostError ? e.code : undefined;
      steps.push({ seq, kind, rows, outcome: code ?? `${(e as Error).name}: ${(e as Error).message}` });
    }
    post({ event: 'step', who, seq });
  }
  return steps;
}

async function handle(command: TabCommand): Promise<unknown> {
  switch (command.op) {
    case 'open':
      db = await open(command.name, {
        ...(command.liveSyncUrl ? { sync: { url: command.liveSyncUrl, live: true } } : {}),
        ...(command.tabTimeoutMs === undefined ? {} : { tabTimeoutMs: command.tabTimeoutMs }),
      });
      return null;
    case 'run':
      return opened().run(command.sql, command.params as never);
    case 'query': {
      const rows = opened().query(command.sql);
      post({ event: 'started' });
      return rows;
    }
    case 'writeLoop':
      return writeLoop(command.who, command.count);
    case 'mixLoop':
      return mixLoop(command.who, command.count, command.seed);
    case 'callLoop':
      return callLoop(command.who, command.count, command.seed);
    case 'pageEvent':
      if (command.event === 'freeze') document.dispatchEvent(new Event('freeze'));
      else window.dispatchEvent(new PageTransitionEvent('pagehide', { persisted: false }));
      return null;
    case 'stopLoop':
      stopLoop = true;
      return null;
    case 'hangInTransaction':
      void opened().transaction(async (tx) => {
        await tx.run(command.sql);
        post({ event: 'inside' });
        await new Promise(() => {});
      });
      return null;
    case 'watch':
      opened().watch(command.sql, undefined, (rows) => post({ event: 'rows', rows }), { throttleMs: 0 });
      return null;
    case 'pausedTransaction':
      return opened().transaction(async (tx) => {
        await tx.run(command.sql);
        await new Promise<void>((r) => {
          resume = r;
          post({ event: 'inside' });
        });
        await tx.run(command.sql);
      });
    case 'resume':
      resume();
      return null;
    case 'abortRunning': {
      const controller = new AbortController();
      const running = opened().get(command.sql, [], { signal: controller.signal });
      // Its turn in line comes within a macrotask.
      await new Promise((resolve) => setTimeout(resolve, 0));
      controller.abort();
      return running.then(
        () => null,
        (e: unknown) => (e as Error).name,
      );
    }
    case 'syncStatus':
      return opened().syncStatus();
    case 'close':
      await opened().close();
      return null;
    case 'hasSharedWorker':
      return typeof SharedWorker === 'function';
  }
}

self.addEventListener('message', (event: MessageEvent<{ id: number; command: TabCommand }>) => {
  if (typeof event.data?.id !== 'number') return;
  const { id, command } = event.data;
  handle(command).then(
    (value) => post({ id, ok: true, value }),
    (e: unknown) => post({ id, ok: false, error: { name: (e as Error).name, code: (e as { code?: unknown }).code, message: String((e as Error).message) } }),
  );
});
post({ event: 'loaded' });
