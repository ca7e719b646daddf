/**
 * The seeded sync simulation (simulation.ts) through a real Outpost server and the HTTP
 * transport, with clients on Node files: fewer seeds than the in-process run, so that the HTTP
 * path and the Node backend under crashes stay covered. OUTPOST_SEED replays one seed here too.
 */
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { OutpostServer } from '../../src/server/server.js';
import { startServer } from '../support/server.js';
import { httpNetwork } from '../support/networks.js';
import { optionsFromEnv, runSeeds, seedRange } from './simulation.js';

const { first } = seedRange(20);
const count = process.env.OUTPOST_SEED ? 1 : 20;

let server: OutpostServer;
let base: string;
beforeAll(async () => {
  ({ server, url: base } = await startServer({ auth: false, maxOpenDatabases: 16 }));
});
afterAll(() => server.close());

/** Files of simulated clients this process holds open (Linux), or null where /proc is missing. */
function openClientFiles(): string[] | null {
  if (!existsSync('/proc/self/fd')) return null;
  return readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      return /outpost-sim-\d+-/.test(target) ? [target] : [];
    } catch {
      return []; // closed meanwhile (the descriptor that listed the folder)
    }
  });
}

test(`sync simulation, HTTP and Node files: ${count} seeds from ${first}`, async () => {
  const r = await runSeeds(httpNetwork(base, server), first, count, { ...optionsFromEnv(), storage: 'node' }, 'HTTP');
  if (count >= 20) expect(r.crashes).toBeGreaterThan(0);
  // A crashed client's files are closed with its connection: five descriptors per crash
  // leaked before, and a long run died with EMFILE.
  const leaked = openClientFiles();
  if (leaked !== null) expect(leaked).toEqual([]);
}, 600_000);
