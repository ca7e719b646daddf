#!/usr/bin/env node
/**
 * `outpost`: the command line.
 *   outpost serve --data DIR [--host 127.0.0.1] [--port 8080] [--auth-secret SECRET | --no-auth]
 *                 [--max-open N] [--max-body SIZE] [--max-value SIZE] [--statement-timeout-ms MS]
 *                 [--share-of-server FRACTION] [--body-timeout-ms MS] [--durability normal|full] [--write-rules FILE]
 *   (FILE: JSON { "database": ["table", ...] }, the tables pushes may write)
 *   outpost token --db NAME[,NAME…|*] --role read|write|admin --secret SECRET [--expires 1h] [--sub SUBJECT]
 * The secret may also come from $OUTPOST_AUTH_SECRET. `token` prints the token alone on its
 * last line.
 */
import { readFileSync } from 'node:fs';
import { mintToken, type Role } from './auth.js';
import { parseBytes, parseCount, parseFraction } from './cli-args.js';
import { createServer } from './server.js';

type Flags = Map<string, string | true>;

function parse(argv: string[]): { command: string; flags: Flags } {
  const [command = 'help', ...rest] = argv;
  const flags: Flags = new Map();
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const eq = a.indexOf('=');
    if (eq > 0) flags.set(a.slice(2, eq), a.slice(eq + 1));
    else if (rest[i + 1] !== undefined && !rest[i + 1]!.startsWith('--')) flags.set(a.slice(2), rest[++i]!);
    else flags.set(a.slice(2), true);
  }
  return { command, flags };
}

const USAGE = `usage:
  outpost serve --data DIR [--host 127.0.0.1] [--port 8080] [--auth-secret SECRET | --no-auth]
                [--max-open N] [--max-body SIZE] [--max-value SIZE] [--statement-timeout-ms MS]
                [--share-of-server FRACTION] [--body-timeout-ms MS] [--durability normal|full] [--write-rules FILE] [--quiet]
  outpost token --db NAME --role read|write|admin --secret SECRET [--expires 1h] [--sub SUBJECT]`;

/** A JSON file: { "database": ["table", ...], ... }. */
function readWriteRules(file: string): Record<string, string[]> {
  const rules = JSON.parse(readFileSync(file, 'utf8')) as unknown;
  if (typeof rules !== 'object' || rules === null || Array.isArray(rules)) throw new Error(`${file}: expected {"database": ["table", ...]}`);
  for (const [db, tables] of Object.entries(rules)) {
    if (!Array.isArray(tables) || !tables.every((t) => typeof t === 'string')) throw new Error(`${file}: the rule for ${db} must be a list of table names`);
  }
  return rules as Record<string, string[]>;
}

/** The value of `--name VALUE`; undefined when absent; an error when given without a value. */
function valueOf(flags: Flags, name: string): string | undefined {
  const v = flags.get(name);
  if (v === true) throw new Error(`--${name} needs a value`);
  return v;
}

async function serve(flags: Flags): Promise<void> {
  const str = (k: string): string | undefined => valueOf(flags, k);
  const data = str('data');
  if (!data) throw new Error('serve needs --data DIR');
  const secret = str('auth-secret') ?? process.env.OUTPOST_AUTH_SECRET;
  const noAuth = flags.get('no-auth') === true;
  if (!noAuth && !secret) throw new Error('serve needs --auth-secret SECRET (or $OUTPOST_AUTH_SECRET), or --no-auth');
  const durability = str('durability') ?? 'normal';
  if (durability !== 'normal' && durability !== 'full') throw new Error('--durability is normal or full');
  const server = createServer({
    dataDir: data,
    host: str('host') ?? '127.0.0.1',
    port: str('port') === undefined ? 8080 : parseCount('port', str('port')!),
    auth: !noAuth,
    ...(secret ? { authSecret: secret } : {}),
    ...(str('max-open') ? { maxOpenDatabases: parseCount('max-open', str('max-open')!) } : {}),
    ...(str('max-body') ? { maxBodyBytes: parseBytes('max-body', str('max-body')!) } : {}),
    ...(str('max-value') ? { valueBytesMax: parseBytes('max-value', str('max-value')!) } : {}),
    ...(str('statement-timeout-ms') ? { statementTimeoutMs: parseCount('statement-timeout-ms', str('statement-timeout-ms')!) } : {}),
    ...(str('share-of-server') ? { shareOfServer: parseFraction('share-of-server', str('share-of-server')!) } : {}),
    ...(str('body-timeout-ms') ? { bodyTimeoutMs: parseCount('body-timeout-ms', str('body-timeout-ms')!) } : {}),
    ...(str('write-rules') ? { writeRules: readWriteRules(str('write-rules')!) } : {}),
    durability,
    // --quiet drops the per-request info lines (load tests); errors are still printed.
    ...(flags.get('quiet') === true ? { log: (line: string) => (line.startsWith('error') ? console.error(line) : undefined) } : {}),
  });
  const { url } = await server.listen();
  console.log(`info Outpost sync server listening on ${url} (data ${data}, auth ${noAuth ? 'off' : 'on'})`);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    console.log(`info ${signal}: closing databases`);
    server.close().then(
      () => process.exit(0),
      (e: unknown) => {
        console.error(`error while closing: ${(e as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

async function token(flags: Flags): Promise<void> {
  const str = (k: string): string | undefined => valueOf(flags, k);
  const db = str('db');
  const role = str('role') ?? 'write';
  const secret = str('secret') ?? process.env.OUTPOST_AUTH_SECRET;
  if (!db) throw new Error('token needs --db NAME');
  if (!secret) throw new Error('token needs --secret SECRET');
  if (role !== 'read' && role !== 'write' && role !== 'admin') throw new Error('--role is read, write or admin');
  const names = db === '*' ? db : db.includes(',') ? db.split(',') : db;
  console.log(await mintToken(secret, { db: names, role: role as Role, expires: str('expires'), subject: str('sub') }));
}

async function main(): Promise<void> {
  const { command, flags } = parse(process.argv.slice(2));
  if (command === 'serve') return serve(flags);
  if (command === 'token') return token(flags);
  console.log(USAGE);
  if (command !== 'help' && command !== '--help') process.exitCode = 2;
}

main().catch((e: unknown) => {
  console.error(`outpost: ${(e as Error).message}`);
  console.error(USAGE);
  process.exit(2);
});
