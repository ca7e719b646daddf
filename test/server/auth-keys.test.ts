/**
 * Tokens signed by an identity provider: verified against a public key file or a JWKS URL
 * (served here by a local HTTP server), with issuer and audience checks, beside the shared
 * HS256 secret. The matrix must still refuse what it must: a wrong key, an expired token, a
 * wrong issuer or audience, `alg: none`, and an HS256 token when only public keys are
 * configured (algorithm confusion: the public key used as an HMAC secret).
 */
import { createHmac } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CryptoKey, SignJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mintToken } from '../../src/server/auth.js';
import type { OutpostServer } from '../../src/server/server.js';
import { SECRET, batch, rawPipeline, startServer } from '../support/server.js';

const ISSUER = 'https://id.example';
const AUDIENCE = 'outpost';

interface Pair {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
}

async function sign(key: CryptoKey, alg: string, claims: Record<string, unknown> = {}, options: { kid?: string; issuer?: string; audience?: string; expires?: string } = {}): Promise<string> {
  let jwt = new SignJWT({ db: 'idp', role: 'write', ...claims })
    .setProtectedHeader({ alg, ...(options.kid ? { kid: options.kid } : {}) })
    .setIssuedAt()
    .setIssuer(options.issuer ?? ISSUER)
    .setAudience(options.audience ?? AUDIENCE)
    .setSubject('user-1');
  if (options.expires) jwt = jwt.setExpirationTime(options.expires);
  return jwt.sign(key);
}

/** A JWT with `alg: none` and no signature. */
function unsigned(): string {
  const part = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${part({ alg: 'none', typ: 'JWT' })}.${part({ db: 'idp', role: 'write', iss: ISSUER, aud: AUDIENCE })}.`;
}

/** An HS256 JWT whose HMAC key is `secret` byte for byte (the classic confusion attack uses the public key's PEM). */
function hs256With(secret: string): string {
  const part = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  const input = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ db: 'idp', role: 'write', iss: ISSUER, aud: AUDIENCE })}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

async function status(base: string, token: string): Promise<number> {
  return (await rawPipeline(`${base}/db/idp`, batch('SELECT 1'), token)).status;
}

describe('a public key file (Ed25519)', () => {
  let server: OutpostServer;
  let base: string;
  let ed: Pair;
  let pem: string;

  beforeAll(async () => {
    ed = await generateKeyPair('EdDSA', { extractable: true });
    pem = await exportSPKI(ed.publicKey);
    ({ server, url: base } = await startServer({ authSecret: undefined, authPublicKey: pem, authIssuer: ISSUER, authAudience: AUDIENCE }));
  });
  afterAll(() => server.close());

  test('a token signed with the private key is accepted', async () => {
    expect(await status(base, await sign(ed.privateKey, 'EdDSA'))).toBe(200);
  });

  test('a token signed with another key gets 401', async () => {
    const other = await generateKeyPair('EdDSA');
    expect(await status(base, await sign(other.privateKey, 'EdDSA'))).toBe(401);
  });

  test('an expired token gets 401 and says so', async () => {
    const res = await rawPipeline(`${base}/db/idp`, batch('SELECT 1'), await sign(ed.privateKey, 'EdDSA', {}, { expires: '-1m' }));
    expect(res.status).toBe(401);
    expect(res.json.error).toMatch(/expired/);
  });

  test('a wrong audience gets 401 and says so', async () => {
    const res = await rawPipeline(`${base}/db/idp`, batch('SELECT 1'), await sign(ed.privateKey, 'EdDSA', {}, { audience: 'someone-else' }));
    expect(res.status).toBe(401);
    expect(res.json.error).toMatch(/audience/);
  });

  test('a wrong issuer gets 401 and says so', async () => {
    const res = await rawPipeline(`${base}/db/idp`, batch('SELECT 1'), await sign(ed.privateKey, 'EdDSA', {}, { issuer: 'https://evil.example' }));
    expect(res.status).toBe(401);
    expect(res.json.error).toMatch(/issuer/);
  });

  test('alg none gets 401', async () => {
    expect(await status(base, unsigned())).toBe(401);
  });

  test('an HS256 token keyed with the public key itself gets 401 (algorithm confusion)', async () => {
    const res = await rawPipeline(`${base}/db/idp`, batch('SELECT 1'), hs256With(pem));
    expect(res.status).toBe(401);
    expect(res.json.error).toMatch(/HS256 is not accepted/);
  });

  test('an HS256 token from outpost token gets 401 when no secret is configured', async () => {
    expect(await status(base, await mintToken(SECRET, { db: 'idp', role: 'write', issuer: ISSUER, audience: AUDIENCE }))).toBe(401);
  });

  test('a valid signature with another database in db gets 403', async () => {
    expect(await status(base, await sign(ed.privateKey, 'EdDSA', { db: 'elsewhere' }))).toBe(403);
  });
});

describe('a JWKS URL (RS256 and EdDSA) beside the shared secret', () => {
  let server: OutpostServer;
  let base: string;
  let jwksServer: http.Server;
  let rsa: Pair;
  let ed: Pair;
  let jwksRequests = 0;

  beforeAll(async () => {
    rsa = await generateKeyPair('RS256');
    ed = await generateKeyPair('EdDSA');
    const keys = [
      { ...(await exportJWK(rsa.publicKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' },
      { ...(await exportJWK(ed.publicKey)), kid: 'ed-1', alg: 'EdDSA', use: 'sig' },
    ];
    jwksServer = http.createServer((_req, res) => {
      jwksRequests++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys }));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', () => resolve()));
    const jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;
    ({ server, url: base } = await startServer({ authSecret: SECRET, authJwksUrl: jwksUrl, authIssuer: ISSUER, authAudience: AUDIENCE }));
  });
  afterAll(async () => {
    await server.close();
    await new Promise((resolve) => jwksServer.close(resolve));
  });

  test('an RS256 token with a key id from the JWKS is accepted', async () => {
    expect(await status(base, await sign(rsa.privateKey, 'RS256', {}, { kid: 'rsa-1' }))).toBe(200);
    expect(jwksRequests).toBeGreaterThan(0);
  });

  test('an EdDSA token from the JWKS is accepted', async () => {
    expect(await status(base, await sign(ed.privateKey, 'EdDSA', {}, { kid: 'ed-1' }))).toBe(200);
  });

  test('an RS256 token signed by a key not in the JWKS gets 401', async () => {
    const other = await generateKeyPair('RS256');
    expect(await status(base, await sign(other.privateKey, 'RS256', {}, { kid: 'rsa-1' }))).toBe(401);
  });

  test('an HS256 token from the shared secret still works, with the issuer and audience required', async () => {
    expect(await status(base, await mintToken(SECRET, { db: 'idp', role: 'write', issuer: ISSUER, audience: AUDIENCE }))).toBe(200);
    expect(await status(base, await mintToken(SECRET, { db: 'idp', role: 'write' }))).toBe(401);
  });

  test('alg none gets 401', async () => {
    expect(await status(base, unsigned())).toBe(401);
  });

  test('a read-role token from the JWKS may read but not write', async () => {
    const read = await sign(rsa.privateKey, 'RS256', { role: 'read' }, { kid: 'rsa-1' });
    expect(await status(base, read)).toBe(200);
    const res = await rawPipeline(`${base}/db/idp`, batch('CREATE TABLE never(v)'), read);
    expect(res.json.results[0].response.result.step_errors[0].code).toBe('SQLITE_READONLY');
  });
});

describe('an unreachable JWKS', () => {
  test('answers 503 with a clear reason (the client may retry), and the server keeps serving', async () => {
    const { server, url } = await startServer({ authSecret: SECRET, authJwksUrl: 'http://127.0.0.1:9/jwks.json' });
    try {
      const rsa = await generateKeyPair('RS256');
      const res = await rawPipeline(`${url}/db/idp`, batch('SELECT 1'), await sign(rsa.privateKey, 'RS256'));
      expect(res.status).toBe(503);
      expect(res.json).toMatchObject({ code: 'AUTH_UNAVAILABLE', error: expect.stringMatching(/JWKS could not be fetched/) });
      expect(await status(url, await mintToken(SECRET, { db: 'idp', role: 'write' }))).toBe(200);
    } finally {
      await server.close();
    }
  });
});
