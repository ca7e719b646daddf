import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryBackend } from '../src/opfs-vfs/storage/memory.js';
import { DescriptorPool } from '../src/opfs-vfs/storage/descriptors.js';
import { NodeFileBackend } from '../src/opfs-vfs/storage/node.js';
import { backendSuite } from './shared/backend-suite.js';

const dir = mkdtempSync(join(tmpdir(), 'outpost-backend-'));
let n = 0;

backendSuite('memory', {
  create: async () => new MemoryBackend(),
  createWithQuota: async (quota) => new MemoryBackend(quota),
});

backendSuite('node file descriptor', {
  create: async () => new NodeFileBackend(join(dir, `f${++n}`)),
});

// A pool of one descriptor, and another file used before every call: each call opens its
// file's descriptor again, closed for the other file's (descriptors.ts).
const thrashing = new DescriptorPool(1);
const other = new NodeFileBackend(join(dir, 'other'), thrashing);
backendSuite('node file descriptor from a pool that closes it before every call', {
  create: async () => {
    const backend = new NodeFileBackend(join(dir, `p${++n}`), thrashing);
    return new Proxy(backend, {
      get(target, key, receiver) {
        const value: unknown = Reflect.get(target, key, receiver);
        if (typeof value !== 'function' || key === 'close') return value;
        return (...args: unknown[]) => {
          other.size();
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
  },
});
