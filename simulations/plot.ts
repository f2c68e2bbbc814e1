/**
 * `sim plot`: a sweep CSV in, an SVG line chart of one metric out. One line per algorithm (and per
 * value of any other swept parameter), the swept parameter on the x axis, and error bars from the
 * METRIC_ci95_low / METRIC_ci95_high columns of an aggregated sweep.
 *
 * Pure and deterministic: the same CSV and options give the same bytes (series in order of first
 * appearance, coordinates rounded to two decimals, no dates). Problems with the CSV or the options are
 * returned as messages that list the valid choices.
 */
import { err, ok, type Result } from '../src/result.js';
import { AGGREGATE_SUFFIXES } from './sweep.js';
import { escapeXml as esc } from './svg.js';

export interface Csv {
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
}

/** Sweep CSVs have no quoting (no value holds a comma); anything else is refused rather than misread. */
export function parseCsv(text: string, source: string): Result<Csv, string> {
  const lines = text.split(/\r?\n/).filter((l) => l !== '');
  if (lines.length === 0) return err(`${source} is empty`);
  if (text.includes('"')) return err(`${source} has quoted fields, which sweep CSVs never have`);
  const header = lines[0]!.split(',');
  const rows: string[][] = [];
  for (let i = 1; i < lines.length; i += 1) {
    const cells = lines[i]!.split(',');
    if (cells.length !== header.length) return err(`${source} line ${i + 1} has ${cells.length} fields, the header ${header.length}`);
    rows.push(cells);
  }
  return ok({ header, rows });
}

export interface Series {
  readonly label: string;
  readonly points: readonly { readonly x: number; readonly y: number; readonly low?: number; readonly high?: number }[];
}

export interface Chart {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  readonly errorBars: boolean;
}

/**
 * Reads the chart out of a sweep CSV. The swept parameters are the columns before `algorithm`; in an
 * aggregated CSV (with `seeds`) the metric columns are METRIC_mean and its interval, otherwise METRIC.
 */
export interface ChartOptions {
  readonly y: string;
  readonly x?: string;
  /**
   * Divide every value (and its interval) by this algorithm's value at the same x and the same other
   * swept parameters (and seed, in a per-run CSV): a cost relative to a baseline, as papers plot it.
   */
  readonly relativeTo?: string;
  readonly source: string;
}

export function chartFromCsv(csv: Csv, options: ChartOptions): Result<Chart, string> {
  const { header, rows } = csv;
  const algorithmAt = header.indexOf('algorithm');
  if (algorithmAt < 0) return err(`${options.source} is not a sweep CSV: it has no "algorithm" column`);
  const params = header.slice(0, algorithmAt);
  const aggregated = header.includes('seeds');
  const metrics = aggregated
    ? header.filter((h) => h.endsWith(AGGREGATE_SUFFIXES.mean)).map((h) => h.slice(0, -AGGREGATE_SUFFIXES.mean.length))
    : header.slice(algorithmAt + 1).filter((h) => h !== 'seed' && h !== 'consistent');

  if (!metrics.includes(options.y)) {
    return err(`${options.source} has no metric "${options.y}" (metrics: ${metrics.join(', ')})`);
  }
  if (params.length === 0) {
    return err(`${options.source} sweeps no parameter besides the seed, so there is nothing for the x axis (sweep e.g. processes=2..8 too)`);
  }
  const x = options.x ?? params[0]!;
  if (!params.includes(x)) return err(`${options.source} has no swept parameter "${x}" (parameters: ${params.join(', ')})`);

  const col = (name: string): number => header.indexOf(name);
  const yAt = col(aggregated ? options.y + AGGREGATE_SUFFIXES.mean : options.y);
  const lowAt = aggregated ? col(options.y + AGGREGATE_SUFFIXES.low) : -1;
  const highAt = aggregated ? col(options.y + AGGREGATE_SUFFIXES.high) : -1;
  // Everything that tells two rows with the same x apart makes its own line: the algorithm, the other
  // swept parameters, and (in a per-run CSV) the seed.
  const seedAt = aggregated ? -1 : col('seed');
  const others = params.filter((p) => p !== x);
  const varies = (at: number): boolean => new Set(rows.map((row) => row[at])).size > 1;
  const splitters = others.map((p) => ({ name: p, at: col(p) })).filter((s) => varies(s.at));
  if (seedAt >= 0 && varies(seedAt)) splitters.push({ name: 'seed', at: seedAt });

  const xAt = col(x);
  // The row's place in its line apart from the algorithm: its x and the values of the splitters.
  const placeOf = (row: readonly string[]): string => [row[xAt], ...splitters.map((s) => row[s.at])].join(',');
  const baseline = new Map<string, number | undefined>();
  const relativeTo = options.relativeTo;
  if (relativeTo !== undefined) {
    const algorithms = [...new Set(rows.map((row) => row[algorithmAt]!))];
    if (!algorithms.includes(relativeTo)) {
      return err(`${options.source} has no rows of algorithm "${relativeTo}" for --relative-to (algorithms: ${algorithms.join(', ')})`);
    }
    for (const row of rows) if (row[algorithmAt] === relativeTo) baseline.set(placeOf(row), numberOrUndefined(row[yAt]!));
    if (![...baseline.values()].some((v) => v !== undefined && v !== 0)) {
      return err(`${options.source}: ${relativeTo} has no ${options.y} other than 0 or "-", so nothing can be relative to it`);
    }
  }

  const byLabel = new Map<string, { x: number; y: number; low?: number; high?: number }[]>();
  for (const [i, row] of rows.entries()) {
    const label = [row[algorithmAt]!, ...splitters.map((s) => `${s.name}=${row[s.at]}`)].join(', ');
    const xv = Number(row[xAt]);
    if (!Number.isFinite(xv)) return err(`${options.source} line ${i + 2}: ${x} is not a number: "${row[xAt]}"`);
    const list = byLabel.get(label) ?? [];
    byLabel.set(label, list);
    // Without a baseline value (undefined, or 0: no ratio) the point is left out, as an undefined metric is.
    const divisor = relativeTo === undefined ? 1 : baseline.get(placeOf(row));
    if (divisor === undefined || divisor === 0) continue;
    const yv = numberOrUndefined(row[yAt]!);
    if (yv === undefined) continue; // an undefined metric ("-") leaves a gap in its line
    const low = lowAt < 0 ? undefined : numberOrUndefined(row[lowAt]!);
    const high = highAt < 0 ? undefined : numberOrUndefined(row[highAt]!);
    list.push({ x: xv, y: yv / divisor, ...(low === undefined || high === undefined ? {} : { low: low / divisor, high: high / divisor }) });
  }
  // A line with no point at all (a recovery figure of a coordinated algorithm, `-` in every row) would
  // stand in the legend with nothing drawn: it is left out.
  const series = [...byLabel]
    .filter(([, points]) => points.length > 0)
    .map(([label, points]) => ({ label, points: [...points].sort((a, b) => a.x - b.x) }));
  // The title stays short enough for the chart's width; the help and docs say how intervals divide.
  const yLabel = relativeTo === undefined ? options.y : `${options.y} / ${relativeTo}`;
  return ok({
    title: `${yLabel} by ${x}${aggregated ? ' (mean, 95% interval over the seeds)' : ''}`,
    xLabel: x,
    yLabel,
    series,
    errorBars: aggregated,
  });
}

function numberOrUndefined(text: string): number | undefined {
  if (text === '-' || text === '') return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

const LAYOUT = { width: 800, height: 480, left: 80, right: 220, top: 50, bottom: 60, ticks: 6, legendRowPx: 20, dodgePx: 6 } as const;

/** Colour-blind-safe (Okabe-Ito) first, then more; cycled. */
const PALETTE = ['#0072b2', '#e69f00', '#009e73', '#d55e00', '#cc79a7', '#56b4e9', '#f0e442', '#000000', '#8c564b', '#7f7f7f'];
const MARKERS = ['circle', 'square', 'triangle', 'diamond'] as const;

export function renderLineChartSvg(chart: Chart): string {
  const all = chart.series.flatMap((s) => s.points);
  const xs = all.map((p) => p.x);
  const ys = all.flatMap((p) => [p.y, ...(p.low === undefined ? [] : [p.low]), ...(p.high === undefined ? [] : [p.high])]);
  const [x0, x1] = span(xs);
  // The y axis starts at zero for non-negative metrics, so a small difference does not look large.
  const [y0, y1] = span([0, ...ys]);
  const xTicks = ticks(x0, x1, LAYOUT.ticks);
  const yTicks = ticks(y0, y1, LAYOUT.ticks);
  const xMin = xTicks[0]!;
  const xMax = xTicks[xTicks.length - 1]!;
  const yMin = yTicks[0]!;
  const yMax = yTicks[yTicks.length - 1]!;
  const plotW = LAYOUT.width - LAYOUT.left - LAYOUT.right;
  const plotH = LAYOUT.height - LAYOUT.top - LAYOUT.bottom;
  const px = (v: number): number => LAYOUT.left + ((v - xMin) / (xMax - xMin)) * plotW;
  const py = (v: number): number => LAYOUT.top + plotH - ((v - yMin) / (yMax - yMin)) * plotH;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${LAYOUT.width} ${LAYOUT.height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
  );
  out.push(`<title>${esc(chart.title)}</title>`);
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(`<text class="title" x="${LAYOUT.left}" y="28" font-size="15" font-weight="bold" fill="#222222">${esc(chart.title)}</text>`);

  out.push(`<g class="axes" stroke="#666666" fill="#666666">`);
  for (const t of yTicks) {
    out.push(`<line class="grid" x1="${r(LAYOUT.left)}" y1="${r(py(t))}" x2="${r(LAYOUT.left + plotW)}" y2="${r(py(t))}" stroke="#eeeeee"/>`);
    out.push(`<text x="${r(LAYOUT.left - 8)}" y="${r(py(t) + 4)}" text-anchor="end" stroke="none">${esc(tickText(t, yTicks))}</text>`);
  }
  for (const t of xTicks) {
    out.push(`<line x1="${r(px(t))}" y1="${r(LAYOUT.top + plotH)}" x2="${r(px(t))}" y2="${r(LAYOUT.top + plotH + 5)}"/>`);
    out.push(`<text x="${r(px(t))}" y="${r(LAYOUT.top + plotH + 20)}" text-anchor="middle" stroke="none">${esc(tickText(t, xTicks))}</text>`);
  }
  out.push(`<line x1="${LAYOUT.left}" y1="${r(LAYOUT.top + plotH)}" x2="${r(LAYOUT.left + plotW)}" y2="${r(LAYOUT.top + plotH)}"/>`);
  out.push(`<line x1="${LAYOUT.left}" y1="${LAYOUT.top}" x2="${LAYOUT.left}" y2="${r(LAYOUT.top + plotH)}"/>`);
  out.push(`<text class="x-label" x="${r(LAYOUT.left + plotW / 2)}" y="${r(LAYOUT.height - 16)}" text-anchor="middle" stroke="none">${esc(chart.xLabel)}</text>`);
  out.push(
    `<text class="y-label" x="18" y="${r(LAYOUT.top + plotH / 2)}" text-anchor="middle" transform="rotate(-90 18 ${r(LAYOUT.top + plotH / 2)})" stroke="none">${esc(chart.yLabel)}</text>`,
  );
  out.push(`</g>`);

  // With error bars, each line is nudged sideways a little so bars at the same x do not hide each other.
  const dodgePx = (i: number): number => (chart.errorBars ? (i - (chart.series.length - 1) / 2) * Math.min(LAYOUT.dodgePx, 24 / chart.series.length) : 0);
  chart.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const marker = MARKERS[Math.floor(i / PALETTE.length) % MARKERS.length]!;
    const sx = (v: number): number => px(v) + dodgePx(i);
    out.push(`<g class="series" data-series="${esc(s.label)}" stroke="${color}" fill="${color}">`);
    if (s.points.length > 1) {
      out.push(`<polyline class="line" points="${s.points.map((p) => `${r(sx(p.x))},${r(py(p.y))}`).join(' ')}" fill="none" stroke-width="2"/>`);
    }
    for (const p of s.points) {
      if (chart.errorBars && p.low !== undefined && p.high !== undefined) {
        const cx = sx(p.x);
        out.push(
          `<path class="error-bar" d="M${r(cx)},${r(py(p.low))} V${r(py(p.high))} M${r(cx - 4)},${r(py(p.low))} H${r(cx + 4)} M${r(cx - 4)},${r(py(p.high))} H${r(cx + 4)}" stroke-width="1.2" fill="none"/>`,
        );
      }
      const interval = p.low === undefined || p.high === undefined ? '' : ` [${fmt(p.low)}, ${fmt(p.high)}]`;
      out.push(`${markerSvg(marker, sx(p.x), py(p.y))}<title>${esc(`${s.label}: ${chart.xLabel}=${fmt(p.x)}, ${chart.yLabel}=${fmt(p.y)}${interval}`)}</title></g>`);
    }
    out.push(`</g>`);
  });

  out.push(`<g class="legend" font-size="12" fill="#222222">`);
  chart.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const marker = MARKERS[Math.floor(i / PALETTE.length) % MARKERS.length]!;
    const ly = LAYOUT.top + 10 + i * LAYOUT.legendRowPx;
    const lx = LAYOUT.width - LAYOUT.right + 20;
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 24}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    out.push(`<g stroke="${color}" fill="${color}">${markerSvg(marker, lx + 12, ly)}</g></g>`);
    out.push(`<text x="${lx + 32}" y="${ly + 4}">${esc(s.label)}</text>`);
  });
  out.push(`</g>`);
  out.push(`</svg>`);
  return out.join('\n') + '\n';
}

/** A marker shape at (x, y), opened as a group so its tooltip can follow; the caller closes it. */
function markerSvg(shape: (typeof MARKERS)[number], x: number, y: number): string {
  const d = 4;
  switch (shape) {
    case 'circle':
      return `<g class="point"><circle cx="${r(x)}" cy="${r(y)}" r="${d}"/>`;
    case 'square':
      return `<g class="point"><rect x="${r(x - d)}" y="${r(y - d)}" width="${2 * d}" height="${2 * d}"/>`;
    case 'triangle':
      return `<g class="point"><path d="M${r(x)},${r(y - d - 1)} L${r(x + d + 1)},${r(y + d)} L${r(x - d - 1)},${r(y + d)} z"/>`;
    case 'diamond':
      return `<g class="point"><path d="M${r(x)},${r(y - d - 1)} L${r(x + d + 1)},${r(y)} L${r(x)},${r(y + d + 1)} L${r(x - d - 1)},${r(y)} z"/>`;
  }
}

function span(values: readonly number[]): [number, number] {
  if (values.length === 0) return [0, 1];
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return lo === hi ? [lo - 1, hi + 1] : [lo, hi];
}

/** Round ticks (1, 2 or 5 times a power of ten) covering [lo, hi]. */
function ticks(lo: number, hi: number, target: number): number[] {
  const rough = (hi - lo) / target;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((f) => f * power).find((s) => s >= rough) ?? 10 * power;
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  return Array.from({ length: last - first + 1 }, (_, i) => Number(((first + i) * step).toPrecision(12)));
}

function tickText(t: number, all: readonly number[]): string {
  const step = all.length > 1 ? all[1]! - all[0]! : 1;
  const decimals = step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step) - 1e-9));
  const text = t.toFixed(decimals);
  return /^-0(\.0*)?$/.test(text) ? text.slice(1) : text;
}

function fmt(v: number): string {
  return String(Number(v.toPrecision(6)));
}

function r(v: number): string {
  const rounded = Math.round(v * 100) / 100;
  return String(rounded === 0 ? 0 : rounded);
}
