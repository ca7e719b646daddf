/**
 * Verified tokens are remembered (auth.ts): a token seen before is not checked again until
 * its `exp` or `VERIFIED_TOKEN_MS`, whichever comes first. What was refused stays refused:
 * an expired token, even one that verified while it was valid, and any other text.
 */
import { afterEach, describe, expect, test, vi } from 'vitest';
import { createVerifier, mintToken, verifyAuthorization } from '../../src/server/auth.js';
import { SECRET } from '../support/server.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('verified tokens', () => {
  test('a token that verified is refused once it expires', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2026-11-26T12:00:00Z'));
    const verify = createVerifier({ secret: SECRET });
    const token = await mintToken(SECRET, { db: 'a', role: 'write', expires: '10s' });
    expect((await verifyAuthorization(`Bearer ${token}`, verify)).role).toBe('write');
    vi.setSystemTime(new Date('2026-11-26T12:00:11Z'));
    await expect(verifyAuthorization(`Bearer ${token}`, verify)).rejects.toThrow(/expired/);
  });

  test('a token changed by one character after a good one is refused', async () => {
    const verify = createVerifier({ secret: SECRET });
    const token = await mintToken(SECRET, { db: 'a', role: 'write' });
    await verifyAuthorization(`Bearer ${token}`, verify);
    // The signature's first character carries six whole bits of it.
    const at = token.lastIndexOf('.') + 1;
    const forged = `${token.slice(0, at)}${token[at] === 'A' ? 'B' : 'A'}${token.slice(at + 1)}`;
    await expect(verifyAuthorization(`Bearer ${forged}`, verify)).rejects.toThrow(/invalid token/);
    await expect(verifyAuthorization(`Bearer ${token}x`, verify)).rejects.toThrow(/invalid token/);
  });
});
