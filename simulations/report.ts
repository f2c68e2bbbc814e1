/**
 * Human-readable reports of simulation results: one run (a row per checkpoint) and a comparison of
 * algorithms on the same scenario and seed (a row per algorithm). Plain text, deterministic: the same
 * result always renders to the same bytes, which is what makes `diff` of two runs meaningful.
 */
import { overheadOf } from './overhead.js';
import { fixed, renderTable, type Cell, type Column } from './text-table.js';
import { LIVENESS_VIOLATION, type CheckpointReport, type SimResult, type ViolationReport } from './types.js';

export interface ReportOptions {
  /** ANSI colour for verdicts; only for a terminal (the CLI passes `stdout.isTTY`). */
  readonly color?: boolean;
}

/** A long run can trigger thousands of checkpoints; the table shows this many, JSON has them all. */
export const CHECKPOINT_ROWS_MAX = 200;
/** Violations listed in text; the count is always exact. */
const VIOLATIONS_LISTED_MAX = 20;

export function formatRunReport(result: SimResult, options: ReportOptions = {}): string {
  const color = options.color ?? false;
  const columns: Column[] = [
    { header: 'id', align: 'right' },
    { header: 'completed', align: 'left' },
    { header: 'duration ms', align: 'right' },
    { header: 'chan-state msgs', align: 'right' },
    { header: 'chan-state bytes', align: 'right' },
    { header: 'buffered msgs', align: 'right' },
    { header: 'max stall ms', align: 'right' },
    { header: 'consistent', align: 'left' },
  ];
  const shown = result.checkpoints.slice(0, CHECKPOINT_ROWS_MAX);
  const rows = shown.map((c): Cell[] => [
    String(c.id),
    completedCell(c),
    fixed(c.durationMs, 1),
    String(c.channelStateMessages),
    String(c.channelStateBytes),
    String(c.bufferedMessages),
    fixed(c.alignmentStallMsMax, 1),
    consistentCell(c),
  ]);

  const m = result.metrics;
  const lines: string[] = [
    `scenario ${result.scenario}, algorithm ${result.algorithm}: ` +
      `${result.processes.length} processes, ${result.channels.length} channels, ended at ${fixed(result.endedAtMs, 0)} ms`,
    '',
    result.checkpoints.length === 0 ? '(no checkpoint was triggered)' : renderTable(columns, rows, color),
  ];
  if (result.checkpoints.length > shown.length) {
    lines.push(`... ${result.checkpoints.length - shown.length} more checkpoints not shown (--json lists them all)`);
  }
  lines.push(
    '',
    `checkpoints: ${m.checkpointsTriggered} triggered, ${m.checkpointsCompleted} completed, ${m.checkpointsAborted} aborted; ` +
      `mean duration ${fixed(m.durationMsMean, 1)} ms`,
    `channel state: ${m.channelStateMessagesTotal} msgs; buffered: ${m.bufferedMessagesTotal} msgs; ` +
      `max alignment stall: ${fixed(m.alignmentStallMsMax, 1)} ms`,
    `traffic: ${m.messagesSent} msgs sent, ${m.messagesDelivered} delivered, ${m.barriersSent} barriers, ` +
      `${fixed(m.throughputMsgsPerSec, 1)} msgs/s; ${m.events} events; ${m.recoveries} recoveries`,
  );
  if (m.localCheckpoints !== undefined) {
    lines.push(
      `local checkpoints: ${m.localCheckpoints} (${m.forcedCheckpoints ?? 0} forced), ${m.piggybackBytes ?? 0} bytes piggybacked; ` +
        `overhead ${fixed(overheadOf(result), 3)}`,
      `recovery: ${m.lostWork ?? 0} events undone, ${m.replayedMessages ?? 0} msgs replayed, ` +
        `domino depth ${m.dominoDepth ?? 0}, line up to ${fixed(m.recoveryTimeMs ?? 0, 1)} ms behind its crash`,
    );
  }
  if (result.violations.length > 0) {
    lines.push('', `violations (${result.violations.length}):`, ...listViolations(result.violations));
  }
  lines.push('', `verdict: ${verdictText(result, color)}`);
  return lines.join('\n') + '\n';
}

/** One row per result; all results are expected to come from the same scenario and seed. */
export function formatComparison(results: readonly SimResult[], options: ReportOptions = {}): string {
  const color = options.color ?? false;
  const columns: Column[] = [
    { header: 'algorithm', align: 'left' },
    { header: 'completed', align: 'right' },
    { header: 'mean duration ms', align: 'right' },
    { header: 'chan-state msgs', align: 'right' },
    { header: 'buffered msgs', align: 'right' },
    { header: 'max stall ms', align: 'right' },
    { header: 'violations', align: 'right' },
    { header: 'verdict', align: 'left' },
  ];
  // A comparison with a rollback algorithm adds the figures every algorithm can be judged on.
  const rollback = results.some((r) => r.metrics.localCheckpoints !== undefined);
  if (rollback) {
    columns.splice(
      columns.length - 2,
      0,
      { header: 'overhead', align: 'right' },
      { header: 'lost work', align: 'right' },
      { header: 'replayed msgs', align: 'right' },
      { header: 'domino depth', align: 'right' },
      { header: 'recovery ms', align: 'right' },
    );
  }
  const rows = results.map((r): Cell[] => [
    r.algorithm,
    `${r.metrics.checkpointsCompleted}/${r.metrics.checkpointsTriggered}`,
    fixed(r.metrics.durationMsMean, 1),
    String(r.metrics.channelStateMessagesTotal),
    String(r.metrics.bufferedMessagesTotal),
    fixed(r.metrics.alignmentStallMsMax, 1),
    ...(rollback
      ? [
          fixed(overheadOf(r), 3),
          optional(r.metrics.lostWork, 0),
          optional(r.metrics.replayedMessages, 0),
          optional(r.metrics.dominoDepth, 0),
          optional(r.metrics.recoveryTimeMs, 1),
        ]
      : []),
    String(r.violations.length),
    verdictCell(r),
  ]);
  const first = results[0];
  const header =
    first === undefined
      ? 'no runs'
      : `scenario ${first.scenario}: ${first.processes.length} processes, ${first.channels.length} channels, ` +
        `ended at ${fixed(first.endedAtMs, 0)} ms`;
  return [header, '', renderTable(columns, rows, color)].join('\n') + '\n';
}

/**
 * `consistent` or `VIOLATIONS`: the word a reader (or a grep) looks for. A liveness violation (a
 * checkpoint that did not complete in a run without faults) fails the run as a safety one does.
 */
export function verdictOf(result: SimResult): 'consistent' | 'VIOLATIONS' {
  return result.consistent && result.violations.length === 0 ? 'consistent' : 'VIOLATIONS';
}

function verdictCell(result: SimResult): Cell {
  const verdict = verdictOf(result);
  return { text: verdict, color: verdict === 'consistent' ? 'green' : 'red' };
}

function verdictText(result: SimResult, color: boolean): string {
  const verdict = verdictOf(result);
  const liveness = result.violations.filter((v) => v.kind === LIVENESS_VIOLATION).length;
  const text =
    verdict === 'consistent'
      ? 'consistent (every completed checkpoint is a consistent cut)'
      : liveness === 0
        ? `VIOLATIONS (${result.violations.length} found)`
        : `VIOLATIONS (${result.violations.length} found: ` +
          `${liveness < result.violations.length ? `${result.violations.length - liveness} safety, ` : ''}${liveness} liveness, ` +
          `${liveness === 1 ? 'a checkpoint' : 'checkpoints'} that did not complete in a run without faults)`;
  if (!color) return text;
  return `${verdict === 'consistent' ? '\u001b[32m' : '\u001b[31m'}${text}\u001b[0m`;
}

/** A figure only rollback runs have: `-` in a coordinated run's row. */
function optional(value: number | undefined, decimals: number): string {
  return value === undefined ? '-' : fixed(value, decimals);
}

function completedCell(c: CheckpointReport): Cell {
  if (c.completed) return 'yes';
  return { text: c.abortReason === undefined ? 'no' : `no (${c.abortReason})`, color: 'yellow' };
}

function consistentCell(c: CheckpointReport): Cell {
  // An aborted checkpoint is not a cut anyone can restore, so it is neither consistent nor not.
  if (!c.completed) return '-';
  return c.consistent ? 'yes' : { text: 'NO', color: 'red' };
}

function listViolations(violations: readonly ViolationReport[]): string[] {
  const lines = violations
    .slice(0, VIOLATIONS_LISTED_MAX)
    .map((v) => `  checkpoint ${v.checkpointId} [${v.kind}]${v.channel === undefined ? '' : ` ${v.channel}`}: ${v.message}`);
  if (violations.length > VIOLATIONS_LISTED_MAX) {
    lines.push(`  ... ${violations.length - VIOLATIONS_LISTED_MAX} more (--json lists them all)`);
  }
  return lines;
}
