/**
 * The official public worker API of @sqlite.org/sqlite-wasm, as its users start it: this
 * worker installs opfs-sahpool and then starts the Worker1 API; the page talks to it with
 * `sqlite3Worker1Promiser` (main.ts `runWorker1Classic`). The pool's folder is named after the
 * worker's name (one per run).
 */
import sqlite3InitModule from '@sqlite.org/sqlite-wasm';

interface Worker1Sqlite {
  installOpfsSAHPoolVfs(options: { name: string; directory: string }): Promise<unknown>;
  initWorker1API(): void;
}

const sqlite3 = (await (sqlite3InitModule as unknown as () => Promise<Worker1Sqlite>)()) as Worker1Sqlite;
await sqlite3.installOpfsSAHPoolVfs({ name: 'opfs-sahpool', directory: `/bench-worker1-${self.name}` });
sqlite3.initWorker1API();
