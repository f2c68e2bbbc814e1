/**
 * The pieces of sweeps and plots without the CLI: the interval arithmetic, the cartesian product,
 * reading a sweep CSV into a chart, and the event trace's lines.
 */
import { describe, expect, it } from 'vitest';
import { traceJsonLines } from '../../simulations/cli-trace.js';
import { applyParam, parseSweep, type SweepSpec } from '../../simulations/params.js';
import { scenarioForTopology } from '../../simulations/scenario-file.js';
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

describe('the service-time parameter', () => {
  const hot = scenarioForTopology('ring', 4, { skew: { slowProcess: { process: 'p1', serviceTimeMs: 1 }, slowChannel: { channel: 'p0->p1', delayFactor: 2 } } });

  it("sets the slow process's service time, and 0 removes the slow process alone (uniform load)", () => {
    const set = applyParam(hot, 1, 'service-time', 2.5);
    expect(set.ok && set.value.scenario.skew).toEqual({ slowProcess: { process: 'p1', serviceTimeMs: 2.5 }, slowChannel: { channel: 'p0->p1', delayFactor: 2 } });
    const uniform = applyParam(hot, 1, 'service-time', 0);
    expect(uniform.ok && uniform.value.scenario.skew).toEqual({ slowChannel: { channel: 'p0->p1', delayFactor: 2 } });
    const onlyHot = scenarioForTopology('ring', 4, { skew: { slowProcess: { process: 'p1', serviceTimeMs: 1 } } });
    const none = applyParam(onlyHot, 1, 'service-time', 0);
    expect(none.ok && 'skew' in none.value.scenario).toBe(false);
  });

  it('needs the scenario to say which process is slow', () => {
    const refused = applyParam(scenarioForTopology('ring', 4), 1, 'service-time', 2);
    expect(refused.ok ? '' : refused.error).toBe('service-time needs a scenario with skew.slowProcess (it names the slow process)');
  });

  it('sweeps from 0, and refuses a negative time', () => {
    expect(sweep('service-time=0..1:0.5').values).toEqual([0, 0.5, 1]);
    expect(parseSweep('service-time=-1..1').ok).toBe(false);
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

  it('leaves out a line with no value at all, which the legend would name with nothing drawn', () => {
    const text = ['processes,algorithm,seeds,runs,consistent_runs,forced_mean,forced_ci95_low,forced_ci95_high', '4,abs,1 2,2,2,-,-,-', '4,cic,1 2,2,2,3,2,4'].join('\n');
    const chart = chartFromCsv(csv(text), { y: 'forced', source: 'test.csv' });
    expect(chart.ok && chart.value.series.map((s) => s.label)).toEqual(['cic']);
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

  it('--relative-to divides every value and its interval by the baseline at the same point, and leaves out points without one', () => {
    const text = [
      'skew,interval,algorithm,seeds,runs,consistent_runs,thr_mean,thr_ci95_low,thr_ci95_high',
      '1,10,none,1 2,2,2,100,90,110',
      '1,10,sync,1 2,2,2,40,30,50',
      '1,20,none,1 2,2,2,200,190,210',
      '1,20,sync,1 2,2,2,100,-,-',
      '2,10,none,1 2,2,2,0,0,0',
      '2,10,sync,1 2,2,2,10,5,15',
    ].join('\n');
    const chart = chartFromCsv(csv(text), { y: 'thr', relativeTo: 'none', source: 'test.csv' });
    if (!chart.ok) throw new Error(chart.error);
    expect(chart.value.series).toEqual([
      { label: 'none, interval=10', points: [{ x: 1, y: 1, low: 0.9, high: 1.1 }] },
      { label: 'sync, interval=10', points: [{ x: 1, y: 0.4, low: 0.3, high: 0.5 }] },
      { label: 'none, interval=20', points: [{ x: 1, y: 1, low: 0.95, high: 1.05 }] },
      { label: 'sync, interval=20', points: [{ x: 1, y: 0.5 }] },
    ]);
    expect(chart.value.yLabel).toBe('thr / none');
    expect(chart.value.title).toBe('thr / none by skew (mean, 95% interval over the seeds)');
    const missing = chartFromCsv(csv(text), { y: 'thr', relativeTo: 'abs', source: 'test.csv' });
    expect(missing.ok ? '' : missing.error).toBe('test.csv has no rows of algorithm "abs" for --relative-to (algorithms: none, sync)');
    const undefinedBaseline = chartFromCsv(csv(text.replace(/none,1 2,2,2,\d+,\d+,\d+/g, 'none,1 2,2,2,-,-,-')), { y: 'thr', relativeTo: 'none', source: 'test.csv' });
    expect(undefinedBaseline.ok ? '' : undefinedBaseline.error).toBe('test.csv: none has no thr other than 0 or "-", so nothing can be relative to it');
  });

  it('--relative-to in a per-run CSV pairs the runs of one seed', () => {
    const perRun = ['interval,algorithm,thr,consistent,seed', '10,none,100,true,1', '10,sync,50,true,1', '10,none,200,true,2', '10,sync,50,true,2'].join('\n');
    const chart = chartFromCsv(csv(perRun), { y: 'thr', relativeTo: 'none', source: 'test.csv' });
    expect(chart.ok && chart.value.series.map((s) => [s.label, s.points.map((p) => p.y)])).toEqual([
      ['none, seed=1', [1]],
      ['sync, seed=1', [0.5]],
      ['none, seed=2', [1]],
      ['sync, seed=2', [0.25]],
    ]);
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
