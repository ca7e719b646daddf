/**
 * Runs the seeded sync simulation (simulation.ts) for many seeds. Set OUTPOST_SEED to replay
 * one seed, OUTPOST_SEEDS for how many (default 200). `npm run simulate` runs a longer one.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { OutpostServer } from '../../src/server/server.js';
import { startServer } from '../support/server.js';
import { runSimulation } from './simulation.js';

let server: OutpostServer;
let base: string;
beforeAll(async () => {
  ({ server, url: base } = await startServer({ auth: false, maxOpenDatabases: 16 }));
});
afterAll(() => server.close());

const single = process.env.OUTPOST_SEED;
const first = single ? Number(single) : Math.floor(Date.now() / 1000) % 100_000;
const count = single ? 1 : Number(process.env.OUTPOST_SEEDS ?? 200);

test(`sync simulation: ${count} seeds from ${first}`, async () => {
  console.log(`simulation seeds ${first}..${first + count - 1} (replay one with OUTPOST_SEED=<seed>)`);
  let crashes = 0;
  let lost = 0;
  for (let seed = first; seed < first + count; seed++) {
    const r = await runSimulation(base, seed, { execTrusted: (db, sql) => server.execTrusted(db, sql) });
    crashes += r.crashes;
    lost += r.lost;
  }
  expect(crashes).toBeGreaterThan(0);
  expect(lost).toBeGreaterThan(0);
}, 600_000);
