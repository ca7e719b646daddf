/**
 * Issue 15's table: each figure of the classic suite through the public API beside its baseline
 * from the same run, the ratio, the target and whether it is met. Best runs throughout (the
 * machine is shared; the fastest run is the least disturbed one). The engine-level ratio
 * (outpost / memory, each in a fresh worker) is shown beside it.
 */
import { CLASSIC_TESTS } from './classic.js';
import type { BenchReport, Cell } from './run.js';

const best = (cell: Cell | undefined): number | undefined => cell?.best ?? cell?.ms;
const fmt = (ms: number | undefined): string => (ms === undefined ? '' : ms < 1 ? ms.toFixed(3) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0));

interface TargetRow {
  figure: string;
  value: string;
  baseline: string;
  ratio: string;
  target: string;
  met: string;
  engine?: string;
}

function ratioRow(figure: string, value: number | undefined, baseline: number | undefined, baselineName: string, limit: number, engine?: string): TargetRow {
  const ratio = value !== undefined && baseline ? value / baseline : undefined;
  return {
    figure,
    value: fmt(value),
    baseline: `${fmt(baseline)} (${baselineName})`,
    ratio: ratio === undefined ? '' : `${ratio.toFixed(2)}x`,
    target: `≤ ${limit}x`,
    met: ratio === undefined ? '?' : ratio <= limit ? 'yes' : 'no',
    ...(engine === undefined ? {} : { engine }),
  };
}

export function speedTable(report: BenchReport): string {
  const r = report.results;
  const rows: TargetRow[] = [];
  const engineRatio = (test: string): string => {
    const o = best(r[test]?.['outpost']);
    const m = best(r[test]?.['memory']);
    return o !== undefined && m ? `${(o / m).toFixed(2)}x` : '';
  };
  const appends = best(r['raw-appends']?.['opfs']);
  let apiTotal = 0;
  let walTotal = 0;
  let worker1Total = 0;
  for (const t of CLASSIC_TESTS) {
    const api = best(r[t.id]?.['api-outpost']);
    const mem = best(r[t.id]?.['api-memory']);
    if (api === undefined) continue;
    apiTotal += api;
    walTotal += best(r[t.id]?.['sahpool-wal']) ?? Number.NaN;
    worker1Total += best(r[t.id]?.['api-worker1']) ?? Number.NaN;
    if (t.id === 'c01') {
      const floor = mem !== undefined && appends !== undefined ? mem + appends : undefined;
      rows.push(ratioRow(`${t.id} ${t.title}`, api, floor, `floor: :memory: ${fmt(mem)} + appends ${fmt(appends)}`, 1.3, engineRatio(t.id)));
    } else {
      rows.push(ratioRow(`${t.id} ${t.title}`, api, mem, ':memory:', 1.3, engineRatio(t.id)));
    }
  }
  rows.push(ratioRow('whole suite (sum of tests)', apiTotal, Number.isNaN(walTotal) ? undefined : walTotal, 'sahpool-wal, engine level', 1));
  rows.push(ratioRow('whole suite, public API against public API', apiTotal, Number.isNaN(worker1Total) ? undefined : worker1Total, 'sahpool-wal through the Worker1 promiser', 1));
  const s1 = r['api-select1']?.['outpost'];
  const echo = best(r['api-echo']?.['outpost']);
  if (s1) rows.push({ figure: '`SELECT 1` round trip, median', value: fmt(s1.best), baseline: echo === undefined ? '' : `${fmt(echo)} (bare postMessage round trip)`, ratio: echo ? `${((s1.best ?? s1.ms) / echo).toFixed(2)}x` : '', target: '< 0.08 ms', met: (s1.best ?? s1.ms) < 0.08 ? 'yes' : 'no' });
  const s1memory = r['api-select1']?.['memory'];
  if (s1memory) rows.push({ figure: '`SELECT 1` round trip, median, memory (a database opened alone: call-port.ts)', value: fmt(s1memory.best), baseline: echo === undefined ? '' : `${fmt(echo)} (bare postMessage round trip)`, ratio: echo ? `${((s1memory.best ?? s1memory.ms) / echo).toFixed(2)}x` : '', target: '< 0.08 ms', met: (s1memory.best ?? s1memory.ms) < 0.08 ? 'yes' : 'no' });
  const q = r['api-query-100k']?.['outpost'];
  if (q) {
    const rate = q.bestRate ?? q.rate ?? 0;
    rows.push({ figure: '`query()` 100,000 rows x 5 columns', value: `${fmt(best(q))} ms · ${(rate / 1e6).toFixed(2)}M rows/s`, baseline: '', ratio: '', target: '≥ 1.2M rows/s', met: rate >= 1.2e6 ? 'yes' : 'no' });
  }
  const o = r['open-50mb']?.['outpost'];
  if (o) rows.push({ figure: 'open() an existing 50 MB database', value: fmt(best(o)), baseline: '', ratio: '', target: '< 100 ms', met: (best(o) ?? o.ms) < 100 ? 'yes' : 'no' });
  const lines = ['| figure | Outpost (API) ms | baseline ms | ratio | target | met | engine level outpost / memory |', '| --- | ---: | ---: | ---: | --- | --- | ---: |'];
  for (const row of rows) lines.push(`| ${row.figure} | ${row.value} | ${row.baseline} | ${row.ratio} | ${row.target} | ${row.met} | ${row.engine ?? ''} |`);
  return lines.join('\n');
}
