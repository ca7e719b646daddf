/**
 * conflicts.ts `retryGroup`, alone: which later records move with a retried one. A table of
 * cases, each rows per record as "table:key" strings.
 */
import { expect, test } from 'vitest';
import { retryGroup } from '../../src/sync/conflicts.js';

function group(retried: number, rows: Record<number, string[]>): number[] {
  const later = Object.keys(rows).map(Number).sort((a, b) => a - b);
  return retryGroup(retried, later, (id) => new Set(rows[id] ?? []));
}

const cases: { name: string; retried: number; rows: Record<number, string[]>; want: number[] }[] = [
  { name: 'alone when no later record writes its rows', retried: 1, rows: { 1: ['t:1'], 2: ['t:2'], 3: ['u:1'] }, want: [1] },
  { name: 'with a later record of the same row', retried: 1, rows: { 1: ['t:1'], 2: ['t:2'], 3: ['t:1'] }, want: [1, 3] },
  { name: 'with records that share a row with one taken along (transitively), in order', retried: 2, rows: { 2: ['t:1'], 4: ['t:1', 't:5'], 5: ['t:9'], 7: ['t:5'] }, want: [2, 4, 7] },
  { name: 'never with an earlier record', retried: 5, rows: { 1: ['t:1'], 5: ['t:1'], 6: ['t:1'] }, want: [5, 6] },
  { name: 'a record that writes nothing the group writes stays, even between members', retried: 1, rows: { 1: ['t:1'], 2: ['t:2'], 3: ['t:1'], 4: ['t:2'] }, want: [1, 3] },
];

test.each(cases)('retryGroup: $name', ({ retried, rows, want }) => {
  expect(group(retried, rows)).toEqual(want);
});
