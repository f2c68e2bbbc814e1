/**
 * The edges of issue 9's checkpoint calls without a server: the request and answer conversions of
 * Delete, Cancel, Pin and Unpin, max_concurrent and pinned through the proto and back, the options
 * checks of TakeSnapshot, and snapctl's command lines for them and its words for a busy plan.
 */
import { describe, expect, it } from 'vitest';
import { sameTake, snapshotOptions } from '../../coordinator/checkpoints/snapshot-options.js';
import { checkpointView } from '../../coordinator/checkpoint-view.js';
import { checkpointFromProto, checkpointToProto, deleteOutcomeFromProto, deleteOutcomeToProto, keyedCheckpointRequestFromProto, requestLimitsDefault, takeSnapshotRequestFromProto } from '../../coordinator/grpc/convert.js';
import { parseCommandLine } from '../../coordinator/snapctl/args.js';
import { errorText } from '../../coordinator/snapctl/errors.js';
import { checkpointRecord } from '../support/coordinator-fixtures.js';

const limits = { defaults: { timeoutMs: 30_000, alignmentMode: 'aligned', alignmentTimeoutMs: 0, fallbackPolicy: 'fail', freezeDeadlineMs: 10_000, maxConcurrent: 1 }, timeoutMsMax: 3_600_000, freezeDeadlineMsMax: 60_000, maxConcurrentMax: 8 } as const;

describe('keyed checkpoint requests', () => {
  it('carry the checkpoint id and the key; a missing id or an oversized key is INVALID_ARGUMENT naming the field', () => {
    expect(keyedCheckpointRequestFromProto({ checkpoint_id: '7', idempotency_key: 'op-1' }, requestLimitsDefault)).toEqual({ ok: true, value: { checkpointId: 7, idempotencyKey: 'op-1' } });
    expect(keyedCheckpointRequestFromProto({ checkpoint_id: '7', idempotency_key: '' }, requestLimitsDefault)).toEqual({ ok: true, value: { checkpointId: 7 } });
    const noId = keyedCheckpointRequestFromProto({ checkpoint_id: '0', idempotency_key: '' }, requestLimitsDefault);
    expect(!noId.ok && noId.error).toMatchObject({ kind: 'invalid-argument', message: expect.stringMatching(/checkpoint_id is required/) });
    const longKey = keyedCheckpointRequestFromProto({ checkpoint_id: '7', idempotency_key: 'k'.repeat(200) }, requestLimitsDefault);
    expect(!longKey.ok && longKey.error.message).toMatch(/idempotency_key is longer than 128/);
  });

  it('the delete answer goes through the proto and back unchanged', () => {
    const answer = { deletedObjects: 3, deletedVolumeSnapshots: ['/snap/7/s1/vol1'] };
    expect(deleteOutcomeFromProto(deleteOutcomeToProto(answer))).toEqual({ ok: true, value: answer });
  });

  it('max_concurrent and pinned go through the proto and back; a record without max_concurrent shows 1', () => {
    const pinned = checkpointRecord({ state: 'completed', pinned: true, options: { ...checkpointRecord().options, maxConcurrent: 3 } });
    expect(checkpointFromProto(checkpointToProto(pinned))).toEqual({ ok: true, value: checkpointView(pinned) });
    const old = checkpointRecord();
    const back = checkpointFromProto(checkpointToProto(old));
    expect(back.ok && back.value.options.maxConcurrent).toBe(1);
    expect(back.ok && back.value.pinned).toBeUndefined();
  });

  it('TakeSnapshot passes max_concurrent on; 0 leaves the default', () => {
    const r = takeSnapshotRequestFromProto({ plan_id: 'demo', level: 'CONSISTENCY_LEVEL_APP', options: { max_concurrent: 2 }, idempotency_key: '' }, requestLimitsDefault);
    expect(r.ok && r.value.options.maxConcurrent).toBe(2);
    const d = takeSnapshotRequestFromProto({ plan_id: 'demo', level: 'CONSISTENCY_LEVEL_APP', options: { max_concurrent: 0 }, idempotency_key: '' }, requestLimitsDefault);
    expect(d.ok && d.value.options.maxConcurrent).toBeUndefined();
  });
});

describe('TakeSnapshot options', () => {
  it('fill in the defaults and accept every value in range', () => {
    expect(snapshotOptions(limits, { freezeDeadlineMs: 60_000, maxConcurrent: 8, alignmentTimeoutMs: 29_999 })).toEqual({
      ok: true,
      value: { ...limits.defaults, freezeDeadlineMs: 60_000, maxConcurrent: 8, alignmentTimeoutMs: 29_999 },
    });
  });

  it.each([
    [{ freezeDeadlineMs: 4_294_967_295 }, /options\.freeze_deadline 4294967295 ms is out of range: from 1 to 60000 ms/],
    [{ timeoutMs: 3_600_001 }, /options\.timeout 3600001 ms is out of range/],
    [{ timeoutMs: 1_000, alignmentTimeoutMs: 1_000 }, /options\.alignment_timeout 1000 ms is out of range: from 0 to 999 ms/],
    [{ maxConcurrent: 9 }, /options\.max_concurrent 9 is out of range: from 1 to 8/],
  ])('%j is INVALID_ARGUMENT naming the field', (options, message) => {
    const r = snapshotOptions(limits, options);
    expect(!r.ok && r.error.kind).toBe('invalid-argument');
    expect(!r.ok && r.error.message).toMatch(message);
  });

  it('a keyed retry with the same arguments gets the first checkpoint; other arguments are refused naming both', () => {
    const first = checkpointRecord({ id: 5, options: limits.defaults, idempotencyKey: 'k' });
    const same = sameTake(first, { planId: 'demo', level: 'app', options: {}, idempotencyKey: 'k' }, limits.defaults);
    expect(same).toEqual({ ok: true, value: first });
    const other = sameTake(first, { planId: 'demo', level: 'app', options: {}, idempotencyKey: 'k' }, { ...limits.defaults, timeoutMs: 5_000 });
    expect(!other.ok && other.error).toMatchObject({ kind: 'invalid-argument', reason: 'IDEMPOTENCY_KEY_REUSED', metadata: { idempotency_key: 'k', checkpoint_id: '5' } });
    expect(!other.ok && other.error.message).toMatch(/first used for checkpoint 5 \(plan demo, level app, timeout 30000 ms,.*\); this call asks for \(plan demo, level app, timeout 5000 ms,/);
  });
});

describe('snapctl command lines of the new calls', () => {
  const parse = (...argv: string[]) => parseCommandLine(argv, {});
  it('cancel, pin, unpin and delete take a checkpoint id and an optional key', () => {
    expect(parse('cancel', '42')).toMatchObject({ ok: true, command: { kind: 'cancel', id: 42 } });
    expect(parse('pin', '42', '--idempotency-key', 'op-1')).toMatchObject({ ok: true, command: { kind: 'pin', id: 42, idempotencyKey: 'op-1' } });
    expect(parse('unpin', '42')).toMatchObject({ ok: true, command: { kind: 'unpin', id: 42 } });
    expect(parse('delete', '42', '--idempotency-key', 'op-2')).toMatchObject({ ok: true, command: { kind: 'delete', id: 42, idempotencyKey: 'op-2' } });
  });

  it('take --max-concurrent sets the pacing option; a bad value or a missing id is a usage error', () => {
    expect(parse('take', '--plan', 'demo', '--level', 'app', '--max-concurrent', '2')).toMatchObject({ ok: true, command: { request: { options: { maxConcurrent: 2 } } } });
    expect(parse('take', '--plan', 'demo', '--level', 'app', '--max-concurrent', 'x')).toMatchObject({ ok: false, error: expect.stringMatching(/--max-concurrent must be a whole number/) });
    expect(parse('cancel')).toMatchObject({ ok: false, error: expect.stringMatching(/cancel needs an argument/) });
    expect(parse('pin', 'abc')).toMatchObject({ ok: false, error: expect.stringMatching(/checkpoint ID must be a whole number/) });
  });

  it('each new command has its --help', () => {
    for (const c of ['cancel', 'pin', 'unpin', 'delete']) expect(parse(c, '--help')).toMatchObject({ ok: true, command: { kind: 'help', text: expect.stringMatching(new RegExp(`^Usage: snapctl ${c} ID`)) } });
  });
});

describe('snapctl on a busy plan', () => {
  it('shows the coordinator\'s words and which command shows or stops the checkpoint in the way', () => {
    const text = errorText(
      { code: 8, codeName: 'RESOURCE_EXHAUSTED', reason: 'PLAN_BUSY', message: 'PLAN_BUSY: checkpoint 41 of plan demo is in flight (max_concurrent 1); retry once it has ended, or cancel it' },
      { address: '127.0.0.1:50051', command: 'take', callTimeoutMs: 30_000 },
    );
    expect(text).toBe('RESOURCE_EXHAUSTED: PLAN_BUSY: checkpoint 41 of plan demo is in flight (max_concurrent 1); retry once it has ended, or cancel it (`snapctl show 41` follows it; `snapctl cancel 41` stops it)');
  });
});
