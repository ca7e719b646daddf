/**
 * Insert collisions (src/sync/conflicts.ts) against `turso --sync-server`: the named
 * regression cases and a few seeded generated cases (insert-collisions.ts), each on a fresh
 * server process, stopped with its process group afterwards. OUTPOST_SEED=<seed> replays one
 * generated case; OUTPOST_TURSO_COLLISION_SEEDS sets how many run (default 3).
 */
import { describe, expect, test } from 'vitest';
import { tursoEndpoint } from '../support/networks.js';
import { startTursoServer } from '../support/server.js';
import { runCollisionCase } from './insert-collisions.js';
import { collisionRegressions } from './insert-collisions-regressions.js';

/** A fresh tursodb whose endpoint's close stops the process. */
async function freshTurso(): Promise<ReturnType<typeof tursoEndpoint>> {
  const turso = await startTursoServer();
  const endpoint = tursoEndpoint(turso.url);
  return {
    ...endpoint,
    close: async () => {
      await endpoint.close();
      await turso.stop();
    },
  };
}

describe('insert collisions, turso --sync-server', () => {
  collisionRegressions(freshTurso);
});

const { first, count } = process.env.OUTPOST_SEED
  ? { first: Number(process.env.OUTPOST_SEED), count: 1 }
  : { first: Number(process.env.OUTPOST_SEED_FROM ?? Math.floor(Date.now() / 1000) % 1_000_000), count: Number(process.env.OUTPOST_TURSO_COLLISION_SEEDS ?? 3) };

test(`generated insert collisions, turso --sync-server: ${count} seeds from ${first}`, async () => {
  console.log(`insert collisions (turso): seeds ${first}..${first + count - 1} (replay one with OUTPOST_SEED=<seed>)`);
  const failures: string[] = [];
  for (let seed = first; seed < first + count; seed++) {
    const server = await freshTurso();
    try {
      const r = await runCollisionCase(server, seed, { realUlps: 1 });
      console.log(`insert collisions (turso) seed ${seed}: ${r.rekeyed} rows re-keyed, ${r.reported} inserts reported, ${r.lost} answers lost`);
    } catch (e) {
      const message = e instanceof Error && e.message.includes(`seed ${seed}`) ? e.message : `insert collisions (turso) seed ${seed}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
      console.error(message);
      failures.push(message);
    } finally {
      await server.close();
    }
  }
  expect(failures).toEqual([]);
}, 600_000);
