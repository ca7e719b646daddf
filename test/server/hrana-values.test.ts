/**
 * Hrana values, read exactly: the type a value names is the type it is bound as (a whole float
 * stays REAL), integers keep all 64 bits, blobs their bytes (an empty blob is not NULL), and a
 * malformed value is a 400 that executes nothing of its request and leaves the next request
 * working. The codec first (protocol/hrana.ts), then the server.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ProtocolError } from '../../src/errors.js';
import { decodeHranaValue, fromBase64, toBase64, toHranaValue } from '../../src/protocol/hrana.js';
import { int, rng, testSeed } from '../support/generate.js';
import type { OutpostServer } from '../../src/server/server.js';
import { batch, rawPipeline, startServer } from '../support/server.js';

describe('base64 (Node takes its Buffer: its btoa took 15 s for 30 MB, a stall of the whole server)', () => {
  test('generated blobs encode as btoa does and decode back; text btoa would refuse is refused', () => {
    const seed = testSeed();
    const random = rng(seed);
    const latin1 = (b: Uint8Array): string => Array.from(b, (x) => String.fromCharCode(x)).join('');
    for (let i = 0; i < 300; i++) {
      const bytes = Uint8Array.from({ length: int(random, 0, 70) }, () => int(random, 0, 255));
      const text = toBase64(bytes);
      expect(text, `seed ${seed}`).toBe(btoa(latin1(bytes)));
      expect(fromBase64(text), `seed ${seed}`).toEqual(bytes);
      expect(fromBase64(text.replace(/=+$/, '')), `seed ${seed}: unpadded`).toEqual(bytes);
      // One character that is not base64, anywhere: refused, as atob refuses it.
      if (text.length > 0) {
        const at = int(random, 0, text.length - 1);
        const notBase64 = '!"#$%&\'()*,.:;<>?@[]^`{|}~ -_';
        const bad = text.slice(0, at) + notBase64[int(random, 0, notBase64.length - 1)] + text.slice(at + 1);
        expect(() => fromBase64(bad), `seed ${seed}: ${bad}`).toThrow(ProtocolError);
      }
    }
    for (const bad of ['a', 'ab-_', 'Q=Q=', '@@@@', 'QUJ\u0000', 'QUJDR']) expect(() => fromBase64(bad), bad).toThrow(ProtocolError);
  });
});

describe('decodeHranaValue', () => {
  test.each([
    [{ type: 'null' }, { type: 'null' }],
    [{ type: 'integer', value: '9223372036854775807' }, { type: 'integer', value: 9223372036854775807n }],
    [{ type: 'integer', value: '-9223372036854775808' }, { type: 'integer', value: -9223372036854775808n }],
    [{ type: 'integer', value: 42 }, { type: 'integer', value: 42n }],
    [{ type: 'float', value: 3 }, { type: 'float', value: 3 }],
    [{ type: 'float', value: 1e21 }, { type: 'float', value: 1e21 }],
    [{ type: 'text', value: 'a\u0000b' }, { type: 'text', value: 'a\u0000b' }],
    [{ type: 'blob', base64: '' }, { type: 'blob', bytes: new Uint8Array(0) }],
    [{ type: 'blob', base64: 'AP8' }, { type: 'blob', bytes: Uint8Array.from([0, 255]) }],
    [{ type: 'blob', base64: 'AP8=' }, { type: 'blob', bytes: Uint8Array.from([0, 255]) }],
  ])('%j', (wire, decoded) => {
    expect(decodeHranaValue(wire)).toEqual(decoded);
  });

  test.each([
    [null],
    ['text'],
    [{ type: 'integer', value: '1e+21' }],
    [{ type: 'integer', value: '9223372036854775808' }],
    [{ type: 'integer', value: 2 ** 60 }],
    [{ type: 'integer', value: '' }],
    [{ type: 'float', value: null }],
    [{ type: 'float', value: '1.5' }],
    [{ type: 'text', value: 3 }],
    [{ type: 'blob', base64: 'A' }],
    [{ type: 'blob', base64: '!!!!' }],
    [{ type: 'blob' }],
    [{ type: 'decimal', value: '1' }],
  ])('refuses %j', (wire) => {
    expect(() => decodeHranaValue(wire)).toThrow(ProtocolError);
  });

  test('toHranaValue: an integer only when safe, and never a number JSON cannot hold', () => {
    expect(toHranaValue(3)).toEqual({ type: 'integer', value: '3' });
    expect(toHranaValue(1e21)).toEqual({ type: 'float', value: 1e21 });
    expect(toHranaValue(2 ** 53 + 2)).toEqual({ type: 'float', value: 2 ** 53 + 2 });
    expect(() => toHranaValue(Number.POSITIVE_INFINITY)).toThrow(ProtocolError);
    expect(() => toHranaValue(Number.NaN)).toThrow(ProtocolError);
  });
});

describe('the server binds Hrana values exactly', () => {
  let server: OutpostServer;
  let db: string;
  beforeAll(async () => {
    const started = await startServer({ auth: false });
    server = started.server;
    db = `${started.url}/db/values`;
    const res = await rawPipeline(db, batch('CREATE TABLE v(id INTEGER PRIMARY KEY, x)'));
    expect(res.status).toBe(200);
  });
  afterAll(() => server.close());

  const read = async (): Promise<unknown[][]> => {
    const res = await rawPipeline(db, batch('SELECT id, typeof(x), hex(x) FROM v ORDER BY id'));
    return (res.json.results[0].response.result.step_results[0].rows as { value: unknown }[][]).map((r) => r.map((c) => c.value));
  };

  test('a whole float is REAL, big integers and blobs exact, named arguments too', async () => {
    const insert = (id: number, value: unknown) => ({ sql: 'INSERT INTO v VALUES (?, ?)', args: [{ type: 'integer', value: String(id) }, value] });
    const res = await rawPipeline(
      db,
      batch(
        insert(1, { type: 'float', value: 3 }),
        insert(2, { type: 'integer', value: '-9223372036854775808' }),
        insert(3, { type: 'blob', base64: '' }),
        insert(4, { type: 'float', value: 1e21 }),
        insert(5, { type: 'text', value: 'a\u0000b' }),
      ),
    );
    expect(res.status).toBe(200);
    const named = await rawPipeline(db, {
      baton: null,
      requests: [{ type: 'execute', stmt: { sql: 'INSERT INTO v VALUES (6, :x)', named_args: [{ name: ':x', value: { type: 'float', value: -2 } }] } }],
    });
    expect(named.status).toBe(200);
    expect(await read()).toEqual([
      ['1', 'real', '332E30'],
      ['2', 'integer', '2D39323233333732303336383534373735383038'],
      ['3', 'blob', ''],
      ['4', 'real', '312E30652B3231'],
      ['5', 'text', '610062'],
      ['6', 'real', '2D322E30'],
    ]);
  });

  test('a malformed value is a 400 that runs nothing of its batch, and the next request works', async () => {
    const before = await read();
    for (const bad of [{ type: 'float', value: null }, { type: 'integer', value: '1e+21' }, { type: 'integer', value: '99999999999999999999' }, { type: 'blob', base64: 'A' }]) {
      const res = await rawPipeline(
        db,
        batch('INSERT INTO v VALUES (100, 1)', { sql: 'INSERT INTO v VALUES (101, ?)', args: [bad] }),
      );
      expect(res.status, JSON.stringify(bad)).toBe(400);
      expect(res.json.error ?? res.json.message ?? JSON.stringify(res.json)).toMatch(/integer|float|blob|base64/);
    }
    expect(await read()).toEqual(before);
    const ok = await rawPipeline(db, batch({ sql: 'INSERT INTO v VALUES (7, ?)', args: [{ type: 'float', value: 0.5 }] }));
    expect(ok.status).toBe(200);
    expect((await read()).at(-1)).toEqual(['7', 'real', '302E35']);
  });
});
