/**
 * The balancer configuration (src/server/haproxy.ts): generated server lists give configurations
 * that HAProxy itself accepts (`haproxy -c`), and bad names or ports are refused before HAProxy
 * sees them.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { haproxyConfig } from '../../src/server/haproxy.js';
import { int, rng, testSeed } from '../support/generate.js';
import { tempDir } from '../support/server.js';

const HAPROXY = ['/usr/sbin/haproxy', '/usr/bin/haproxy'].find((p) => existsSync(p));

test('generated server lists give configurations HAProxy accepts', () => {
  if (!HAPROXY) throw new Error('haproxy is not installed: apt-get install haproxy (.ci/run installs it)');
  const seed = testSeed();
  console.log(`haproxy config seed ${seed} (OUTPOST_SEED replays it)`);
  const random = rng(seed);
  const dir = tempDir('outpost-haproxy-config-');
  for (let round = 0; round < 10; round++) {
    const servers = Array.from({ length: int(random, 1, 8) }, (_, i) => ({ name: `p${i}_${int(random, 0, 999)}`, host: `10.0.${int(random, 0, 255)}.${int(random, 1, 254)}`, port: int(random, 1, 65535) }));
    const file = join(dir, `c${round}.cfg`);
    writeFileSync(file, haproxyConfig({ bind: { host: '127.0.0.1', port: int(random, 1024, 65535) }, servers }));
    // Exits non-zero, which throws, on a configuration it does not accept.
    execFileSync(HAPROXY, ['-c', '-q', '-f', file], { stdio: 'pipe' });
  }
});

test('a server name or host HAProxy would misread, or a port that is not one, is refused', () => {
  const bind = { host: '127.0.0.1', port: 8080 };
  expect(() => haproxyConfig({ bind, servers: [] })).toThrow(/at least one server/);
  expect(() => haproxyConfig({ bind, servers: [{ name: 'a b', host: 'h', port: 1 }] })).toThrow(/letters, digits/);
  expect(() => haproxyConfig({ bind, servers: [{ name: 'a\nlisten x', host: 'h', port: 1 }] })).toThrow(/letters, digits/);
  expect(() => haproxyConfig({ bind, servers: [{ name: 'a', host: 'h', port: 70000 }] })).toThrow(/not a TCP port/);
  expect(() => haproxyConfig({ bind, servers: [{ name: 'a', host: 'h\n  server evil 1.2.3.4', port: 1 }] })).toThrow(/not a host name/);
  expect(() => haproxyConfig({ bind: { host: '0.0.0.0 ssl', port: 1 }, servers: [{ name: 'a', host: 'h', port: 1 }] })).toThrow(/not a host name/);
});
