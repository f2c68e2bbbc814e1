/**
 * snapctl without a process: the command line rules (each usage error names its problem) and the
 * live progress view in both its forms (a table redrawn in place on a terminal, lines otherwise).
 */
import { describe, expect, it } from 'vitest';
import { checkpointView } from '../../coordinator/checkpoint-view.js';
import { progressView } from '../../coordinator/grpc/convert.js';
import type { CheckpointRecord } from '../../coordinator/model.js';
import { parseCommandLine } from '../../coordinator/snapctl/args.js';
import { WatchView } from '../../coordinator/snapctl/watch-view.js';
import { checkpointRecord } from '../support/coordinator-fixtures.js';

const env = {};

function command(...argv: string[]) {
  const parsed = parseCommandLine(argv, env);
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed;
}

function usageError(...argv: string[]): string {
  const parsed = parseCommandLine(argv, env);
  if (parsed.ok) throw new Error(`expected a usage error for ${argv.join(' ')}`);
  return parsed.error;
}

describe('snapctl command line', () => {
  it('take with every option builds the request the coordinator expects', () => {
    const parsed = command('take', '--plan', 'demo', '--level', 'app', '--aligned', '--alignment-timeout', '250', '--timeout', '30000', '--fallback', 'downgrade', '--idempotency-key', 'op-1', '--watch');
    expect(parsed.command).toEqual({
      kind: 'take',
      watch: true,
      request: { planId: 'demo', level: 'app', idempotencyKey: 'op-1', options: { alignmentMode: 'aligned', alignmentTimeoutMs: 250, timeoutMs: 30_000, fallbackPolicy: 'downgrade' } },
    });
  });

  it('global options go before or after the command; the address comes from --address, then SNAPCTL_ADDRESS, then the default', () => {
    expect(command('--json', 'show', '7', '--address', 'coord:1').global).toEqual({ address: 'coord:1', json: true, output: 'json' });
    expect(parseCommandLine(['agents'], { SNAPCTL_ADDRESS: 'env:2' })).toMatchObject({ global: { address: 'env:2' } });
    expect(command('agents').global.address).toBe('127.0.0.1:50051');
  });

  it('restore --map takes server and app mappings, comma-separated or repeated', () => {
    expect(command('restore', '12', '--map', 'srv1=srv7,srv2=srv8', '--map', 'srv3/APP3=srv9/APP3b').command).toEqual({
      kind: 'restore',
      request: { checkpointId: 12, servers: { srv1: 'srv7', srv2: 'srv8' }, apps: [{ source: { server: 'srv3', app: 'APP3' }, target: { server: 'srv9', app: 'APP3b' } }] },
    });
  });

  it('copy and copies need --site; restore --from-site names the site, --source-site only with it', () => {
    expect(command('copy', '12', '--site', 'dr').command).toEqual({ kind: 'copy', id: 12, site: 'dr' });
    expect(command('copies', '--site', 'dr', '--plan', 'demo').command).toEqual({ kind: 'copies', site: 'dr', planId: 'demo' });
    expect(usageError('copy', '12')).toMatch(/--site NAME is required/);
    expect(usageError('copies')).toMatch(/--site NAME is required/);
    expect(command('restore', '12', '--map', 'srv1=srv7', '--from-site', 'dr').command).toEqual({
      kind: 'restore',
      request: { checkpointId: 12, servers: { srv1: 'srv7' }, apps: [] },
      fromSite: { site: 'dr', sourceSite: '' },
    });
    expect(command('restore', '12', '--map', 'srv1=srv7', '--from-site', 'dr', '--source-site', 'primary').command).toMatchObject({ fromSite: { site: 'dr', sourceSite: 'primary' } });
    expect(usageError('restore', '12', '--map', 'srv1=srv7', '--source-site', 'primary')).toBe('--source-site applies only with --from-site');
  });

  it('list takes states comma-separated and defaults its limit', () => {
    expect(command('list', '--state', 'completed,aborted', '--plan', 'demo').command).toEqual({ kind: 'list', planId: 'demo', states: ['completed', 'aborted'], limit: 100 });
  });

  const usage: [string[], RegExp][] = [
    [['take', '--level', 'app'], /--plan ID is required/],
    [['take', '--plan', 'p', '--level', 'full'], /--level must be one of none, crash, app, got "full"/],
    [['take', '--plan', 'p', '--level', 'app', '--aligned', '--unaligned'], /--aligned and --unaligned exclude each other/],
    [['take', '--plan', 'p', '--level', 'app', '--unaligned', '--alignment-timeout', '5'], /--alignment-timeout applies only to aligned/],
    [['take', '--plan', 'p', '--level', 'app', '--timeout', '-1'], /--timeout/],
    [['show'], /show needs an argument/],
    [['show', '0'], /checkpoint ID must be from 1/],
    [['show', '1', '2'], /unexpected argument "2"/],
    [['restore', '1'], /--map SRC=DST is required/],
    [['restore', '1', '--map', 'srv1'], /--map "srv1" must be SRC=DST/],
    [['list', '--state', 'done'], /--state must be one of pending, triggering/],
    [['plans'], /plans needs a subcommand/],
    [['plans', 'frobnicate'], /unknown command "plans frobnicate"/],
    [['plans', 'register', 'f.json', '--replace', '--revision', '3'], /--replace and --revision exclude each other/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['agents', '--tenant', 'a.b'], /--tenant "a\.b" must match/],
    [['agents', '--nope'], /Unknown option '--nope'/],
    [[], /a command is required/],
  ];
  for (const [argv, message] of usage) {
    it(`usage error: snapctl ${argv.join(' ')}`, () => {
      expect(usageError(...argv)).toMatch(message);
    });
  }

  it('--help on a command and `help COMMAND` give that command\'s help', () => {
    const viaFlag = command('rollback', '--help').command;
    const viaHelp = command('help', 'rollback').command;
    expect(viaFlag).toEqual(viaHelp);
    expect(viaFlag.kind === 'help' && viaFlag.text).toMatch(/^Usage: snapctl rollback ID/);
    expect(command('plans', 'list', '-h').command).toMatchObject({ kind: 'help', text: expect.stringMatching(/^Usage: snapctl plans list/) });
  });
});

describe('snapctl live progress', () => {
  const base = checkpointRecord({ id: 4, state: 'collecting', triggeredAtUnixMs: 1_000 });
  const acked: CheckpointRecord = {
    ...base,
    parts: base.parts.map((p, i) => (i === 0 ? { ...p, acked: true, ackedAtUnixMs: 1_010, alignmentMs: 12, syncMs: 3, asyncMs: 40, state: { name: 'n', digest: 'SHA-256=x', sizeBytes: 2048 } } : p)),
  };
  const done: CheckpointRecord = { ...acked, state: 'completed', levelAchieved: 'app', finishedAtUnixMs: 1_500 };
  const events = [
    progressView({ kind: 'state-changed', atUnixMs: 1, checkpoint: base }),
    progressView({ kind: 'app-progress', atUnixMs: 2, server: 'srv2', app: 'APP2', detail: 'aligning', checkpoint: base }),
    progressView({ kind: 'app-acked', atUnixMs: 3, server: 'srv1', app: 'APP1', checkpoint: acked }),
    progressView({ kind: 'state-changed', atUnixMs: 4, checkpoint: done }),
  ];

  it('off a terminal: one line per event, then the outcome', () => {
    let now = 0;
    const view = new WatchView('lines', () => now);
    const text = events.map((e) => {
      now += 10;
      return view.onEvent(e);
    });
    expect(text).toEqual([
      '[+10ms] checkpoint 4 collecting (acked 0/2)\n',
      '[+20ms] checkpoint 4 srv2/APP2 aligning\n',
      '[+30ms] checkpoint 4 srv1/APP1 acked (align 12ms, sync 3ms, async 40ms, 2.0KiB)\n',
      '[+40ms] checkpoint 4 completed (acked 1/2)\n',
    ]);
    expect(view.finish()).toBe('checkpoint 4 completed at level app in 500ms\n');
  });

  it('on a terminal: each frame rewinds over the previous one and shows every app\'s phase', () => {
    const view = new WatchView('tty', () => 0);
    const first = view.onEvent(events[0] ?? progressView({ kind: 'state-changed', atUnixMs: 0, checkpoint: base }));
    expect(first).not.toContain('\u001b[');
    expect(first.split('\n')).toHaveLength(5); // header, table header, two apps, trailing newline
    view.onEvent(events[1] ?? events[0]!);
    const third = view.onEvent(events[2] ?? events[0]!);
    expect(third.startsWith('\u001b[4A\r\u001b[J')).toBe(true);
    expect(third).toMatch(/srv1\/APP1\s+acked\s+12ms\s+3ms\s+40ms\s+2\.0KiB/);
    expect(third).toMatch(/srv2\/APP2\s+aligning/);
  });

  it('an aborted checkpoint ends with its failure', () => {
    const view = new WatchView('lines', () => 0);
    const aborted: CheckpointRecord = { ...base, state: 'aborted', failureReason: 'timeout', failureDetail: 'srv2 did not answer within 60s' };
    view.onEvent(progressView({ kind: 'state-changed', atUnixMs: 0, checkpoint: aborted }));
    expect(view.finish()).toBe('checkpoint 4 aborted: timeout: srv2 did not answer within 60s\n');
    expect(checkpointView(aborted).failureReason).toBe('timeout');
  });
});

describe('snapctl operator options', () => {
  it('-o chooses the output; --json is -o json; the two cannot disagree; an unknown format is refused', () => {
    expect(command('list', '-o', 'yaml').global).toMatchObject({ output: 'yaml', json: false });
    expect(command('list', '--output', 'wide').global.output).toBe('wide');
    expect(command('list', '--json').global).toMatchObject({ output: 'json', json: true });
    expect(parseCommandLine(['list', '--json', '-o', 'yaml'], {})).toMatchObject({ ok: false, error: '--json and -o yaml exclude each other' });
    expect(parseCommandLine(['list', '-o', 'xml'], {})).toMatchObject({ ok: false, error: '-o must be one of text, wide, json, yaml, got "xml"' });
  });

  it('policy options become a policy; help on a policy subcommand is the policy help', () => {
    expect(command('policy', 'create', 'p1', '--interval', '60000', '--window', '22:00-02:00', '--keep-weekly', '4').command).toEqual({
      kind: 'policy-create',
      policy: {
        planId: 'p1',
        schedule: { intervalMs: 60000, cron: '', level: 'app', windowStart: '22:00', windowEnd: '02:00', jitterMs: 0, minPauseMs: 0, tolerableFailures: 3 },
        retention: { keepLast: 0, keepDaily: 0, keepWeekly: 4, keepMonthly: 0, keepWithinMs: 0 },
      },
    });
    expect(parseCommandLine(['policy', 'create', 'p1', '--interval', '5', '--window', '22-02'], {})).toMatchObject({ ok: false, error: '--window must be HH:MM-HH:MM (UTC), got "22-02"' });
    expect(parseCommandLine(['watch'], {})).toMatchObject({ ok: false, error: 'watch needs exactly one of --plan ID and --tenant T' });
    const help = parseCommandLine(['help', 'policy', 'update'], {});
    expect(help.ok && help.command.kind === 'help' ? help.command.text : '').toMatch(/^Usage: snapctl policy create\|update\|show\|list\|delete/);
  });
});
