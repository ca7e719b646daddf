/**
 * A smoke run of the benchmark harness (`npm run bench -- --quick`): one run of a few classic
 * tests at a small scale, the API and open costs, and the Node suite, so the harness cannot rot.
 * It checks the report's shape, never its speed.
 */
import { expect, test } from 'vitest';
import { parseArgs, runBench, toMarkdown } from '../bench/run.js';

test('the benchmark harness runs every part and reports medians', async () => {
  const report = await runBench(parseArgs(['--quick']));
  expect(report.failures).toEqual({});
  expect(report.configs).toEqual(['outpost', 'memory', 'sahpool-wal', 'api-outpost', 'api-memory', 'api-worker1', 'node-outpost', 'node-better-sqlite3']);
  for (const test of ['c01', 'c02', 'c07']) {
    for (const config of report.configs) {
      const cell = report.results[test]?.[config];
      expect(cell?.runs).toHaveLength(1);
      expect(cell!.ms).toBeGreaterThan(0);
    }
  }
  expect(report.results['api-select1']?.outpost?.p99Ms).toBeGreaterThan(0);
  expect(report.results['api-query-100k']?.outpost?.unit).toBe('rows/s');
  expect(report.results['open-50mb']?.outpost?.ms).toBeGreaterThan(0);
  expect(toMarkdown(report)).toContain('| c01 1000 INSERTs (autocommit) |');
}, 300_000);
