/**
 * Each holder (a token's subject) may keep at most its share of the server's stream slots
 * open (`maxOpenStreamsPerHolder`): one tenant holding streams on many databases cannot use up
 * `maxOpenStreams` and block streams server-wide. An over-share stream gets 503 BUSY, and its
 * transaction is rolled back (nothing it wrote stays). Tokens without a subject cannot be told
 * apart, so all their streams together take at most `maxOpenStreamsWithoutSubject`: many such
 * tokens, each naming another database, cannot fill the slots of the others.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mintToken } from '../../src/server/auth.js';
import type { OutpostServer } from '../../src/server/server.js';
import { int, pick, rng, testSeed } from '../support/generate.js';
import { SECRET, rawPipeline, startServer } from '../support/server.js';

const exec = (sql: string): unknown => ({ type: 'execute', stmt: { sql, want_rows: true } });
const MAX = 6;
const PER_HOLDER = 2;

describe('stream slots shared out by holder', () => {
  let server: OutpostServer;
  let url = '';
  let admin = '';

  beforeAll(async () => {
    ({ server, url } = await startServer({ maxOpenStreams: MAX, maxOpenStreamsPerHolder: PER_HOLDER, streamIdleMs: 600_000, streamLifetimeMs: 600_000 }));
    admin = await mintToken(SECRET, { db: '*', role: 'admin' });
  });
  afterAll(async () => {
    await server.close();
  });

  test('generated: tenants opening streams on their databases get their share, the rest 503 BUSY with nothing written; closed streams free their slots', async () => {
    const seed = testSeed();
    const random = rng(seed);
    let cases = 0;
    for (let round = 0; round < 4; round++) {
      const tenants = Array.from({ length: int(random, 3, 5) }, (_, i) => `r${round}t${i}`);
      const tokens = new Map<string, string>();
      for (const t of tenants) tokens.set(t, await mintToken(SECRET, { db: '*', role: 'write', subject: t }));
      const held = new Map<string, number>();
      const open: { db: string; baton: string; token: string }[] = [];
      const attempts = int(random, 6, 14);
      for (let a = 0; a < attempts; a++) {
        const tenant = pick(random, tenants);
        const db = `${url}/db/${tenant}-${a}`;
        const token = tokens.get(tenant)!;
        expect((await rawPipeline(db, { baton: null, requests: [exec('CREATE TABLE IF NOT EXISTS t(v)')] }, token)).status).toBe(200);
        const answer = await rawPipeline(db, { baton: null, requests: [exec('BEGIN'), exec(`INSERT INTO t VALUES ('${tenant} ${a}')`)] }, token);
        const mine = held.get(tenant) ?? 0;
        const what = `seed ${seed} round ${round}: ${tenant} attempt ${a} (holds ${mine}, ${open.length} open)`;
        if (mine < PER_HOLDER && open.length < MAX) {
          expect(answer.status, what).toBe(200);
          open.push({ db, baton: answer.json.baton as string, token });
          held.set(tenant, mine + 1);
        } else {
          expect(answer.status, what).toBe(503);
          expect(answer.json.code, what).toBe('BUSY');
          expect(answer.json.error, what).toMatch(open.length >= MAX ? /its limit/ : /its share/);
          const rows = await rawPipeline(db, { baton: null, requests: [exec('SELECT count(*) FROM t')] }, admin);
          expect(rows.json.results[0].response.result.rows, what).toEqual([[{ type: 'integer', value: '0' }]]);
        }
        cases++;
      }
      for (const s of open) {
        const closed = await rawPipeline(s.db, { baton: s.baton, requests: [exec('COMMIT'), { type: 'close' }] }, s.token);
        expect(closed.status, `seed ${seed}`).toBe(200);
      }
    }
    // Every slot is free again: a tenant gets its whole share.
    const token = await mintToken(SECRET, { db: '*', role: 'write', subject: 'last' });
    for (let i = 0; i < PER_HOLDER; i++) {
      const answer = await rawPipeline(`${url}/db/last-${i}`, { baton: null, requests: [exec('BEGIN'), exec('SELECT 1')] }, token);
      expect(answer.status, `seed ${seed}`).toBe(200);
      await rawPipeline(`${url}/db/last-${i}`, { baton: answer.json.baton, requests: [exec('ROLLBACK'), { type: 'close' }] }, token);
    }
    console.log(`stream share: seed ${seed}, ${cases} stream openings checked`);
  });
});

describe('stream slots of tokens without a subject', () => {
  const MAX_ALL = 8;
  const SHARE = 2;
  const WITHOUT_SUBJECT = 3;
  let server: OutpostServer;
  let url = '';
  let admin = '';

  beforeAll(async () => {
    ({ server, url } = await startServer({ maxOpenStreams: MAX_ALL, maxOpenStreamsPerHolder: SHARE, maxOpenStreamsWithoutSubject: WITHOUT_SUBJECT, streamIdleMs: 600_000, streamLifetimeMs: 600_000 }));
    admin = await mintToken(SECRET, { db: '*', role: 'admin' });
  });
  afterAll(async () => {
    await server.close();
  });

  test('generated: many tokens without a subject, each naming other databases, share one pool and cannot take the slots of tokens with a subject or the admin', async () => {
    const seed = testSeed();
    const random = rng(seed);
    let cases = 0;
    const refused = new Map<string, number>();
    for (let round = 0; round < 4; round++) {
      /** A token without a subject naming these four databases: one holder, at most SHARE of its streams. */
      const listDbs = [0, 1, 2, 3].map((i) => `r${round}list${i}`);
      const listToken = await mintToken(SECRET, { db: listDbs, role: 'write' });
      const subjects = ['alice', 'bob'];
      const subjectTokens = new Map<string, string>();
      for (const s of subjects) subjectTokens.set(s, await mintToken(SECRET, { db: '*', role: 'write', subject: `r${round}${s}` }));
      const open: { db: string; baton: string; token: string; holder: string; withoutSubject: boolean }[] = [];
      const attempts = int(random, 10, 18);
      for (let a = 0; a < attempts; a++) {
        const kind = pick(random, ['one-database', 'one-database', 'one-database', 'list', 'subject', 'admin'] as const);
        let name = `r${round}a${a}`;
        let token = admin;
        let holder = `admin:${name}`;
        if (kind === 'one-database') {
          // A fresh token naming only its own database: without the pool, a holder of its own each time.
          token = await mintToken(SECRET, { db: name, role: 'write' });
          holder = `databases:${name}`;
        } else if (kind === 'list') {
          const free = listDbs.find((d) => !open.some((s) => s.db.endsWith(`/db/${d}`)));
          name = free!;
          token = listToken;
          holder = 'databases:list';
        } else if (kind === 'subject') {
          const subject = pick(random, subjects);
          token = subjectTokens.get(subject)!;
          holder = `subject:${subject}`;
        }
        const withoutSubject = kind === 'one-database' || kind === 'list';
        const db = `${url}/db/${name}`;
        expect((await rawPipeline(db, { baton: null, requests: [exec('CREATE TABLE IF NOT EXISTS t(v)')] }, admin)).status).toBe(200);
        const before = (await rawPipeline(db, { baton: null, requests: [exec('SELECT count(*) FROM t')] }, admin)).json.results[0].response.result.rows;
        const answer = await rawPipeline(db, { baton: null, requests: [exec('BEGIN'), exec(`INSERT INTO t VALUES ('${kind} ${a}')`)] }, token);
        const holding = open.filter((s) => s.holder === holder).length;
        const pooled = open.filter((s) => s.withoutSubject).length;
        const what = `seed ${seed} round ${round}: ${kind} attempt ${a} on ${name} (${open.length} open, ${pooled} without a subject, its holder ${holding})`;
        const expected = open.length >= MAX_ALL ? /its limit/ : kind !== 'admin' && holding >= SHARE ? /its share/ : withoutSubject && pooled >= WITHOUT_SUBJECT ? /without a subject/ : null;
        if (expected === null) {
          expect(answer.status, what).toBe(200);
          open.push({ db, baton: answer.json.baton as string, token, holder, withoutSubject });
        } else {
          expect(answer.status, what).toBe(503);
          expect(answer.json.code, what).toBe('BUSY');
          expect(answer.json.error, what).toMatch(expected);
          refused.set(expected.source, (refused.get(expected.source) ?? 0) + 1);
          const rows = await rawPipeline(db, { baton: null, requests: [exec('SELECT count(*) FROM t')] }, admin);
          expect(rows.json.results[0].response.result.rows, what).toEqual(before);
        }
        cases++;
      }
      for (const s of open) {
        const closed = await rawPipeline(s.db, { baton: s.baton, requests: [exec('COMMIT'), { type: 'close' }] }, s.token);
        expect(closed.status, `seed ${seed}`).toBe(200);
      }
    }
    console.log(`stream share without a subject: seed ${seed}, ${cases} stream openings checked, refused: ${[...refused].map(([why, n]) => `${why} ${n}`).join(', ')}`);
  });
});
