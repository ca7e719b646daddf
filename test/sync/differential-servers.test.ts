/**
 * The differential fuzzer (differential.ts) over HTTP: a few seeds against Outpost's server with
 * Turso's client (@tursodatabase/sync) as a fourth client, and a few against
 * `turso --sync-server` (one process per seed, its process group stopped after), with the
 * features Turso's engine can open (`tursoCompatible`). OUTPOST_SEED replays one seed here too;
 * OUTPOST_FUZZ_SERVER_SEEDS sets how many per server (default 4).
 */
import { test } from 'vitest';
import { featuresFrom } from '../support/sql-fuzz.js';
import { runFuzzSeeds } from './differential.js';
import { seedRange } from './simulation.js';

const { first } = seedRange(1);
const count = process.env.OUTPOST_SEED ? 1 : Number(process.env.OUTPOST_FUZZ_SERVER_SEEDS ?? 4);
const features = featuresFrom(process.env.OUTPOST_FUZZ_FEATURES ?? 'passing');

test(`differential fuzz, Outpost server over HTTP with Turso's client: ${count} seeds from ${first}`, async () => {
  await runFuzzSeeds(first, count, { features, server: 'outpost-http', clients: 2, tursoClient: true, steps: 30, crashes: true, lostAnswers: true }, 'differential HTTP + Turso client');
}, 1_200_000);

test(`differential fuzz, turso --sync-server: ${count} seeds from ${first}`, async () => {
  await runFuzzSeeds(first, count, { features, server: 'turso', clients: 2, tursoClient: true, steps: 30, crashes: true, lostAnswers: true }, 'differential turso --sync-server');
}, 1_200_000);
