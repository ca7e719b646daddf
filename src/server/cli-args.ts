/**
 * The command line, parsed: `parseCommandLine(argv, env)` turns the arguments and the
 * environment into what to do, or throws `UsageError` (exit 2) without touching anything. It
 * is kept apart from `cli.ts` (which runs on import) so tests can call it. Every command uses
 * `node:util` parseArgs in strict mode: an unknown flag, a missing value or a stray argument is
 * an error, never silently ignored.
 */
import { parseArgs } from 'node:util';
import type { LogFormat, LogLevel } from './log.js';
import { LOG_LEVELS } from './log.js';

/** A mistake on the command line (exit 2), as opposed to a failure while running (exit 1). */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * A byte count: a whole number, optionally with a unit (k/KB/KiB, M/MB/MiB, G/GB/GiB, all
 * powers of 1024). Anything else is an error: a limit that silently parsed as nothing would
 * remove the limit.
 */
export function parseBytes(flag: string, text: string): number {
  const m = /^\s*(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)\s*$/i.exec(text);
  if (!m) throw new UsageError(`--${flag} takes a size such as 1048576, 512KiB or 32MB, not ${JSON.stringify(text)}`);
  const unit = m[2]!.toLowerCase()[0] ?? '';
  const scale = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  const bytes = Number(m[1]) * scale;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new UsageError(`--${flag} must be a positive size, not ${JSON.stringify(text)}`);
  return bytes;
}

/** A positive whole number (a count or milliseconds); anything else is an error. */
export function parseCount(flag: string, text: string): number {
  if (!/^\s*\d+\s*$/.test(text) || Number(text) <= 0) throw new UsageError(`--${flag} takes a positive whole number, not ${JSON.stringify(text)}`);
  return Number(text);
}

/** A fraction in (0, 1] such as 0.25; anything else is an error. */
export function parseFraction(flag: string, text: string): number {
  const n = Number(text);
  if (!/^\s*(0?\.\d+|1(\.0*)?)\s*$/.test(text) || !(n > 0 && n <= 1)) throw new UsageError(`--${flag} takes a fraction in (0, 1] such as 0.25, not ${JSON.stringify(text)}`);
  return n;
}

/** A TCP port, 0 (any free port) to 65535. */
export function parsePort(source: string, text: string): number {
  if (!/^\s*\d+\s*$/.test(text) || Number(text) > 65535) throw new UsageError(`${source} takes a port from 0 to 65535, not ${JSON.stringify(text)}`);
  return Number(text);
}

/** Flags every command shares. */
const COMMON = {
  help: { type: 'boolean', short: 'h' },
} as const;

/** The secret and the token checks: one name for each, in every command. */
const AUTH = {
  'auth-secret': { type: 'string', short: 's' },
  'auth-issuer': { type: 'string' },
  'auth-audience': { type: 'string' },
} as const;

const SERVE = {
  ...COMMON,
  ...AUTH,
  data: { type: 'string', short: 'd' },
  host: { type: 'string', short: 'H' },
  port: { type: 'string', short: 'p' },
  'no-auth': { type: 'boolean' },
  'auth-public-key': { type: 'string' },
  'auth-jwks': { type: 'string' },
  'cors-origin': { type: 'string', multiple: true },
  'base-host': { type: 'string' },
  'max-open': { type: 'string' },
  'max-body': { type: 'string' },
  'max-value': { type: 'string' },
  'max-answer': { type: 'string' },
  'max-heap': { type: 'string' },
  'pull-spool': { type: 'string' },
  'statement-timeout-ms': { type: 'string' },
  'share-of-server': { type: 'string' },
  'body-timeout-ms': { type: 'string' },
  'drain-timeout-ms': { type: 'string' },
  'stream-idle-ms': { type: 'string' },
  'stream-lifetime-ms': { type: 'string' },
  'max-streams': { type: 'string' },
  'streams-per-holder': { type: 'string' },
  'streams-without-subject': { type: 'string' },
  durability: { type: 'string' },
  'write-rules': { type: 'string' },
  'log-format': { type: 'string' },
  'log-level': { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  'no-metrics': { type: 'boolean' },
  'metrics-token': { type: 'string' },
} as const;

const TOKEN = {
  ...COMMON,
  ...AUTH,
  db: { type: 'string' },
  role: { type: 'string', short: 'r' },
  expires: { type: 'string', short: 'e' },
  sub: { type: 'string' },
} as const;

export interface ServeArgs {
  dataDir: string;
  host: string;
  port: number;
  /** Null with `--no-auth`. */
  auth: { secret?: string; publicKeyFile?: string; jwksUrl?: string; issuer?: string; audience?: string } | null;
  corsOrigins: '*' | string[];
  /** `{name}.{baseHost}` names database `name`. */
  baseHost?: string;
  logFormat: LogFormat;
  logLevel: LogLevel;
  metrics: boolean;
  /** The bearer token `/metrics` asks for (`--metrics-token` or $OUTPOST_METRICS_TOKEN). */
  metricsToken?: string;
  durability: 'normal' | 'full';
  writeRulesFile?: string;
  maxOpenDatabases?: number;
  maxBodyBytes?: number;
  valueBytesMax?: number;
  maxAnswerBytes?: number;
  /** SQLite's memory in the whole process (`maxHeapBytes`). */
  maxHeapBytes?: number;
  /** Disk for whole pulls' answers kept for identical pulls (`maxPullSpoolBytes`). */
  maxPullSpoolBytes?: number;
  statementTimeoutMs?: number;
  shareOfServer?: number;
  bodyTimeoutMs?: number;
  drainTimeoutMs?: number;
  streamIdleMs?: number;
  streamLifetimeMs?: number;
  /** Streams open at once in the whole server (`maxOpenStreams`). */
  maxOpenStreams?: number;
  /** Of those, at most this many for one token holder (`maxOpenStreamsPerHolder`). */
  maxOpenStreamsPerHolder?: number;
  /** Of those, at most this many for all tokens without a subject together (`maxOpenStreamsWithoutSubject`). */
  maxOpenStreamsWithoutSubject?: number;
}

export interface TokenArgs {
  secret: string;
  db: string | string[];
  role: 'read' | 'write' | 'admin';
  expires?: string;
  subject?: string;
  issuer?: string;
  audience?: string;
}

export type Command = { kind: 'help' } | { kind: 'version' } | { kind: 'serve'; args: ServeArgs } | { kind: 'token'; args: TokenArgs };

/** What `argv` (without node and the script) asks for; `env` supplies PORT, HOST, OUTPOST_AUTH_SECRET and OUTPOST_METRICS_TOKEN. */
export function parseCommandLine(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Command {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') return { kind: 'help' };
  if (command === '--version' || command === '-v' || command === 'version') return { kind: 'version' };
  if (command === 'serve') {
    const values = strictParse(rest, SERVE);
    return values.help ? { kind: 'help' } : { kind: 'serve', args: serveArgs(values, env) };
  }
  if (command === 'token') {
    const values = strictParse(rest, TOKEN);
    return values.help ? { kind: 'help' } : { kind: 'token', args: tokenArgs(values, env) };
  }
  throw new UsageError(`unknown command ${JSON.stringify(command)} (the commands are serve and token)`);
}

type Spec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;
type Values<S extends Spec> = { [K in keyof S]?: S[K]['type'] extends 'boolean' ? boolean : S[K]['multiple'] extends true ? string[] : string };

function strictParse<S extends Spec>(args: readonly string[], spec: S): Values<S> {
  try {
    // parseArgs's inferred type for a spec built by spread is too wide to name; Values<S> is what it returns.
    return parseArgs({ args: [...args], options: spec, strict: true, allowPositionals: false }).values as Values<S>;
  } catch (e) {
    const { code, message } = e as { code?: string; message: string };
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const flag = /'([^']+)'/.exec(message)?.[1] ?? '';
      const typed = flag.replace(/^-+/, '').split('=')[0]!;
      const guess = RENAMED[typed] ?? closest(typed, Object.keys(spec));
      throw new UsageError(`unknown option ${flag}${guess ? ` (did you mean --${guess}?)` : ''}`);
    }
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) throw new UsageError(message);
    throw e;
  }
}

/** Flags of earlier versions, and spellings without the unit every other duration flag has. */
const RENAMED: Readonly<Record<string, string>> = { secret: 'auth-secret', 'stream-idle': 'stream-idle-ms', 'stream-lifetime': 'stream-lifetime-ms' };

/** The known flag nearest to a mistyped one, when it is a typo away (at most 2 edits). */
function closest(typed: string, known: string[]): string | null {
  let best: string | null = null;
  let bestDistance = 3;
  for (const name of known) {
    const d = editDistance(typed, name);
    if (d < bestDistance) [best, bestDistance] = [name, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row.push(Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    previous = row;
  }
  return previous[b.length]!;
}

function oneOf<T extends string>(flag: string, value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`--${flag} is ${allowed.join(', ')}, not ${JSON.stringify(value)}`);
  return value as T;
}

function serveArgs(v: Values<typeof SERVE>, env: Readonly<Record<string, string | undefined>>): ServeArgs {
  if (!v.data) throw new UsageError('serve needs --data DIR');
  const flagged = v['auth-secret'] !== undefined || v['auth-public-key'] !== undefined || v['auth-jwks'] !== undefined;
  if (v['no-auth'] && flagged) throw new UsageError('--no-auth cannot be combined with a key (--auth-secret, --auth-public-key, --auth-jwks)');
  // With --no-auth, a secret in the environment is ignored.
  const secret = v['no-auth'] ? undefined : (v['auth-secret'] ?? env.OUTPOST_AUTH_SECRET);
  const keyed = secret !== undefined || flagged;
  if (!v['no-auth'] && !keyed) throw new UsageError('serve needs --auth-secret SECRET (or $OUTPOST_AUTH_SECRET), --auth-public-key FILE or --auth-jwks URL, or --no-auth');
  if (secret !== undefined && secret.length < 16) throw new UsageError('the auth secret must be at least 16 characters');
  if (v['auth-jwks'] !== undefined && !/^https?:\/\//.test(v['auth-jwks'])) throw new UsageError(`--auth-jwks takes an http(s) URL, not ${JSON.stringify(v['auth-jwks'])}`);
  const metricsToken = v['metrics-token'] ?? env.OUTPOST_METRICS_TOKEN;
  if (v['no-metrics'] && v['metrics-token'] !== undefined) throw new UsageError('--no-metrics cannot be combined with --metrics-token');
  if (metricsToken !== undefined && metricsToken.length < 16) throw new UsageError('the metrics token must be at least 16 characters');
  if (v.quiet && v['log-level'] !== undefined) throw new UsageError('--quiet is --log-level warn: give one of them');
  const count = (flag: keyof typeof SERVE): number | undefined => {
    const text = v[flag];
    return typeof text === 'string' ? parseCount(flag, text) : undefined;
  };
  const bytes = (flag: keyof typeof SERVE): number | undefined => {
    const text = v[flag];
    return typeof text === 'string' ? parseBytes(flag, text) : undefined;
  };
  const args: ServeArgs = {
    dataDir: v.data,
    host: v.host ?? env.HOST ?? '127.0.0.1',
    port: v.port !== undefined ? parsePort('--port', v.port) : env.PORT !== undefined && env.PORT !== '' ? parsePort('$PORT', env.PORT) : 8080,
    auth: v['no-auth']
      ? null
      : {
          ...(secret !== undefined ? { secret } : {}),
          ...(v['auth-public-key'] !== undefined ? { publicKeyFile: v['auth-public-key'] } : {}),
          ...(v['auth-jwks'] !== undefined ? { jwksUrl: v['auth-jwks'] } : {}),
          ...(v['auth-issuer'] !== undefined ? { issuer: v['auth-issuer'] } : {}),
          ...(v['auth-audience'] !== undefined ? { audience: v['auth-audience'] } : {}),
        },
    ...(v['base-host'] !== undefined ? { baseHost: v['base-host'] } : {}),
    corsOrigins: v['cors-origin'] && v['cors-origin'].length > 0 && !v['cors-origin'].includes('*') ? v['cors-origin'] : '*',
    logFormat: oneOf('log-format', v['log-format'], ['text', 'json'] as const, 'text'),
    logLevel: v.quiet ? 'warn' : oneOf('log-level', v['log-level'], LOG_LEVELS, 'info'),
    metrics: !v['no-metrics'],
    ...(metricsToken !== undefined && !v['no-metrics'] ? { metricsToken } : {}),
    durability: oneOf('durability', v.durability, ['normal', 'full'] as const, 'normal'),
  };
  const optional = {
    writeRulesFile: v['write-rules'],
    maxOpenDatabases: count('max-open'),
    maxBodyBytes: bytes('max-body'),
    valueBytesMax: bytes('max-value'),
    maxAnswerBytes: bytes('max-answer'),
    maxHeapBytes: bytes('max-heap'),
    // 0 is a setting here (share no answers), not a mistake.
    maxPullSpoolBytes: v['pull-spool']?.trim() === '0' ? 0 : bytes('pull-spool'),
    statementTimeoutMs: count('statement-timeout-ms'),
    shareOfServer: v['share-of-server'] !== undefined ? parseFraction('share-of-server', v['share-of-server']) : undefined,
    bodyTimeoutMs: count('body-timeout-ms'),
    drainTimeoutMs: count('drain-timeout-ms'),
    streamIdleMs: count('stream-idle-ms'),
    streamLifetimeMs: count('stream-lifetime-ms'),
    maxOpenStreams: count('max-streams'),
    maxOpenStreamsPerHolder: count('streams-per-holder'),
    maxOpenStreamsWithoutSubject: count('streams-without-subject'),
  };
  for (const [k, value] of Object.entries(optional)) if (value !== undefined) Object.assign(args, { [k]: value });
  return args;
}

function tokenArgs(v: Values<typeof TOKEN>, env: Readonly<Record<string, string | undefined>>): TokenArgs {
  const secret = v['auth-secret'] ?? env.OUTPOST_AUTH_SECRET;
  if (!v.db) throw new UsageError('token needs --db NAME (a name, NAME,NAME... or *)');
  if (secret === undefined) throw new UsageError('token needs --auth-secret SECRET (or $OUTPOST_AUTH_SECRET)');
  if (secret.length < 16) throw new UsageError('the auth secret must be at least 16 characters');
  const role = oneOf('role', v.role, ['read', 'write', 'admin'] as const, 'write');
  const db = v.db === '*' ? '*' : v.db.includes(',') ? v.db.split(',') : v.db;
  return {
    secret,
    db,
    role,
    ...(v.expires !== undefined ? { expires: v.expires } : {}),
    ...(v.sub !== undefined ? { subject: v.sub } : {}),
    ...(v['auth-issuer'] !== undefined ? { issuer: v['auth-issuer'] } : {}),
    ...(v['auth-audience'] !== undefined ? { audience: v['auth-audience'] } : {}),
  };
}
