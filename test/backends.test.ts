import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryBackend } from '../src/opfs-vfs/storage/memory.js';
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
