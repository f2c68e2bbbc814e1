/**
 * What every benchmark prints: the plain-NATS floor and the project's figure side by side, measured
 * in the same run, with their ratio and the target (DESIGN.md section 8). `--json` prints the same
 * as one JSON line: the headline (`floor`, `project`, `ratio`, `target`, `met`) and every row.
 */
import { cpus } from 'node:os';
import { round } from './stats.js';

export interface Row {
  /** What is compared, e.g. `round p50`. */
  readonly metric: string;
  readonly unit: string;
  readonly floor: number;
  readonly project: number;
  /** project / floor. */
  readonly ratio: number;
  /** e.g. `<= 1.5` (a time) or `>= 0.8` (a throughput); absent for rows given for information. */
  readonly target?: string;
  readonly met?: boolean;
}

export interface BenchResult {
  readonly benchmark: string;
  readonly params: Readonly<Record<string, unknown>>;
  /** The row the benchmark is judged by; also `floor`, `project`, `ratio` at the top of the JSON. */
  readonly headline: Row;
  readonly rows: readonly Row[];
  /** Further figures (counts, per-checkpoint stalls, RSS, ...). */
  readonly extra?: Readonly<Record<string, unknown>>;
  readonly notes?: readonly string[];
}

/** A row whose target is an upper bound on project/floor (times, bytes). */
export function atMost(metric: string, unit: string, floor: number, project: number, ratioMax?: number): Row {
  const ratio = project / floor;
  return {
    metric,
    unit,
    floor: round(floor),
    project: round(project),
    ratio: round(ratio),
    ...(ratioMax !== undefined ? { target: `<= ${ratioMax}`, met: ratio <= ratioMax } : {}),
  };
}

/** A row whose target is a lower bound on project/floor (throughputs). */
export function atLeast(metric: string, unit: string, floor: number, project: number, ratioMin?: number): Row {
  const ratio = project / floor;
  return {
    metric,
    unit,
    floor: round(floor),
    project: round(project),
    ratio: round(ratio),
    ...(ratioMin !== undefined ? { target: `>= ${ratioMin}`, met: ratio >= ratioMin } : {}),
  };
}

export function machine(): Record<string, unknown> {
  return { node: process.version, cpus: cpus().length, cpuModel: cpus()[0]?.model ?? 'unknown', date: new Date().toISOString() };
}

export function print(result: BenchResult, json: boolean): void {
  const h = result.headline;
  if (json) {
    console.log(
      JSON.stringify({
        benchmark: result.benchmark,
        params: result.params,
        metric: h.metric,
        unit: h.unit,
        floor: h.floor,
        project: h.project,
        ratio: h.ratio,
        target: h.target,
        met: h.met,
        rows: result.rows,
        ...(result.extra ? { extra: result.extra } : {}),
        ...(result.notes ? { notes: result.notes } : {}),
        machine: machine(),
      }),
    );
    return;
  }
  const params = Object.entries(result.params)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(' ');
  console.log(`${result.benchmark}: ${params}`);
  const header = ['metric', 'unit', 'floor (plain NATS)', 'project', 'ratio', 'target', 'met'];
  const lines = result.rows.map((r) => [r.metric, r.unit, fmt(r.floor), fmt(r.project), fmt(r.ratio), r.target ?? '', r.met === undefined ? '' : r.met ? 'yes' : 'NO']);
  const widths = header.map((c, i) => Math.max(c.length, ...lines.map((l) => (l[i] as string).length)));
  const show = (cells: string[]): string => cells.map((c, i) => (i <= 1 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
  console.log(show(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const l of lines) console.log(show(l));
  if (result.extra) {
    for (const [k, v] of Object.entries(result.extra)) console.log(`${k}: ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
  }
  for (const n of result.notes ?? []) console.log(`note: ${n}`);
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: 3 }) : String(x);
}
