/**
 * Tokens: JWTs verified by one of three kinds of key, each for its own algorithms:
 * - the server's shared secret: HS256 (the tokens `outpost token` mints);
 * - a public key from a file (`--auth-public-key`: PEM SPKI or a JWK): EdDSA (Ed25519),
 *   RS256 or ES256, whichever that key is for;
 * - a JWKS URL (`--auth-jwks`), an identity provider's published keys: EdDSA, RS256, ES256.
 * The token's header picks the kind by its `alg`, and only the algorithms of the keys that are
 * configured are accepted: `none` never, and an HS256 token when no secret is configured never
 * (so a public key can never be used as an HMAC secret: algorithm confusion). With an issuer
 * or audience configured (`--auth-issuer`, `--auth-audience`), every token must carry it.
 * Claims:
 * - `db`: the database name, an array of names, or `"*"` for all;
 * - `role`: `read` (pull, and Hrana pipelines that only read: SQLite refuses their writes),
 *   `write` (pull and push; may create its database), or `admin`
 *   (everything, including `POST /admin/databases`);
 * - `exp` (optional): expiry; `nbf` (optional) is honoured too;
 * - `sub` (optional): who the client is (see client-owners.ts).
 *
 * A token that verified is remembered (by its exact text) until its `exp`, and at most
 * `VERIFIED_TOKEN_MS`: a client sends the same token with every request, and checking its
 * signature was a third of the server's time under load. A JWKS key the provider withdraws
 * therefore stops being honoured for tokens already seen up to that long later. Refusals are
 * never remembered.
 */
import { type JsonWebKey, KeyObject, createPublicKey } from 'node:crypto';
import { type JWTPayload, type JWTVerifyGetKey, SignJWT, createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';

export type Role = 'read' | 'write' | 'admin';

export interface Grant {
  databases: string[] | '*';
  role: Role;
  /**
   * The token's `sub` claim: who the client is. A sync client id first used by a token with a
   * subject belongs to that subject (see client-owners.ts). Null when the token has none.
   */
  subject: string | null;
}

const ROLES: readonly Role[] = ['read', 'write', 'admin'];

export class AuthError extends Error {
  override name = 'AuthError';
  constructor(
    message: string,
    /** 503: the keys could not be had (the JWKS is unreachable); the client may retry. */
    readonly status: 401 | 403 | 503,
  ) {
    super(message);
  }
}

function key(secret: string): Uint8Array {
  if (secret.length < 16) throw new Error('the auth secret must be at least 16 characters');
  return new TextEncoder().encode(secret);
}

/** Mints an HS256 token; `expires` is a jose time span such as `1h` or `30d`. */
export async function mintToken(
  secret: string,
  grant: {
    db: string | string[];
    role: Role;
    expires?: string | undefined;
    subject?: string | undefined;
    issuer?: string | undefined;
    audience?: string | undefined;
  },
): Promise<string> {
  let jwt = new SignJWT({ db: grant.db, role: grant.role }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
  if (grant.expires) jwt = jwt.setExpirationTime(grant.expires);
  if (grant.subject) jwt = jwt.setSubject(grant.subject);
  if (grant.issuer) jwt = jwt.setIssuer(grant.issuer);
  if (grant.audience) jwt = jwt.setAudience(grant.audience);
  return jwt.sign(key(secret));
}

/** Where tokens' keys come from; at least one of `secret`, `publicKey` and `jwksUrl`. */
export interface AuthKeys {
  /** The shared HS256 secret (at least 16 characters). */
  secret?: string | undefined;
  /** A public key: PEM (SPKI) text, a JWK (object or JSON text), or a Node KeyObject. */
  publicKey?: string | object | KeyObject | undefined;
  /** An identity provider's JWKS, fetched on demand and cached (jose's createRemoteJWKSet). */
  jwksUrl?: string | URL | undefined;
  /** When set, every token's `iss` must be this. */
  issuer?: string | undefined;
  /** When set, every token's `aud` must name this (one of these). */
  audience?: string | string[] | undefined;
}

/** Checks a token's signature, algorithm, expiry, issuer and audience; returns its claims. */
export type TokenVerifier = (token: string) => Promise<JWTPayload>;

const ASYMMETRIC_ALGS = ['EdDSA', 'RS256', 'ES256'];

/** Longest a verified token is taken without checking its signature again. */
export const VERIFIED_TOKEN_MS = 60_000;
/** Verified tokens remembered at once; the oldest is forgotten first. */
const VERIFIED_TOKENS_MAX = 10_000;

/** Remembers `verify`'s successes (see the header). */
function rememberVerified(verify: TokenVerifier): TokenVerifier {
  // Read at each call (not captured), so the clock a test sets is the one jose sees too.
  const nowMs = (): number => Date.now();
  const verified = new Map<string, { payload: JWTPayload; untilMs: number }>();
  return async (token) => {
    const known = verified.get(token);
    if (known && nowMs() < known.untilMs) return known.payload;
    if (known) verified.delete(token);
    const payload = await verify(token);
    const expMs = typeof payload.exp === 'number' ? payload.exp * 1000 : Number.POSITIVE_INFINITY;
    // Full, so not empty: the first key (the oldest entry) is a string.
    if (verified.size >= VERIFIED_TOKENS_MAX) verified.delete(verified.keys().next().value as string);
    verified.set(token, { payload, untilMs: Math.min(expMs, nowMs() + VERIFIED_TOKEN_MS) });
    return payload;
  };
}

/** The algorithm a public key signs with; a key of another kind is refused at startup. */
function algorithmOf(keyObject: KeyObject): string {
  const type = keyObject.asymmetricKeyType;
  if (type === 'ed25519') return 'EdDSA';
  if (type === 'rsa') return 'RS256';
  if (type === 'ec' && keyObject.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  throw new Error(`unsupported public key type ${type ?? 'unknown'} (use Ed25519, RSA or P-256)`);
}

function publicKeyObject(input: string | object | KeyObject): KeyObject {
  if (input instanceof KeyObject) return input;
  try {
    if (typeof input === 'string' && input.trimStart().startsWith('-----BEGIN')) return createPublicKey(input);
    // A JWK: the object itself or its JSON text; a JWK of a private key yields its public half.
    // The parsed JSON is handed to Node, which checks that it is a JWK.
    const jwk = (typeof input === 'string' ? JSON.parse(input) : input) as JsonWebKey;
    return createPublicKey({ key: jwk, format: 'jwk' });
  } catch (e) {
    throw new Error(`the public key is neither a PEM public key nor a JWK: ${(e as Error).message}`);
  }
}

/**
 * The verifier for a server's keys. Each algorithm has exactly one key source; the token's
 * header `alg` chooses it, and jwtVerify is told to accept that algorithm alone.
 */
export function createVerifier(keys: AuthKeys): TokenVerifier {
  const byAlg = new Map<string, Uint8Array | KeyObject | JWTVerifyGetKey>();
  if (keys.jwksUrl !== undefined) {
    const jwks = createRemoteJWKSet(new URL(keys.jwksUrl));
    for (const alg of ASYMMETRIC_ALGS) byAlg.set(alg, jwks);
  }
  if (keys.publicKey !== undefined) {
    const keyObject = publicKeyObject(keys.publicKey);
    // A configured key file wins over the JWKS for its own algorithm.
    byAlg.set(algorithmOf(keyObject), keyObject);
  }
  if (keys.secret !== undefined) byAlg.set('HS256', key(keys.secret));
  if (byAlg.size === 0) throw new Error('authentication needs a secret, a public key or a JWKS URL');
  const accepted = [...byAlg.keys()].join(', ');
  return rememberVerified(async (token) => {
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw new AuthError('invalid token', 401);
    }
    const verifyKey = typeof alg === 'string' ? byAlg.get(alg) : undefined;
    if (verifyKey === undefined) throw new AuthError(`token algorithm ${String(alg)} is not accepted here (accepted: ${accepted})`, 401);
    const options = { algorithms: [alg as string], ...(keys.issuer !== undefined ? { issuer: keys.issuer } : {}), ...(keys.audience !== undefined ? { audience: keys.audience } : {}) };
    try {
      // jwtVerify takes either a key or a key-getter; both branches are the same call.
      const { payload } = typeof verifyKey === 'function' ? await jwtVerify(token, verifyKey, options) : await jwtVerify(token, verifyKey, options);
      return payload;
    } catch (e) {
      if (typeof verifyKey === 'function' && jwksUnavailable(e)) {
        throw new AuthError(`the JWKS could not be fetched, so the token cannot be checked now: ${(e as Error).message}`, 503);
      }
      throw new AuthError(refusal(e), 401);
    }
  });
}

/**
 * Whether verifying failed because the JWKS could not be had: jose's own errors carry an
 * ERR_J... code, so one without came from fetch; jose says so itself for a timeout, an answer
 * other than 200, and an answer that is not JSON.
 */
function jwksUnavailable(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  if (typeof code !== 'string' || !code.startsWith('ERR_J')) return true;
  return code === 'ERR_JWKS_TIMEOUT' || (code === 'ERR_JOSE_GENERIC' && /JSON Web Key Set/.test((e as Error).message));
}

/** Why jose refused a token, in words a client's developer can act on. */
function refusal(e: unknown): string {
  const { code, claim } = e as { code?: string; claim?: string };
  if (code === 'ERR_JWT_EXPIRED') return 'token expired';
  if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && claim === 'iss') return 'token issuer is not accepted';
  if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && claim === 'aud') return 'token audience is not accepted';
  if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && claim === 'nbf') return 'token is not valid yet';
  if (code === 'ERR_JWKS_NO_MATCHING_KEY') return 'no key of the JWKS matches the token';
  return 'invalid token';
}

/**
 * Verifies the `Authorization` header with a verifier (or, for compatibility, an HS256
 * secret); throws AuthError (401) when it is missing or invalid.
 */
export async function verifyAuthorization(header: string | undefined, verifier: TokenVerifier | string): Promise<Grant> {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!m) throw new AuthError('missing bearer token', 401);
  const verify = typeof verifier === 'string' ? createVerifier({ secret: verifier }) : verifier;
  const payload = await verify(m[1]!);
  const role = payload.role;
  if (typeof role !== 'string' || !ROLES.includes(role as Role)) throw new AuthError('token has no valid role', 401);
  const db = payload.db;
  const databases = db === '*' ? '*' : typeof db === 'string' ? [db] : Array.isArray(db) && db.every((d) => typeof d === 'string') ? (db as string[]) : null;
  if (databases === null) throw new AuthError('token names no database', 401);
  return { databases, role: role as Role, subject: typeof payload.sub === 'string' && payload.sub !== '' ? payload.sub : null };
}

/** Throws AuthError (403) unless the grant allows `need` on `database`. */
export function authorize(grant: Grant, database: string | null, need: Role): void {
  if (database !== null && grant.databases !== '*' && !grant.databases.includes(database)) {
    throw new AuthError(`the token does not grant access to database "${database}"`, 403);
  }
  const rank = (r: Role): number => ROLES.indexOf(r);
  if (rank(grant.role) < rank(need)) throw new AuthError(`the token's role "${grant.role}" may not ${need === 'write' ? 'write' : 'do this'}`, 403);
}
