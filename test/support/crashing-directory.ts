/**
 * A storage directory that "dies" at its k-th mutating operation (write, truncate or flush):
 * that operation and every later one, reads included, fail as after a killed process. The
 * crash tests open a database over it, let it crash at every k in turn, and reopen the files
 * with a plain directory.
 */
import type { StorageBackend, StorageDirectory } from '../../src/opfs-vfs/storage/backend.js';

export class Crash extends Error {
  override name = 'InjectedCrash';
}

/** A directory whose files fail from the k-th mutating operation on. */
export class CrashingDirectory implements StorageDirectory {
  readonly label: string;
  ops = 0;
  crashed = false;
  /** The file and kind of each mutating operation, in order (`fileOps[k - 1]` is the k-th's). */
  readonly fileOps: { name: string; kind: 'write' | 'truncate' | 'flush' }[] = [];
  constructor(
    private readonly inner: StorageDirectory,
    private readonly crashAt: number,
  ) {
    this.label = inner.label;
  }
  private tick(name: string, kind: 'write' | 'truncate' | 'flush'): void {
    if (this.crashed) throw new Crash('the process is gone');
    this.fileOps.push({ name, kind });
    if (++this.ops >= this.crashAt) {
      this.crashed = true;
      throw new Crash(`injected crash at operation ${this.ops}`);
    }
  }
  fileSize(name: string): Promise<number | null> {
    return this.inner.fileSize(name);
  }
  async open(name: string): Promise<StorageBackend> {
    const f = await this.inner.open(name);
    return {
      read: (d, o) => {
        if (this.crashed) throw new Crash('the process is gone');
        return f.read(d, o);
      },
      write: (s, o) => {
        this.tick(name, 'write');
        f.write(s, o);
      },
      truncate: (n) => {
        this.tick(name, 'truncate');
        f.truncate(n);
      },
      flush: () => {
        this.tick(name, 'flush');
        f.flush();
      },
      size: () => f.size(),
      close: () => f.close(),
    };
  }
  async release(): Promise<void> {}
}
