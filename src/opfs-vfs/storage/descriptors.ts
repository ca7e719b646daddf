/**
 * File descriptors on demand for the Node backend (`node.ts`): a `DescriptorPool` keeps at
 * most `limit` of its files' descriptors open, closing the least recently used one to open
 * another, and a file whose descriptor was closed opens it again at its next read or write.
 *
 * Why: a server keeps thousands of databases open, each with a main file and a WAL, and the
 * process's file limit (20,000 here, and an unprivileged process cannot raise it) bounded how
 * many could stay open; past it, a request paid a whole database reopen (WAL recovery, schema
 * read, first compiles: about a millisecond). Opening a descriptor again costs a few
 * microseconds. A database the pool closed a descriptor of stays open in SQLite, with its page
 * cache, schema and statements.
 *
 * What it relies on (the VFS keeps each): a pooled file is never removed or renamed while it is
 * open (the VFS truncates instead of deleting, `vfs.ts` xDelete), so opening its path again
 * reaches the same file; and no lock lives on a descriptor (Outpost's databases lock in
 * process, `locking_mode=EXCLUSIVE`). Durability is the file's, not the descriptor's: on Linux
 * `fdatasync` through a new descriptor writes back what was written through a closed one, and a
 * write-back error not yet reported is reported to it too, while the kernel keeps the file's
 * inode. An inode evicted with no descriptor open could take such an error with it (the case
 * PostgreSQL met in 2018): a window between a write and its flush, which under 'full'
 * durability is one transaction's, its WAL in use throughout, and under 'normal' promises
 * nothing to lose. A pool too small for the databases in use widens it; the server's holds a
 * quarter of the file limit.
 *
 * Contract / may import: `node:fs` and `recency-list.ts` (part of `storage/`).
 */
import * as fs from 'node:fs';
import { RecencyList } from './recency-list.js';

/** One file of a pool: its path, and its descriptor while the pool holds one open. */
export class PooledDescriptor {
  fd: number | null = null;
  /** Neighbours in the pool's list, least recently used first, while `fd` is open. */
  prev: PooledDescriptor | null = null;
  next: PooledDescriptor | null = null;

  constructor(readonly path: string) {}
}

export class DescriptorPool {
  /** The files whose descriptors are open, least recently used first. */
  private readonly order = new RecencyList<PooledDescriptor>();
  /** Descriptors opened again after the pool closed them (for metrics and tests). */
  reopens = 0;

  constructor(readonly limit: number) {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`a descriptor pool's limit must be a positive integer, got ${limit}`);
  }

  /** Descriptors open now (at most `limit`). */
  get size(): number {
    return this.order.size;
  }

  /** Opens the file at `path` read-write, creating it when missing (the file's first open). */
  open(path: string): PooledDescriptor {
    const d = new PooledDescriptor(path);
    this.makeRoom();
    d.fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    this.order.append(d);
    return d;
  }

  /** `d`'s descriptor, opened again (read-write, never creating) when the pool had closed it. */
  fd(d: PooledDescriptor): number {
    if (d.fd !== null) {
      this.order.touch(d);
      return d.fd;
    }
    this.makeRoom();
    let fd: number;
    try {
      fd = fs.openSync(d.path, fs.constants.O_RDWR);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`${d.path} was removed while its database had it open`);
      throw e;
    }
    this.reopens++;
    d.fd = fd;
    this.order.append(d);
    return fd;
  }

  /** Closes `d`'s descriptor for good (the file's close). */
  release(d: PooledDescriptor): void {
    if (d.fd !== null) this.close(d);
  }

  private makeRoom(): void {
    while (this.order.size >= this.limit && this.order.head !== null) this.close(this.order.head);
  }

  /** Closes the open descriptor of `d` and takes it out of the order. */
  private close(d: PooledDescriptor): void {
    const fd = d.fd!;
    this.order.remove(d);
    d.fd = null;
    fs.closeSync(fd);
  }
}
