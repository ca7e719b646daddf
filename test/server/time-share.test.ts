/**
 * The time-share rule (src/server/time-share.ts) as a table: what a database has run, when, and
 * whether (and how long) it must wait.
 */
import { expect, test } from 'vitest';
import { HttpError } from '../../src/server/http.js';
import { TimeShare } from '../../src/server/time-share.js';

const options = { shareOfServer: 0.25, burstMs: 1000 };

test.each([
  { name: 'nothing run: no wait', charges: [], at: 0, waitMs: 0 },
  { name: 'one burst within the allowance: no wait', charges: [[1000, 0]], at: 0, waitMs: 0 },
  { name: 'past the burst: the excess drains at the share', charges: [[1200, 0]], at: 0, waitMs: 800 },
  { name: 'the wait shrinks as wall-clock time passes', charges: [[1200, 0]], at: 400, waitMs: 400 },
  { name: 'drained: no wait', charges: [[1200, 0]], at: 800, waitMs: 0 },
  { name: 'charges add up', charges: [[600, 0], [600, 0]], at: 0, waitMs: 800 },
  { name: 'time between charges drains them', charges: [[600, 0], [600, 2400]], at: 2400, waitMs: 0 },
  { name: 'a clock that goes back drains nothing', charges: [[1200, 1000]], at: 500, waitMs: 800 },
])('$name', ({ charges, at, waitMs }) => {
  const share = new TimeShare(options);
  for (const [spentMs, nowMs] of charges as [number, number][]) share.charge(spentMs, nowMs);
  expect(share.waitMs(at)).toBe(waitMs);
});

test('a database over its share is refused with 429 BUSY and Retry-After in whole seconds', () => {
  const share = new TimeShare(options);
  share.charge(1300, 0);
  expect(() => share.check('hog', 0)).toThrow(HttpError);
  try {
    share.check('hog', 0);
  } catch (e) {
    const error = e as HttpError;
    expect([error.status, error.code, error.headers['retry-after']]).toEqual([429, 'BUSY', '2']);
    expect(error.message).toMatch(/"hog".*retry in 2 s/);
  }
  expect(() => share.check('hog', 1200)).not.toThrow();
});

test('a share outside (0, 1] or a burst that is not positive is a RangeError', () => {
  expect(() => new TimeShare({ shareOfServer: 0, burstMs: 1 })).toThrow(RangeError);
  expect(() => new TimeShare({ shareOfServer: 1.5, burstMs: 1 })).toThrow(RangeError);
  expect(() => new TimeShare({ shareOfServer: 0.5, burstMs: 0 })).toThrow(RangeError);
});
