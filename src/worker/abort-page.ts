/**
 * The page's side of the abort file (abort-file.ts): `fileAbortWriter(name)` opens the
 * database's abort file in the page's abort writer (abort-writer.ts, started with the first
 * database) and writes a running call's abort id there when the call is aborted. The write is
 * posted to that worker, which is idle, while the database worker is busy in the statement.
 */

/** What the page posts to its abort writer. A write with abort id 0 only opens the file. */
export type AbortWriterMessage = { type: 'write'; name: string; abortId: number } | { type: 'release'; name: string };
/** What the writer answers: its browser cannot share the file (no `readwrite-unsafe`). */
export type AbortWriterReply = { type: 'unavailable' };

let writer: Worker | null = null;
/** The writer said the file cannot be shared here: no more writers in this page. */
let unavailable = false;
/** How many open databases of each name use the writer's file. */
const users = new Map<string, number>();

function startedWriter(): Worker | null {
  if (writer || unavailable) return writer;
  try {
    writer = new Worker(new URL('./abort-writer.js', import.meta.url), { type: 'module', name: 'outpost:abort' });
  } catch {
    unavailable = true;
    return null;
  }
  const started = writer;
  const giveUp = (): void => {
    unavailable = true;
    started.terminate();
    if (writer === started) writer = null;
  };
  started.addEventListener('message', (event: MessageEvent<AbortWriterReply>) => {
    if (event.data.type === 'unavailable') giveUp();
  });
  started.addEventListener('error', (event) => {
    event.preventDefault();
    giveUp();
  });
  return started;
}

export interface FileAbortWriter {
  /** Stops the running call with this abort id, wherever the database's engine runs. */
  interrupt(abortId: number): void;
  /** The database closed: the writer closes the file once no database of the name uses it. */
  release(): void;
}

/** Opens the abort file of database `name` in the page's writer, ahead of any abort. */
export function fileAbortWriter(name: string): FileAbortWriter {
  const post = (message: AbortWriterMessage): void => startedWriter()?.postMessage(message);
  users.set(name, (users.get(name) ?? 0) + 1);
  post({ type: 'write', name, abortId: 0 });
  let released = false;
  return {
    interrupt: (abortId) => post({ type: 'write', name, abortId }),
    release: () => {
      if (released) return;
      released = true;
      const left = (users.get(name) ?? 1) - 1;
      if (left > 0) {
        users.set(name, left);
        return;
      }
      users.delete(name);
      post({ type: 'release', name });
    },
  };
}
