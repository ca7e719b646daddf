/**
 * Where a pull answer waits while the client reads it. A pull is built synchronously (one
 * consistent revision), but a client may read it slowly or not at all; holding every such
 * answer in memory let ten unread 100 MB pulls take a gigabyte. Small answers stay in memory;
 * past `MEMORY_BYTES_MAX` the spool moves to an unlinked temporary file (the file vanishes
 * when its descriptor closes, even after a crash), and the answer is streamed from there with
 * backpressure, so a slow reader costs disk, not memory; one that reads nothing for the body
 * time limit (`bodyTimeoutMs`) is cut off, so it cannot keep that disk (and a descriptor) forever.
 */
import * as fs from 'node:fs';
import type * as http from 'node:http';
import * as path from 'node:path';

/** Answers up to this size are kept in memory. */
const MEMORY_BYTES_MAX = 1024 * 1024;

export class PullSpool {
  private chunks: Uint8Array[] = [];
  private bytes = 0;
  private fd: number | null = null;

  constructor(private readonly tempDir: string) {}

  /** Adds a chunk of the answer (synchronously: the pull that produces it is synchronous). */
  write = (chunk: Uint8Array): void => {
    this.bytes += chunk.length;
    if (this.fd === null && this.bytes <= MEMORY_BYTES_MAX) {
      this.chunks.push(chunk);
      return;
    }
    if (this.fd === null) {
      fs.mkdirSync(this.tempDir, { recursive: true });
      const file = path.join(this.tempDir, `pull-${process.pid}-${Math.random().toString(36).slice(2)}`);
      this.fd = fs.openSync(file, 'w+');
      fs.unlinkSync(file);
      for (const c of this.chunks) writeAll(this.fd, c);
      this.chunks = [];
    }
    writeAll(this.fd, chunk);
  };

  /**
   * Sends the answer and releases the spool (also when the client goes away). A client that
   * reads nothing of it for `idleMs` is cut off: its socket, and the spool's file or memory,
   * are let go.
   */
  send(res: http.ServerResponse, type: string, idleMs: number): Promise<void> {
    // CORS headers were set on `res` before the route ran (http.ts setCorsHeaders).
    const headers = { 'content-type': type, 'content-length': this.bytes };
    res.setTimeout(idleMs, () => res.destroy());
    if (this.fd === null) {
      res.writeHead(200, headers);
      for (const c of this.chunks) res.write(c);
      res.end();
      this.chunks = [];
      return Promise.resolve();
    }
    const fd = this.fd;
    this.fd = null;
    return new Promise((resolve) => {
      res.writeHead(200, headers);
      const stream = fs.createReadStream('', { fd, start: 0, autoClose: true });
      const done = (): void => {
        stream.destroy();
        resolve();
      };
      stream.on('error', () => {
        res.destroy();
        done();
      });
      res.on('close', done);
      stream.pipe(res);
    });
  }

  /**
   * Hands the answer's file over (pull-share.ts shares it between identical pulls): null when
   * the answer is small enough to stay in memory (cheaper to build again than to share) or
   * larger than `bytesMax`. The spool no longer owns a file it handed over.
   */
  takeFile(bytesMax: number): { fd: number; bytes: number } | null {
    if (this.fd === null || this.bytes > bytesMax) return null;
    const file = { fd: this.fd, bytes: this.bytes };
    this.fd = null;
    return file;
  }

  /** Drops the spool without sending it (the pull failed). Idempotent. */
  discard(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
    this.chunks = [];
  }
}

function writeAll(fd: number, chunk: Uint8Array): void {
  let at = 0;
  while (at < chunk.length) at += fs.writeSync(fd, chunk, at, chunk.length - at);
}
