/**
 * The pieces of sweeps and plots without the CLI: the interval arithmetic, the cartesian product,
 * reading a sweep CSV into a chart, and the event trace's lines.
 */
import { describe, expect, it } from 'vitest';
import { traceJsonLines } from '../../simulations/cli-trace.js';
import { parseSweep, type SweepSpec } from '../../simulations/params.js';
import { chartFromCsv, parseCsv, renderLineChartSvg, type Csv } from '../../simulations/plot.js';
import { cartesianPoints, meanInterval, studentT975 } from '../../simulations/sweep.js';
import { checkpointReport, simResult } from '../fixtures/sim-result.js';

function sweep(text: string): SweepSpec {
  const parsed = parseSweep(text);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

function csv(text: string): Csv {
  const parsed = parseCsv(text, 'test.csv');
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

describe('mean and 95% interval', () => {
  it('uses Student t with n-1 degrees of freedom', () => {
    // 2, 4, 6: mean 4, s = 2, half-width 4.303 * 2 / sqrt(3).
    const s = meanInterval([2, 4, 6]);
    expect(s.mean).toBe(4);
    expect(s.high - s.mean).toBeCloseTo((4.303 * 2) / Math.sqrt(3), 9);
    expect(s.mean - s.low).toBeCloseTo(s.high - s.mean, 12);
  });

  it('has no interval for one value and leaves undefined values out', () => {
    const one = meanInterval([5]);
    expect([one.mean, Number.isNaN(one.low), Number.isNaN(one.high)]).toEqual([5, true, true]);
    const some = meanInterval([Number.NaN, 1, 3]);
    expect([some.mean, some.n]).toEqual([2, 2]);
    expect(Number.isNaN(meanInterval([Number.NaN]).mean)).toBe(true);
  });

  it('t quantiles fall towards 1.96 and join the table smoothly after 30 degrees of freedom', () => {
    expect(studentT975(1)).toBe(12.706);
    expect(studentT975(30)).toBe(2.042);
    expect(studentT975(31)).toBeLessThan(2.042);
    expect(studentT975(31)).toBeCloseTo(2.0395, 3);
    expect(studentT975(120)).toBeCloseTo(1.9799, 3);
    expect(studentT975(100_000)).toBeCloseTo(1.96, 3);
  });
});

describe('cartesian points', () => {
  it('vary the first parameter slowest and leave the seed out (seeds are replicates)', () => {
    const points = cartesianPoints([sweep('processes=2..3'), sweep('seed=1..9'), sweep('skew=1,4')]);
    expect(points.map((p) => p.map((v) => `${v.name}=${v.value}`).join(' '))).toEqual([
      'processes=2 skew=1',
      'processes=2 skew=4',
      'processes=3 skew=1',
      'processes=3 skew=4',
    ]);
  });

  it('of a sweep of seeds alone is the one empty point', () => {
    expect(cartesianPoints([sweep('seed=1..3')])).toEqual([[]]);
  });
});

describe('plot: reading a sweep CSV', () => {
  const aggregated = [
    'processes,algorithm,seeds,runs,consistent_runs,overhead_mean,overhead_ci95_low,overhead_ci95_high',
    '4,abs,1 2,2,2,1.000,0.500,1.500',
    '4,sync,1 2,2,2,3.000,2.000,4.000',
    '8,abs,1 2,2,2,2.000,-,-',
    '8,sync,1 2,2,2,-,-,-',
  ].join('\n');

  it('makes a line per algorithm with error bars from the interval columns, skipping undefined values', () => {
    const chart = chartFromCsv(csv(aggregated), { y: 'overhead', source: 'test.csv' });
    expect(chart.ok && chart.value.series).toEqual([
      { label: 'abs', points: [{ x: 4, y: 1, low: 0.5, high: 1.5 }, { x: 8, y: 2 }] },
      { label: 'sync', points: [{ x: 4, y: 3, low: 2, high: 4 }] },
    ]);
  });

  it('splits a per-run CSV by the other swept parameters and the seed', () => {
    const perRun = ['skew,interval,algorithm,completed,consistent,seed', '1,10,abs,3,true,1', '1,20,abs,4,true,1', '2,10,abs,5,true,1', '2,10,abs,6,true,2'].join('\n');
    const chart = chartFromCsv(csv(perRun), { y: 'completed', x: 'skew', source: 'test.csv' });
    expect(chart.ok && chart.value.series.map((s) => [s.label, s.points.map((p) => `${p.x}:${p.y}`)])).toEqual([
      ['abs, interval=10, seed=1', ['1:3', '2:5']],
      ['abs, interval=20, seed=1', ['1:4']],
      ['abs, interval=10, seed=2', ['2:6']],
    ]);
  });

  it.each<[string, string, { y: string; x?: string }, string]>([
    ['a CSV that is not a sweep', 'a,b\n1,2', { y: 'b' }, 'has no "algorithm" column'],
    ['a metric it lacks', aggregated, { y: 'stall' }, 'has no metric "stall" (metrics: overhead)'],
    ['a parameter it lacks', aggregated, { y: 'overhead', x: 'skew' }, 'has no swept parameter "skew" (parameters: processes)'],
    ['a sweep of seeds alone', 'algorithm,seeds,runs,consistent_runs,x_mean,x_ci95_low,x_ci95_high\nabs,1 2,2,2,1,1,1', { y: 'x' }, 'nothing for the x axis'],
  ])('refuses %s, listing what it has', (_what, text, options, message) => {
    const chart = chartFromCsv(csv(text), { ...options, source: 'test.csv' });
    expect(chart.ok ? '' : chart.error).toContain(message);
  });

  it('refuses ragged and quoted CSVs rather than misreading them', () => {
    expect(parseCsv('a,b\n1', 'r.csv')).toEqual({ ok: false, error: 'r.csv line 2 has 1 fields, the header 2' });
    expect(parseCsv('a,b\n"1,2",3', 'q.csv').ok).toBe(false);
  });

  it('renders a scalable chart whose axis covers every interval', () => {
    const chart = chartFromCsv(csv(aggregated), { y: 'overhead', source: 'test.csv' });
    if (!chart.ok) throw new Error(chart.error);
    const svg = renderLineChartSvg(chart.value);
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" viewBox="0 0 \d+ \d+"/);
    expect(svg).not.toMatch(/<svg[^>]* width=/);
    expect(svg.match(/class="error-bar"/g)).toHaveLength(2);
    // The y axis reaches the highest interval end (4), from zero.
    expect(svg).toMatch(/>0<\/text>/);
    expect(svg).toMatch(/>4<\/text>/);
    expect(svg).toContain('data-series="sync"');
  });
});

describe('event trace as JSON lines', () => {
  const result = simResult({ checkpoints: [checkpointReport({ id: 1, triggeredAtMs: 5 }), checkpointReport({ id: 2, completed: false, abortReason: 'crash', triggeredAtMs: 12 })] });
  const lines = traceJsonLines(result)
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

  it('starts with the run and then lists events in time order', () => {
    expect(lines[0]).toEqual({
      kind: 'run',
      scenario: 'three-processes',
      algorithm: 'chandy-lamport',
      seed: 7,
      processes: ['a', 'b', 'c'],
      channels: ['a->b', 'b->a', 'b->c'],
      endedAtMs: result.endedAtMs,
    });
    const times = lines.slice(1).map((l) => l['t'] as number);
    expect(times).toEqual([...times].sort((a, b) => a - b));
  });

  it('splits every message and barrier into its send and its delivery', () => {
    expect(lines.filter((l) => l['channel'] === 'b->a' && l['seq'] === 1 && l['kind'] !== 'replay')).toEqual([
      { t: 2, kind: 'send', channel: 'b->a', from: 'b', to: 'a', seq: 1 },
      { t: 9, kind: 'deliver', channel: 'b->a', from: 'b', to: 'a', seq: 1, recordedIn: [1] },
    ]);
    // a->b #2 was never delivered: a send and nothing more.
    expect(lines.filter((l) => l['channel'] === 'a->b' && l['seq'] === 2).map((l) => l['kind'])).toEqual(['send']);
    expect(lines.filter((l) => l['kind'] === 'barrier-send')).toHaveLength(3);
    expect(lines.filter((l) => l['kind'] === 'barrier-deliver')).toHaveLength(3);
  });

  it('has every trigger, snapshot, end (with the abort reason), crash and recovery', () => {
    const at5 = lines.filter((l) => l['t'] === 5).map((l) => l['kind']);
    // The trigger comes before what the checkpoint does at the same instant.
    expect(at5).toEqual(['trigger', 'snapshot', 'barrier-send']);
    expect(lines.filter((l) => l['kind'] === 'snapshot')).toHaveLength(4);
    expect(lines.find((l) => l['kind'] === 'checkpoint-end' && l['checkpoint'] === 2)).toEqual({
      t: 16,
      kind: 'checkpoint-end',
      checkpoint: 2,
      completed: false,
      abortReason: 'crash',
    });
    expect(lines.find((l) => l['kind'] === 'crash')).toEqual({ t: 15, kind: 'crash', process: 'c' });
    expect(lines.find((l) => l['kind'] === 'recover')).toEqual({ t: 16, kind: 'recover', checkpoint: 1 });
  });

  it('follows a recovery with the replay of the restored checkpoint\'s channel state', () => {
    const at16 = lines.filter((l) => l['t'] === 16);
    expect(at16.map((l) => l['kind'])).toEqual(['recover', 'replay', 'checkpoint-end']);
    expect(at16[1]).toEqual({ t: 16, kind: 'replay', channel: 'b->a', from: 'b', to: 'a', seq: 1, checkpoint: 1 });
  });
});
