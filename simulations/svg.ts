/**
 * Space-time diagrams of a simulated run, as a standalone SVG file (the picture of Chandy and
 * Lamport's paper): a horizontal line per process, time to the right, messages as arrows between the
 * lines, barriers dashed in the colour of their checkpoint, each process's snapshot as a dot, and each
 * completed checkpoint's cut as a line through its snapshot dots. A message that crosses a cut from
 * the right side to the left would be an orphan; the channel-state messages (the ones a cut records)
 * are the thick orange arrows that cross it from left to right.
 *
 * A view can narrow the picture to a time window and to some processes (messages with an end on a
 * hidden process are left out; lines crossing the window's edges are clipped). The document has a
 * viewBox and no fixed size, so it scales to whatever shows it.
 *
 * Pure: a `SimResult` in, a string out, the same bytes for the same result. Coordinates are rounded to
 * two decimals so the file does not depend on floating-point noise and stays small.
 */
import type { CheckpointId, ProcessId } from '../src/ids.js';
import type { SimResult, TraceEvent } from './types.js';

/** Drawing limits: past these the picture is noise and the file is huge, so the rest is sampled. */
export const SVG_LIMITS = {
  messagesDrawnMax: 1500,
  barriersDrawnMax: 3000,
} as const;

const LAYOUT = {
  marginLeftPx: 120,
  marginRightPx: 40,
  titleYPx: 26,
  subtitleYPx: 46,
  noteYPx: 64,
  plotTopPx: 118,
  cutLabelWidthPx: 26,
  cutLabelLevelsMax: 4,
  rowGapPxMax: 80,
  rowGapPxMin: 14,
  /** Rows share about this much height once there are many processes. */
  rowsHeightPxTarget: 760,
  plotWidthPxMin: 720,
  plotWidthPxMax: 4800,
  pxPerMsTarget: 3,
  axisGapPx: 26,
  legendRowPx: 22,
  legendSwatchPx: 34,
  legendGapPx: 28,
  legendCharPx: 7,
  ticksTarget: 10,
} as const;

const COLORS = {
  processLine: '#333333',
  message: '#9e9e9e',
  recorded: '#ff7f0e',
  crash: '#d62728',
  grid: '#eeeeee',
  text: '#222222',
  muted: '#666666',
} as const;

/** Barrier, snapshot and cut colours, one per checkpoint (cycled); none is grey, orange or red. */
const CHECKPOINT_PALETTE = ['#1f77b4', '#2ca02c', '#9467bd', '#e377c2', '#17becf', '#8c564b', '#bcbd22', '#3949ab'];

type MessageEvent = Extract<TraceEvent, { kind: 'message' }>;
type BarrierEvent = Extract<TraceEvent, { kind: 'barrier' }>;
type SnapshotEvent = Extract<TraceEvent, { kind: 'snapshot' }>;

/** What part of the run to draw; every field defaults to all of it. */
export interface SpaceTimeView {
  readonly fromMs?: number;
  readonly toMs?: number;
  /** Processes to draw, drawn in the run's order; each must be a process of the run. */
  readonly processes?: readonly ProcessId[];
}

export function renderSpaceTimeSvg(result: SimResult, view: SpaceTimeView = {}): string {
  const trace = result.trace ?? [];
  const wanted = view.processes === undefined ? undefined : new Set(view.processes);
  const shown = wanted === undefined ? result.processes : result.processes.filter((p) => wanted.has(p));
  const rowOf = new Map<ProcessId, number>(shown.map((p, i) => [p, i]));
  const startMs = view.fromMs ?? 0;

  const messages: MessageEvent[] = [];
  const barriers: BarrierEvent[] = [];
  const snapshots: SnapshotEvent[] = [];
  const ends = new Map<CheckpointId, boolean>();
  const crashes: Extract<TraceEvent, { kind: 'crash' }>[] = [];
  const recoveries: Extract<TraceEvent, { kind: 'recover' }>[] = [];
  // The x axis spans the traced activity: the engine's end time can lie well after the last message
  // (it drains timers such as checkpoint timeouts), and empty space would squeeze the picture.
  let lastMs = 0;
  for (const e of trace) {
    switch (e.kind) {
      case 'message':
        if (rowOf.has(e.from) && rowOf.has(e.to)) messages.push(e);
        lastMs = Math.max(lastMs, e.sentAtMs, e.deliveredAtMs ?? 0);
        break;
      case 'barrier':
        if (rowOf.has(e.from) && rowOf.has(e.to)) barriers.push(e);
        lastMs = Math.max(lastMs, e.sentAtMs, e.deliveredAtMs ?? 0);
        break;
      case 'snapshot':
        if (rowOf.has(e.process)) snapshots.push(e);
        lastMs = Math.max(lastMs, e.atMs);
        break;
      case 'checkpoint-end':
        ends.set(e.checkpointId, e.completed);
        lastMs = Math.max(lastMs, e.atMs);
        break;
      case 'crash':
        if (rowOf.has(e.process)) crashes.push(e);
        lastMs = Math.max(lastMs, e.atMs);
        break;
      case 'recover':
        recoveries.push(e);
        lastMs = Math.max(lastMs, e.atMs);
        break;
    }
  }

  // Geometry: width follows the run's length, row spacing shrinks as processes are added.
  const n = Math.max(1, shown.length);
  if (trace.length === 0) lastMs = result.endedAtMs;
  const endMs = view.toMs ?? Math.max(startMs + 1, lastMs > 0 ? lastMs * 1.02 : 1);
  const spanMs = endMs - startMs;
  const plotWidth = clamp(spanMs * LAYOUT.pxPerMsTarget, LAYOUT.plotWidthPxMin, LAYOUT.plotWidthPxMax);
  const rowGap = n === 1 ? LAYOUT.rowGapPxMax : clamp(LAYOUT.rowsHeightPxTarget / (n - 1), LAYOUT.rowGapPxMin, LAYOUT.rowGapPxMax);
  const x = (ms: number): number => LAYOUT.marginLeftPx + ((ms - startMs) / spanMs) * plotWidth;
  // Only what happens in the window is drawn; a line with one end inside is clipped at the edge.
  const overlaps = (from: number, to: number | undefined): boolean => from <= endMs && (to ?? endMs) >= startMs;
  const within = (at: number): boolean => at >= startMs && at <= endMs;
  const windowed = view.fromMs !== undefined || view.toMs !== undefined;
  const y = (p: ProcessId): number => LAYOUT.plotTopPx + (rowOf.get(p) ?? 0) * rowGap;
  const plotBottom = LAYOUT.plotTopPx + (n - 1) * rowGap;
  const axisY = plotBottom + LAYOUT.axisGapPx;
  const width = LAYOUT.marginLeftPx + plotWidth + LAYOUT.marginRightPx;
  const legendTop = axisY + 48;
  const legend = layoutLegend(LEGEND_ITEMS, LAYOUT.marginLeftPx, width - LAYOUT.marginRightPx, legendTop);
  const legendRows = legend.reduce((rows, item) => Math.max(rows, item.row + 1), 1);
  const height = legendTop + legendRows * LAYOUT.legendRowPx + 12;
  const labelFontPx = rowGap >= 24 ? 13 : 10;

  // One colour per checkpoint, by rank among the ids seen, so sparse ids (concurrent initiators) still
  // get distinct neighbouring colours.
  const checkpointIds = [...new Set([...barriers.map((b) => b.checkpointId), ...snapshots.map((s) => s.checkpointId), ...ends.keys()])].sort(
    (a, b) => a - b,
  );
  const paletteIndex = new Map(checkpointIds.map((id, i) => [id, i % CHECKPOINT_PALETTE.length]));
  const colorOf = (id: CheckpointId): string => CHECKPOINT_PALETTE[paletteIndex.get(id) ?? 0]!;

  const visibleMessages = messages.filter((m) => overlaps(m.sentAtMs, m.deliveredAtMs));
  const visibleBarriers = barriers.filter((b) => overlaps(b.sentAtMs, b.deliveredAtMs));
  const drawnMessages = sample(visibleMessages, SVG_LIMITS.messagesDrawnMax, (m) => m.recordedIn.length > 0);
  const drawnBarriers = sample(visibleBarriers, SVG_LIMITS.barriersDrawnMax, () => false);

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${r(width)} ${r(height)}" ` +
      `font-family="Helvetica, Arial, sans-serif" font-size="12">`,
  );
  const title = `Space-time diagram: ${result.scenario} · algorithm ${result.algorithm} · seed ${result.seed}`;
  out.push(`<title>${esc(title)}</title>`);
  out.push(defs(LAYOUT.marginLeftPx, plotWidth, height));
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`);
  out.push(`<text class="title" x="${LAYOUT.marginLeftPx}" y="${LAYOUT.titleYPx}" font-size="16" font-weight="bold" fill="${COLORS.text}">${esc(title)}</text>`);
  const m = result.metrics;
  const verdict = result.consistent && result.violations.length === 0 ? 'consistent' : `VIOLATIONS (${result.violations.length})`;
  out.push(
    `<text class="subtitle" x="${LAYOUT.marginLeftPx}" y="${LAYOUT.subtitleYPx}" fill="${COLORS.muted}">` +
      esc(
        `${result.processes.length} processes, ${result.channels.length} channels, ended at ${r(result.endedAtMs)} ms; ` +
          `${m.checkpointsCompleted}/${m.checkpointsTriggered} checkpoints completed; verdict: ${verdict}`,
      ) +
      `</text>`,
  );
  const notes: string[] = [];
  if (result.trace === undefined) notes.push('no trace was recorded for this run, so only the process lines are drawn');
  if (windowed) notes.push(`window ${r(startMs)}..${r(endMs)} ms`);
  if (shown.length < result.processes.length) {
    notes.push(`${shown.length} of ${result.processes.length} processes (messages to or from the others are not drawn)`);
  }
  if (drawnMessages.length < visibleMessages.length) {
    notes.push(
      `showing ${drawnMessages.length} of ${visibleMessages.length} messages (evenly sampled; every channel-state message is shown)`,
    );
  }
  if (drawnBarriers.length < visibleBarriers.length) {
    notes.push(`showing ${drawnBarriers.length} of ${visibleBarriers.length} barriers (evenly sampled)`);
  }
  if (notes.length > 0) {
    out.push(`<text class="note" x="${LAYOUT.marginLeftPx}" y="${LAYOUT.noteYPx}" fill="${COLORS.crash}">${esc(`Note: ${notes.join('; ')}`)}</text>`);
  }

  // Time axis and grid.
  const step = niceStep(spanMs / LAYOUT.ticksTarget);
  out.push(`<g class="axis" stroke="${COLORS.muted}" fill="${COLORS.muted}">`);
  out.push(`<line x1="${r(x(startMs))}" y1="${r(axisY)}" x2="${r(x(endMs))}" y2="${r(axisY)}"/>`);
  for (let i = Math.ceil(startMs / step - 1e-9); i * step <= endMs + 1e-9; i += 1) {
    const t = i * step;
    const tx = r(x(t));
    out.push(`<line class="grid" x1="${tx}" y1="${r(LAYOUT.plotTopPx - 12)}" x2="${tx}" y2="${r(axisY)}" stroke="${COLORS.grid}"/>`);
    out.push(`<line x1="${tx}" y1="${r(axisY)}" x2="${tx}" y2="${r(axisY + 5)}"/>`);
    out.push(`<text x="${tx}" y="${r(axisY + 18)}" text-anchor="middle" stroke="none">${esc(formatTick(t, step))}</text>`);
  }
  out.push(`<text x="${r(x(endMs))}" y="${r(axisY + 34)}" text-anchor="end" stroke="none">time (ms)</text>`);
  out.push(`</g>`);

  // Process lines with their names on the left.
  out.push(`<g class="processes">`);
  for (const p of shown) {
    out.push(
      `<line class="process-line" data-process="${esc(p)}" x1="${r(x(startMs))}" y1="${r(y(p))}" x2="${r(x(endMs))}" y2="${r(y(p))}" stroke="${COLORS.processLine}" stroke-width="1.2"/>`,
    );
    out.push(
      `<text class="process-label" x="${r(LAYOUT.marginLeftPx - 10)}" y="${r(y(p) + 4)}" text-anchor="end" font-size="${labelFontPx}" fill="${COLORS.text}">${esc(p)}</text>`,
    );
  }
  out.push(`</g>`);

  // Ordinary messages first, so the highlighted ones are drawn on top of them.
  out.push(`<g class="messages" clip-path="url(#plot-area)" stroke="${COLORS.message}" stroke-width="0.9" stroke-opacity="0.7" fill="none">`);
  for (const msg of drawnMessages) {
    if (msg.recordedIn.length > 0) continue;
    out.push(arrow(msg, x, y, endMs, 'message', 'arrow-message', ''));
  }
  out.push(`</g>`);
  out.push(`<g class="channel-state" clip-path="url(#plot-area)" stroke="${COLORS.recorded}" stroke-width="2.6" fill="none">`);
  for (const msg of drawnMessages) {
    if (msg.recordedIn.length === 0) continue;
    const ids = msg.recordedIn.map((id) => `C${id}`).join(', ');
    out.push(arrow(msg, x, y, endMs, 'channel-state-message', 'arrow-recorded', `; recorded in the channel state of ${ids}`));
  }
  out.push(`</g>`);

  out.push(`<g class="barriers" clip-path="url(#plot-area)" stroke-width="2" stroke-dasharray="6 3" fill="none">`);
  for (const b of drawnBarriers) {
    const color = colorOf(b.checkpointId);
    const marker = `arrow-barrier-${paletteIndex.get(b.checkpointId) ?? 0}`;
    const tip =
      `barrier of C${b.checkpointId} on ${b.channel}: sent ${r(b.sentAtMs)} ms, ` +
      (b.deliveredAtMs === undefined ? 'never delivered' : `delivered ${r(b.deliveredAtMs)} ms`);
    const endX = b.deliveredAtMs === undefined ? x(endMs) : x(b.deliveredAtMs);
    const endY = b.deliveredAtMs === undefined ? (y(b.from) + y(b.to)) / 2 : y(b.to);
    out.push(
      `<line class="barrier" data-checkpoint="${b.checkpointId}" x1="${r(x(b.sentAtMs))}" y1="${r(y(b.from))}" x2="${r(endX)}" y2="${r(endY)}" ` +
        `stroke="${color}"${b.deliveredAtMs === undefined ? '' : ` marker-end="url(#${marker})"`}><title>${esc(tip)}</title></line>`,
    );
  }
  out.push(`</g>`);

  // Cuts: through the snapshot dots of every completed checkpoint, top process to bottom.
  const snapshotsByCheckpoint = new Map<CheckpointId, Map<ProcessId, number>>();
  for (const s of snapshots) {
    const perProcess = snapshotsByCheckpoint.get(s.checkpointId) ?? new Map<ProcessId, number>();
    // After a recovery a process may snapshot again under a reused id; the first one is the cut's.
    if (!perProcess.has(s.process)) perProcess.set(s.process, s.atMs);
    snapshotsByCheckpoint.set(s.checkpointId, perProcess);
  }
  out.push(`<g class="cuts" clip-path="url(#plot-area)" fill="none" stroke-width="3" stroke-opacity="0.8">`);
  const labels: { id: CheckpointId; x: number; y: number; color: string }[] = [];
  for (const id of checkpointIds) {
    if (ends.get(id) !== true) continue;
    const perProcess = snapshotsByCheckpoint.get(id);
    if (perProcess === undefined) continue;
    const points = shown.filter((p) => perProcess.has(p)).map((p) => [x(perProcess.get(p)!), y(p)] as const);
    if (points.length === 0) continue;
    const color = colorOf(id);
    out.push(
      `<polyline class="cut" data-checkpoint="${id}" points="${points.map(([px, py]) => `${r(px)},${r(py)}`).join(' ')}" stroke="${color}">` +
        `<title>cut of checkpoint C${id}</title></polyline>`,
    );
    labels.push({ id, x: points[0]![0], y: points[0]![1], color });
  }
  // Concurrent checkpoints cut at almost the same time; stack their labels instead of overprinting.
  const levelEnds: number[] = [];
  for (const label of [...labels].sort((a, b) => a.x - b.x || a.id - b.id)) {
    let level = levelEnds.findIndex((end) => end < label.x - LAYOUT.cutLabelWidthPx);
    if (level < 0) level = levelEnds.length < LAYOUT.cutLabelLevelsMax ? levelEnds.length : 0;
    levelEnds[level] = label.x;
    out.push(
      `<text class="cut-label" x="${r(label.x)}" y="${r(label.y - 10 - level * 12)}" text-anchor="middle" font-size="11" font-weight="bold" fill="${label.color}" stroke="none">C${label.id}</text>`,
    );
  }
  out.push(`</g>`);

  out.push(`<g class="snapshots" stroke-width="1.2">`);
  for (const s of snapshots) {
    if (!within(s.atMs)) continue;
    const color = colorOf(s.checkpointId);
    const completed = ends.get(s.checkpointId) === true;
    // Hollow dots: snapshots of checkpoints that aborted (or had not finished when the run ended).
    out.push(
      `<circle class="snapshot" data-checkpoint="${s.checkpointId}" cx="${r(x(s.atMs))}" cy="${r(y(s.process))}" r="4.5" ` +
        `fill="${completed ? color : '#ffffff'}" stroke="${completed ? '#ffffff' : color}">` +
        `<title>${esc(`${s.process} snapshots for C${s.checkpointId} at ${r(s.atMs)} ms${completed ? '' : ' (checkpoint not completed)'}`)}</title></circle>`,
    );
  }
  out.push(`</g>`);

  out.push(`<g class="faults" stroke="${COLORS.crash}" fill="${COLORS.crash}">`);
  for (const c of crashes) {
    if (!within(c.atMs)) continue;
    const cx = x(c.atMs);
    const cy = y(c.process);
    const d = 6;
    out.push(
      `<path class="crash" d="M${r(cx - d)},${r(cy - d)} L${r(cx + d)},${r(cy + d)} M${r(cx - d)},${r(cy + d)} L${r(cx + d)},${r(cy - d)}" stroke-width="2.5">` +
        `<title>${esc(`${c.process} crashes at ${r(c.atMs)} ms`)}</title></path>`,
    );
    out.push(`<text x="${r(cx + 8)}" y="${r(cy - 8)}" font-size="11" stroke="none">crash</text>`);
  }
  for (const rec of recoveries) {
    if (!within(rec.atMs)) continue;
    const rx = r(x(rec.atMs));
    const label = rec.checkpointId === null ? 'recover (from the start)' : `recover from C${rec.checkpointId}`;
    out.push(
      `<line class="recover" x1="${rx}" y1="${r(LAYOUT.plotTopPx - 14)}" x2="${rx}" y2="${r(plotBottom + 10)}" stroke-width="1.5" stroke-dasharray="2 3">` +
        `<title>${esc(`${label} at ${r(rec.atMs)} ms`)}</title></line>`,
    );
    out.push(`<text x="${r(x(rec.atMs) + 4)}" y="${r(LAYOUT.plotTopPx - 16)}" font-size="11" stroke="none">${esc(label)}</text>`);
  }
  out.push(`</g>`);

  out.push(`<g class="legend" font-size="12" fill="${COLORS.text}">`);
  for (const { item, x: lx, y: ly } of legend) {
    out.push(item.swatch(lx, ly));
    out.push(`<text x="${r(lx + LAYOUT.legendSwatchPx)}" y="${r(ly + 4)}">${esc(item.label)}</text>`);
  }
  out.push(`</g>`);

  out.push(`</svg>`);
  return out.join('\n') + '\n';
}

function arrow(
  msg: MessageEvent,
  x: (ms: number) => number,
  y: (p: ProcessId) => number,
  endMs: number,
  cls: string,
  marker: string,
  tipExtra: string,
): string {
  const delivered = msg.deliveredAtMs !== undefined;
  // Undelivered (still in flight at the end, or lost to a crash): a dotted stub to the end of time,
  // half way towards the receiver, with no arrow head because it never arrived.
  const x2 = delivered ? x(msg.deliveredAtMs!) : x(endMs);
  const y2 = delivered ? y(msg.to) : (y(msg.from) + y(msg.to)) / 2;
  const tip =
    `${msg.channel} #${msg.seq}: sent ${r(msg.sentAtMs)} ms, ` +
    (delivered ? `delivered ${r(msg.deliveredAtMs!)} ms` : 'not delivered') +
    tipExtra;
  return (
    `<line class="${cls}" x1="${r(x(msg.sentAtMs))}" y1="${r(y(msg.from))}" x2="${r(x2)}" y2="${r(y2)}"` +
    (delivered ? ` marker-end="url(#${marker})"` : ' stroke-dasharray="1 3"') +
    `><title>${esc(tip)}</title></line>`
  );
}

/** Markers, and the clip of the plot area (so lines crossing a time window's edges stop there). */
function defs(left: number, plotWidth: number, height: number): string {
  const head = (id: string, color: string): string =>
    `<marker id="${id}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" markerUnits="userSpaceOnUse" orient="auto">` +
    `<path d="M0,0 L10,5 L0,10 z" fill="${color}"/></marker>`;
  return [
    '<defs>',
    `<clipPath id="plot-area"><rect x="${r(left)}" y="0" width="${r(plotWidth)}" height="${r(height)}"/></clipPath>`,
    head('arrow-message', COLORS.message),
    `<marker id="arrow-recorded" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="10" markerHeight="10" markerUnits="userSpaceOnUse" orient="auto">` +
      `<path d="M0,0 L10,5 L0,10 z" fill="${COLORS.recorded}"/></marker>`,
    ...CHECKPOINT_PALETTE.map((color, i) => head(`arrow-barrier-${i}`, color)),
    '</defs>',
  ].join('\n');
}

interface LegendItem {
  readonly label: string;
  readonly swatch: (x: number, y: number) => string;
}

const LEGEND_ITEMS: readonly LegendItem[] = [
  {
    label: 'message',
    swatch: (x, y) =>
      `<line x1="${r(x)}" y1="${r(y)}" x2="${r(x + 26)}" y2="${r(y)}" stroke="${COLORS.message}" stroke-width="1" marker-end="url(#arrow-message)"/>`,
  },
  {
    label: 'channel-state message',
    swatch: (x, y) =>
      `<line x1="${r(x)}" y1="${r(y)}" x2="${r(x + 26)}" y2="${r(y)}" stroke="${COLORS.recorded}" stroke-width="2.6" marker-end="url(#arrow-recorded)"/>`,
  },
  {
    label: 'barrier (colour = checkpoint)',
    swatch: (x, y) =>
      `<line x1="${r(x)}" y1="${r(y)}" x2="${r(x + 26)}" y2="${r(y)}" stroke="${CHECKPOINT_PALETTE[0]}" stroke-width="1.6" stroke-dasharray="6 3" marker-end="url(#arrow-barrier-0)"/>`,
  },
  {
    label: 'snapshot (hollow: not completed)',
    swatch: (x, y) => `<circle cx="${r(x + 13)}" cy="${r(y)}" r="4.5" fill="${CHECKPOINT_PALETTE[1]}" stroke="#ffffff"/>`,
  },
  {
    label: 'cut of a completed checkpoint',
    swatch: (x, y) =>
      `<polyline points="${r(x)},${r(y - 6)} ${r(x + 13)},${r(y)} ${r(x + 26)},${r(y + 6)}" fill="none" stroke="${CHECKPOINT_PALETTE[1]}" stroke-width="2.4" stroke-opacity="0.75"/>`,
  },
  {
    label: 'crash',
    swatch: (x, y) =>
      `<path d="M${r(x + 8)},${r(y - 5)} L${r(x + 18)},${r(y + 5)} M${r(x + 8)},${r(y + 5)} L${r(x + 18)},${r(y - 5)}" stroke="${COLORS.crash}" stroke-width="2.5"/>`,
  },
  {
    label: 'recovery',
    swatch: (x, y) =>
      `<line x1="${r(x + 13)}" y1="${r(y - 8)}" x2="${r(x + 13)}" y2="${r(y + 8)}" stroke="${COLORS.crash}" stroke-width="1.5" stroke-dasharray="2 3"/>`,
  },
];

/** Legend items left to right, wrapping to a new row when the next one would cross `right`. */
function layoutLegend(
  items: readonly LegendItem[],
  left: number,
  right: number,
  top: number,
): { item: LegendItem; x: number; y: number; row: number }[] {
  const placed: { item: LegendItem; x: number; y: number; row: number }[] = [];
  let x = left;
  let row = 0;
  for (const item of items) {
    const w = LAYOUT.legendSwatchPx + item.label.length * LAYOUT.legendCharPx + LAYOUT.legendGapPx;
    if (x > left && x + w > right) {
      row += 1;
      x = left;
    }
    placed.push({ item, x, y: top + row * LAYOUT.legendRowPx, row });
    x += w;
  }
  return placed;
}

/**
 * At most `max` items, spread evenly over the whole run (not just its start), always keeping the ones
 * `keep` marks (channel-state messages are the point of the picture).
 */
function sample<T>(items: readonly T[], max: number, keep: (item: T) => boolean): T[] {
  if (items.length <= max) return [...items];
  const kept = items.filter(keep).length;
  const others = items.length - kept;
  const budget = Math.max(0, max - kept);
  const out: T[] = [];
  let seen = 0;
  let taken = 0;
  for (const item of items) {
    if (keep(item)) {
      out.push(item);
      continue;
    }
    // Take the i-th of the others when the running quota crosses an integer: an even stride.
    seen += 1;
    if (Math.floor((seen * budget) / others) > taken) {
      out.push(item);
      taken += 1;
    }
  }
  return out;
}

/** 1, 2 or 5 times a power of ten: tick labels people can read. */
function niceStep(rough: number): number {
  if (!(rough > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(rough));
  for (const f of [1, 2, 5, 10]) if (f * power >= rough) return f * power;
  return 10 * power;
}

function formatTick(t: number, step: number): string {
  const decimals = step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step)));
  return t.toFixed(decimals);
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

/** Two decimals, no `-0`, no exponent: stable, compact coordinates. */
function r(v: number): string {
  const rounded = Math.round(v * 100) / 100;
  return String(rounded === 0 ? 0 : rounded);
}

export function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

const esc = escapeXml;
