#!/usr/bin/env node
/**
 * `outpost`: the command line (`outpost serve`, `outpost token`; see USAGE). Arguments are
 * parsed strictly by cli-args.ts. Exit codes: 0 done (and after a graceful drain), 1 a
 * failure while running (a port in use, an unreadable key file, a failed close), 2 a usage
 * error (an unknown flag, a missing or malformed value), reported before anything starts.
 *
 * `serve` drains on SIGTERM and SIGINT: it stops accepting, answers long polls at once, lets
 * requests in flight finish (pushes included), closes every database and exits 0. A second
 * signal while draining exits 1 at once (the databases stay consistent: WAL).
 */
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { mintToken } from './auth.js';
import { type ServeArgs, type TokenArgs, UsageError, parseCommandLine } from './cli-args.js';
import { type ServerOptions, createServer } from './server.js';

const USAGE = `usage:
  outpost serve -d DIR [options]
    -d, --data DIR                 where the databases live (created when missing)
    -H, --host HOST                default $HOST or 127.0.0.1
    -p, --port PORT                default $PORT or 8080 (0: any free port)
    -s, --auth-secret SECRET       HS256 secret for tokens (or $OUTPOST_AUTH_SECRET)
        --auth-public-key FILE     accept tokens signed for this public key (PEM or JWK; EdDSA, RS256, ES256)
        --auth-jwks URL            accept tokens signed with an identity provider's published keys
        --auth-issuer ISS          every token's iss must be this
        --auth-audience AUD        every token's aud must name this
        --no-auth                  no authentication (loopback only)
        --cors-origin ORIGIN       an origin browsers may call from (repeatable; default any)
        --base-host HOST           {name}.HOST names database name (as sqld and Turso Cloud do)
        --log-format text|json     default text
        --log-level LEVEL          debug, info (default), warn or error
    -q, --quiet                    --log-level warn
        --no-metrics               no GET /metrics
        --metrics-token TOKEN      GET /metrics needs Authorization: Bearer TOKEN (or $OUTPOST_METRICS_TOKEN)
        --max-open N (12000)  --max-body SIZE  --max-value SIZE  --max-answer SIZE  --max-heap SIZE (1GiB)
        --pull-spool SIZE (1GiB; 0 shares no pull answers)
        --statement-timeout-ms MS  --share-of-server FRACTION  --body-timeout-ms MS  --drain-timeout-ms MS
        --stream-idle-ms MS  --stream-lifetime-ms MS  --max-streams N (64)  --streams-per-holder N (8)
        --streams-without-subject N (half of --max-streams)
        --durability normal|full  --write-rules FILE (JSON {"database": ["table", ...]})
  outpost token --db NAME[,NAME...|*] [-r read|write|admin] [-s SECRET] [-e 30d] [--sub SUBJECT]
                [--auth-issuer ISS] [--auth-audience AUD]
    prints an HS256 token alone on its line
  outpost --version | -v
  outpost --help | -h`;

/** A failure while running, reported with exit 1. */
class RuntimeError extends Error {}

function version(): string {
  // dist/server/cli.js and src/server/cli.ts both sit two folders below package.json.
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function readFile(flag: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new RuntimeError(`${flag} ${file}: ${(e as Error).message}`);
  }
}

/** A JSON file: { "database": ["table", ...], ... }. */
function readWriteRules(file: string): Record<string, string[]> {
  let rules: unknown;
  try {
    rules = JSON.parse(readFile('--write-rules', file));
  } catch (e) {
    throw e instanceof RuntimeError ? e : new RuntimeError(`--write-rules ${file}: not JSON: ${(e as Error).message}`);
  }
  if (typeof rules !== 'object' || rules === null || Array.isArray(rules)) throw new RuntimeError(`${file}: expected {"database": ["table", ...]}`);
  for (const [db, tables] of Object.entries(rules)) {
    if (!Array.isArray(tables) || !tables.every((t) => typeof t === 'string')) throw new RuntimeError(`${file}: the rule for ${db} must be a list of table names`);
  }
  return rules as Record<string, string[]>;
}

function serverOptions(args: ServeArgs): ServerOptions {
  const { auth } = args;
  const options: ServerOptions = {
    dataDir: args.dataDir,
    host: args.host,
    port: args.port,
    auth: auth !== null,
    corsOrigins: args.corsOrigins,
    ...(args.baseHost !== undefined ? { baseHost: args.baseHost } : {}),
    logFormat: args.logFormat,
    logLevel: args.logLevel,
    metrics: args.metrics,
    ...(args.metricsToken !== undefined ? { metricsToken: args.metricsToken } : {}),
    durability: args.durability,
  };
  if (auth?.secret !== undefined) options.authSecret = auth.secret;
  if (auth?.publicKeyFile !== undefined) options.authPublicKey = readFile('--auth-public-key', auth.publicKeyFile);
  if (auth?.jwksUrl !== undefined) options.authJwksUrl = auth.jwksUrl;
  if (auth?.issuer !== undefined) options.authIssuer = auth.issuer;
  if (auth?.audience !== undefined) options.authAudience = auth.audience;
  if (args.writeRulesFile !== undefined) options.writeRules = readWriteRules(args.writeRulesFile);
  for (const k of ['maxOpenDatabases', 'maxBodyBytes', 'valueBytesMax', 'maxAnswerBytes', 'maxHeapBytes', 'maxPullSpoolBytes', 'statementTimeoutMs', 'shareOfServer', 'bodyTimeoutMs', 'drainTimeoutMs', 'streamIdleMs', 'streamLifetimeMs', 'maxOpenStreams', 'maxOpenStreamsPerHolder', 'maxOpenStreamsWithoutSubject'] as const) {
    if (args[k] !== undefined) options[k] = args[k];
  }
  return options;
}

/**
 * How far V8 lets its heap grow past what the last full collection kept, unless the command
 * line or NODE_OPTIONS set it: 30% instead of V8's own factor (up to 4x when it allocates
 * fast). A server with 10,000 databases open keeps about 150 MiB alive, and at 6,000 pushes/s
 * V8 grew its heap to 380 MiB of mostly garbage before collecting (the process at 1,116 MiB
 * after 60 s); with 30% it stayed at 933 MiB for 3% fewer pushes (ARCHITECTURE).
 */
export const HEAP_GROWING_PERCENT = 30;

function tuneHeapGrowth(): void {
  const given = [...process.execArgv, process.env.NODE_OPTIONS ?? ''].some((arg) => /heap[-_]growing[-_]percent/.test(arg));
  if (!given) setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}

async function serve(args: ServeArgs): Promise<void> {
  tuneHeapGrowth();
  let server;
  try {
    server = createServer(serverOptions(args));
  } catch (e) {
    // A key that does not parse, a data folder that cannot be made: the setup failed.
    throw e instanceof RuntimeError ? e : new RuntimeError((e as Error).message);
  }
  const { url } = await server.listen().catch((e: unknown) => {
    throw new RuntimeError(`cannot listen on ${args.host}:${args.port}: ${(e as Error).message}`);
  });
  const auth = args.auth === null ? 'off' : [args.auth.secret && 'secret', args.auth.publicKeyFile && 'public key', args.auth.jwksUrl && 'JWKS'].filter(Boolean).join(', ');
  const line = `Outpost sync server listening on ${url}`;
  if (args.logFormat === 'json') console.log(JSON.stringify({ time: new Date().toISOString(), level: 'info', msg: line, url, data: args.dataDir, auth }));
  else console.log(`info ${line} (data ${args.dataDir}, auth ${auth})`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      console.error(`${signal} again: exiting without waiting for the drain`);
      process.exit(1);
    }
    stopping = true;
    server.drain().then(
      () => process.exit(0),
      (e: unknown) => {
        console.error(`error while draining: ${(e as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

async function token(args: TokenArgs): Promise<void> {
  try {
    console.log(await mintToken(args.secret, { db: args.db, role: args.role, expires: args.expires, subject: args.subject, issuer: args.issuer, audience: args.audience }));
  } catch (e) {
    // jose refuses a malformed time span (`--expires soon`) with a TypeError.
    if (e instanceof TypeError) throw new UsageError(`--expires takes a time span such as 1h or 30d: ${e.message}`);
    throw e;
  }
}

async function main(): Promise<void> {
  const command = parseCommandLine(process.argv.slice(2), process.env);
  if (command.kind === 'help') return void console.log(USAGE);
  if (command.kind === 'version') return void console.log(version());
  if (command.kind === 'serve') return serve(command.args);
  return token(command.args);
}

main().catch((e: unknown) => {
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof UsageError) {
    console.error(`outpost: ${message}\n(outpost --help shows the usage)`);
    process.exit(2);
  }
  console.error(`outpost: ${message}`);
  process.exit(1);
});
