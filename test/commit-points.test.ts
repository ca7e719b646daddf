/**
 * Commit points (src/engine/commit-points.ts): what a statement is, from its text, and what
 * must happen around it for change capture. Pure tables; capture.test.ts shows the effect.
 */
import { describe, expect, test } from 'vitest';
import { type CommitPlan, CommitTracker, type StatementKind, classify } from '../src/engine/commit-points.js';
import { stripLeadingComments } from '../src/engine/statements.js';

/** [SQL as written, SQLite's readonly flag for it, kind, savepoint name]. */
const CLASSIFIED: [string, boolean, StatementKind, string | null][] = [
  ['SELECT * FROM t', true, 'read', null],
  ['WITH x AS (SELECT 1) SELECT * FROM x', true, 'read', null],
  ['INSERT INTO t VALUES (1)', false, 'write', null],
  ['update t set v = 2', false, 'write', null],
  ['DELETE FROM t', false, 'write', null],
  ['REPLACE INTO t VALUES (1)', false, 'write', null],
  ['WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x', false, 'write', null],
  ['BEGIN', false, 'begin', null],
  ['BEGIN IMMEDIATE TRANSACTION', false, 'begin', null],
  ['begin deferred', false, 'begin', null],
  ['COMMIT', false, 'commit', null],
  ['COMMIT TRANSACTION', false, 'commit', null],
  ['END', false, 'commit', null],
  ['end transaction', false, 'commit', null],
  ['ROLLBACK', false, 'rollback', null],
  ['ROLLBACK TRANSACTION', false, 'rollback', null],
  ['ROLLBACK TO sp', false, 'rollback-to', 'sp'],
  ['ROLLBACK TO SAVEPOINT sp', false, 'rollback-to', 'sp'],
  ['rollback transaction to savepoint "SP"', false, 'rollback-to', 'sp'],
  ['SAVEPOINT sp', false, 'savepoint', 'sp'],
  ['SAVEPOINT Outer_1', false, 'savepoint', 'outer_1'],
  ['SAVEPOINT "Quoted"', false, 'savepoint', 'quoted'],
  ['SAVEPOINT [bracketed]', false, 'savepoint', 'bracketed'],
  ['SAVEPOINT `ticked`', false, 'savepoint', 'ticked'],
  ['RELEASE sp', false, 'release', 'sp'],
  ['RELEASE SAVEPOINT sp', false, 'release', 'sp'],
  ['release savepoint "SP"', false, 'release', 'sp'],
  ['RELEASE [Outer_1]', false, 'release', 'outer_1'],
  ['CREATE TABLE t(a)', false, 'ddl', null],
  ['CREATE INDEX i ON t(a)', false, 'ddl', null],
  ['CREATE VIEW v AS SELECT 1', false, 'ddl', null],
  ['CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END', false, 'ddl', null],
  ['CREATE TEMP TABLE x(a)', false, 'other', null],
  ['create temporary view v as select 1', false, 'other', null],
  ['DROP TABLE t', false, 'ddl', null],
  ['ALTER TABLE t ADD COLUMN b', false, 'ddl', null],
  ['PRAGMA user_version = 3', false, 'header', null],
  ['pragma main.application_id=7', false, 'header', null],
  ['PRAGMA "user_version"(4)', false, 'header', null],
  ['PRAGMA user_version', true, 'other', null],
  ['PRAGMA temp.user_version = 3', false, 'other', null],
  ['PRAGMA cache_size = 100', false, 'other', null],
  ['VACUUM', false, 'other', null],
  ["ATTACH 'x.db' AS x", false, 'other', null],
  ['DETACH x', false, 'other', null],
  ['REINDEX', false, 'other', null],
  ['ANALYZE', false, 'other', null],
  // Comments and whitespace before a statement do not hide what it is.
  ['-- closing the transaction\nCOMMIT', false, 'commit', null],
  ['/* a block */ RELEASE SAVEPOINT sp', false, 'release', 'sp'],
  ['  -- one\n  /* two */\n  -- three\n  SAVEPOINT "sp"', false, 'savepoint', 'sp'],
];

describe('classify', () => {
  test.each(CLASSIFIED)('%j is %s', (sql, readonly, kind, savepoint) => {
    expect(classify(stripLeadingComments(sql), readonly)).toEqual({ kind, savepoint });
  });
});

/** Runs `steps` through one tracker: [SQL, transaction open before it, open after it, expected plan]. */
function plans(steps: [string, boolean, boolean][]): CommitPlan[] {
  const tracker = new CommitTracker();
  return steps.map(([sql, before, after]) => {
    const plan = tracker.plan(classify(sql, sql.startsWith('SELECT')), before);
    tracker.settle(after);
    return plan;
  });
}

describe('CommitTracker', () => {
  test('an autocommit write or DDL is wrapped; inside a transaction it just runs, DDL noted', () => {
    expect(
      plans([
        ['INSERT INTO t VALUES (1)', false, false],
        ['CREATE TABLE u(a)', false, false],
        ['SELECT 1', false, false],
        ['BEGIN', false, true],
        ['INSERT INTO t VALUES (2)', true, true],
        ['CREATE TABLE w(a)', true, true],
        ['COMMIT', true, false],
      ]),
    ).toEqual(['wrap', 'wrap', 'run', 'run', 'run', 'note-ddl', 'record-first']);
  });

  test('a PRAGMA that sets user_version or application_id is wrapped or noted like DDL', () => {
    expect(
      plans([
        ['PRAGMA user_version = 2', false, false],
        ['BEGIN', false, true],
        ['PRAGMA application_id = 9', true, true],
        ['PRAGMA user_version', true, true],
        ['COMMIT', true, false],
      ]),
    ).toEqual(['wrap', 'run', 'note-ddl', 'run', 'record-first']);
  });

  test('COMMIT or END records first only when a transaction is open', () => {
    expect(plans([['COMMIT', false, false]])).toEqual(['run']);
    expect(plans([['BEGIN', false, true], ['END', true, false]])).toEqual(['run', 'record-first']);
  });

  test('the RELEASE of the savepoint that opened the transaction is its commit point; inner ones are not', () => {
    expect(
      plans([
        ['SAVEPOINT outer', false, true],
        ['INSERT INTO t VALUES (1)', true, true],
        ['SAVEPOINT inner', true, true],
        ['RELEASE inner', true, true],
        ['ROLLBACK TO outer', true, true],
        ['RELEASE SAVEPOINT "OUTER"', true, false],
      ]),
    ).toEqual(['run', 'run', 'run', 'run', 'run', 'record-first']);
  });

  test('a SAVEPOINT inside BEGIN opens nothing: its RELEASE is not a commit point', () => {
    expect(
      plans([
        ['BEGIN', false, true],
        ['SAVEPOINT sp', true, true],
        ['RELEASE sp', true, true],
        ['COMMIT', true, false],
      ]),
    ).toEqual(['run', 'run', 'run', 'record-first']);
  });

  test('ROLLBACK is planned as a rollback, and forgets the savepoint that opened the transaction', () => {
    expect(
      plans([
        ['SAVEPOINT a', false, true],
        ['ROLLBACK', true, false],
        ['BEGIN', false, true],
        ['SAVEPOINT a', true, true],
        ['RELEASE a', true, true],
      ]),
    ).toEqual(['run', 'rollback', 'run', 'run', 'run']);
  });

  test('a transaction a SAVEPOINT opened and COMMIT ended leaves no savepoint behind', () => {
    expect(
      plans([
        ['SAVEPOINT a', false, true],
        ['COMMIT', true, false],
        ['BEGIN', false, true],
        ['SAVEPOINT a', true, true],
        ['RELEASE a', true, true],
      ]),
    ).toEqual(['run', 'record-first', 'run', 'run', 'run']);
  });
});
