import { describe, expect, it } from 'vitest';
import { CHECKPOINT_ROWS_MAX, formatComparison, formatRunReport, verdictOf } from '../../simulations/report.js';
import { fixed, renderTable } from '../../simulations/text-table.js';
import { checkpointReport, metrics, simResult } from '../fixtures/sim-result.js';

/** The table lines of a report: from the header line through the last row before a blank line. */
function tableLines(report: string, header: string): string[] {
  const lines = report.split('\n');
  const start = lines.findIndex((l) => l.trimStart().startsWith(header));
  expect(start).toBeGreaterThanOrEqual(0);
  const end = lines.indexOf('', start);
  return lines.slice(start, end < 0 ? undefined : end);
}

describe('run report', () => {
  const report = formatRunReport(simResult());

  it('has a row per checkpoint under a header naming every column', () => {
    const [header, rule, ...rows] = tableLines(report, 'id');
    for (const column of ['id', 'completed', 'duration ms', 'chan-state msgs', 'chan-state bytes', 'buffered msgs', 'max stall ms', 'consistent']) {
      expect(header).toContain(column);
    }
    expect(rule).toMatch(/^[- ]+$/);
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatch(/^ 1\s+yes\s+6\.0\s+1\s+24\s+0\s+0\.0\s+yes$/);
  });

  it('aligns every column: right-aligned numbers end where their header ends', () => {
    const [header, rule, ...rows] = tableLines(report, 'id');
    const durationEnd = header!.indexOf('duration ms') + 'duration ms'.length;
    for (const row of rows) expect(row[durationEnd - 1]).toMatch(/\d/);
    // The rule under the header has one dash run per column, each as wide as the column.
    expect(rule!.split(/\s+/).length).toBe(8);
  });

  it('shows an aborted checkpoint with its reason and neither consistent nor not', () => {
    const row = tableLines(report, 'id')[3]!;
    expect(row).toContain('no (crash)');
    expect(row.trimEnd().endsWith('-')).toBe(true);
  });

  it('ends with totals and a verdict', () => {
    expect(report).toContain('checkpoints: 2 triggered, 1 completed, 1 aborted; mean duration 6.0 ms');
    expect(report).toContain('channel state: 1 msgs; buffered: 0 msgs; max alignment stall: 0.0 ms');
    expect(report).toContain('1 recoveries');
    expect(report.trimEnd().split('\n').at(-1)).toBe('verdict: consistent (every completed checkpoint is a consistent cut)');
  });

  it('lists the violations and says VIOLATIONS when the checker found some', () => {
    const result = simResult({
      consistent: false,
      violations: [{ checkpointId: 1, kind: 'orphan', channel: 'a->b', message: 'b received 3 but a sent 2' }],
      checkpoints: [checkpointReport({ id: 1, consistent: false })],
    });
    const text = formatRunReport(result);
    expect(text).toContain('violations (1):\n  checkpoint 1 [orphan] a->b: b received 3 but a sent 2');
    expect(text).toContain('verdict: VIOLATIONS (1 found)');
    expect(tableLines(text, 'id')[2]).toMatch(/NO$/);
  });

  it('has no colour codes unless asked, and colours the verdict when asked', () => {
    expect(report).not.toContain('\u001b[');
    expect(formatRunReport(simResult(), { color: true })).toContain('\u001b[32mconsistent');
  });

  it('shows at most a fixed number of checkpoint rows and says how many more JSON has', () => {
    const many = Array.from({ length: CHECKPOINT_ROWS_MAX + 5 }, (_, i) => checkpointReport({ id: i + 1 }));
    const text = formatRunReport(simResult({ checkpoints: many }));
    const [, , ...rows] = tableLines(text, 'id');
    expect(rows.filter((r) => /^\s*\d+\s/.test(r))).toHaveLength(CHECKPOINT_ROWS_MAX);
    expect(rows.at(-1)).toBe('... 5 more checkpoints not shown (--json lists them all)');
  });

  it('says so when no checkpoint was triggered', () => {
    expect(formatRunReport(simResult({ checkpoints: [] }))).toContain('(no checkpoint was triggered)');
  });
});

describe('comparison report', () => {
  const results = [
    simResult({ algorithm: 'chandy-lamport' }),
    simResult({
      algorithm: 'none',
      consistent: false,
      violations: [
        { checkpointId: 1, kind: 'orphan', message: 'x' },
        { checkpointId: 2, kind: 'orphan', message: 'y' },
      ],
      metrics: metrics({ channelStateMessagesTotal: 0, durationMsMean: 12.345, alignmentStallMsMax: 3.25 }),
    }),
  ];
  const text = formatComparison(results);

  it('has one row per algorithm with completed/triggered, the costs, the violations and a verdict', () => {
    const [header, , ...rows] = tableLines(text, 'algorithm');
    for (const column of ['algorithm', 'completed', 'mean duration ms', 'chan-state msgs', 'buffered msgs', 'max stall ms', 'violations', 'verdict']) {
      expect(header).toContain(column);
    }
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatch(/^chandy-lamport\s+1\/2\s+6\.0\s+1\s+0\s+0\.0\s+0\s+consistent$/);
    expect(rows[1]).toMatch(/^none\s+1\/2\s+12\.3\s+0\s+0\s+3\.3\s+2\s+VIOLATIONS$/);
  });

  it('names the scenario once above the table', () => {
    expect(text.split('\n')[0]).toBe('scenario three-processes: 3 processes, 3 channels, ended at 20 ms');
  });

  it('gives the verdict VIOLATIONS when violations were reported even if consistent is set', () => {
    expect(verdictOf(simResult({ violations: [{ checkpointId: 1, kind: 'orphan', message: 'x' }] }))).toBe('VIOLATIONS');
  });

  it('counts liveness violations apart from safety ones in the verdict line', () => {
    const liveness = { checkpointId: 2, kind: 'liveness', message: 'did not complete in a run without faults (timeout: x)' };
    const orphan = { checkpointId: 1, kind: 'orphan', message: 'x' };
    expect(verdictOf(simResult({ violations: [liveness] }))).toBe('VIOLATIONS');
    expect(formatRunReport(simResult({ violations: [liveness] }))).toContain(
      'verdict: VIOLATIONS (1 found: 1 liveness, a checkpoint that did not complete in a run without faults)\n',
    );
    expect(formatRunReport(simResult({ consistent: false, violations: [orphan, liveness, { ...liveness, checkpointId: 3 }] }))).toContain(
      'verdict: VIOLATIONS (3 found: 1 safety, 2 liveness, checkpoints that did not complete in a run without faults)\n',
    );
  });
});

describe('text tables', () => {
  it('pad left-aligned columns on the right and right-aligned ones on the left', () => {
    const table = renderTable(
      [
        { header: 'name', align: 'left' },
        { header: 'n', align: 'right' },
      ],
      [
        ['a', '1'],
        ['longer', '100'],
      ],
    );
    expect(table).toBe(['name      n', '------  ---', 'a         1', 'longer  100'].join('\n'));
  });

  it('keep alignment when cells are coloured, because colour is applied after padding', () => {
    const plain = renderTable([{ header: 'v', align: 'left' }, { header: 'w', align: 'left' }], [[{ text: 'ok', color: 'green' }, 'x']], false);
    const coloured = renderTable([{ header: 'v', align: 'left' }, { header: 'w', align: 'left' }], [[{ text: 'ok', color: 'green' }, 'x']], true);
    // eslint-disable-next-line no-control-regex
    expect(coloured.replace(/\u001b\[\d+m/g, '')).toBe(plain);
  });

  it('print numbers with fixed decimals, never -0 and never NaN', () => {
    expect(fixed(1.25, 1)).toBe('1.3');
    expect(fixed(-0.01, 1)).toBe('0.0');
    expect(fixed(Number.NaN, 1)).toBe('-');
  });
});
