/**
 * Which database and endpoint a request addresses. Three forms, tried in this order:
 * 1. the path: `/db/{name}/{endpoint}` (what Outpost's and Turso's sync clients use, and
 *    `@libsql/client` given `http://host/db/{name}/` with the trailing slash);
 * 2. the host name: `{name}.{baseHost}/{endpoint}`, as sqld and Turso Cloud address databases
 *    (with `baseHost` configured; a Host with more labels than `{name}.{baseHost}` still names
 *    the database by its first label);
 * 3. the token: a path with no name (`/{endpoint}`, or `/db/{endpoint}`, which is where
 *    `@libsql/client` posts when its URL `http://host/db/{name}` lacks the trailing slash: it
 *    resolves `v2/pipeline` against the URL and so drops the last segment) reaches the one
 *    database the request's token names. A token for several databases, or none, gets 400
 *    DATABASE_NAME_MISSING, whose message says to add the slash.
 *
 * Endpoints: `pull-updates`, `v2/pipeline` and `v3/pipeline` (the same Hrana JSON), and
 * `v3/cursor`. Anything else is a 404 that lists the forms.
 */
import { DATABASE_NAME_PATTERN } from '../options.js';
import type { Grant } from './auth.js';
import { HttpError } from './http.js';

export type Endpoint = 'pull-updates' | 'pipeline' | 'cursor';

/** A request's target; `name` null means "the one database the token names" (form 3). */
export interface Target {
  name: string | null;
  endpoint: Endpoint;
  /** How the request named its database, for the error that says how to name it. */
  form: 'path' | 'host' | 'token';
}

const ENDPOINTS: Readonly<Record<string, Endpoint>> = {
  'pull-updates': 'pull-updates',
  'v2/pipeline': 'pipeline',
  'v3/pipeline': 'pipeline',
  'v3/cursor': 'cursor',
};

const USAGE = 'use /db/{name}/pull-updates or /db/{name}/v2/pipeline (with @libsql/client: url http://host/db/{name}/ with the trailing slash)';

/**
 * The target of a request with path `parts` (split and decoded) and `Host` header `host`;
 * `baseHost` (lower case, no port) turns on naming by host. Throws 404 for an unknown
 * endpoint and 400 for an invalid name.
 */
export function resolveTarget(parts: readonly string[], host: string | undefined, baseHost: string | null): Target {
  if (parts[0] === 'db' && parts.length >= 3) {
    const endpoint = ENDPOINTS[parts.slice(2).join('/')];
    if (endpoint) return { name: checkedName(parts[1]!), endpoint, form: 'path' };
  }
  // `/db/v2/pipeline` has no name: the client dropped it (see the header).
  const rest = parts[0] === 'db' ? parts.slice(1) : parts;
  const endpoint = ENDPOINTS[rest.join('/')];
  if (!endpoint) throw new HttpError(404, `no such endpoint: /${parts.join('/')} (${USAGE})`, 'NOT_FOUND');
  const fromHost = nameFromHost(host, baseHost);
  if (fromHost !== null) return { name: checkedName(fromHost), endpoint, form: 'host' };
  return { name: null, endpoint, form: 'token' };
}

/** The database a token-addressed request reaches: the token's only database. */
export function nameFromGrant(grant: Grant | null): string {
  const only = grant && grant.databases !== '*' && grant.databases.length === 1 ? grant.databases[0]! : null;
  if (only === null || !DATABASE_NAME_PATTERN.test(only)) {
    throw new HttpError(
      400,
      `the URL names no database${grant ? ' and the token names more than one' : ''}: add the database name with a trailing slash ` +
        '(@libsql/client: url http://host/db/{name}/ rather than http://host/db/{name}, which makes it post to /db/v2/pipeline), ' +
        'or address it by host name ({name}.<base host>)',
      'DATABASE_NAME_MISSING',
    );
  }
  return only;
}

/** The first label of `host` when it is under `baseHost` (`notes.db.example.com` -> `notes`). */
function nameFromHost(host: string | undefined, baseHost: string | null): string | null {
  if (!baseHost || !host) return null;
  const hostname = host.replace(/:\d+$/, '').replace(/\.$/, '').toLowerCase();
  if (!hostname.endsWith(`.${baseHost}`)) return null;
  const labels = hostname.slice(0, -baseHost.length - 1).split('.');
  return labels[0] || null;
}

function checkedName(name: string): string {
  if (!DATABASE_NAME_PATTERN.test(name)) throw new HttpError(400, `invalid database name ${JSON.stringify(name)}`, 'INVALID_NAME');
  return name;
}
