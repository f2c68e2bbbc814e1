/**
 * The wire codec: every valid message survives encode -> decode unchanged, every rule of
 * proto/snapshot/v1/wire.proto is enforced with a typed error naming the field, and no input bytes
 * (random, or a valid message mutated) can make a decoder throw.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkWireLimits,
  decodeControl,
  decodeCredit,
  decodeEnvelope,
  decodeEvent,
  encodeControl,
  encodeCredit,
  encodeEnvelope,
  encodeEvent,
  encodeEventTrusted,
  wireLimitsDefault,
  type AgentEvent,
  type Control,
  type Credit,
  type Envelope,
  type WireError,
  type WireResult,
} from '../../src/wire/index.js';
import { agentEventType, controlType, creditType, envelopeType } from '../../src/wire/schema.js';

// ------------------------------------------------------------------------------------------------
// Fixtures
// ------------------------------------------------------------------------------------------------

const stateRef = { name: 'demo/7/srv1/APP1/state', digest: 'SHA-256=n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg=', sizeBytes: 1234 };
const channelState = { name: 'demo/7/srv1/APP1/channels', digest: 'SHA-256=abc_-DEF', sizeBytes: 0 };
const state = { kind: 'object', ref: stateRef } as const;
const inlineState = { kind: 'inline', bytes: new Uint8Array([1, 2, 3]) } as const;
const ctl = { requestId: 'ckpt-7:trigger:srv1', tenant: 'acme', server: 'srv1', plan: 'p1', epoch: 3 } as const;
const evt = { requestId: 'evt-0001', tenant: 'acme', server: 'srv1', epoch: 3 } as const;
const stats = {
  startDelayMs: 3,
  alignmentMs: 12,
  syncMs: 4,
  asyncMs: 40,
  bufferedMessages: 17,
  channelStateMessages: 2,
  finishedUnaligned: true,
};

const validControls: ReadonlyArray<readonly [string, Control]> = [
  ['trigger, aligned', { ...ctl, type: 'trigger', checkpointId: 7, policy: { kind: 'aligned' }, timeoutMs: 30_000, initiatorApps: ['APP1'], backEdgeChannels: ['s3/APP3->s1/APP1'], inlineStateBytesMax: 0 }],
  [
    'trigger, aligned with alignment timeout',
    { ...ctl, type: 'trigger', checkpointId: 7, policy: { kind: 'aligned-timeout', alignmentTimeoutMs: 250 }, timeoutMs: 1, initiatorApps: [], backEdgeChannels: [], inlineStateBytesMax: 0 },
  ],
  ['trigger, unaligned', { ...ctl, type: 'trigger', checkpointId: 8, policy: { kind: 'unaligned' }, timeoutMs: 5, initiatorApps: ['a', 'b_2', 'C-3'], backEdgeChannels: [], inlineStateBytesMax: 0 }],
  ['trigger, sync', { ...ctl, type: 'trigger', checkpointId: 9, policy: { kind: 'sync' }, timeoutMs: 5, initiatorApps: [], backEdgeChannels: [], inlineStateBytesMax: 0 }],
  [
    'trigger with an inline state limit',
    { ...ctl, type: 'trigger', checkpointId: 11, policy: { kind: 'aligned' }, timeoutMs: 5, initiatorApps: [], backEdgeChannels: [], inlineStateBytesMax: 16_384 },
  ],
  [
    'trigger carrying the complete notice of the previous checkpoint',
    { ...ctl, type: 'trigger', checkpointId: 12, policy: { kind: 'aligned' }, timeoutMs: 5, initiatorApps: [], backEdgeChannels: [], inlineStateBytesMax: 0, completedCheckpointId: 11 },
  ],
  ['trigger, none', { ...ctl, type: 'trigger', checkpointId: 10, policy: { kind: 'none' }, timeoutMs: 5, initiatorApps: [], backEdgeChannels: [], inlineStateBytesMax: 0 }],
  ['abort with a reason', { ...ctl, type: 'abort', checkpointId: 7, reason: 'timeout after 30000 ms' }],
  ['abort without a reason', { ...ctl, type: 'abort', checkpointId: 7, reason: '' }],
  ['complete', { ...ctl, type: 'complete', checkpointId: Number.MAX_SAFE_INTEGER }],
  ['freeze', { ...ctl, type: 'freeze', checkpointId: 7, deadlineMs: 10_000 }],
  ['thaw', { ...ctl, type: 'thaw', checkpointId: 7, afterRestore: false }],
  ['thaw after a volume restore', { ...ctl, type: 'thaw', checkpointId: 7, afterRestore: true }],
  [
    'restore with channel state and aliases',
    {
      ...ctl,
      type: 'restore',
      checkpointId: 7,
      apps: [
        {
          app: 'APP1',
          state,
          channelState,
          counts: { sent: { 'srv1/APP1->srv2/APP2': 10 }, received: { 'srv3/APP3->srv1/APP1': 4 } },
          channelAliases: { 'old1/APP3->old1/APP1': 'srv3/APP3->srv1/APP1' },
        },
        { app: 'APP9', state, counts: { sent: {}, received: {} }, channelAliases: {} },
      ],
    },
  ],
  [
    'restore of inline states, one of them empty',
    {
      ...ctl,
      type: 'restore',
      checkpointId: 7,
      apps: [
        { app: 'APP1', state: inlineState, counts: { sent: {}, received: {} }, channelAliases: {} },
        { app: 'APP2', state: { kind: 'inline', bytes: new Uint8Array(0) }, counts: { sent: {}, received: {} }, channelAliases: {} },
      ],
    },
  ],
  ['resume', { ...ctl, type: 'resume', checkpointId: 7, apps: [] }],
  ['resume of opaque apps', { ...ctl, type: 'resume', checkpointId: 7, apps: ['APP1', 'APP2'] }],
  ['quiesce of a source', { ...ctl, type: 'quiesce', checkpointId: 7, apps: ['APP1'], drainTo: {} }],
  ['quiesce with drain positions', { ...ctl, type: 'quiesce', checkpointId: 7, apps: ['APP2', 'APP3'], drainTo: { 'srv1/APP1->srv1/APP2': 0, 'srv2/APP9->srv1/APP3': 1234 } }],
  ['capture', { ...ctl, type: 'capture', checkpointId: 7, apps: ['APP1'] }],
  ['ping', { ...ctl, plan: '', type: 'ping' }],
  ['ping in epoch 0', { ...ctl, plan: '', epoch: 0, type: 'ping' }],
];

const validEvents: ReadonlyArray<readonly [string, AgentEvent]> = [
  ['register', { ...evt, type: 'register', apps: ['APP1', 'APP2'], version: '0.1.0+abc' }],
  ['register without apps', { ...evt, type: 'register', apps: [], version: 'v1' }],
  ['heartbeat answering a ping', { ...evt, inReplyTo: 'ping-1', type: 'heartbeat', frozen: true, checkpointsInFlight: [7, 8], highestCheckpointId: 9 }],
  [
    'ack with channel state',
    {
      ...evt,
      inReplyTo: ctl.requestId,
      type: 'ack',
      checkpointId: 7,
      app: 'APP1',
      counts: { sent: { 'srv1/APP1->srv2/APP2': 10, 'srv1/APP1->srv3/APP3': 0 }, received: { 'srv3/APP3->srv1/APP1': 4 } },
      state,
      channelState,
      stats,
    },
  ],
  [
    // Counts past 2^32 arrive as Longs with a high word: read the checked way, to the same value.
    'ack with counts past 2^32',
    { ...evt, type: 'ack', checkpointId: 7, app: 'APP1', counts: { sent: { 'srv1/APP1->srv2/APP2': 2 ** 40 + 5 }, received: { 'srv3/APP3->srv1/APP1': 2 ** 32 } }, state, stats },
  ],
  [
    'ack without channel state',
    { ...evt, type: 'ack', checkpointId: 7, app: 'APP1', counts: { sent: {}, received: {} }, state, stats: { ...stats, finishedUnaligned: false } },
  ],
  ['ack with its state inline', { ...evt, type: 'ack', checkpointId: 7, app: 'APP1', counts: { sent: {}, received: {} }, state: inlineState, stats }],
  [
    'ack with an empty state inline',
    { ...evt, type: 'ack', checkpointId: 7, app: 'APP1', counts: { sent: {}, received: {} }, state: { kind: 'inline', bytes: new Uint8Array(0) }, stats },
  ],
  ['decline by an app', { ...evt, type: 'decline', checkpointId: 7, app: 'APP1', reason: 'hook-failed', detail: 'exit 1: disk full' }],
  ['decline by the whole server', { ...evt, type: 'decline', checkpointId: 7, reason: 'freeze-failed', detail: '' }],
  [
    'decline with the failed hook',
    {
      ...evt,
      type: 'decline',
      checkpointId: 7,
      reason: 'hook-failed',
      detail: '10-db-lock exited 1',
      hooks: [{ hook: '10-db-lock', action: 'freeze', exitCode: 1, timedOut: false, durationMs: 3, stderr: 'lock busy', attempts: 3 }],
    },
  ],
  ['progress', { ...evt, type: 'progress', checkpointId: 7, app: 'APP1', phase: 'uploading', bytesDone: 4096 }],
  ['frozen', { ...evt, type: 'frozen', checkpointId: 7, frozenAtUnixMs: 1_767_225_600_000, hooksMs: 35, hooks: [] }],
  [
    'frozen with hook results',
    {
      ...evt,
      type: 'frozen',
      checkpointId: 7,
      frozenAtUnixMs: 1_767_225_600_000,
      hooksMs: 35,
      hooks: [
        { hook: '10-db-lock', action: 'freeze', exitCode: 0, timedOut: false, durationMs: 12, stderr: '', attempts: 1, app: 'APP1' },
        { hook: 'fsfreeze', action: 'freeze', exitCode: -1, signal: 'SIGKILL', timedOut: true, durationMs: 5000, stderr: 'stuck', attempts: 2 },
      ],
    },
  ],
  ['thawed by the watchdog', { ...evt, type: 'thawed', checkpointId: 7, thawedAtUnixMs: 1_767_225_610_000, byWatchdog: true, hooks: [], frozenAtUnixMs: 1_767_225_600_000 }],
  ['restored', { ...evt, type: 'restored', checkpointId: 7, apps: ['APP1'] }],
  ['resumed', { ...evt, type: 'resumed' }],
  ['quiesced, a sink', { ...evt, type: 'quiesced', checkpointId: 7, app: 'APP3', outputPositions: {}, hooks: [] }],
  [
    'quiesced with positions and hooks',
    {
      ...evt,
      inReplyTo: ctl.requestId,
      type: 'quiesced',
      checkpointId: 7,
      app: 'APP1',
      outputPositions: { 'srv1/APP1->srv1/APP2': 42, 'srv1/APP1->srv2/APP9': 0 },
      hooks: [{ hook: '10-stop', action: 'freeze', exitCode: 0, timedOut: false, durationMs: 12, stderr: '', attempts: 1, app: 'APP1' }],
    },
  ],
  ['captured', { ...evt, type: 'captured', checkpointId: 7, app: 'APP1', state: stateRef, hooks: [] }],
];

const validEnvelopes: ReadonlyArray<readonly [string, Envelope]> = [
  ['message', { type: 'message', channel: 'srv1/APP1->srv2/APP2', epoch: 3, seq: 1, payload: new Uint8Array([1, 2, 3]) }],
  ['empty message in epoch 0', { type: 'message', channel: 'p->q', epoch: 0, seq: Number.MAX_SAFE_INTEGER, payload: new Uint8Array(0) }],
  ['barrier before any message', { type: 'barrier', channel: 'p->q', epoch: 0, afterSeq: 0, checkpointId: 1 }],
  ['barrier after messages', { type: 'barrier', channel: 'srv1/APP1->q', epoch: 2, afterSeq: 41, checkpointId: 9 }],
  ['barrier that overtook queued messages', { type: 'barrier', channel: 'srv1/APP1->q', epoch: 2, afterSeq: 41, checkpointId: 9, overtaking: true }],
  ['run of three, one empty', { type: 'run', channel: 'srv1/APP1->srv2/APP2', epoch: 1, firstSeq: 7, payloads: [new Uint8Array([1]), new Uint8Array(0), new Uint8Array([2, 3])] }],
];

const validCredits: ReadonlyArray<readonly [string, Credit]> = [
  ['credit', { channel: 'srv1/APP1->srv2/APP2', epoch: 1, receivedSeq: 100, window: 64 }],
  ['credit that stops the sender', { channel: 'p->q', epoch: 0, receivedSeq: 0, window: 0 }],
];

function value<T>(result: WireResult<T>): T {
  if (!result.ok) throw new Error(`expected ok, got ${JSON.stringify(result.error)}`);
  return result.value;
}

function error<T>(result: WireResult<T>): WireError {
  if (result.ok) throw new Error(`expected an error, got ${JSON.stringify(result.value)}`);
  return result.error;
}

// ------------------------------------------------------------------------------------------------
// Round trips
// ------------------------------------------------------------------------------------------------

describe('wire codec: round trips', () => {
  it.each(validControls)('control %s: decode(encode(x)) is x', (_name, control) => {
    expect(value(decodeControl(value(encodeControl(control))))).toEqual(control);
  });

  it.each(validEvents)('event %s: decode(encode(x)) is x', (_name, event) => {
    expect(value(decodeEvent(value(encodeEvent(event))))).toEqual(event);
  });

  it.each(validEvents)('event %s: the trusted encoder writes the checked encoder\'s bytes', (_name, event) => {
    expect(value(encodeEventTrusted(event))).toEqual(value(encodeEvent(event)));
  });

  it('the trusted encoder skips the checks, not the size limit', () => {
    const [, event] = validEvents[0] as readonly [string, AgentEvent];
    const bad = { ...event, server: 'not a valid server id' } as AgentEvent;
    expect(encodeEvent(bad).ok).toBe(false);
    expect(encodeEventTrusted(bad).ok).toBe(true);
    const r = encodeEventTrusted(event, { wireMessageBytesMax: 4 });
    expect(!r.ok && r.error.kind).toBe('too-large');
  });

  it.each(validEnvelopes)('envelope %s: decode(encode(x)) is x', (_name, envelope) => {
    expect(value(decodeEnvelope(value(encodeEnvelope(envelope))))).toEqual(envelope);
  });

  it.each(validCredits)('%s: decode(encode(x)) is x', (_name, credit) => {
    expect(value(decodeCredit(value(encodeCredit(credit))))).toEqual(credit);
  });

  it('decoded payloads and encoded bytes are plain Uint8Arrays, not Node Buffers', () => {
    const bytes = value(encodeEnvelope(validEnvelopes[0]![1]));
    expect(bytes.constructor).toBe(Uint8Array);
    const decoded = value(decodeEnvelope(bytes));
    expect(decoded.type === 'message' && decoded.payload.constructor).toBe(Uint8Array);
  });

  it('absent optional parts decode as absent keys, not as empty values', () => {
    const decline = value(decodeEvent(value(encodeEvent(validEvents.find(([name]) => name === 'decline by the whole server')![1]))));
    expect('app' in decline).toBe(false);
    expect('inReplyTo' in decline).toBe(false);
  });

  it('a message from a peer that sets defaults explicitly decodes the same as one that omits them', () => {
    const explicit = envelopeType.encode({ channel: 'p->q', epoch: 0, seq: 0, barrier: { checkpoint_id: 1, epoch: 0 } }).finish();
    expect(value(decodeEnvelope(explicit))).toEqual(validEnvelopes[2]![1]);
  });

  it('64-bit fields up to Number.MAX_SAFE_INTEGER decode exactly', () => {
    const bytes = envelopeType
      .encode({ channel: 'p->q', epoch: '9007199254740991', seq: '9007199254740990', payload: new Uint8Array(1) })
      .finish();
    const decoded = value(decodeEnvelope(bytes));
    expect(decoded.epoch).toBe(Number.MAX_SAFE_INTEGER);
    expect(decoded.type === 'message' && decoded.seq).toBe(Number.MAX_SAFE_INTEGER - 1);
  });
});

// ------------------------------------------------------------------------------------------------
// Validation on decode: proto-shaped fields encoded with the raw protobuf types, bypassing the
// codec's own checks, as a buggy or hostile peer would send them.
// ------------------------------------------------------------------------------------------------

const aboveSafe = '9007199254740992';
const rawCtl = { request_id: 'r-1', tenant: 'acme', server: 'srv1', plan: 'p1', epoch: 1, checkpoint_id: 7 };
const rawTrigger = { policy: 1, timeout_ms: 1000, initiator_apps: ['APP1'] };
const rawRef = { name: 'obj', digest: 'SHA-256=abc', size_bytes: 3 };
const rawAppRestore = { app: 'APP1', state: rawRef, sent: [{ channel: 'a->b', count: 1 }], received: [] };
const rawEvt = { request_id: 'e-1', tenant: 'acme', server: 'srv1', epoch: 1 };
const rawStats = { start_delay_ms: 1 };
const rawAck = { checkpoint_id: 7, app: 'APP1', state: rawRef, stats: rawStats };
const rawEnv = { channel: 'a->b', epoch: 1, seq: 1 };

interface InvalidCase {
  readonly name: string;
  readonly fields: Record<string, unknown>;
  readonly field: string;
}

const invalidControls: readonly InvalidCase[] = [
  { name: 'no request id', fields: { ...rawCtl, request_id: '', ping: {}, checkpoint_id: 0 }, field: 'request_id' },
  { name: 'a request id with a space', fields: { ...rawCtl, request_id: 'r 1', ping: {}, checkpoint_id: 0 }, field: 'request_id' },
  { name: 'a request id of 129 characters', fields: { ...rawCtl, request_id: 'r'.repeat(129), ping: {}, checkpoint_id: 0 }, field: 'request_id' },
  { name: 'no tenant', fields: { ...rawCtl, tenant: '', trigger: rawTrigger }, field: 'tenant' },
  { name: 'a tenant with a dot (would break the subject)', fields: { ...rawCtl, tenant: 'a.b', trigger: rawTrigger }, field: 'tenant' },
  { name: 'a tenant of 65 characters', fields: { ...rawCtl, tenant: 't'.repeat(65), trigger: rawTrigger }, field: 'tenant' },
  { name: 'a server with a wildcard', fields: { ...rawCtl, server: 'srv*', trigger: rawTrigger }, field: 'server' },
  { name: 'an epoch above MAX_SAFE_INTEGER', fields: { ...rawCtl, epoch: aboveSafe, trigger: rawTrigger }, field: 'epoch' },
  { name: 'no command', fields: { ...rawCtl }, field: 'command' },
  { name: 'two commands', fields: { ...rawCtl, thaw: {}, abort: {} }, field: 'command' },
  { name: 'a trigger without checkpoint id', fields: { ...rawCtl, checkpoint_id: 0, trigger: rawTrigger }, field: 'checkpoint_id' },
  {
    name: 'a trigger announcing its own checkpoint as completed',
    fields: { ...rawCtl, trigger: { ...rawTrigger, completed_checkpoint_id: 7 } },
    field: 'trigger.completed_checkpoint_id',
  },
  { name: 'a checkpoint id above MAX_SAFE_INTEGER', fields: { ...rawCtl, checkpoint_id: aboveSafe, thaw: {} }, field: 'checkpoint_id' },
  { name: 'a ping with a checkpoint id', fields: { ...rawCtl, plan: '', ping: {} }, field: 'checkpoint_id' },
  { name: 'a ping naming a plan', fields: { ...rawCtl, checkpoint_id: 0, ping: {} }, field: 'plan' },
  { name: 'a trigger without a plan', fields: { ...rawCtl, plan: '', trigger: rawTrigger }, field: 'plan' },
  { name: 'a trigger with a malformed plan', fields: { ...rawCtl, plan: 'a.b', trigger: rawTrigger }, field: 'plan' },
  { name: 'a trigger with policy UNSPECIFIED', fields: { ...rawCtl, trigger: { ...rawTrigger, policy: 0 } }, field: 'trigger.policy' },
  { name: 'a trigger with an unknown policy', fields: { ...rawCtl, trigger: { ...rawTrigger, policy: 99 } }, field: 'trigger.policy' },
  {
    name: 'an alignment timeout with policy unaligned',
    fields: { ...rawCtl, trigger: { ...rawTrigger, policy: 2, alignment_timeout_ms: 5 } },
    field: 'trigger.alignment_timeout_ms',
  },
  { name: 'a trigger without timeout', fields: { ...rawCtl, trigger: { ...rawTrigger, timeout_ms: 0 } }, field: 'trigger.timeout_ms' },
  {
    name: 'a bad initiator app name',
    fields: { ...rawCtl, trigger: { ...rawTrigger, initiator_apps: ['APP1', 'APP 2'] } },
    field: 'trigger.initiator_apps[1]',
  },
  {
    name: 'an initiator app named twice',
    fields: { ...rawCtl, trigger: { ...rawTrigger, initiator_apps: ['APP1', 'APP1'] } },
    field: 'trigger.initiator_apps[1]',
  },
  { name: 'an abort reason over 4096 characters', fields: { ...rawCtl, abort: { reason: 'x'.repeat(4097) } }, field: 'abort.reason' },
  { name: 'a freeze without deadline', fields: { ...rawCtl, freeze: {} }, field: 'freeze.deadline_ms' },
  { name: 'a restore of no app', fields: { ...rawCtl, restore: { apps: [] } }, field: 'restore.apps' },
  { name: 'a quiesce of no app', fields: { ...rawCtl, quiesce: { apps: [] } }, field: 'quiesce.apps' },
  { name: 'a quiesce of one app twice', fields: { ...rawCtl, quiesce: { apps: ['a', 'a'] } }, field: 'quiesce.apps[1]' },
  { name: 'a quiesce draining a bad channel', fields: { ...rawCtl, quiesce: { apps: ['a'], drain_to: [{ channel: 'nope', count: 1 }] } }, field: 'quiesce.drain_to[0].channel' },
  { name: 'a capture of no app', fields: { ...rawCtl, capture: {} }, field: 'capture.apps' },
  { name: 'a resume naming a malformed app', fields: { ...rawCtl, resume: { apps: ['a b'] } }, field: 'resume.apps[0]' },
  { name: 'a restore of one app twice', fields: { ...rawCtl, restore: { apps: [rawAppRestore, rawAppRestore] } }, field: 'restore.apps[1]' },
  {
    name: 'a restored app without state',
    fields: { ...rawCtl, restore: { apps: [{ ...rawAppRestore, state: undefined }] } },
    field: 'restore.apps[0].app_state',
  },
  {
    name: 'a restored app with both a stored and an inline state',
    fields: { ...rawCtl, restore: { apps: [{ ...rawAppRestore, inline_state: new Uint8Array([7]) }] } },
    field: 'restore.apps[0].app_state',
  },
  {
    name: 'a state object name with a control character',
    fields: { ...rawCtl, restore: { apps: [{ ...rawAppRestore, state: { ...rawRef, name: 'a\nb' } }] } },
    field: 'restore.apps[0].state.name',
  },
  {
    name: 'a state digest without algorithm',
    fields: { ...rawCtl, restore: { apps: [{ ...rawAppRestore, state: { ...rawRef, digest: 'abc' } }] } },
    field: 'restore.apps[0].state.digest',
  },
  {
    name: 'a channel state object without digest',
    fields: { ...rawCtl, restore: { apps: [{ ...rawAppRestore, channel_state: { name: 'cs' } }] } },
    field: 'restore.apps[0].channel_state.digest',
  },
  {
    name: 'a count for a channel named twice',
    fields: {
      ...rawCtl,
      restore: { apps: [{ ...rawAppRestore, sent: [{ channel: 'a->b', count: 1 }, { channel: 'a->b', count: 2 }] }] },
    },
    field: 'restore.apps[0].sent[1].channel',
  },
  {
    name: 'a channel alias recorded twice',
    fields: {
      ...rawCtl,
      restore: {
        apps: [
          {
            ...rawAppRestore,
            channel_aliases: [
              { recorded: 'a->b', current: 'c->d' },
              { recorded: 'a->b', current: 'e->f' },
            ],
          },
        ],
      },
    },
    field: 'restore.apps[0].channel_aliases[1].recorded',
  },
  {
    name: 'a channel alias to a bad channel id',
    fields: { ...rawCtl, restore: { apps: [{ ...rawAppRestore, channel_aliases: [{ recorded: 'a->b', current: 'c-d' }] }] } },
    field: 'restore.apps[0].channel_aliases[0].current',
  },
];

/** Channel ids that parseChannelId or the name rules turn away, each with why. */
const badChannelIds: ReadonlyArray<readonly [string, string]> = [
  ['', 'empty'],
  ['ab', 'no arrow'],
  ['a-b', 'half an arrow'],
  ['->b', 'no sender'],
  ['a->', 'no receiver'],
  ['a->b->c', 'two arrows'],
  ['a.b->c', 'a dot (would break the subject)'],
  ['a/b/c->d', 'a process id with two slashes'],
  ['/b->c', 'a process id with an empty server'],
  ['a->b/', 'a process id with an empty app'],
  [`${'x'.repeat(65)}->b`, 'a name of 65 characters'],
  ['a b->c', 'a space'],
];

const invalidEvents: readonly InvalidCase[] = [
  { name: 'no request id', fields: { ...rawEvt, request_id: '', resumed: {} }, field: 'request_id' },
  { name: 'a reply to a malformed request id', fields: { ...rawEvt, in_reply_to: 'a/b', resumed: {} }, field: 'in_reply_to' },
  { name: 'no server', fields: { ...rawEvt, server: '', resumed: {} }, field: 'server' },
  { name: 'no event', fields: { ...rawEvt }, field: 'event' },
  { name: 'two events', fields: { ...rawEvt, resumed: {}, heartbeat: {} }, field: 'event' },
  { name: 'a register without version', fields: { ...rawEvt, register: { apps: ['APP1'] } }, field: 'register.version' },
  { name: 'a version with a space', fields: { ...rawEvt, register: { apps: [], version: '1 0' } }, field: 'register.version' },
  { name: 'a register naming an app twice', fields: { ...rawEvt, register: { apps: ['a', 'a'], version: '1' } }, field: 'register.apps[1]' },
  {
    name: 'a heartbeat with checkpoint id 0 in flight',
    fields: { ...rawEvt, heartbeat: { checkpoints_in_flight: [3, 0] } },
    field: 'heartbeat.checkpoints_in_flight[1]',
  },
  { name: 'an ack without checkpoint id', fields: { ...rawEvt, ack: { ...rawAck, checkpoint_id: 0 } }, field: 'ack.checkpoint_id' },
  { name: 'an ack without app', fields: { ...rawEvt, ack: { ...rawAck, app: '' } }, field: 'ack.app' },
  { name: 'an ack without state', fields: { ...rawEvt, ack: { ...rawAck, state: undefined } }, field: 'ack.app_state' },
  { name: 'an ack with both a stored and an inline state', fields: { ...rawEvt, ack: { ...rawAck, inline_state: new Uint8Array([1]) } }, field: 'ack.app_state' },
  { name: 'an ack without stats', fields: { ...rawEvt, ack: { ...rawAck, stats: undefined } }, field: 'ack.stats' },
  {
    name: 'an ack with a sent count above MAX_SAFE_INTEGER',
    fields: { ...rawEvt, ack: { ...rawAck, sent: [{ channel: 'a->b', count: aboveSafe }] } },
    field: 'ack.sent[0].count',
  },
  {
    name: 'an ack counting one input twice',
    fields: { ...rawEvt, ack: { ...rawAck, received: [{ channel: 'a->b', count: 1 }, { channel: 'a->b', count: 1 }] } },
    field: 'ack.received[1].channel',
  },
  ...badChannelIds.map(([channel, why]) => ({
    name: `an ack counting a channel id with ${why}`,
    fields: { ...rawEvt, ack: { ...rawAck, sent: [{ channel, count: 1 }] } },
    field: 'ack.sent[0].channel',
  })),
  { name: 'a decline with reason UNSPECIFIED', fields: { ...rawEvt, decline: { checkpoint_id: 7 } }, field: 'decline.reason' },
  { name: 'a decline with an unknown reason', fields: { ...rawEvt, decline: { checkpoint_id: 7, reason: 77 } }, field: 'decline.reason' },
  {
    name: 'a decline detail over 4096 characters',
    fields: { ...rawEvt, decline: { checkpoint_id: 7, reason: 1, detail: 'x'.repeat(4097) } },
    field: 'decline.detail',
  },
  { name: 'a decline by a malformed app', fields: { ...rawEvt, decline: { checkpoint_id: 7, reason: 1, app: 'a.b' } }, field: 'decline.app' },
  { name: 'a progress with phase UNSPECIFIED', fields: { ...rawEvt, progress: { checkpoint_id: 7, app: 'a' } }, field: 'progress.phase' },
  { name: 'a frozen without checkpoint id', fields: { ...rawEvt, frozen: { hooks_ms: 3 } }, field: 'frozen.checkpoint_id' },
  { name: 'a thawed without checkpoint id', fields: { ...rawEvt, thawed: { by_watchdog: true } }, field: 'thawed.checkpoint_id' },
  { name: 'a quiesced without app', fields: { ...rawEvt, quiesced: { checkpoint_id: 7 } }, field: 'quiesced.app' },
  {
    name: 'a quiesced reporting one output twice',
    fields: { ...rawEvt, quiesced: { checkpoint_id: 7, app: 'a', output_positions: [{ channel: 'a->b', count: 1 }, { channel: 'a->b', count: 2 }] } },
    field: 'quiesced.output_positions[1].channel',
  },
  { name: 'a captured without state', fields: { ...rawEvt, captured: { checkpoint_id: 7, app: 'a' } }, field: 'captured.state' },
  { name: 'a restored naming a malformed app', fields: { ...rawEvt, restored: { checkpoint_id: 7, apps: ['a b'] } }, field: 'restored.apps[0]' },
];

const invalidEnvelopes: readonly InvalidCase[] = [
  { name: 'a message with seq 0', fields: { ...rawEnv, seq: 0, payload: new Uint8Array(1) }, field: 'seq' },
  { name: 'a message with seq above MAX_SAFE_INTEGER', fields: { ...rawEnv, seq: aboveSafe, payload: new Uint8Array(1) }, field: 'seq' },
  { name: 'no body', fields: { ...rawEnv }, field: 'body' },
  { name: 'a payload and a barrier', fields: { ...rawEnv, payload: new Uint8Array(1), barrier: { checkpoint_id: 1, epoch: 1 } }, field: 'body' },
  { name: 'a barrier without checkpoint id', fields: { ...rawEnv, barrier: { epoch: 1 } }, field: 'barrier.checkpoint_id' },
  { name: 'a barrier of another epoch than its envelope', fields: { ...rawEnv, barrier: { checkpoint_id: 1, epoch: 2 } }, field: 'barrier.epoch' },
  { name: 'a run of one message', fields: { ...rawEnv, seq: 1, run: { payloads: [new Uint8Array(1)] } }, field: 'run.payloads' },
  { name: 'a run with seq 0', fields: { ...rawEnv, seq: 0, run: { payloads: [new Uint8Array(1), new Uint8Array(1)] } }, field: 'seq' },
  { name: 'a run that goes past MAX_SAFE_INTEGER', fields: { ...rawEnv, seq: Number.MAX_SAFE_INTEGER, run: { payloads: [new Uint8Array(1), new Uint8Array(1)] } }, field: 'seq' },
  { name: 'a payload and a run', fields: { ...rawEnv, seq: 1, payload: new Uint8Array(1), run: { payloads: [new Uint8Array(1), new Uint8Array(1)] } }, field: 'body' },
  ...badChannelIds.map(([channel, why]) => ({
    name: `a channel id with ${why}`,
    fields: { ...rawEnv, channel, payload: new Uint8Array(1) },
    field: 'channel',
  })),
];

const invalidCredits: readonly InvalidCase[] = [
  { name: 'no channel', fields: { epoch: 1, window: 3 }, field: 'channel' },
  { name: 'a received seq above MAX_SAFE_INTEGER', fields: { channel: 'a->b', received_seq: aboveSafe }, field: 'received_seq' },
];

function expectInvalid(result: WireResult<unknown>, field: string): void {
  const e = error(result);
  expect(e.kind).toBe('invalid');
  expect(e.field).toBe(field);
  expect(e.message.length).toBeGreaterThan(0);
}

describe('wire codec: validation on decode', () => {
  it.each(invalidControls)('control with $name is invalid at $field', ({ fields, field }) => {
    expectInvalid(decodeControl(controlType.encode(fields).finish()), field);
  });

  it.each(invalidEvents)('event with $name is invalid at $field', ({ fields, field }) => {
    expectInvalid(decodeEvent(agentEventType.encode(fields).finish()), field);
  });

  it.each(invalidEnvelopes)('envelope with $name is invalid at $field', ({ fields, field }) => {
    expectInvalid(decodeEnvelope(envelopeType.encode(fields).finish()), field);
  });

  it.each(invalidCredits)('credit with $name is invalid at $field', ({ fields, field }) => {
    expectInvalid(decodeCredit(creditType.encode(fields).finish()), field);
  });

  it('the first broken rule is the one reported', () => {
    const bytes = controlType.encode({ ...rawCtl, tenant: 'a.b', server: 'c.d', trigger: rawTrigger }).finish();
    expect(error(decodeControl(bytes)).field).toBe('tenant');
  });

  it('an unknown field from a newer peer is skipped, not rejected (forward compatibility)', () => {
    const known = value(encodeEnvelope(validEnvelopes[0]![1]));
    // Field 99, wire type 0 (varint), value 1.
    const withUnknown = new Uint8Array([...known, 0x98, 0x06, 0x01]);
    expect(value(decodeEnvelope(withUnknown))).toEqual(validEnvelopes[0]![1]);
  });
});

describe('wire codec: size limit and malformed input', () => {
  const decoders: ReadonlyArray<readonly [string, (bytes: Uint8Array) => WireResult<unknown>]> = [
    ['decodeControl', decodeControl],
    ['decodeEvent', decodeEvent],
    ['decodeEnvelope', decodeEnvelope],
    ['decodeCredit', decodeCredit],
  ];

  it.each(decoders)('%s: one byte over wireMessageBytesMax is too large, before decoding', (_name, decode) => {
    // 0xff bytes are not valid protobuf, so only the size check can produce 'too-large'.
    const bytes = new Uint8Array(wireLimitsDefault.wireMessageBytesMax + 1).fill(0xff);
    const e = error(decode(bytes));
    expect(e.kind).toBe('too-large');
    expect(e.message).toContain(String(wireLimitsDefault.wireMessageBytesMax));
  });

  it.each(decoders)('%s: truncated input is malformed', (_name, decode) => {
    // Field 1, length-delimited, claims 10 bytes, has 1.
    expect(error(decode(new Uint8Array([0x0a, 0x0a, 0x41]))).kind).toBe('malformed');
  });

  it.each(decoders)('%s: a value that is not a Uint8Array is malformed', (_name, decode) => {
    expect(error(decode('not bytes' as unknown as Uint8Array)).kind).toBe('malformed');
  });

  it('a custom limit applies to decoding and encoding alike', () => {
    const limits = { wireMessageBytesMax: 16 };
    const envelope: Envelope = { type: 'message', channel: 'p->q', epoch: 0, seq: 1, payload: new Uint8Array(32) };
    expect(error(encodeEnvelope(envelope, limits)).kind).toBe('too-large');
    const bytes = value(encodeEnvelope(envelope));
    expect(error(decodeEnvelope(bytes, limits)).kind).toBe('too-large');
    expect(value(decodeEnvelope(bytes, { wireMessageBytesMax: bytes.byteLength }))).toEqual(envelope);
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('wireMessageBytesMax %s is rejected at configuration', (max) => {
    expectInvalid(checkWireLimits({ wireMessageBytesMax: max }), 'wireMessageBytesMax');
  });

  it('the default limits are valid', () => {
    expect(value(checkWireLimits(wireLimitsDefault))).toEqual(wireLimitsDefault);
  });
});

describe('wire codec: validation on encode', () => {
  const trigger = validControls[0]![1];
  const cases: ReadonlyArray<readonly [string, () => WireResult<Uint8Array>, string]> = [
    ['a control with a malformed tenant', () => encodeControl({ ...trigger, tenant: 'a.b' }), 'tenant'],
    ['a control with a negative epoch', () => encodeControl({ ...trigger, epoch: -1 }), 'epoch'],
    ['a control with a fractional epoch', () => encodeControl({ ...trigger, epoch: 1.5 }), 'epoch'],
    [
      'aligned-timeout with a zero timeout (would travel as plain aligned)',
      () => encodeControl({ ...ctl, type: 'trigger', checkpointId: 1, policy: { kind: 'aligned-timeout', alignmentTimeoutMs: 0 }, timeoutMs: 1, initiatorApps: [], backEdgeChannels: [], inlineStateBytesMax: 0 }),
      'trigger.alignment_timeout_ms',
    ],
    [
      'a freeze deadline above uint32',
      () => encodeControl({ ...ctl, type: 'freeze', checkpointId: 1, deadlineMs: 2 ** 32 }),
      'freeze.deadline_ms',
    ],
    ['an event with checkpoint id 0', () => encodeEvent({ ...evt, type: 'restored', checkpointId: 0, apps: [] }), 'restored.checkpoint_id'],
    [
      'an event with a malformed reply id',
      () => encodeEvent({ ...evt, inReplyTo: 'has space', type: 'resumed' }),
      'in_reply_to',
    ],
    [
      'a message with seq 0',
      () => encodeEnvelope({ type: 'message', channel: 'p->q', epoch: 0, seq: 0, payload: new Uint8Array(0) }),
      'seq',
    ],
    [
      'a message with seq NaN',
      () => encodeEnvelope({ type: 'message', channel: 'p->q', epoch: 0, seq: Number.NaN, payload: new Uint8Array(0) }),
      'seq',
    ],
    [
      'a barrier on a malformed channel',
      () => encodeEnvelope({ type: 'barrier', channel: 'p-q', epoch: 0, afterSeq: 0, checkpointId: 1 }),
      'channel',
    ],
    ['a credit with a window above uint32', () => encodeCredit({ channel: 'p->q', epoch: 0, receivedSeq: 0, window: 2 ** 32 }), 'window'],
  ];

  it.each(cases)('%s is invalid at %s', (_name, encode, field) => {
    expectInvalid(encode(), field);
  });
});

// ------------------------------------------------------------------------------------------------
// Properties: no bytes make a decoder throw, and whatever decodes re-encodes to the same value.
// ------------------------------------------------------------------------------------------------

const errorKinds = new Set(['too-large', 'malformed', 'invalid']);

/** Anything decoded must re-encode, and decode again to the same value: validation is symmetric. */
function checkTotal<T>(result: WireResult<T>, encode: (value: T) => WireResult<Uint8Array>, decode: (bytes: Uint8Array) => WireResult<T>): void {
  if (!result.ok) {
    expect(errorKinds.has(result.error.kind)).toBe(true);
    expect(typeof result.error.message).toBe('string');
    return;
  }
  const again = decode(value(encode(result.value)));
  expect(value(again)).toEqual(result.value);
}

const codecs = [
  {
    name: 'control',
    decode: decodeControl,
    check: (bytes: Uint8Array) => checkTotal(decodeControl(bytes), encodeControl, decodeControl),
    samples: validControls.map(([, c]) => value(encodeControl(c))),
  },
  {
    name: 'event',
    decode: decodeEvent,
    check: (bytes: Uint8Array) => checkTotal(decodeEvent(bytes), encodeEvent, decodeEvent),
    samples: validEvents.map(([, e]) => value(encodeEvent(e))),
  },
  {
    name: 'envelope',
    decode: decodeEnvelope,
    check: (bytes: Uint8Array) => checkTotal(decodeEnvelope(bytes), encodeEnvelope, decodeEnvelope),
    samples: validEnvelopes.map(([, e]) => value(encodeEnvelope(e))),
  },
  {
    name: 'credit',
    decode: decodeCredit,
    check: (bytes: Uint8Array) => checkTotal(decodeCredit(bytes), encodeCredit, decodeCredit),
    samples: validCredits.map(([, c]) => value(encodeCredit(c))),
  },
];

/** A valid encoding changed by flipping, overwriting, inserting, deleting bytes or truncating. */
function mutated(samples: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  const edit = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  );
  return fc.tuple(fc.constantFrom(...samples), fc.array(edit, { minLength: 1, maxLength: 6 })).map(([sample, edits]) => {
    const bytes = [...sample];
    for (const e of edits) {
      const at = bytes.length === 0 ? 0 : e.at % bytes.length;
      if (e.kind === 'set' && bytes.length > 0) bytes[at] = e.byte;
      else if (e.kind === 'flip' && bytes.length > 0) bytes[at] = bytes[at]! ^ (1 << e.bit);
      else if (e.kind === 'insert') bytes.splice(at, 0, e.byte);
      else if (e.kind === 'delete') bytes.splice(at, 1);
      else if (e.kind === 'truncate') bytes.length = at;
    }
    return new Uint8Array(bytes);
  });
}

describe('wire codec: totality', () => {
  it.each(codecs)('$name: random bytes never throw, and give a value or a typed error', ({ check }) => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
        check(bytes);
      }),
      { numRuns: 2000 },
    );
  });

  it.each(codecs)('$name: mutations of valid encodings never throw, and give a value or a typed error', ({ check, samples }) => {
    fc.assert(
      fc.property(mutated(samples), (bytes) => {
        check(bytes);
      }),
      { numRuns: 3000 },
    );
  });

  it.each(codecs)('$name: deeply nested groups (a stack-overflow attempt) are malformed, not a crash', ({ decode }) => {
    // Field 1 as a start-group tag (wire type 3), as many as the size limit allows.
    const bytes = new Uint8Array(wireLimitsDefault.wireMessageBytesMax).fill(0x0b);
    const result = decode(bytes);
    expect(result.ok).toBe(false);
    expect(errorKinds.has(result.ok ? '' : result.error.kind)).toBe(true);
  });

  it('envelopes: any valid envelope round-trips', () => {
    const name = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);
    const processId = fc.oneof(name, fc.tuple(name, name).map(([s, a]) => `${s}/${a}`));
    const channel = fc.tuple(processId, processId).map(([from, to]) => `${from}->${to}`);
    const uint = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
    const positive = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
    const envelope: fc.Arbitrary<Envelope> = fc.oneof(
      fc.record({ type: fc.constant('message' as const), channel, epoch: uint, seq: positive, payload: fc.uint8Array({ maxLength: 64 }) }),
      fc.record({ type: fc.constant('barrier' as const), channel, epoch: uint, afterSeq: uint, checkpointId: positive }),
      fc.record({ type: fc.constant('run' as const), channel, epoch: uint, firstSeq: fc.integer({ min: 1, max: 1_000_000 }), payloads: fc.array(fc.uint8Array({ maxLength: 16 }), { minLength: 2, maxLength: 6 }) }),
    );
    fc.assert(
      fc.property(envelope, (e) => {
        expect(value(decodeEnvelope(value(encodeEnvelope(e))))).toEqual(e);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('wire codec: Node Buffers', () => {
  it('a truncated message is malformed whether it comes as a Uint8Array or as a Node Buffer (what nats.js delivers)', async () => {
    const { encodeCredit, decodeCredit } = await import('../../src/wire/index.js');
    const full = encodeCredit({ channel: 's1/a->s2/b', epoch: 1, receivedSeq: 5, window: 8 });
    if (!full.ok) throw new Error(full.error.message);
    const truncated = full.value.slice(0, 6);
    expect(decodeCredit(truncated).ok).toBe(false);
    expect(decodeCredit(Buffer.from(truncated)).ok).toBe(false);
    expect(decodeCredit(Buffer.from(full.value)).ok).toBe(true);
  });
});
