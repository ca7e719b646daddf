/** The command line's parser alone (no process): what each flag and variable turns into. */
import { describe, expect, test } from 'vitest';
import { int, pick, rng, testSeed } from '../support/generate.js';
import { UsageError, parseBytes, parseCommandLine } from '../../src/server/cli-args.js';

const SECRET = 'test-secret-0123456789abcdef';

function serve(args: string[], env: Record<string, string> = {}) {
  const command = parseCommandLine(['serve', ...args], env);
  if (command.kind !== 'serve') throw new Error(`expected serve, got ${command.kind}`);
  return command.args;
}

describe('serve', () => {
  test('defaults: 127.0.0.1:8080, text logs at info, any origin, metrics on', () => {
    expect(serve(['-d', 'data', '--no-auth'])).toMatchObject({ dataDir: 'data', host: '127.0.0.1', port: 8080, auth: null, logFormat: 'text', logLevel: 'info', corsOrigins: '*', metrics: true });
  });

  test('flags win over PORT and HOST, which win over the defaults', () => {
    expect(serve(['-d', 'd', '--no-auth'], { PORT: '9000', HOST: '0.0.0.0' })).toMatchObject({ port: 9000, host: '0.0.0.0' });
    expect(serve(['-d', 'd', '--no-auth', '-p', '9001', '-H', '::1'], { PORT: '9000', HOST: '0.0.0.0' })).toMatchObject({ port: 9001, host: '::1' });
  });

  test('--cors-origin repeats into a list', () => {
    expect(serve(['-d', 'd', '--no-auth', '--cors-origin', 'https://a.example', '--cors-origin', 'https://b.example']).corsOrigins).toEqual(['https://a.example', 'https://b.example']);
  });

  test('the secret comes from -s or $OUTPOST_AUTH_SECRET; keys and checks are kept together', () => {
    expect(serve(['-d', 'd', '-s', SECRET]).auth).toEqual({ secret: SECRET });
    expect(serve(['-d', 'd'], { OUTPOST_AUTH_SECRET: SECRET }).auth).toEqual({ secret: SECRET });
    expect(serve(['-d', 'd', '--auth-jwks', 'https://id.example/jwks', '--auth-issuer', 'https://id.example', '--auth-audience', 'outpost']).auth).toEqual({ jwksUrl: 'https://id.example/jwks', issuer: 'https://id.example', audience: 'outpost' });
  });

  test('--no-auth ignores a secret in the environment but refuses a key on the command line', () => {
    expect(serve(['-d', 'd', '--no-auth'], { OUTPOST_AUTH_SECRET: SECRET }).auth).toBeNull();
    expect(() => serve(['-d', 'd', '--no-auth', '-s', SECRET])).toThrow(UsageError);
  });

  test('the metrics token comes from --metrics-token or $OUTPOST_METRICS_TOKEN; a short one or one with --no-metrics is refused', () => {
    const token = 'metrics-token-0123456789';
    expect(serve(['-d', 'd', '--no-auth']).metricsToken).toBeUndefined();
    expect(serve(['-d', 'd', '--no-auth', '--metrics-token', token]).metricsToken).toBe(token);
    expect(serve(['-d', 'd', '--no-auth'], { OUTPOST_METRICS_TOKEN: token }).metricsToken).toBe(token);
    expect(() => serve(['-d', 'd', '--no-auth', '--metrics-token', 'short'])).toThrow(/at least 16/);
    expect(() => serve(['-d', 'd', '--no-auth', '--no-metrics', '--metrics-token', token])).toThrow(/--no-metrics/);
  });

  test('-q is --log-level warn; both at once is refused', () => {
    expect(serve(['-d', 'd', '--no-auth', '-q']).logLevel).toBe('warn');
    expect(() => serve(['-d', 'd', '--no-auth', '-q', '--log-level', 'debug'])).toThrow(/--quiet/);
  });

  test.each([
    [['--log-format', 'xml'], /--log-format is text, json/],
    [['--log-level', 'loud'], /--log-level is debug, info, warn, error/],
    [['--durability', 'extra'], /--durability/],
    [['--max-body', '12 parsecs'], /--max-body takes a size/],
    [['-p', '70000'], /port from 0 to 65535/],
  ])('%j is a usage error', (extra, message) => {
    expect(() => serve(['-d', 'd', '--no-auth', ...extra])).toThrow(message);
  });

  test('a JWKS URL that is not http(s) is a usage error', () => {
    expect(() => serve(['-d', 'd', '--auth-jwks', 'file:///etc/jwks'])).toThrow(/http\(s\) URL/);
  });

  test('a short secret is a usage error', () => {
    expect(() => serve(['-d', 'd', '-s', 'short'])).toThrow(/at least 16/);
  });
});

describe('token and the rest', () => {
  test('token: a list of databases, role, expiry, subject, issuer and audience', () => {
    expect(parseCommandLine(['token', '--db', 'a,b', '-r', 'admin', '-e', '1h', '--sub', 'ann', '--auth-issuer', 'me', '--auth-audience', 'you'], { OUTPOST_AUTH_SECRET: SECRET })).toEqual({
      kind: 'token',
      args: { secret: SECRET, db: ['a', 'b'], role: 'admin', expires: '1h', subject: 'ann', issuer: 'me', audience: 'you' },
    });
  });

  test('help and version', () => {
    expect(parseCommandLine([], {})).toEqual({ kind: 'help' });
    expect(parseCommandLine(['serve', '-h'], {})).toEqual({ kind: 'help' });
    expect(parseCommandLine(['-v'], {})).toEqual({ kind: 'version' });
  });

  test('an unknown command is a usage error', () => {
    expect(() => parseCommandLine(['srve'], {})).toThrow(UsageError);
  });

  test('sizes still parse as before', () => {
    expect(parseBytes('max-body', '512KiB')).toBe(512 * 1024);
  });

  test('generated sizes (every unit, any case, spaces) parse to their bytes and reach the serve options: --max-body 1MB is 1048576', () => {
    const seed = testSeed();
    const random = rng(seed);
    const units: [string[], number][] = [
      [['', 'b', 'B'], 1],
      [['k', 'K', 'kb', 'KB', 'kib', 'KiB', 'KIB'], 1024],
      [['m', 'M', 'mb', 'MB', 'mib', 'MiB'], 1024 ** 2],
      [['g', 'G', 'gb', 'GB', 'gib', 'GiB'], 1024 ** 3],
    ];
    for (let i = 0; i < 200; i++) {
      const [spellings, scale] = pick(random, units);
      const n = int(random, 1, 4096);
      const text = `${pick(random, ['', ' '])}${n}${pick(random, ['', ' '])}${pick(random, spellings)}${pick(random, ['', ' '])}`;
      const flag = pick(random, ['max-body', 'max-value', 'max-answer', 'max-heap', 'pull-spool']);
      const key = { 'max-body': 'maxBodyBytes', 'max-value': 'valueBytesMax', 'max-answer': 'maxAnswerBytes', 'max-heap': 'maxHeapBytes', 'pull-spool': 'maxPullSpoolBytes' }[flag];
      expect(serve(['-d', 'd', '--no-auth', `--${flag}`, text])[key as 'maxBodyBytes'], `seed ${seed}: --${flag} ${JSON.stringify(text)}`).toBe(n * scale);
    }
    expect(serve(['-d', 'd', '--no-auth', '--max-body', '1MB']).maxBodyBytes).toBe(1024 * 1024);
    expect(serve(['-d', 'd', '--no-auth', '--pull-spool', '0']).maxPullSpoolBytes).toBe(0);
    for (const bad of ['0', '0MB', '1.5MB', '-1', '1TB', 'MB', '1 M B', '']) {
      expect(() => serve(['-d', 'd', '--no-auth', '--max-body', bad]), bad).toThrow(UsageError);
      expect(() => serve(['-d', 'd', '--no-auth', '--max-heap', bad]), bad).toThrow(UsageError);
    }
  });

  /**
   * 100 generated values for whole-number flags: a value in `1..max` (some with a leading
   * space) reaches its option, and one of `bad` is a usage error.
   */
  function generatedWholeNumbers(keys: Record<string, keyof ReturnType<typeof serve>>, max: number, bad: string[], pad: boolean): void {
    const seed = testSeed();
    const random = rng(seed);
    const flags = Object.keys(keys);
    for (let i = 0; i < 100; i++) {
      const flag = pick(random, flags);
      const n = int(random, 1, max);
      expect(serve(['-d', 'd', '--no-auth', `--${flag}`, `${pad ? pick(random, ['', ' ']) : ''}${n}`])[keys[flag]!], `seed ${seed}: --${flag} ${n}`).toBe(n);
      const wrong = pick(random, [...bad, `${n}x`]);
      expect(() => serve(['-d', 'd', '--no-auth', `--${flag}`, wrong]), `seed ${seed}: --${flag} ${JSON.stringify(wrong)}`).toThrow(UsageError);
    }
    for (const flag of flags) expect(serve(['-d', 'd', '--no-auth'])).not.toHaveProperty(keys[flag]!);
  }

  test('generated stream durations: --stream-idle-ms and --stream-lifetime-ms take milliseconds like the other duration flags; anything else is a usage error', () => {
    generatedWholeNumbers({ 'stream-idle-ms': 'streamIdleMs', 'stream-lifetime-ms': 'streamLifetimeMs' }, 3_600_000, ['0', '-5', '1.5', '30s', '1e3', 'soon', ''], true);
    expect(() => serve(['-d', 'd', '--no-auth', '--stream-lifetime', '5000'])).toThrow(/did you mean --stream-lifetime-ms/);
    expect(() => serve(['-d', 'd', '--no-auth', '--stream-idle-ms'])).toThrow(UsageError);
  });

  test('generated stream slots: --max-streams, --streams-per-holder and --streams-without-subject take a positive count; anything else is a usage error', () => {
    generatedWholeNumbers({ 'max-streams': 'maxOpenStreams', 'streams-per-holder': 'maxOpenStreamsPerHolder', 'streams-without-subject': 'maxOpenStreamsWithoutSubject' }, 100_000, ['0', '-5', '1.5', 'many', ''], false);
  });
});
