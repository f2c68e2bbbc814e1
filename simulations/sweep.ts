/**
 * Sweeps as data: the cartesian product of several swept parameters, seeds as replicates of a point,
 * the metrics of one run as named numbers, and the CSV rows (one per run, or one per point and
 * algorithm with a mean and a 95% interval per metric). No I/O and no simulation here; cli-main.ts
 * runs the points and writes the rows.
 */
import { fixed } from './text-table.js';
import type { ParamName, SweepSpec } from './params.js';
import type { RunMetrics, SimResult } from './types.js';
import { overheadOf, RECOVERY_FIGURES, recoveryFigure } from './overhead.js';

/** Most runs one sweep may start (points x seeds x algorithms), so a typo cannot start a week of work. */
export const SWEEP_RUNS_MAX = 20_000;

/** One combination of the swept parameters other than the seed, in the order they were given. */
export type SweepPoint = readonly { readonly name: ParamName; readonly value: number }[];

/** Every combination of the non-seed parameters, the first parameter varying slowest. */
export function cartesianPoints(sweeps: readonly SweepSpec[]): SweepPoint[] {
  let points: SweepPoint[] = [[]];
  for (const s of sweeps) {
    if (s.param.name === 'seed') continue;
    points = points.flatMap((point) => s.values.map((value) => [...point, { name: s.param.name, value }]));
  }
  return points;
}

/**
 * A metric column: its CSV name, how to read it from a run, and the decimals it prints with (`auto`:
 * an integer as it is, anything else with three).
 */
export interface MetricColumn {
  readonly name: string;
  readonly of: (result: SimResult) => number;
  readonly decimals: number | 'auto';
}

/**
 * The curated columns, in the order sweeps have always printed them. Every other number of
 * `RunMetrics` follows under its own name in snake case (`messagesSent` is `messages_sent`), so a
 * metric added to the engine reaches sweeps and plots without a change here.
 */
const CURATED: readonly (MetricColumn & { readonly key?: keyof RunMetrics })[] = [
  { name: 'completed', key: 'checkpointsCompleted', of: (r) => r.metrics.checkpointsCompleted, decimals: 0 },
  { name: 'mean_duration_ms', key: 'durationMsMean', of: (r) => r.metrics.durationMsMean, decimals: 3 },
  { name: 'channel_state_msgs', key: 'channelStateMessagesTotal', of: (r) => r.metrics.channelStateMessagesTotal, decimals: 0 },
  { name: 'buffered_msgs', key: 'bufferedMessagesTotal', of: (r) => r.metrics.bufferedMessagesTotal, decimals: 0 },
  { name: 'max_stall_ms', key: 'alignmentStallMsMax', of: (r) => r.metrics.alignmentStallMsMax, decimals: 3 },
  { name: 'throughput_msgs_per_s', key: 'throughputMsgsPerSec', of: (r) => r.metrics.throughputMsgsPerSec, decimals: 1 },
  { name: 'triggered', key: 'checkpointsTriggered', of: (r) => r.metrics.checkpointsTriggered, decimals: 0 },
  { name: 'violations', of: (r) => r.violations.length, decimals: 0 },
];

/**
 * Columns a sweep has when it runs a rollback algorithm (`uncoordinated`, `cic`): the overhead on
 * the scale every algorithm shares, then the recovery figures (`-` in a coordinated run's rows).
 */
const ROLLBACK_COLUMNS: readonly (MetricColumn & { readonly key?: keyof RunMetrics })[] = [
  { name: 'overhead', of: overheadOf, decimals: 4 },
  ...RECOVERY_FIGURES.map(({ name, key }) => ({ name, key, of: (r: SimResult) => recoveryFigure(r, key), decimals: 'auto' as const })),
];

/**
 * The metric columns of a result: the curated ones, the rollback ones when the sweep runs a
 * rollback algorithm, then the rest of its metrics by name.
 */
export function metricColumns(result: SimResult, rollback = false): MetricColumn[] {
  const fixedColumns = rollback ? [...CURATED, ...ROLLBACK_COLUMNS] : CURATED;
  const curatedKeys = new Set<string>([...CURATED, ...ROLLBACK_COLUMNS].flatMap((c) => (c.key === undefined ? [] : [c.key])));
  const names = new Set(fixedColumns.map((c) => c.name));
  const extra: MetricColumn[] = [];
  for (const [key, value] of Object.entries(result.metrics)) {
    if (curatedKeys.has(key) || typeof value !== 'number') continue;
    const name = snakeCase(key);
    if (names.has(name)) continue;
    names.add(name);
    extra.push({ name, of: (r) => (r.metrics as unknown as Record<string, number>)[key] ?? Number.NaN, decimals: 'auto' });
  }
  return [...fixedColumns, ...extra];
}

function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** A value as the CSV prints it; an undefined one (NaN, such as the mean duration of no checkpoint) as `-`. */
function cell(value: number, decimals: number | 'auto'): string {
  if (decimals === 'auto') return Number.isInteger(value) ? String(value) : fixed(value, 3);
  return fixed(value, decimals);
}

/** Header of the one-row-per-run CSV: the swept parameters, the algorithm, the metrics, and one seed column. */
export function perRunHeader(point: SweepPoint, metrics: readonly MetricColumn[]): string {
  return [...point.map((p) => p.name), 'algorithm', ...insertConsistent(metrics.map((m) => m.name), 'consistent'), 'seed'].join(',');
}

export function perRunRow(point: SweepPoint, result: SimResult, consistent: boolean, metrics: readonly MetricColumn[]): string {
  const values = metrics.map((m) => cell(m.of(result), m.decimals));
  return [...point.map((p) => String(p.value)), result.algorithm, ...insertConsistent(values, String(consistent)), String(result.seed)].join(',');
}

/**
 * `consistent` sits after throughput, where sweeps have always printed it, so scripts reading the old
 * columns by position keep working.
 */
function insertConsistent(values: readonly string[], consistent: string): string[] {
  const at = CURATED.findIndex((c) => c.name === 'throughput_msgs_per_s') + 1;
  return [...values.slice(0, at), consistent, ...values.slice(at)];
}

/** Suffixes of the three columns every metric has in an aggregated CSV. */
export const AGGREGATE_SUFFIXES = { mean: '_mean', low: '_ci95_low', high: '_ci95_high' } as const;

/**
 * Header of the aggregated CSV: the swept parameters, the algorithm, the seeds, the number of runs and
 * of consistent runs, then a mean and a 95% interval per metric.
 */
export function aggregateHeader(point: SweepPoint, metrics: readonly MetricColumn[]): string {
  return [
    ...point.map((p) => p.name),
    'algorithm',
    'seeds',
    'runs',
    'consistent_runs',
    ...metrics.flatMap((m) => [m.name + AGGREGATE_SUFFIXES.mean, m.name + AGGREGATE_SUFFIXES.low, m.name + AGGREGATE_SUFFIXES.high]),
  ].join(',');
}

/** One row for the runs of one point and algorithm (one per seed, in seed order). */
export function aggregateRow(
  point: SweepPoint,
  algorithm: string,
  runs: readonly { readonly result: SimResult; readonly consistent: boolean }[],
  metrics: readonly MetricColumn[],
): string {
  const cells = metrics.flatMap((m) => {
    const s = meanInterval(runs.map((r) => m.of(r.result)));
    const decimals = m.decimals === 'auto' ? 3 : Math.max(3, m.decimals);
    return [cell(s.mean, decimals), cell(s.low, decimals), cell(s.high, decimals)];
  });
  return [
    ...point.map((p) => String(p.value)),
    algorithm,
    runs.map((r) => r.result.seed).join(' '),
    String(runs.length),
    String(runs.filter((r) => r.consistent).length),
    ...cells,
  ].join(',');
}

export interface MeanInterval {
  readonly mean: number;
  /** Bounds of the 95% confidence interval of the mean (Student's t); NaN with fewer than two values. */
  readonly low: number;
  readonly high: number;
  /** How many values were defined (finite); an undefined metric, such as the mean duration of no checkpoint, is left out. */
  readonly n: number;
}

/** Mean and 95% interval of the finite values. */
export function meanInterval(values: readonly number[]): MeanInterval {
  const xs = values.filter((v) => Number.isFinite(v));
  const n = xs.length;
  if (n === 0) return { mean: Number.NaN, low: Number.NaN, high: Number.NaN, n };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { mean, low: Number.NaN, high: Number.NaN, n };
  const variance = xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1);
  const half = studentT975(n - 1) * Math.sqrt(variance / n);
  return { mean, low: mean - half, high: mean + half, n };
}

/** Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom. */
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093,
  2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

/** The 0.975 quantile of Student's t: the table to 30 degrees of freedom, then the Cornish-Fisher expansion (error < 0.001). */
export function studentT975(df: number): number {
  if (df <= T975.length) return T975[df - 1]!;
  const z = 1.959964;
  return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2);
}
