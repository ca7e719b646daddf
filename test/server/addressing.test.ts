/** Which database a request path and Host name (addressing.ts), without a server. */
import { describe, expect, test } from 'vitest';
import { nameFromGrant, resolveTarget } from '../../src/server/addressing.js';
import { HttpError } from '../../src/server/http.js';

const parts = (path: string): string[] => path.split('/').filter(Boolean);

function refusal(fn: () => unknown): { status: number; code: string; message: string } {
  try {
    fn();
  } catch (e) {
    if (e instanceof HttpError) return { status: e.status, code: e.code, message: e.message };
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('resolveTarget', () => {
  test('the path names the database, whatever the host', () => {
    expect(resolveTarget(parts('/db/notes/v2/pipeline'), 'other.db.example.com', 'db.example.com')).toEqual({ name: 'notes', endpoint: 'pipeline', form: 'path' });
    expect(resolveTarget(parts('/db/notes/v3/pipeline'), undefined, null).endpoint).toBe('pipeline');
    expect(resolveTarget(parts('/db/notes/v3/cursor'), undefined, null).endpoint).toBe('cursor');
    expect(resolveTarget(parts('/db/notes/pull-updates'), undefined, null).endpoint).toBe('pull-updates');
    // A database may be called v2: the endpoint after it decides.
    expect(resolveTarget(parts('/db/v2/v2/pipeline'), undefined, null).name).toBe('v2');
  });

  test('a host under the base host names the database by its first label', () => {
    expect(resolveTarget(parts('/v2/pipeline'), 'notes.db.example.com', 'db.example.com')).toEqual({ name: 'notes', endpoint: 'pipeline', form: 'host' });
    expect(resolveTarget(parts('/v2/pipeline'), 'Notes.eu.db.example.com:8443', 'db.example.com').name).toBe('notes');
    expect(resolveTarget(parts('/db/v2/pipeline'), 'notes.db.example.com', 'db.example.com').name).toBe('notes');
    expect(resolveTarget(parts('/pull-updates'), 'notes.db.example.com.', 'db.example.com').name).toBe('notes');
  });

  test('without a name in path or host, the token decides', () => {
    expect(resolveTarget(parts('/db/v2/pipeline'), '127.0.0.1:8080', null)).toEqual({ name: null, endpoint: 'pipeline', form: 'token' });
    expect(resolveTarget(parts('/v2/pipeline'), 'db.example.com', 'db.example.com').form).toBe('token');
    expect(resolveTarget(parts('/v2/pipeline'), 'notes.elsewhere.com', 'db.example.com').form).toBe('token');
  });

  test('unknown endpoints are 404s and bad names 400s', () => {
    expect(refusal(() => resolveTarget(parts('/db/notes/v2/other'), undefined, null))).toMatchObject({ status: 404, code: 'NOT_FOUND' });
    expect(refusal(() => resolveTarget(parts('/db/notes'), undefined, null)).status).toBe(404);
    expect(refusal(() => resolveTarget(['db', '../etc', 'pull-updates'], undefined, null))).toMatchObject({ status: 400, code: 'INVALID_NAME' });
    expect(refusal(() => resolveTarget(parts('/v2/pipeline'), '-x-.db.example.com', 'db.example.com'))).toMatchObject({ status: 400, code: 'INVALID_NAME' });
  });
});

describe('nameFromGrant', () => {
  test('a token for one database names it', () => {
    expect(nameFromGrant({ databases: ['notes'], role: 'write', subject: null })).toBe('notes');
  });

  test('a token for many, or for all, or no token, is a 400 that says to add the slash', () => {
    for (const grant of [{ databases: ['a', 'b'], role: 'write' as const, subject: null }, { databases: '*' as const, role: 'admin' as const, subject: null }, null]) {
      const r = refusal(() => nameFromGrant(grant));
      expect(r).toMatchObject({ status: 400, code: 'DATABASE_NAME_MISSING' });
      expect(r.message).toContain('trailing slash');
    }
  });
});
