/**
 * The page's abort writer: a small dedicated worker that writes aborted calls' ids into the
 * databases' abort files (abort-file.ts). It exists because the page's main thread cannot open
 * a sync access handle and the database worker, the one that runs the statement, is busy. One
 * per page, shared by its databases (abort-page.ts starts it); it keeps each file open while
 * some database of that name is open in the page.
 */
import { type AbortFileHandle, openAbortFile, writeAbortId } from './abort-file.js';
import type { AbortWriterMessage, AbortWriterReply } from './abort-page.js';

const files = new Map<string, Promise<AbortFileHandle | null>>();

function file(name: string): Promise<AbortFileHandle | null> {
  let opened = files.get(name);
  if (!opened) {
    opened = openAbortFile(name);
    files.set(name, opened);
    void opened.then((handle) => {
      // Without the file (a browser lacking `readwrite-unsafe`), a signal cannot reach a
      // running call here: the page stops sending and ends this worker.
      if (!handle) {
        files.delete(name);
        postMessage({ type: 'unavailable' } satisfies AbortWriterReply);
      }
    });
  }
  return opened;
}

self.onmessage = (event: MessageEvent<AbortWriterMessage>) => {
  const message = event.data;
  if (message.type === 'write') {
    void file(message.name).then((handle) => {
      if (handle && message.abortId !== 0) writeAbortId(handle, message.abortId);
    });
    return;
  }
  const opened = files.get(message.name);
  files.delete(message.name);
  void opened?.then((handle) => handle?.close());
};
