/**
 * Tokens: JWTs signed with HS256 and the server's secret (`jose`). Claims:
 * - `db`: the database name, an array of names, or `"*"` for all;
 * - `role`: `read` (pull only), `write` (pull and push; may create its database), or `admin`
 *   (everything, including `POST /admin/databases`);
 * - `exp` (optional): expiry, checked by `jwtVerify`.
 */
import { SignJWT, jwtVerify } from 'jose';

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
    readonly status: 401 | 403,
  ) {
    super(message);
  }
}

function key(secret: string): Uint8Array {
  if (secret.length < 16) throw new Error('the auth secret must be at least 16 characters');
  return new TextEncoder().encode(secret);
}

/** Mints a token; `expires` is a jose time span such as `1h` or `30d`. */
export async function mintToken(
  secret: string,
  grant: { db: string | string[]; role: Role; expires?: string | undefined; subject?: string | undefined },
): Promise<string> {
  let jwt = new SignJWT({ db: grant.db, role: grant.role }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
  if (grant.expires) jwt = jwt.setExpirationTime(grant.expires);
  if (grant.subject) jwt = jwt.setSubject(grant.subject);
  return jwt.sign(key(secret));
}

/** Verifies the `Authorization` header; throws AuthError (401) when it is missing or invalid. */
export async function verifyAuthorization(header: string | undefined, secret: string): Promise<Grant> {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!m) throw new AuthError('missing bearer token', 401);
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(m[1]!, key(secret), { algorithms: ['HS256'] }));
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new AuthError(code === 'ERR_JWT_EXPIRED' ? 'token expired' : 'invalid token', 401);
  }
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
